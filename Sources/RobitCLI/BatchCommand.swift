import ArgumentParser
import Foundation
import RobitAgent
import RobitExec

struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Run many tasks, N at a time, each in its own sandbox with its own run id and audit log.",
        discussion: """
            A directory stands for its *.yaml and *.yml files. Each task runs as `robit run TASK --json`; \
            its progress goes to a log under ~/.local/state/robit/batches/. One failing task does not stop \
            the others. A task whose name another robit batch is running or has queued is skipped (a lock \
            per task name, released when its holder ends). SIGINT/SIGTERM stops every running task (each \
            tears its sandbox down and finalizes its log) and starts no more.

            At the end: a table on stdout, or with --json one JSON object per task. The exit code is the \
            largest of the tasks' exit codes (skipped tasks count 0), 130 if interrupted.
            """)

    @Argument(help: "Task files, or directories of them.")
    var tasks: [String]

    @Option(help: "How many tasks run at a time (1-64).")
    var jobs = 1

    @Flag(help: "Print one JSON object per task on stdout.")
    var json = false

    @Option(help: "OCI runtime for every task: runsc, crun or runc (overrides the tasks).")
    var runtime: RuntimeKind?

    @Option(help: "Private key that signs every task's audit checkpoints (default as for robit run).")
    var key: String?

    func validate() throws {
        guard (1...64).contains(jobs) else { throw ValidationError("--jobs must be between 1 and 64, not \(jobs)") }
        if tasks.isEmpty { throw ValidationError("name at least one task file or directory") }
    }

    func run() async throws {
        let files: [String]
        do { files = try BatchRun.taskFiles(tasks) } catch { throw RobitExit(error.exitCode, error.message) }
        var arguments: [String] = []
        if let runtime { arguments += ["--runtime", runtime.rawValue] }
        if let key { arguments += ["--key", URL(fileURLWithPath: key).standardizedFileURL.path] }
        let request = BatchRequest(inputs: tasks, jobs: jobs, robit: Self.executable, runArguments: arguments)
        printError("robit: batch of \(files.count) task\(files.count == 1 ? "" : "s"), \(jobs) at a time")
        let results = await BatchRun.run(request, files: files) { event in
            switch event {
            case .started(let task):
                printError("robit: [\(task.name ?? task.path)] started (log \(task.log))")
            case .finished(let r):
                let exit = r.exitCode.map { " exit \($0)" } ?? ""
                printError("robit: [\(r.name ?? r.path)] \(r.status)\(exit): \(r.message)")
            }
        }
        if json {
            for r in results { print(r.jsonText) }
        } else {
            print(Self.table(results))
        }
        let code = BatchRun.exitCode(results)
        if code != 0 { throw ExitCode(code) }
    }

    /// This robit binary: every task runs under the same one.
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func table(_ results: [BatchTaskResult]) -> String {
        var lines = ["TASK".rightPad(24) + " " + "STATUS".rightPad(15) + " " + "EXIT".leftPad(4) + " " + "STEPS".leftPad(5) + " "
                     + "TOKENS".leftPad(8) + " " + "COST".leftPad(9) + " " + "TIME".leftPad(8) + "  " + "RUN".rightPad(18) + "  PATCH / PR / MESSAGE"]
        for r in results {
            let cost = r.costMicroUSD.map { Money.usd(micro: $0) } ?? "-"
            let time = r.elapsedMS > 0 ? String(format: "%.1fs", Double(r.elapsedMS) / 1000) : "-"
            var what = [r.patchPath, r.prURL].compactMap { $0 }.joined(separator: " ")
            if r.status != "done" || what.isEmpty { what = [what, r.message].filter { !$0.isEmpty }.joined(separator: " ") }
            lines.append((r.name ?? (r.path as NSString).lastPathComponent).rightPad(24) + " " + r.status.rightPad(15) + " "
                         + (r.exitCode.map(String.init) ?? "-").leftPad(4) + " " + (r.steps.map(String.init) ?? "-").leftPad(5) + " "
                         + (r.tokens.map(String.init) ?? "-").leftPad(8) + " " + cost.leftPad(9) + " " + time.leftPad(8) + "  "
                         + (r.run ?? "-").rightPad(18) + "  " + what)
        }
        return lines.joined(separator: "\n")
    }
}
