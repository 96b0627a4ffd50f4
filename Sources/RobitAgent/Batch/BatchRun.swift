import Foundation
import RobitExec
import RobitOCI
import RobitSync

/// What `robit batch` was asked to do.
public struct BatchRequest: Sendable {
    /// Task files, and directories whose `*.yaml` / `*.yml` files are tasks.
    var inputs: [String]
    var jobs: Int
    /// The robit executable each task runs under (`robit run TASK --json`).
    var robit: String
    /// Flags added to every `robit run` (`--runtime R`, `--key K`).
    var runArguments: [String]
    var environment: [String: String]

    public init(inputs: [String], jobs: Int, robit: String, runArguments: [String] = [],
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.inputs = inputs
        self.jobs = jobs
        self.robit = robit
        self.runArguments = runArguments
        self.environment = environment
    }
}

/// What the batch reports as it goes.
public enum BatchEvent: Sendable {
    case started(BatchTask)
    case finished(BatchTaskResult)
}

/// One task of a batch, before it runs.
public struct BatchTask: Sendable {
    public var index: Int
    public var path: String
    public var name: String?
    /// Where its `robit run`'s stderr goes.
    public var log: String
}

public enum BatchRun {
    /// The task files the inputs name, in order, each once: a directory gives its `*.yaml` and `*.yml`
    /// files (not hidden ones, not recursively) in name order.
    public static func taskFiles(_ inputs: [String]) throws(RunSetupError) -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        for input in inputs {
            let path = URL(fileURLWithPath: input).standardizedFileURL.path
            var isDirectory: ObjCBool = false
            var found = [path]
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                found = names.filter { !$0.hasPrefix(".") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) }.sorted().map { path + "/" + $0 }
                if found.isEmpty { throw RunSetupError(.invalidInput, "\(input): no task files (*.yaml, *.yml) in this directory") }
            }
            for file in found where seen.insert(file).inserted { out.append(file) }
        }
        if out.isEmpty { throw RunSetupError(.invalidInput, "no task files given") }
        return out
    }

    /// Runs every task, `jobs` at a time, each as its own `robit run` (its own sandbox, run id and audit
    /// log); one failing does not stop the others. A task whose name another robit holds (a running or
    /// queued task of another batch) is skipped. SIGINT/SIGTERM is passed on to every running task, which
    /// tears its sandbox down and finalizes its log; tasks not started yet are not started.
    public static func run(_ request: BatchRequest, files: [String],
                           events: @escaping @Sendable (BatchEvent) -> Void = { _ in }) async -> [BatchTaskResult] {
        Interrupts.install()
        let logs = batchDirectory(environment: request.environment)
        try? FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])

        // Every task's lock is taken before the first one starts: two batches over the same tasks run
        // each task once, whichever takes its lock first, even when one of them is already done with it.
        var results = [BatchTaskResult?](repeating: nil, count: files.count)
        var queue: [BatchTask] = []
        var locks: [Int: TaskLock] = [:]
        for (index, path) in files.enumerated() {
            let log = logs + "/" + String(format: "%02d", index + 1) + "-" + ((path as NSString).lastPathComponent as NSString).deletingPathExtension + ".log"
            let name: String
            do { name = try TaskFile.read(path: path).task.name } catch {
                results[index] = BatchTaskResult(index: index, path: path, name: nil, status: "invalid", exitCode: ExitStatus.invalidInput.code, message: error.description)
                continue
            }
            do {
                locks[index] = try TaskLock.acquire(name: name, environment: request.environment)
                queue.append(BatchTask(index: index, path: path, name: name, log: log))
            } catch {
                switch error {
                case .held(_, let pid):
                    let message = pid == getpid() ? "another task of this batch is named \(name); skipped"
                                                  : "a task named \(name) is already running or queued by another robit\(pid.map { " (pid \($0))" } ?? ""); skipped"
                    results[index] = BatchTaskResult(index: index, path: path, name: name, status: "skipped", exitCode: nil, message: message)
                case .unusable(let message):
                    results[index] = BatchTaskResult(index: index, path: path, name: name, status: "failed", exitCode: ExitStatus.failed.code, message: message)
                }
            }
        }
        for case let result? in results { events(.finished(result)) }

        let running = Locked<Set<pid_t>>([])
        let forwarder = Task {
            // Passed on once: each task's robit finalizes its own log.
            while !Task.isCancelled {
                if let signal = Interrupts.signal {
                    for pid in running.withLock({ $0 }) { kill(pid, signal) }
                    return
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        let environment = request.environment.map { "\($0.key)=\($0.value)" }
        await withTaskGroup(of: BatchTaskResult.self) { group in
            var next = 0
            func startNext() {
                let task = queue[next]
                // Held from here on by the task alone: released when its robit run has ended.
                let lock = locks.removeValue(forKey: task.index)!
                next += 1
                events(.started(task))
                group.addTask {
                    await runOne(task, lock: lock, request: request, environment: environment, running: running)
                }
            }
            while next < queue.count && next < max(1, request.jobs) && !Interrupts.pending { startNext() }
            for await result in group {
                results[result.index] = result
                events(.finished(result))
                if next < queue.count && !Interrupts.pending { startNext() }
            }
            // Interrupted: what never started says so.
            for task in queue[next...] {
                let result = BatchTaskResult(index: task.index, path: task.path, name: task.name, status: "not_started", exitCode: nil,
                                             message: "not started: robit batch was interrupted")
                results[task.index] = result
                events(.finished(result))
            }
        }
        forwarder.cancel()
        return results.enumerated().map { index, result in
            result ?? BatchTaskResult(index: index, path: files[index], name: nil, status: "failed", exitCode: ExitStatus.failed.code, message: "not run")
        }
    }

    /// The batch's exit status: the largest of its tasks' exit codes (skipped and unstarted tasks count
    /// 0), or 130 when it was interrupted.
    public static func exitCode(_ results: [BatchTaskResult]) -> Int32 {
        if Interrupts.pending { return ExitStatus.interrupted.code }
        return results.compactMap(\.exitCode).max() ?? 0
    }

    /// `$XDG_STATE_HOME/robit/batches/<UTC time>-<pid>`: the logs of one batch's tasks.
    static func batchDirectory(environment: [String: String]) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return RobitPaths.state(environment) + "/batches/" + formatter.string(from: Date()) + "-\(getpid())"
    }

    private static func runOne(_ task: BatchTask, lock: TaskLock, request: BatchRequest, environment: [String],
                               running: Locked<Set<pid_t>>) async -> BatchTaskResult {
        let clock = ContinuousClock()
        let began = clock.now
        let child = ChildProcess(executable: request.robit, arguments: ["run", task.path, "--json"] + request.runArguments,
                                 environment: environment, stderr: .file(task.log), passFD: lock.fd,
                                 onStart: { pid in
                                     running.withLock { _ = $0.insert(pid) }
                                     // An interrupt that came while it started.
                                     if let signal = Interrupts.signal { kill(pid, signal) }
                                 })
        let outcome: ChildProcess.Result
        do { outcome = try await child.run() } catch {
            return BatchTaskResult(index: task.index, path: task.path, name: task.name, status: "failed", exitCode: ExitStatus.failed.code,
                                   message: "cannot start \(request.robit): \(error)", log: task.log)
        }
        withExtendedLifetime(lock) {}
        let elapsed = clock.now - began
        var result = BatchTaskResult(index: task.index, path: task.path, name: task.name, status: "failed", exitCode: nil, message: "", log: task.log)
        result.elapsedMS = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        switch outcome.status {
        case .exited(let code): result.exitCode = code
        case .signaled(let signal):
            result.exitCode = 128 + signal
            result.status = "crashed"
            result.message = "robit run ended by signal \(signal); see \(task.log)"
            return result
        }
        let line = outcome.stdout.text.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        if let line, let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] {
            result.summary(object)
        } else {
            result.status = result.exitCode == ExitStatus.invalidInput.code ? "invalid"
                          : result.exitCode == ExitStatus.interrupted.code ? "interrupted" : "failed"
            result.message = lastLine(of: task.log) ?? "robit run exited \(result.exitCode ?? -1) without a summary; see \(task.log)"
        }
        return result
    }

    /// The last line robit wrote to a task's log, without its `robit: ` prefix.
    private static func lastLine(of path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let text = String(decoding: data.suffix(8192), as: UTF8.self)
        guard let line = text.split(separator: "\n").last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) else { return nil }
        return line.hasPrefix("robit: ") ? String(line.dropFirst(7)) : String(line)
    }
}
