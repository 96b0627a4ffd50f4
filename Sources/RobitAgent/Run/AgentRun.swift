import Foundation
import RobitAudit
import RobitExec
import RobitOCI
import RobitSync

/// What `robit run` was asked to do.
public struct RunRequest: Sendable {
    var taskPath: String
    var workspace: String?
    var runtime: RuntimeKind?
    var model: String?
    var auditDirectory: String?
    var signingKey: String?
    var fsync: AuditFsync
    var robitVersion: String
    var environment: [String: String]
    /// Timeouts, retries and circuit breaker of an HTTP provider; nil = `HTTPProviderOptions()`.
    var providerOptions: HTTPProviderOptions?

    public init(taskPath: String, workspace: String? = nil, runtime: RuntimeKind? = nil, model: String? = nil, auditDirectory: String? = nil,
                signingKey: String? = nil, fsync: AuditFsync = .checkpoint, robitVersion: String,
                environment: [String: String] = ProcessInfo.processInfo.environment, providerOptions: HTTPProviderOptions? = nil) {
        self.taskPath = taskPath
        self.workspace = workspace
        self.runtime = runtime
        self.model = model
        self.auditDirectory = auditDirectory
        self.signingKey = signingKey
        self.fsync = fsync
        self.robitVersion = robitVersion
        self.environment = environment
        self.providerOptions = providerOptions
    }
}

/// A run that could not start: bad task, flags, key or audit place (exit 2), or a host problem (exit 5).
public struct RunSetupError: Error, Sendable, CustomStringConvertible {
    var status: ExitStatus
    public var message: String
    /// The error this one reports, when there was one.
    var underlying: (any Error & Sendable)?

    public init(_ status: ExitStatus, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.status = status
        self.message = message
        self.underlying = underlying
    }

    public var exitCode: Int32 { status.code }
    public var description: String { message }
}

/// The outcome of a run, as `--json` prints it.
public struct RunSummary: Sendable {
    var run: String
    public var status: RunStatus
    public var exitCode: Int32
    public var message: String
    public var finalText: String?
    public var usage: RunUsage
    public var auditPath: String
    public var head: String?
    public var patchPath: String?
    /// Secret values replaced in the patch before it was written (it then differs from the workspace).
    public var patchRedactions: Int = 0
    /// The pull request output.pr opened or found.
    public var prURL: String?
    var elapsed: Duration

    /// The `--json` object: one line, keys sorted.
    public var jsonText: String {
        let ms = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        let members: [(String, WireJSON)] = [
            ("run", .string(run)), ("status", .string(status.rawValue)), ("exit_code", .int(Int(exitCode))), ("message", .string(message)),
            ("steps", .int(usage.steps)), ("tool_calls", .int(usage.toolCalls)), ("input_tokens", .int(usage.inputTokens)),
            ("output_tokens", .int(usage.outputTokens)), ("tokens", .int(usage.tokens)),
            ("cost_usd", usage.costMicroUSD.map { .number(Double($0) / 1_000_000) } ?? .null),
            ("cost_micro_usd", usage.costMicroUSD.map { .int(Int($0)) } ?? .null),
            ("audit_path", .string(auditPath)), ("head", head.map { .string($0) } ?? .null),
            ("patch_path", patchPath.map { .string($0) } ?? .null), ("patch_redactions", .int(patchRedactions)), ("pr_url", prURL.map { .string($0) } ?? .null), ("final_text", finalText.map { .string($0) } ?? .null),
            ("elapsed_ms", .int(ms)),
        ]
        return WireJSON.object(members.sorted { $0.0 < $1.0 }).text
    }
}

public enum AgentRun {
    /// Starts a new run of a task file.
    public static func start(_ request: RunRequest, events: @escaping @Sendable (LoopEvent) -> Void = { _ in },
                             notice: @escaping @Sendable (String) -> Void = { _ in }) async throws(RunSetupError) -> RunSummary {
        // Parsed from the bytes that are hashed and kept: the file is read once.
        var (task, taskData): (TaskFile, Data)
        do { (task, taskData) = try TaskFile.read(path: request.taskPath) } catch {
            throw RunSetupError(.invalidInput, error.description, underlying: error)
        }
        if let model = request.model { task.model.name = model }
        if let workspace = request.workspace { task.workspace.path = URL(fileURLWithPath: workspace).standardizedFileURL.path }
        let id = Sandbox.newID()
        let runWorkspace: RunWorkspace
        do {
            runWorkspace = try RunWorkspace.prepare(from: task.workspace.path, at: RunWorkspace.defaultRoot(run: id, environment: request.environment),
                                                    disk: task.sandbox.limits.disk.bytes)
        } catch {
            throw RunSetupError(ExitStatus(error), error.message, underlying: error)
        }
        // The tree the run starts from: the user's directory, whose file digests are cached between runs.
        let sourceTree = WorkspaceTree.manifest(task.workspace.path, cache: WorkspaceTree.cachePath(for: task.workspace.path, environment: request.environment))
        let taskDirectory = (URL(fileURLWithPath: request.taskPath).standardizedFileURL.path as NSString).deletingLastPathComponent
        let start = AuditRecords.runStart(robitVersion: request.robitVersion, taskBytes: [UInt8](taskData),
                                          taskPath: URL(fileURLWithPath: request.taskPath).standardizedFileURL.path, task: task,
                                          workspaceTree: sourceTree.hash)
        do {
            return try await execute(task: task, taskData: taskData, taskDirectory: taskDirectory, id: id, runWorkspace: runWorkspace,
                                     request: request, history: nil, startData: start, startTree: sourceTree, events: events, notice: notice)
        } catch {
            // The run never started: nothing of its workspace is kept.
            runWorkspace.finish(done: true)
            throw error
        }
    }

    /// Continues an interrupted run in a new sandbox, from its workspace as it was left, extending its audit chain.
    public static func resume(_ runID: String, request: RunRequest, events: @escaping @Sendable (LoopEvent) -> Void = { _ in },
                              notice: @escaping @Sendable (String) -> Void = { _ in }) async throws(RunSetupError) -> RunSummary {
        let store: RunStore
        do { store = try RunStore(path: RunStore.defaultPath(environment: request.environment)) } catch {
            throw RunSetupError(.invalidInput, error.message)
        }
        guard let record = try? store.get(runID) else {
            throw RunSetupError(.invalidInput, "no run \(runID) in the run store \(store.path); see `robit runs list`")
        }
        if record.status == RunStatus.done.rawValue {
            throw RunSetupError(.invalidInput, "run \(record.id) finished (done); there is nothing to resume")
        }
        if record.status == "running", record.pid != getpid(), kill(record.pid, 0) == 0 {
            throw RunSetupError(.invalidInput, "run \(record.id) is still running (pid \(record.pid))")
        }
        guard FileManager.default.fileExists(atPath: record.runWorkspace + "/disk.img") else {
            throw RunSetupError(.invalidInput, "the workspace of run \(record.id) (\(record.runWorkspace)/disk.img) is gone; it cannot be resumed")
        }
        let auditDirectory = (record.auditPath as NSString).deletingLastPathComponent
        let history: AuditHistory
        do { history = try AuditHistory.load(auditDirectory) } catch {
            throw RunSetupError(.auditFailed, "cannot read the audit log of run \(record.id): \(error.message)")
        }
        guard let text = history.taskText else {
            throw RunSetupError(.auditFailed, "the audit log of run \(record.id) does not hold its task file")
        }
        let taskDirectory = (record.taskPath as NSString).deletingLastPathComponent
        var task: TaskFile
        do { task = try TaskFile.parse(text, file: record.taskPath, baseDirectory: taskDirectory) } catch {
            throw RunSetupError(.invalidInput, error.description)
        }
        task.model.name = record.model
        task.workspace.path = record.workspace
        let runWorkspace: RunWorkspace
        do { runWorkspace = try RunWorkspace(root: record.runWorkspace).reopen(source: record.workspace) } catch {
            throw RunSetupError(ExitStatus(error), "cannot mount the workspace of run \(record.id) again: \(error.message)", underlying: error)
        }
        var resumed = request
        resumed.auditDirectory = auditDirectory
        if let runtime = RuntimeKind(rawValue: record.runtime), request.runtime == nil { resumed.runtime = runtime }
        do {
            return try await execute(task: task, taskData: Data(text.utf8), taskDirectory: taskDirectory, id: record.id, runWorkspace: runWorkspace,
                                     request: resumed, history: history, startData: AuditRecords.resumed(robitVersion: request.robitVersion, stepsSoFar: history.usage.steps,
                                                                    workspaceTree: WorkspaceTree.hash(runWorkspace.work)),
                                     startTree: WorkspaceTree.manifest(record.workspace, cache: WorkspaceTree.cachePath(for: record.workspace, environment: request.environment)),
                                     events: events, notice: notice, store: store, existing: record)
        } catch {
            runWorkspace.finish(done: false)
            throw error
        }
    }

    // MARK: - The run

    static func execute(task: TaskFile, taskData: Data, taskDirectory: String, id: String, runWorkspace: RunWorkspace,
                                request: RunRequest, history: AuditHistory?, startData: AuditValue, startTree: WorkspaceManifest?,
                                events: @escaping @Sendable (LoopEvent) -> Void, notice: @escaping @Sendable (String) -> Void,
                                store existingStore: RunStore? = nil, existing: RunRecord? = nil,
                                replay: ReplaySetup? = nil) async throws(RunSetupError) -> RunSummary {
        let clock = ContinuousClock()
        let began = clock.now
        var secrets: [Redaction] = []
        for name in [task.model.apiKeyEnv ?? TaskFile.Model.defaultAPIKeyEnv(for: task.model.provider), task.output.pullRequest?.tokenEnv].compactMap({ $0 }) {
            if let value = request.environment[name], !value.isEmpty { secrets.append(Redaction(name: name, value: value)) }
        }
        // The run's one redactor: tool output, the log, the patch, the summary and the final answer.
        let redactor = Redactor(secrets)
        let provider: any ModelProvider
        if let replay {
            provider = replay.provider
        } else {
            do {
                provider = try makeProvider(task, environment: request.environment, baseDirectory: taskDirectory,
                                            options: request.providerOptions ?? HTTPProviderOptions())
            } catch {
                throw RunSetupError(.invalidInput, error.message)
            }
        }
        let prices = try PriceTable.load(environment: request.environment)
        if replay == nil, task.budget.maxCostMicroUSD != nil, task.model.provider != .replay, prices.price(model: task.model.name) == nil {
            throw RunSetupError(.invalidInput, "budget.max_cost_usd is set, but robit has no price for model \(task.model.name), so the limit could not be enforced; add it to \(PriceTable.configPath(environment: request.environment)) as {\"\(task.model.name)\": {\"input_usd_per_million\": N, \"output_usd_per_million\": N}} or remove max_cost_usd")
        }
        // What a pull request will need is checked before anything runs (not by a replay, which opens none).
        var prLocation: PullRequestBranch.Location?
        if replay == nil, let pr = task.output.pullRequest {
            prLocation = try await PullRequestPublisher.preflight(pr, workspace: task.workspace.path, environment: request.environment)
        }
        let tools: ToolRegistry
        do { tools = try ToolRegistry(task: task, redactor: redactor) } catch {
            throw RunSetupError(.invalidInput, error.description)
        }
        var options: SandboxOptions
        do { options = try task.sandboxOptions() } catch { throw RunSetupError(.invalidInput, error.description) }
        if let runtime = request.runtime { options.runtime = runtime }
        options.workspace = runWorkspace.work
        options.user = RunWorkspace.sandboxUser

        // The audit log, outside anything the sandbox can see.
        let (auditDirectory, signer, configuration) = try SandboxAudit.placement(directory: request.auditDirectory, key: request.signingKey, options: options,
                                                                  run: id, environment: request.environment)
        let auditOptions = AuditOptions(signer: signer, fsync: request.fsync, redactions: secrets)
        let log: AuditLog
        do {
            if history == nil {
                var data = startData
                // The task file itself, as a blob (`run.start` holds its hash and a reference), and the lines of
                // the workspace's tree, so that a replay can name the paths in which its workspace differs.
                data.set("task", try AuditLog.storeBlob(Array(taskData), in: auditDirectory))
                if let startTree { data.set("workspace_tree", try AuditLog.storeBlob(Array(startTree.text.utf8), in: auditDirectory)) }
                log = try AuditLog.create(directory: auditDirectory, run: id, options: auditOptions, startData: data)
            } else {
                log = try AuditLog.reopen(directory: auditDirectory, options: auditOptions, recordType: "resumed", data: startData)
            }
        } catch {
            throw RunSetupError(error.kind == .key ? .invalidInput : .auditFailed, error.message, underlying: error)
        }
        notice("run \(id), audit log \(log.path)")

        // The run store (not for a replay: it is not a run to list or resume).
        let store = replay != nil ? nil : existingStore ?? (try? RunStore(path: RunStore.defaultPath(environment: request.environment)))
        var record = existing ?? RunRecord(id: id, taskPath: URL(fileURLWithPath: request.taskPath).standardizedFileURL.path, taskName: task.name,
                                           workspace: task.workspace.path, runWorkspace: runWorkspace.root, auditPath: log.path,
                                           status: "running", runtime: options.runtime.rawValue, provider: task.model.provider.rawValue,
                                           model: task.model.name)
        record.status = "running"
        record.pid = getpid()
        record.runtime = options.runtime.rawValue
        if store == nil && replay == nil { notice("warning: the run store cannot be opened; this run will not be listed or resumable") }
        if existing == nil { try? store?.insert(record) } else { try? store?.update(record) }

        Interrupts.install()
        var outcome: LoopOutcome
        var usage = history?.usage ?? RunUsage()
        // The loop reports run totals; the run store's step rows hold what each step used.
        let totalsBefore = Locked(usage)
        var sandbox: Sandbox?
        do throws(SandboxError) {
            // The configuration worked out for the placement check is the sandbox's (a resumed run's
            // sandbox has an id of its own, and so a configuration of its own).
            let refusal = Locked<String?>(nil)
            let check: ((AuditValue) -> Void)? = replay.map { replay in { policy in refusal.withLock { $0 = replay.checkPolicy(policy) } } }
            let box = history == nil ? try await SandboxAudit.create(options, id: id, configuration: configuration, log: log, policy: check)
                                     : try await SandboxAudit.create(options, id: Sandbox.newID(), log: log, policy: check)
            sandbox = box
            if let refused = refusal.withLock({ $0 }) {
                // The replay does not run under another policy than the one recorded: nothing is executed.
                throw SandboxError(.invalidInput, refused)
            }
            let loop = AgentLoop(task: task, provider: provider, tools: tools, sandbox: box, log: log, prices: prices,
                                 messages: history?.messages ?? [.user(task.prompt)], usage: usage, elapsedBefore: history?.elapsed ?? .zero,
                                 events: { event in
                                     if case .modelAnswer(let step, let calls, let u) = event {
                                         let before = totalsBefore.withLock { before in defer { before = u }; return before }
                                         let cost = u.costMicroUSD.flatMap { total in before.costMicroUSD.map { total - $0 } }
                                         try? store?.recordStep(run: id, step: step, toolCalls: calls,
                                                                usage: Usage(inputTokens: u.inputTokens - before.inputTokens, outputTokens: u.outputTokens - before.outputTokens),
                                                                cost: cost, status: "ok")
                                     }
                                     events(event)
                                 })
            outcome = await loop.run()
            usage = loop.usage
        } catch {
            let status: RunStatus = error.code == .interrupted ? .interrupted : replay != nil && error.code == .invalidInput ? .failed : .sandboxFailed
            outcome = LoopOutcome(status: status, message: error.message, finalText: nil, limit: nil)
        }
        if let box = sandbox {
            let leftovers = await SandboxAudit.destroy(box, log: log)
            if !leftovers.isEmpty && outcome.status == .done {
                outcome = LoopOutcome(status: .sandboxFailed, message: "sandbox teardown incomplete: \(leftovers.joined(separator: "; ")); run `robit doctor --fix`",
                                      finalText: outcome.finalText, limit: nil)
            }
        }

        // The patch: the workspace's changes, even when the run stopped early; a secret the model wrote into
        // a file does not leave in it.
        var patchPath: String?
        var patchRedactions = 0
        if sandbox != nil {
            let target = task.output.patch ?? runWorkspace.root + "/changes.patch"
            do throws(RunSetupError) {
                patchRedactions = try SandboxAudit.writePatch(of: runWorkspace, to: target, redactor: redactor, log: log,
                                                              tree: startTree.flatMap { runWorkspace.tree(from: $0) }?.hash)
                patchPath = target
            } catch {
                notice("warning: \(error.message)")
            }
        }

        // The pull request: only for a run that finished, from its patch, on the host.
        var prURL: String?
        if let pr = task.output.pullRequest, let prLocation, outcome.status == .done {
            var result: PullRequestPublisher.Result
            if let patchPath {
                notice("output.pr: \(pr.branch) into \(pr.base) of \(pr.repo)")
                result = await PullRequestPublisher.publish(pr, location: prLocation, patch: patchPath, task: task.name, run: id, head: log.head,
                                                            finalText: outcome.finalText.map { redactor.redact($0) }, environment: request.environment,
                                                            scratch: runWorkspace.root, robitVersion: request.robitVersion)
                result.message = redactor.redact(result.message)
            } else {
                result = .init(kind: .failed, message: "no pull request: the run's patch could not be written (see the warning above)")
            }
            _ = try? log.append(AuditRecords.pullRequest(pr, result))
            notice(result.message)
            prURL = result.url
            if result.kind == .failed {
                outcome = LoopOutcome(status: .prFailed, message: result.message, finalText: outcome.finalText, limit: nil)
            }
        }

        let head = SandboxAudit.finish(log, status: outcome.status == .done ? "ok" : "error", exitCode: outcome.status.exitCode,
                                       result: outcome.status.rawValue, message: outcome.message, usage: usage,
                                       finalText: outcome.finalText.map { (try? log.payload($0)) ?? .null } ?? .null, patch: patchPath)
        record.status = outcome.status.rawValue
        record.exitCode = Int(outcome.status.exitCode)
        record.steps = usage.steps
        record.inputTokens = usage.inputTokens
        record.outputTokens = usage.outputTokens
        record.costMicroUSD = usage.costMicroUSD
        record.head = head
        record.patchPath = patchPath
        record.prURL = prURL
        record.endedAt = Int64(Date().timeIntervalSince1970)
        try? store?.update(record)
        // Only the patch is kept of a finished run's workspace; an unfinished one keeps its changes for a resume.
        runWorkspace.finish(done: outcome.status == .done || outcome.status == .prFailed || replay != nil)
        // The final answer goes to stdout and --json: no secret in it either.
        let finalText = outcome.finalText.map { redactor.redact($0) }
        return RunSummary(run: id, status: outcome.status, exitCode: outcome.status.exitCode, message: redactor.redact(outcome.message), finalText: finalText,
                          usage: usage, auditPath: log.path, head: head, patchPath: patchPath, patchRedactions: patchRedactions,
                          prURL: prURL, elapsed: clock.now - began)
    }

    /// The provider a task names; `replay` reads a JSONL script or, given an audit log (a run directory or
    /// audit.jsonl), the model answers recorded in it.
    static func makeProvider(_ task: TaskFile, environment: [String: String], baseDirectory: String,
                             options: HTTPProviderOptions = HTTPProviderOptions()) throws(ProviderError) -> any ModelProvider {
        if task.model.provider == .replay, let script = task.model.script {
            let path = script.hasPrefix("/") ? script : baseDirectory + "/" + script
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            if exists && (isDirectory.boolValue || path.hasSuffix(".jsonl") && (path as NSString).lastPathComponent == AuditFormat.logFileName) {
                do {
                    let history = try AuditHistory.load(path)
                    return ReplayProvider(turns: history.responses, source: path)
                } catch {
                    throw ProviderError(.configuration, "cannot replay \(path): \(error.message)", attempts: 0)
                }
            }
        }
        return try ProviderFactory.make(model: task.model, environment: environment, baseDirectory: baseDirectory, options: options)
    }
}
