import Foundation
import Glibc
@testable import RobitAgent
import RobitAudit
import RobitExec
import RobitTestSupport
import Testing

/// One isolated `robit run` for the end-to-end tests: a root-owned directory under /tmp with a small
/// shell project, a task file, and HOME/XDG_STATE_HOME of its own (runs, audit logs, run store).
final class RunHarness: @unchecked Sendable {
    static let secret = "sk-run-SECRET-7f3a9c0e11d2b4a6"
    /// Retries and the breaker cut short, so failure scenarios take milliseconds, not minutes. A new
    /// breaker each time: one is shared by every run given the same options.
    static var fastOptions: HTTPProviderOptions {
        HTTPProviderOptions(
        limits: HTTPLimits(connectTimeout: .seconds(5), idleTimeout: .seconds(20), totalTimeout: .seconds(60)),
        retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(20), maxDelay: .milliseconds(50), jitter: 0, maxRetryAfter: .seconds(5)),
        breaker: CircuitBreaker(.init(failureThreshold: 2, cooldown: .seconds(60))))
    }

    /// The project: `add.sh` subtracts; `test.sh` fails until it adds.
    static let files: [String: String] = [
        "add.sh": "#!/bin/sh\n# add two numbers\necho $(( $1 - $2 ))\n",
        "test.sh": "#!/bin/sh\nr=$(sh add.sh 2 3)\nif [ \"$r\" = 5 ]; then echo PASS; else echo \"FAIL: 2+3 gave $r\"; exit 1; fi\n",
        "README.md": "A tiny project.\n",
    ]
    static let fixedAdd = "#!/bin/sh\n# add two numbers — fixé ✓\necho $(( $1 + $2 ))\n"

    let root: String
    var project: String { root + "/project" }
    var state: String { root + "/state" }
    var taskPath: String { root + "/task.yaml" }
    /// A host directory next to the project that no tool may write to.
    var outside: String { root + "/outside" }

    /// The API key of this harness's runs (OPENAI_API_KEY and ANTHROPIC_API_KEY).
    let key: String

    init(key: String = RunHarness.secret) throws {
        self.key = key
        root = "/tmp/robit-runtests-" + UUID().uuidString.lowercased().prefix(13)
        for dir in [project, state, outside, root + "/home"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        for (name, text) in Self.files { try text.write(toFile: project + "/" + name, atomically: false, encoding: .utf8) }
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    var environment: [String: String] {
        ["HOME": root + "/home", "XDG_STATE_HOME": state, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "OPENAI_API_KEY": key, "ANTHROPIC_API_KEY": key, "LC_ALL": "C.UTF-8"]
    }

    /// Writes task.yaml.
    func writeTask(provider: String = "openai", model: String = "gpt-4.1-mini", baseURL: String, runtime: RuntimeKind = .crun,
                   budget: String = "{ max_steps: 12, max_tokens: 1000000, max_wall: 5m }", timeout: String = "60s",
                   tools: String = "[shell, read_file, write_file, edit_file, list_files, search]", extra: String = "") throws {
        let text = """
            version: 1
            name: e2e-\(provider)
            model:
              provider: \(provider)
              name: \(model)
              base_url: \(baseURL)
            system: You fix bugs.
            prompt: |
              The test fails. Fix add.sh and run the test.
            workspace:
              path: project
            sandbox:
              runtime: \(runtime.rawValue)
              rootfs: host
              network:
                egress: []
              limits: { memory: 256MiB, pids: 64, cpu: 1.0, timeout: \(timeout), output: 64KiB, disk: 32MiB }
            tools: \(tools)
            budget: \(budget)
            \(extra)
            """
        try text.write(toFile: taskPath, atomically: false, encoding: .utf8)
    }

    func start(runtime: RuntimeKind? = nil, options: HTTPProviderOptions? = RunHarness.fastOptions) async throws -> RunSummary {
        try await AgentRun.start(RunRequest(taskPath: taskPath, runtime: runtime, robitVersion: "test", environment: environment,
                                            providerOptions: options))
    }

    // MARK: - After the run

    var store: RunStore { get throws { try RunStore(path: RunStore.defaultPath(environment: environment)) } }

    static func auditDirectory(_ summary: RunSummary) -> String { (summary.auditPath as NSString).deletingLastPathComponent }

    static func records(_ auditPath: String) throws -> [AuditRecord] {
        Array(try AuditReader(path: auditPath))
    }

    /// A payload (inline or blob) as text.
    static func text(_ value: AuditValue?, auditPath: String) -> String? {
        value.flatMap { AuditHistory.text($0, directory: (auditPath as NSString).deletingLastPathComponent) }
    }

    /// The run ended with `status`, its log verifies as finished (run.end + checkpoint, head as reported),
    /// the run store row says the same, and no container of the run is left.
    @discardableResult
    func checkEnded(_ summary: RunSummary, _ status: RunStatus, runtime: RuntimeKind = .crun,
                    sourceLocation: SourceLocation = #_sourceLocation) async throws -> [AuditRecord] {
        #expect(summary.status == status, "message: \(summary.message)", sourceLocation: sourceLocation)
        #expect(summary.exitCode == status.exitCode, sourceLocation: sourceLocation)
        let verdict = AuditVerifier.verify(path: summary.auditPath)
        #expect(verdict.ok, "audit log: \(verdict.failure.map(\.description) ?? "")", sourceLocation: sourceLocation)
        #expect(verdict.finished, sourceLocation: sourceLocation)
        #expect(verdict.head == summary.head && summary.head != nil, sourceLocation: sourceLocation)
        let records = try Self.records(summary.auditPath)
        let types = records.map(\.type)
        #expect(types.suffix(2) == ["run.end", "checkpoint"], "\(types)", sourceLocation: sourceLocation)
        #expect(types.contains("sandbox.create") && types.contains("sandbox.destroy"), "\(types)", sourceLocation: sourceLocation)
        let end = try #require(records.last { $0.type == "run.end" }, sourceLocation: sourceLocation)
        #expect(end.data["result"]?.stringValue == status.rawValue, sourceLocation: sourceLocation)
        #expect(end.data["exit_code"]?.intValue == Int64(status.exitCode), sourceLocation: sourceLocation)
        #expect(end.data["steps"]?.intValue == Int64(summary.usage.steps), sourceLocation: sourceLocation)
        #expect(try DocumentedRecords.load().problems(records) == [], sourceLocation: sourceLocation)

        let row = try #require(try store.get(summary.run), "no run store row for \(summary.run)", sourceLocation: sourceLocation)
        #expect(row.status == status.rawValue, sourceLocation: sourceLocation)
        #expect(row.exitCode == Int(status.exitCode), sourceLocation: sourceLocation)
        #expect(row.steps == summary.usage.steps, sourceLocation: sourceLocation)
        #expect(row.inputTokens == summary.usage.inputTokens && row.outputTokens == summary.usage.outputTokens, sourceLocation: sourceLocation)
        #expect(row.costMicroUSD == summary.usage.costMicroUSD, sourceLocation: sourceLocation)
        #expect(row.head == summary.head, sourceLocation: sourceLocation)
        #expect(row.patchPath == summary.patchPath, sourceLocation: sourceLocation)
        #expect(row.auditPath == summary.auditPath, sourceLocation: sourceLocation)
        #expect(row.endedAt != nil, sourceLocation: sourceLocation)

        try await Self.checkNoContainers(records, runtime: runtime, sourceLocation: sourceLocation)
        return records
    }

    /// None of the sandboxes a log created is still listed by the runtime.
    static func checkNoContainers(_ records: [AuditRecord], runtime: RuntimeKind, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let created = records.filter { $0.type == "sandbox.create" }.compactMap { $0.data["resource"]?.stringValue }
        #expect(!created.isEmpty, sourceLocation: sourceLocation)
        let listed = try #require(await RuntimeList.ids(runtime), "`\(runtime.rawValue) list` failed", sourceLocation: sourceLocation)
        #expect(Set(created).isDisjoint(with: listed), "\(runtime.rawValue) still lists \(Set(created).intersection(listed))",
                sourceLocation: sourceLocation)
    }

    /// Files under `outside` (must stay empty).
    var outsideEntries: [String] { (try? FileManager.default.contentsOfDirectory(atPath: outside)) ?? ["<unreadable>"] }
}

/// What an OCI runtime lists (`RUNTIME list --quiet`); nil when listing fails.
typealias RuntimeList = RuntimeListing

/// The JSON body of a request the fake server received.
extension FakeProviderServer.Received {
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }

    /// OpenAI: the `tool` messages (tool_call_id, content), in order.
    var openAIToolMessages: [(id: String, content: String)] {
        ((json["messages"] as? [[String: Any]]) ?? []).compactMap { m in
            guard m["role"] as? String == "tool" else { return nil }
            return (m["tool_call_id"] as? String ?? "", m["content"] as? String ?? "")
        }
    }

    /// Anthropic: the `tool_result` blocks (tool_use_id, content as JSON text, is_error), in order.
    var anthropicToolResults: [(id: String, content: String, isError: Bool)] {
        ((json["messages"] as? [[String: Any]]) ?? []).flatMap { m -> [(id: String, content: String, isError: Bool)] in
            guard let blocks = m["content"] as? [[String: Any]] else { return [] }
            return blocks.compactMap { b in
                guard b["type"] as? String == "tool_result" else { return nil }
                let content = (b["content"] as? String) ?? ProviderWire.json(b["content"] ?? "")
                return (b["tool_use_id"] as? String ?? "", content, b["is_error"] as? Bool ?? false)
            }
        }
    }
}

/// A fake provider that answers request n with `turns[n]`, and with `after` from then on.
func scriptedServer(_ turns: [String], split: Int? = nil, after: String? = nil) throws -> FakeProviderServer {
    try FakeProviderServer { n in
        if n < turns.count { return .sse(turns[n], split: split) }
        return .sse(after ?? turns.last ?? "", split: split)
    }
}
