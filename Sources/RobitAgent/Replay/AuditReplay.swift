import Foundation
import RobitAudit
import RobitExec
import RobitOCI
import RobitSync

/// What `robit audit replay` was asked to do.
public struct ReplayRequest: Sendable {
    var log: String
    var workspace: String?
    var runtime: RuntimeKind?
    var allowPolicyChange: Bool
    var auditDirectory: String?
    var signingKey: String?
    /// Verification of the replayed log: a pinned public key and an expected head.
    var verify: AuditVerifyOptions
    var robitVersion: String
    var environment: [String: String]

    public init(log: String, workspace: String? = nil, runtime: RuntimeKind? = nil, allowPolicyChange: Bool = false,
                auditDirectory: String? = nil, signingKey: String? = nil, verify: AuditVerifyOptions = AuditVerifyOptions(), robitVersion: String,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.verify = verify
        self.log = log
        self.workspace = workspace
        self.runtime = runtime
        self.allowPolicyChange = allowPolicyChange
        self.auditDirectory = auditDirectory
        self.signingKey = signingKey
        self.robitVersion = robitVersion
        self.environment = environment
    }
}

/// How a replay's run is set up: the model answers come from the log, and the policy the sandbox gets
/// is checked against the recorded one before anything runs.
struct ReplaySetup: Sendable {
    var provider: any ModelProvider
    /// Given the replay's `policy` record: nil to go on, or why the replay is refused.
    var checkPolicy: @Sendable (AuditValue) -> String?
}

/// `robit audit replay`: re-executes a run's recorded tool calls in a sandbox rebuilt from its recorded
/// task and policy, answering every model turn from the log, and reports where it diverged.
public enum AuditReplay {
    /// The policy facts compared, recorded against this robit's.
    static let policyKeys = ["config_template_sha256", "seccomp_sha256", "nft_template_sha256"]

    public static func run(_ request: ReplayRequest, events: @escaping @Sendable (LoopEvent) -> Void = { _ in },
                           notice: @escaping @Sendable (String) -> Void = { _ in }) async throws(RunSetupError) -> ReplayReport {
        let path = AuditFormat.logPath(request.log)
        let directory = (path as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: path) else {
            throw RunSetupError(.invalidInput, "no audit log at \(path); give a run's audit directory or its audit.jsonl")
        }
        // A log that does not verify is not replayed.
        let verdict = AuditVerifier.verify(path: path, options: request.verify)
        if let failure = verdict.failure {
            throw RunSetupError(.auditFailed, "\(path) does not verify (\(failure)); it is not replayed: run `robit audit verify` for the details")
        }
        let recorded: [AuditRecord]
        do { recorded = Array(try AuditReader(path: path)) } catch { throw RunSetupError(.auditFailed, error.message) }
        guard let start = recorded.first, start.type == "run.start" else {
            throw RunSetupError(.auditFailed, "\(path) does not start with run.start")
        }
        let command = start.data["command"]?.stringValue ?? ""
        guard command == "run" else {
            throw RunSetupError(.invalidInput, "\(path) is the log of `robit \(command)`, which has no model turns to replay; only logs of `robit run` are replayed")
        }
        if recorded.contains(where: { $0.type == "resumed" }) {
            notice("warning: the run was resumed; the replay runs it in one go from its starting workspace")
        }
        let history: AuditHistory
        do { history = try AuditHistory.load(path) } catch { throw RunSetupError(.auditFailed, "cannot read \(path): \(error.message)") }
        guard let text = history.taskText, let taskPath = history.taskPath ?? start.data["task_path"]?.stringValue else {
            throw RunSetupError(.auditFailed, "\(path) does not hold its task file (run.start task), so its sandbox cannot be rebuilt")
        }
        let taskDirectory = (taskPath as NSString).deletingLastPathComponent
        var task: TaskFile
        do { task = try TaskFile.parse(text, file: taskPath, baseDirectory: taskDirectory) } catch {
            throw RunSetupError(.invalidInput, "the recorded task no longer parses here: \(error.description)")
        }
        if let model = start.data["model"]?.stringValue { task.model.name = model }
        // The replay's patch goes to its own run directory, never over the recorded run's.
        task.output.patch = nil

        // The starting workspace, checked against the tree the run started from.
        let workspace = URL(fileURLWithPath: request.workspace ?? start.data["workspace"]?.stringValue ?? task.workspace.path).standardizedFileURL.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: workspace, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RunSetupError(.invalidInput, "the starting workspace \(workspace) is not a directory; pass the run's starting workspace with --workspace")
        }
        task.workspace.path = workspace
        let tree = WorkspaceTree.manifest(workspace, cache: WorkspaceTree.cachePath(for: workspace, environment: request.environment))
        let recordedTree = start.data["workspace_tree_sha256"]?.stringValue
        if !verdict.pinned && request.verify.anchor == nil {
            notice("warning: \(verdict.signed ? "the log's key is not pinned" : "the log is unsigned"): anyone could have written the task and the commands it replays; pass --pin PUB or --anchor HEAD to replay only a log you trust")
        }
        var report = ReplayReport(log: path, run: start.run, head: verdict.head, signed: verdict.signed, keyID: verdict.keyID,
                                  workspace: workspace, recordedTree: recordedTree, tree: tree.hash)
        report.pinned = verdict.pinned
        if recordedTree != tree.hash {
            var divergence = ReplayDivergence(kind: "workspace", step: 0, seq: start.seq,
                                              fields: [FieldDifference(field: "workspace_tree_sha256", recorded: recordedTree ?? "null", replayed: tree.hash)])
            if let listing = start.data["workspace_tree"].flatMap({ AuditHistory.text($0, directory: directory) }) {
                divergence.paths = WorkspaceManifest(text: listing).differences(to: tree)
            } else {
                divergence.diff = "the log does not hold the tree's listing (an older robit), so the paths cannot be named"
            }
            report.divergences.append(divergence)
        }

        // The recorded policy, which the replay's sandbox must match.
        let recordedPolicy = recorded.first { $0.type == "policy" }?.data
        let runtime = request.runtime ?? recordedPolicy?["runtime"]?.stringValue.flatMap(RuntimeKind.init(rawValue:))
        let policyDifferences = Locked<[FieldDifference]>([])
        let allow = request.allowPolicyChange
        let setup = ReplaySetup(provider: ReplayProvider(turns: history.responses, source: path), checkPolicy: { mine in
            var differences: [FieldDifference] = []
            for key in policyKeys {
                // A log of an older robit has no template hashes: only what it recorded is compared.
                guard let recordedValue = recordedPolicy?[key] else {
                    if key != "seccomp_sha256" { differences.append(FieldDifference(field: key, recorded: "not recorded (an older robit)", replayed: ReplayComparison.show(mine[key]))) }
                    continue
                }
                let a = ReplayComparison.show(recordedValue), b = ReplayComparison.show(mine[key])
                if a != b { differences.append(FieldDifference(field: key, recorded: a, replayed: b)) }
            }
            policyDifferences.withLock { $0 = differences }
            guard !differences.isEmpty, !allow else { return nil }
            return "the sandbox this robit builds from the recorded task differs from the recorded one ("
                + differences.map(\.field).joined(separator: ", ") + "); nothing was run. Pass --allow-policy-change to replay under it anyway"
        })

        let id = Sandbox.newID()
        let runWorkspace: RunWorkspace
        do {
            runWorkspace = try RunWorkspace.prepare(from: workspace, at: RunWorkspace.defaultRoot(run: id, environment: request.environment),
                                                    disk: task.sandbox.limits.disk.bytes)
        } catch {
            throw RunSetupError(ExitStatus(error), error.message, underlying: error)
        }
        let startData = AuditRecords.replayStart(robitVersion: request.robitVersion, taskBytes: Array(text.utf8), taskPath: taskPath, task: task,
                                                 workspaceTree: tree.hash, replayOf: (run: start.run, head: verdict.head, path: path))
        var runRequest = RunRequest(taskPath: taskPath, workspace: workspace, runtime: runtime, auditDirectory: request.auditDirectory,
                                    signingKey: request.signingKey, robitVersion: request.robitVersion, environment: request.environment)
        runRequest.fsync = .checkpoint
        let summary: RunSummary
        do {
            summary = try await AgentRun.execute(task: task, taskData: Data(text.utf8), taskDirectory: taskDirectory, id: id, runWorkspace: runWorkspace,
                                                 request: runRequest, history: nil, startData: startData, startTree: tree,
                                                 events: events, notice: notice, replay: setup)
        } catch {
            runWorkspace.finish(done: true)
            throw error
        }
        report.replayRun = summary.run
        report.replayLog = summary.auditPath
        report.replayHead = summary.head
        report.replayStatus = summary.status.rawValue
        report.replayMessage = summary.message
        report.runtime = runtime?.rawValue ?? task.sandbox.runtime.rawValue
        report.policyDifferences = policyDifferences.withLock { $0 }
        report.policyAllowed = allow
        if !report.policyDifferences.isEmpty && !allow {
            report.refused = true
            return report
        }
        if summary.status == .interrupted {
            throw RunSetupError(.interrupted, "interrupted; the replay's log is \(summary.auditPath)")
        }
        if summary.status == .sandboxFailed {
            throw RunSetupError(.sandboxFailed, "the replay's sandbox failed: \(summary.message) (its log: \(summary.auditPath))")
        }
        let replayed: [AuditRecord]
        do { replayed = Array(try AuditReader(path: summary.auditPath)) } catch { throw RunSetupError(.auditFailed, error.message) }
        let comparison = ReplayComparison(recorded: recorded, recordedDirectory: directory, replayed: replayed,
                                          replayDirectory: (summary.auditPath as NSString).deletingLastPathComponent).compare()
        report.divergences += comparison.divergences
        report.expected = comparison.expected
        report.steps = Int(recorded.last { $0.type == "run.end" }?.data["steps"]?.intValue ?? Int64(history.usage.steps))
        report.toolCalls = recorded.filter { $0.type == "tool.result" }.count
        report.replayedToolCalls = replayed.filter { $0.type == "tool.result" }.count
        return report
    }
}
