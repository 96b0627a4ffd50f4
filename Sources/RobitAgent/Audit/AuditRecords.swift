import Foundation
import RobitAudit
import RobitExec
import RobitOCI

/// A record to append: its type and its `data`, built only by `AuditRecords`.
public struct AuditEvent: Sendable {
    let type: String
    let data: AuditValue
}

extension AuditLog {
    /// Appends a record built by `AuditRecords`.
    @discardableResult
    public func append(_ record: AuditEvent) throws(AuditError) -> AuditEntry { try append(record.type, record.data) }

    /// `bytes` as a record holds them (inline, or a blob reference), or a note in their place when the
    /// blob cannot be written: a record is still appended, and the run's end reports the log's failure.
    func storedPayload(_ bytes: [UInt8]) -> AuditValue {
        (try? payload(bytes)) ?? .string("[robit: payload could not be stored]")
    }
}

/// What the sandbox reported about one command, beyond its output: the facts `tool.result` records.
struct ExecFacts: Sendable, Equatable {
    var argv: [String]
    var exitCode: Int32
    var duration: Duration
    var stdoutBytes: Int
    var stderrBytes: Int
    var timedOut: Bool
    var outOfMemory: Bool
    var interrupted: Bool
    var signal: Int32?
    var sandboxRestarted: Bool
    var notes: [String]

    init(argv: [String], result: ExecResult) {
        self.argv = argv
        exitCode = result.exitCode
        duration = result.duration
        stdoutBytes = result.stdout.totalBytes
        stderrBytes = result.stderr.totalBytes
        timedOut = result.timedOut
        outOfMemory = result.outOfMemory
        interrupted = result.interrupted
        if case .signaled(let s) = result.status { signal = s } else { signal = nil }
        sandboxRestarted = result.sandboxRestarted
        notes = result.notes
    }
}

/// Every record robit writes after `run.start`, one builder per type, used by `robit run` and
/// `robit sandbox run` alike. Each builder always writes the same keys (null where a fact does not
/// apply); docs/audit-format.md lists them and a test checks every record a run writes against it.
public enum AuditRecords {
    // MARK: Start

    /// `run.start` of `robit run`, before the log adds `task` (a blob of the task file), `pubkey`,
    /// `key_id` and `signed`.
    static func runStart(robitVersion: String, taskBytes: [UInt8], taskPath: String, task: TaskFile, workspaceTree: String) -> AuditValue {
        [
            "status": "ok", "command": "run", "robit_version": .string(robitVersion),
            "task_sha256": .string(AuditHash.sha256Hex(taskBytes)),
            "task_path": .string(taskPath),
            "task_name": .string(task.name),
            "workspace": .string(task.workspace.path),
            "workspace_tree_sha256": .string(workspaceTree),
            "provider": .string(task.model.provider.rawValue), "model": .string(task.model.name),
            "prompt": .string(task.prompt),
        ]
    }

    /// `run.start` of `robit audit replay`: a run of the recorded task, which names the log it replays.
    static func replayStart(robitVersion: String, taskBytes: [UInt8], taskPath: String, task: TaskFile, workspaceTree: String,
                            replayOf: (run: String, head: String?, path: String)) -> AuditValue {
        var data = runStart(robitVersion: robitVersion, taskBytes: taskBytes, taskPath: taskPath, task: task, workspaceTree: workspaceTree)
        data.set("command", "audit replay")
        data.set("replay_of", ["run": .string(replayOf.run), "head": AuditValue(replayOf.head), "path": .string(replayOf.path)])
        return data
    }

    /// `resumed`: a run continued by `robit resume`, with what it had done before.
    static func resumed(robitVersion: String, stepsSoFar: Int, workspaceTree: String) -> AuditValue {
        ["status": "ok", "robit_version": .string(robitVersion), "steps_so_far": .int(Int64(stepsSoFar)),
         "workspace_tree_sha256": .string(workspaceTree)]
    }

    /// `run.start` of `robit sandbox run`: `task` is the canonical JSON of what was asked (`invocation`).
    public static func sandboxRunStart(robitVersion: String, invocation: AuditValue) throws(AuditError) -> AuditValue {
        let bytes = try CanonicalJSON.encode(invocation)
        return ["status": "ok", "command": "sandbox run", "robit_version": .string(robitVersion),
                "task_sha256": .string(AuditHash.sha256Hex(bytes)), "task": .string(String(decoding: bytes, as: UTF8.self))]
    }

    // MARK: Sandbox

    static func sandboxCreate(_ sandbox: Sandbox, duration: Duration) -> AuditEvent {
        AuditEvent(type: "sandbox.create", data: [
            "status": "ok",
            "resource": .string(sandbox.id),
            "runtime": .string(sandbox.runtime.kind.rawValue),
            "runtime_path": .string(sandbox.runtime.path),
            "workspace": .string(sandbox.configuration.workspace),
            "memory_bytes": .int(Int64(clamping: sandbox.configuration.limits.memory)),
            "pids": .int(Int64(sandbox.configuration.limits.pids)),
            "cpu_millis": .int(Int64(sandbox.configuration.limits.cpu * 1000)),
            "duration_ns": AuditValue(nanoseconds: duration),
        ])
    }

    /// SHA-256 of config.json as the runtime read it, of the seccomp profile (the bytes `robit bundle`
    /// writes as seccomp.json) and of the nft ruleset (null when the sandbox has no network).
    static func policy(_ sandbox: Sandbox, policy: SandboxPolicy) -> AuditEvent {
        let nftRuleset = sandbox.network?.rulesetText
        let config = FileManager.default.contents(atPath: sandbox.bundle.configPath).map { [UInt8]($0) } ?? []
        let seccomp = (sandbox.spec.linux?.seccomp).flatMap { try? OCIBundle.encode($0) }.map { [UInt8]($0) }
        // The same texts with this sandbox's own id, paths and address replaced: what a replay compares.
        let values = PolicyTemplate.Values(sandboxID: sandbox.id, bundleDirectory: sandbox.bundle.path, workspace: sandbox.configuration.workspace,
                                           address: sandbox.network?.lease.sandboxAddress, hostAddress: sandbox.network?.lease.hostAddress)
        let template = { (bytes: [UInt8]) in AuditHash.sha256Hex(PolicyTemplate.text(String(decoding: bytes, as: UTF8.self), values: values)) }
        return AuditEvent(type: "policy", data: [
            "status": "ok",
            "config_sha256": .string(AuditHash.sha256Hex(config)),
            "config_template_sha256": .string(template(config)),
            "nft_template_sha256": nftRuleset.map { .string(template(Array($0.utf8))) } ?? .null,
            "seccomp_sha256": seccomp.map { .string(AuditHash.sha256Hex($0)) } ?? .null,
            "nft_sha256": nftRuleset.map { .string(AuditHash.sha256Hex($0)) } ?? .null,
            "network": nftRuleset == nil ? "none" : "allowlist",
            "policy_source": .string(policy.source),
            "capabilities": AuditValue(policy.capabilities),
            "runtime": .string(sandbox.runtime.kind.rawValue),
            "rootfs_readonly": .bool(sandbox.spec.root?.readonly ?? false),
            "no_new_privileges": .bool(sandbox.spec.process?.noNewPrivileges ?? false),
            "user": .string("\(sandbox.configuration.user.uid):\(sandbox.configuration.user.gid)"),
            "pinned_hosts": .array((sandbox.network?.pinnedHosts ?? []).map { ["name": .string($0.name), "address": .string($0.address)] }),
        ])
    }

    static func sandboxDestroy(id: String, leftovers: [String], duration: Duration) -> AuditEvent {
        AuditEvent(type: "sandbox.destroy", data: [
            "status": leftovers.isEmpty ? "ok" : "error",
            "resource": .string(id),
            "leftovers": AuditValue(leftovers),
            "duration_ns": AuditValue(nanoseconds: duration),
        ])
    }

    /// The connection attempts the egress filter dropped since the last such record, after call `after`.
    static func netDenied(sandbox id: String, _ denied: [DeniedDestination], after call: String?) -> AuditEvent {
        AuditEvent(type: "net.denied", data: [
            "status": "error",
            "resource": .string(id),
            "destinations": .array(denied.map {
                ["address": .string($0.address), "proto": .string($0.proto), "port": .int(Int64($0.port)), "packets": .int(Int64(clamping: $0.packets))]
            }),
            "after": AuditValue(call),
        ])
    }

    // MARK: Model

    static func modelRequest(step: Int, provider: String, model: String, messages: Int, tools: Int, lastMessage: AuditValue) -> AuditEvent {
        AuditEvent(type: "model.request", data: [
            "status": "ok", "step": .int(Int64(step)), "provider": .string(provider), "model": .string(model),
            "messages": .int(Int64(messages)), "tools": .int(Int64(tools)), "last_message": lastMessage,
        ])
    }

    /// A model call that produced no answer: `kind` is the provider error's kind, `interrupted` or `deadline`.
    static func modelFailure(step: Int, provider: String, model: String, message: String, kind: String, attempts: Int?) -> AuditEvent {
        AuditEvent(type: "model.response", data: [
            "status": "error", "step": .int(Int64(step)), "provider": .string(provider), "model": .string(model),
            "error": .string(message), "error_kind": .string(kind), "attempts": attempts.map { .int(Int64($0)) } ?? .null,
        ])
    }

    /// An answer. `payload` stores text (inline or as a blob); `arguments` records one call's arguments.
    static func modelResponse(_ r: ModelResponse, step: Int, provider: String, model: String, cost: Int64?,
                              payload: (String) -> AuditValue, arguments: (String) -> AuditValue) -> AuditEvent {
        let stop: String
        switch r.stopReason {
        case .endTurn: stop = "end_turn"
        case .toolUse: stop = "tool_use"
        case .maxTokens: stop = "max_tokens"
        case .other(let s): stop = s
        }
        return AuditEvent(type: "model.response", data: [
            "status": "ok", "step": .int(Int64(step)), "provider": .string(provider), "model": .string(model),
            "text": payload(r.text),
            "tool_calls": .array(r.toolCalls.map { ["id": .string($0.id), "name": .string($0.name), "arguments": arguments($0.arguments)] }),
            "stop_reason": .string(stop),
            "input_tokens": .int(Int64(r.usage.inputTokens)), "output_tokens": .int(Int64(r.usage.outputTokens)),
            "cost_micro_usd": cost.map { .int($0) } ?? .null,
            "latency_ns": AuditValue(nanoseconds: r.latency), "attempts": .int(Int64(r.attempts)),
            "request_id": AuditValue(r.requestID),
            "request_sha256": .string(r.requestSHA256 ?? AuditHash.sha256Hex(r.requestBody)), "request_bytes": .int(Int64(r.requestBody.utf8.count)),
            // The first request in full (system prompt, tool definitions, the task's prompt); every later one
            // is that plus the answers and results recorded since, so its hash is enough to prove it.
            "request_body": step == 1 ? payload(r.requestBody) : .null,
            "response": omittable(r.rawResponse.utf8.count > rawResponseLimit, Array(r.rawResponse.utf8)) { payload(r.rawResponse) },
        ])
    }

    /// Raw provider responses above this size are kept as size, hash and prefix: what they carry is in
    /// the record's `text` and `tool_calls`, and storing it again would double what the log grows by.
    static let rawResponseLimit = 1 << 20

    /// `{"omitted": true, "size": N, "sha256": HEX, "prefix": TEXT}` in place of bytes robit does not keep.
    static func omittable(_ omit: Bool, _ bytes: @autoclosure () -> [UInt8], keep: () -> AuditValue) -> AuditValue {
        guard omit else { return keep() }
        let all = bytes()
        var prefix = Array(all.prefix(4096))
        while !prefix.isEmpty && String(validating: prefix, as: UTF8.self) == nil { prefix.removeLast() }
        return ["omitted": true, "size": .int(Int64(all.count)), "sha256": .string(AuditHash.sha256Hex(all)),
                "prefix": .string(String(decoding: prefix, as: UTF8.self))]
    }

    // MARK: Tools

    static func toolCall(step: Int, id: String, name: String, arguments: AuditValue) -> AuditEvent {
        AuditEvent(type: "tool.call", data: ["status": "ok", "step": .int(Int64(step)), "id": .string(id), "name": .string(name), "arguments": arguments])
    }

    /// A call's result. `exec` is nil when nothing ran (the call was refused first; `refused` says why
    /// when robit refused it without trying, e.g. `repeated_call`). `content` is what the model was shown
    /// (nil for `robit sandbox run`, which has no model); `stdout`/`stderr` are the captured bytes.
    static func toolResult(step: Int, id: String, name: String, exec: ExecFacts?, stdout: AuditValue, stderr: AuditValue,
                           truncated: Bool, content: AuditValue, isError: Bool, refused: String? = nil) -> AuditEvent {
        AuditEvent(type: "tool.result", data: [
            "status": isError ? "error" : "ok", "step": .int(Int64(step)), "id": .string(id), "name": .string(name),
            "argv": exec.map { AuditValue($0.argv) } ?? .null,
            "exit_code": exec.map { .int(Int64($0.exitCode)) } ?? .null,
            "duration_ns": exec.map { AuditValue(nanoseconds: $0.duration) } ?? .null,
            "stdout": stdout, "stderr": stderr,
            "stdout_bytes": exec.map { .int(Int64($0.stdoutBytes)) } ?? .null,
            "stderr_bytes": exec.map { .int(Int64($0.stderrBytes)) } ?? .null,
            "truncated": .bool(truncated),
            "timed_out": .bool(exec?.timedOut ?? false),
            "out_of_memory": .bool(exec?.outOfMemory ?? false),
            "interrupted": .bool(exec?.interrupted ?? false),
            "signal": exec?.signal.map { .int(Int64($0)) } ?? .null,
            "sandbox_restarted": .bool(exec?.sandboxRestarted ?? false),
            "notes": AuditValue(exec?.notes ?? []),
            "content": content, "is_error": .bool(isError),
            "refused": AuditValue(refused),
        ])
    }

    // MARK: Run

    static func budget(_ limit: BudgetLimit, usage: RunUsage, elapsed: Duration, detail: String? = nil) -> AuditEvent {
        AuditEvent(type: "budget", data: [
            "status": "error", "limit": .string(limit.rawValue), "steps": .int(Int64(usage.steps)), "tokens": .int(Int64(usage.tokens)),
            "cost_micro_usd": usage.costMicroUSD.map { .int($0) } ?? .null, "elapsed_ns": AuditValue(nanoseconds: elapsed),
            "detail": AuditValue(detail),
        ])
    }

    public static func error(_ message: String, stage: String) -> AuditEvent {
        AuditEvent(type: "error", data: ["status": "error", "stage": .string(stage), "message": .string(message)])
    }

    /// The patch written at `path`: hash and size of the bytes written, the files it touches, and how many
    /// secret values were replaced in it before it was written.
    /// `tree` is the workspace's tree hash at the end (null where robit does not know the tree it started from).
    static func patch(path: String, diff: String, redacted: Int, tree: String?) -> AuditEvent {
        AuditEvent(type: "patch", data: [
            "status": "ok", "path": .string(path), "sha256": .string(AuditHash.sha256Hex(diff)),
            "bytes": .int(Int64(diff.utf8.count)), "files": .int(Int64(PatchSummary.files(in: diff))),
            "redacted": .int(Int64(redacted)), "workspace_tree_sha256": AuditValue(tree),
        ])
    }

    /// What came of `output.pr`: the pull request opened or found, or why there is none.
    static func pullRequest(_ pr: TaskFile.Output.PullRequest, _ result: PullRequestPublisher.Result) -> AuditEvent {
        AuditEvent(type: "pr", data: [
            "status": .string(result.kind == .failed ? "error" : "ok"), "result": .string(result.kind.rawValue), "repo": .string(pr.repo),
            "base": .string(pr.base), "branch": .string(pr.branch), "api_url": .string(pr.apiURL), "url": AuditValue(result.url),
            "number": result.number.map { .int(Int64($0)) } ?? .null, "commit": AuditValue(result.commit), "pushed": .bool(result.pushed),
            "message": .string(result.message),
        ])
    }

    /// The `run.end` data: how the run ended and its totals. `finalText` is the model's last answer.
    static func runEnd(status: String, result: String, exitCode: Int32, message: String, usage: RunUsage,
                       finalText: AuditValue, patch: String?) -> AuditValue {
        [
            "status": .string(status), "result": .string(result), "exit_code": .int(Int64(exitCode)), "message": .string(message),
            "steps": .int(Int64(usage.steps)), "tool_calls": .int(Int64(usage.toolCalls)),
            "input_tokens": .int(Int64(usage.inputTokens)), "output_tokens": .int(Int64(usage.outputTokens)),
            "cost_micro_usd": usage.costMicroUSD.map { .int($0) } ?? .null,
            "final_text": finalText, "patch": AuditValue(patch),
        ]
    }
}

/// Counting the files of a unified diff.
enum PatchSummary {
    static func files(in diff: String) -> Int {
        diff.components(separatedBy: "\ndiff --git ").count - (diff.hasPrefix("diff --git ") ? 0 : 1)
    }
}
