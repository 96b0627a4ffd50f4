import Foundation
@testable import RobitAgent
import RobitAudit
import RobitExec
import RobitTestSupport
import Testing

/// The audit log grows by at most about what the model sent (docs/audit-format.md, "What is kept"):
/// each received byte stored once, a refused call's arguments only as size, hash and prefix, and a
/// per-run cap that ends the run with exit 3.
@Suite(.serialized) struct AuditBoundTests {
    /// Bytes in the run's audit directory: audit.jsonl and blobs.
    static func size(of directory: String) -> Int {
        let fm = FileManager.default
        var total = 0
        for path in (fm.enumerator(atPath: directory)?.allObjects as? [String]) ?? [] {
            let attrs = try? fm.attributesOfItem(atPath: directory + "/" + path)
            if (attrs?[.type] as? FileAttributeType) == .typeRegular { total += (attrs?[.size] as? Int) ?? 0 }
        }
        return total
    }

    /// A replay-provider run (no HTTP, whose response cap is 16 MiB) of turns that write files.
    func run(_ writes: [(path: String, content: String)], budget: String = "{ max_steps: 12, max_tokens: 100000000, max_wall: 5m }") async throws -> (RunHarness, RunSummary) {
        try TestEnv.require(.crun)
        let h = try RunHarness()
        var script = ""
        for (i, w) in writes.enumerated() {
            let arguments = String(decoding: try JSONSerialization.data(withJSONObject: ["path": w.path, "content": w.content]), as: UTF8.self)
            let line = try JSONSerialization.data(withJSONObject: ["text": "", "tool_calls": [["id": "c\(i + 1)", "name": "write_file", "arguments": arguments]]])
            script += String(decoding: line, as: UTF8.self) + "\n"
        }
        script += #"{"text":"Done."}"# + "\n"
        try script.write(toFile: h.root + "/script.jsonl", atomically: false, encoding: .utf8)
        try """
            version: 1
            name: audit-bound
            model: { provider: replay, script: script.jsonl }
            prompt: write
            workspace: { path: project }
            sandbox: { runtime: crun, limits: { memory: 256MiB, pids: 64, timeout: 60s, output: 64KiB, disk: 64MiB } }
            tools: [write_file]
            budget: \(budget)
            """.write(toFile: h.taskPath, atomically: false, encoding: .utf8)
        return (h, try await h.start())
    }

    @Test func aRefusedTwelveMegabyteCallLeavesOnlyItsHashSizeAndPrefix() async throws {
        let content = String(repeating: "A", count: 12 << 20)
        let (h, summary) = try await run([("big.txt", content)])
        let records = try await h.checkEnded(summary, .done)
        let directory = RunHarness.auditDirectory(summary)
        #expect(Self.size(of: directory) < 256 << 10, "the audit log takes \(Self.size(of: directory)) bytes for a refused 12 MB call")
        let call = try #require(records.first { $0.type == "tool.call" })
        #expect(call.data["arguments"]?["omitted"]?.boolValue == true)
        #expect((call.data["arguments"]?["size"]?.intValue ?? 0) > 12 << 20)
        #expect(call.data["arguments"]?["sha256"]?.stringValue?.count == 64)
        #expect(call.data["arguments"]?["prefix"]?.stringValue?.hasPrefix("{") == true)
        let response = try #require(records.first { $0.type == "model.response" })
        guard case .array(let calls)? = response.data["tool_calls"] else { Issue.record("model.response has no tool_calls"); return }
        #expect(calls.first?["arguments"]?["omitted"]?.boolValue == true)
        let result = try #require(records.first { $0.type == "tool.result" })
        #expect(result.data["status"]?.stringValue == "error")
    }

    @Test func anAcceptedThreeMegabyteCallIsStoredOnce() async throws {
        let content = String(repeating: "b", count: 3 << 20)
        let (h, summary) = try await run([("big.txt", content)])
        let records = try await h.checkEnded(summary, .done)
        let directory = RunHarness.auditDirectory(summary)
        let size = Self.size(of: directory)
        #expect(size < (3 << 20) + (512 << 10), "the audit log takes \(size) bytes for one 3 MB call")
        let call = try #require(records.first { $0.type == "tool.call" })
        let response = try #require(records.first { $0.type == "model.response" })
        let blob = try #require(call.data["arguments"]?["blob"]?.stringValue)
        guard case .array(let calls)? = response.data["tool_calls"] else { Issue.record("model.response has no tool_calls"); return }
        #expect(calls.first?["arguments"]?["blob"]?.stringValue == blob)
        // The replay reads the same arguments back.
        let history = try AuditHistory.load(directory)
        #expect(history.responses.first?.toolCalls.first?.arguments.utf8.count ?? 0 > 3 << 20)
    }

    @Test func theLogCapEndsTheRunWithABudgetRecord() async throws {
        let writes = (1...6).map { i in ("f\(i).txt", String(repeating: Character(UnicodeScalar(96 + i)!), count: 600 << 10)) }
        let (h, summary) = try await run(writes, budget: "{ max_steps: 12, max_tokens: 100000000, max_wall: 5m, max_audit_log: 1MiB }")
        let records = try await h.checkEnded(summary, .budget)
        #expect(summary.exitCode == 3)
        let budget = try #require(records.last { $0.type == "budget" })
        #expect(budget.data["limit"]?.stringValue == "max_audit_log")
        #expect(summary.usage.steps <= 3, "the cap let \(summary.usage.steps) steps through")
    }

    @Test func omittedBytesKeepSizeHashAndAValidUTF8Prefix() {
        let bytes = Array(String(repeating: "€", count: 3000).utf8)
        let value = AuditRecords.omittable(true, bytes) { .null }
        #expect(value["omitted"]?.boolValue == true && value["size"]?.intValue == 9000)
        #expect(value["sha256"]?.stringValue == AuditHash.sha256Hex(bytes))
        #expect(value["prefix"]?.stringValue == String(repeating: "€", count: 1365))
        #expect(AuditRecords.omittable(false, bytes) { "kept" } == "kept")
    }
}
