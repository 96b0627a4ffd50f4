import ArgumentParser
import Foundation
import RobitAgent
import RobitAudit
import RobitExec

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a task: a model drives tools inside a sandbox; every step is audited; a patch comes out.",
        discussion: """
            The workspace is copied for the run and mounted at /work; your directory is never written. \
            The changes come out as a git patch (output.patch, or changes.patch in the run's directory). \
            Progress goes to stderr; --json prints one summary object on stdout.

            Exit codes: 0 done, 2 invalid input (or output.pr failed), 3 budget exhausted, 4 model provider failed, \
            5 sandbox failed, 6 audit log unusable, 130 interrupted.
            """)

    @Argument(help: "The task file (task.yaml).")
    var task: String

    @OptionGroup var common: RunFlags

    func run() async throws {
        let request = try common.request(taskPath: task)
        let summary: RunSummary
        do {
            summary = try await AgentRun.start(request, events: common.progress.event, notice: common.progress.notice)
        } catch {
            throw RobitExit(error.exitCode, error.message)
        }
        try common.finish(summary)
    }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Continue an interrupted run in a new sandbox, from its workspace as it was left.",
        discussion: "The run's audit chain continues with a `resumed` record; sign with the same key as the run.")

    @Argument(help: "The run id (or a unique prefix), from `robit runs list`.")
    var runID: String

    @OptionGroup var common: RunFlags

    func run() async throws {
        let request = try common.request(taskPath: "")
        let summary: RunSummary
        do {
            summary = try await AgentRun.resume(runID, request: request, events: common.progress.event, notice: common.progress.notice)
        } catch {
            throw RobitExit(error.exitCode, error.message)
        }
        try common.finish(summary)
    }
}

struct RunFlags: ParsableArguments {
    @Option(help: "Use this directory as the workspace instead of the task's workspace.path.")
    var workspace: String?

    @Option(help: "OCI runtime: runsc, crun or runc (overrides the task).")
    var runtime: RuntimeKind?

    @Option(help: "Model name (overrides the task's model.name).")
    var model: String?

    @Flag(help: "Print one JSON summary object on stdout.")
    var json = false

    @Option(name: .customLong("audit-dir"), help: "Directory for the run's audit log (default ~/.local/state/robit/runs/RUN).")
    var auditDir: String?

    @Option(help: "Private key that signs audit checkpoints (default: $ROBIT_AUDIT_KEY, then ~/.config/robit/audit.key if present).")
    var key: String?

    @Option(help: "When the audit log is forced to disk: `checkpoint` or `every` record.")
    var fsync: AuditFsync = .checkpoint

    var progress: Progress { Progress.shared }

    func request(taskPath: String) throws -> RunRequest {
        if let model, model.isEmpty { throw ValidationError("--model must not be empty") }
        return RunRequest(taskPath: taskPath, workspace: workspace, runtime: runtime, model: model, auditDirectory: auditDir,
                          signingKey: key, fsync: fsync, robitVersion: robitVersion)
    }

    func finish(_ summary: RunSummary) throws {
        progress.done()
        if json {
            print(summary.jsonText)
        } else {
            if let text = summary.finalText, !text.isEmpty { print(text) }
        }
        let cost = summary.usage.costMicroUSD.map { Money.usd(micro: $0) } ?? "unknown cost"
        printError("robit: \(summary.status.rawValue): \(summary.message); \(summary.usage.steps) steps, \(summary.usage.toolCalls) tool calls, \(summary.usage.tokens) tokens, \(cost)")
        if let patch = summary.patchPath {
            let n = summary.patchRedactions
            printError("robit: patch \(patch)" + (n > 0 ? " (\(n) secret value\(n == 1 ? "" : "s") replaced by [REDACTED:NAME]; it differs from the workspace there)" : ""))
        }
        if let url = summary.prURL { printError("robit: pull request \(url)") }
        printError("robit: audit head \(summary.head ?? "none") (\(summary.auditPath))")
        if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
    }
}

/// Live progress on stderr: one updating status line on a TTY, plain lines otherwise.
final class Progress: @unchecked Sendable {
    static let shared = Progress()
    private let lock = NSLock()
    private let tty = isatty(STDERR_FILENO) == 1
    private let start = ContinuousClock.now
    private var step = 0
    private var tool = ""
    private var tokens = 0
    private var cost: Int64? = 0
    private var lineShown = false

    var event: @Sendable (LoopEvent) -> Void { { [self] e in handle(e) } }
    var notice: @Sendable (String) -> Void { { [self] m in say("robit: " + m) } }

    private func handle(_ e: LoopEvent) {
        lock.lock()
        defer { lock.unlock() }
        switch e {
        case .modelCall(let s):
            step = s
            tool = "thinking"
            if !tty { write("robit: step \(s): model call") }
        case .modelAnswer(let s, let calls, let usage):
            tokens = usage.tokens
            cost = usage.costMicroUSD
            tool = calls == 0 ? "answered" : "\(calls) tool call\(calls == 1 ? "" : "s")"
            if !tty { write("robit: step \(s): \(calls) tool call(s), \(usage.tokens) tokens so far") }
        case .toolStart(_, let name):
            tool = name
        case .toolEnd(let s, let name, let isError, let duration):
            if !tty { write("robit: step \(s): \(name) \(isError ? "error" : "ok") in \(formatMS(duration))") }
        }
        if tty { status() }
    }

    /// `850ms`, `12.3s` (rounded), in integers: this runs at every step.
    private func formatMS(_ d: Duration) -> String {
        let (seconds, attoseconds) = d.components
        let ms = seconds * 1000 + (attoseconds + 500_000_000_000_000) / 1_000_000_000_000_000
        if ms < 1000 { return "\(ms)ms" }
        let tenths = (ms + 50) / 100
        return "\(tenths / 10).\(tenths % 10)s"
    }

    private func status() {
        let elapsed = ContinuousClock.now - start
        let costText = cost.map { Money.usd(micro: $0) } ?? "$?"
        let line = "robit: step \(step) | \(tool) | \(tokens) tokens | \(costText) | \(formatMS(elapsed))"
        writeStandardError("\r\u{1B}[2K" + line)
        lineShown = true
    }

    private func write(_ line: String) {
        writeStandardError(line + "\n")
    }

    func say(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        if tty && lineShown { writeStandardError("\r\u{1B}[2K"); lineShown = false }
        write(line)
    }

    func done() {
        lock.lock()
        defer { lock.unlock() }
        if tty && lineShown { writeStandardError("\r\u{1B}[2K"); lineShown = false }
    }
}

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List and inspect runs (the run store).",
        subcommands: [RunsList.self, RunsShow.self, RunsPrune.self])
}

struct RunsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List recent runs.")

    @Option(help: "How many runs to list.")
    var limit: Int = 50

    @Flag(help: "Print JSON lines.")
    var json = false

    func run() throws {
        let store: RunStore
        do { store = try RunStore() } catch { throw RobitExit(.invalidInput, error.message) }
        let runs: [RunRecord]
        do { runs = try store.list(limit: limit) } catch { throw RobitExit(.invalidInput, error.message) }
        if json {
            for r in runs { print(try RunsShow.json(r, steps: nil)) }
            return
        }
        if runs.isEmpty { printError("robit: no runs yet (\(store.path))"); return }
        print("RUN".rightPad(20) + " " + "STATUS".rightPad(15) + " " + "STEPS".leftPad(5) + " " + "TOKENS".leftPad(8) + " " + "COST".leftPad(9) + "  STARTED              TASK")
        let formatter = ISO8601DateFormatter()
        for r in runs {
            let cost = r.costMicroUSD.map { Money.usd(micro: $0) } ?? "?"
            let started = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(r.startedAt)))
            print(r.id.rightPad(20) + " " + r.status.rightPad(15) + " " + String(r.steps).leftPad(5) + " " + String(r.inputTokens + r.outputTokens).leftPad(8)
                  + " " + cost.leftPad(9) + "  " + started + " " + r.taskName)
        }
    }
}

struct RunsShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one run: status, totals, audit log, head hash, patch.")

    @Argument(help: "The run id or a unique prefix.")
    var runID: String

    func run() throws {
        let store: RunStore
        do { store = try RunStore() } catch { throw RobitExit(.invalidInput, error.message) }
        guard let record = try? store.get(runID) else { throw RobitExit(.invalidInput, "no run \(runID) in \(store.path); see `robit runs list`") }
        print(try Self.json(record, steps: try? store.steps(run: record.id), pretty: true))
    }

    static func json(_ r: RunRecord, steps: [RunStore.Step]?, pretty: Bool = false) throws -> String {
        var object: [String: Any] = [
            "run": r.id, "task": r.taskPath, "task_name": r.taskName, "workspace": r.workspace, "run_workspace": r.runWorkspace,
            "audit_path": r.auditPath, "status": r.status, "steps": r.steps, "input_tokens": r.inputTokens, "output_tokens": r.outputTokens,
            "runtime": r.runtime, "provider": r.provider, "model": r.model, "started_at": r.startedAt,
        ]
        object["exit_code"] = r.exitCode ?? NSNull()
        object["cost_micro_usd"] = r.costMicroUSD ?? NSNull()
        object["head"] = r.head ?? NSNull()
        object["patch_path"] = r.patchPath ?? NSNull()
        object["pr_url"] = r.prURL ?? NSNull()
        object["ended_at"] = r.endedAt ?? NSNull()
        if let steps {
            object["step_list"] = steps.map { ["step": $0.step, "tool_calls": $0.toolCalls, "input_tokens": $0.inputTokens, "output_tokens": $0.outputTokens,
                                               "cost_micro_usd": $0.costMicroUSD as Any? ?? NSNull(), "status": $0.status] as [String: Any] }
        }
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: options), as: UTF8.self)
    }
}

/// Amounts of money as robit prints them.
enum Money {
    /// `$0.0123`: micro-dollars to four decimals, rounded half away from zero.
    static func usd(micro: Int64) -> String {
        let sign = micro < 0 ? "-" : ""
        let units = (micro.magnitude + 50) / 100  // 1/10000 of a dollar
        let fraction = String(units % 10_000)
        return "\(sign)$\(units / 10_000)." + String(repeating: "0", count: 4 - fraction.count) + fraction
    }
}
