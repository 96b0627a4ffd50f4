import Foundation
@testable import RobitAgent
import RobitAudit
import RobitExec
import RobitTestSupport
import Testing

/// Scenario 7: the API key never reaches the audit log, its blobs, the run store, or tool output
/// sent back to the model, even when the model itself sends the key into the sandbox.
@Suite(.serialized) struct AgentRunSecretTests {
    @Test func theKeyIsRedactedEverywhere() async throws {
        try TestEnv.require(.crun)
        let h = try RunHarness()
        let key = RunHarness.secret
        let calls: [ProviderWire.Call] = [
            .init("s_echo", "shell", json: ["command": "echo key=\(key); env; echo \(key) >&2"]),
            .init("s_write", "write_file", json: ["path": "notes/key.txt", "content": "the key is \(key)\n"]),
            .init("s_read", "read_file", json: ["path": "notes/key.txt"]),
            .init("s_search", "search", json: ["pattern": String(key.prefix(12)), "literal": true]),
        ]
        let server = try scriptedServer([
            ProviderWire.openAI(text: "I will print \(key).", calls: calls, input: 100, output: 10),
            ProviderWire.openAI(text: "The key was \(key).", input: 50, output: 5),
        ])
        defer { server.stop() }
        try h.writeTask(baseURL: Flavor.openai.baseURL(server))
        let summary = try await h.start()
        try await h.checkEnded(summary, .done)
        // The final answer (stdout, --json) does not carry it either.
        #expect(summary.finalText == "The key was [REDACTED:OPENAI_API_KEY].")
        // The key was really in play: sent as the credential, and echoed by the model into the sandbox.
        #expect(server.received.first?.header("Authorization") == "Bearer \(key)")

        let back = Flavor.openai.toolResults(try #require(server.received.last))
        #expect(back.map(\.id) == calls.map(\.id))
        for result in back {
            #expect(!result.content.contains(key), "\(result.id) sent the key back to the model: \(result.content)")
        }
        let echoed = try #require(back.first?.content)
        #expect(echoed.contains("key=[REDACTED:OPENAI_API_KEY]"), "\(echoed)")
        #expect(back[2].content.contains("[REDACTED:OPENAI_API_KEY]"), "\(back[2].content)")

        // Nothing robit keeps on disk holds the key: the audit directory (log and blobs) and the run store.
        let auditDirectory = RunHarness.auditDirectory(summary)
        var files = [summary.auditPath]
        let blobs = auditDirectory + "/" + AuditFormat.blobDirectoryName
        for name in (try? FileManager.default.contentsOfDirectory(atPath: blobs)) ?? [] { files.append(blobs + "/" + name) }
        let storePath = RunStore.defaultPath(environment: h.environment)
        for suffix in ["", "-wal", "-journal", "-shm"] where FileManager.default.fileExists(atPath: storePath + suffix) {
            files.append(storePath + suffix)
        }
        #expect(files.count > 2)
        for file in files {
            let data = try #require(FileManager.default.contents(atPath: file))
            #expect(data.firstRange(of: Data(key.utf8)) == nil, "\(file) holds the API key")
        }
        let log = try String(contentsOfFile: summary.auditPath, encoding: .utf8)
        #expect(log.contains("[REDACTED:OPENAI_API_KEY]"))
    }

    /// One redactor for everything a run shows or writes: a key of 6, 7 or 8 bytes, sent by the model
    /// in SSE pieces of 3 bytes (so split across events and reads), is hidden from the model, the log, the
    /// final answer, --json and the patch, which says how many it replaced.
    @Test(arguments: ["K3y6ab", "K3y7abc", "K3y8abcd"])
    func shortKeysAreHiddenEverywhereTheRunWrites(_ key: String) async throws {
        try TestEnv.require(.crun)
        let h = try RunHarness(key: key)
        let calls: [ProviderWire.Call] = [
            .init("k_echo", "shell", json: ["command": "echo key=\(key)"]),
            .init("k_write", "write_file", json: ["path": "leak.txt", "content": "the key is \(key)\n"]),
        ]
        let server = try scriptedServer([
            ProviderWire.openAI(text: "I will print \(key).", calls: calls, input: 100, output: 10, piece: 3),
            ProviderWire.openAI(text: "The key was \(key).", input: 50, output: 5, piece: 3),
        ], split: 5)
        defer { server.stop() }
        try h.writeTask(baseURL: Flavor.openai.baseURL(server))
        let summary = try await h.start()
        try await h.checkEnded(summary, .done)
        #expect(summary.finalText == "The key was [REDACTED:OPENAI_API_KEY].")
        #expect(!summary.jsonText.contains(key))
        let back = Flavor.openai.toolResults(try #require(server.received.last))
        #expect(back.first?.content.contains("key=[REDACTED:OPENAI_API_KEY]") == true, "\(back)")
        #expect(!back.contains { $0.content.contains(key) })
        let log = try String(contentsOfFile: summary.auditPath, encoding: .utf8)
        #expect(!log.contains(key) && log.contains("[REDACTED:OPENAI_API_KEY]"))
        // The workspace file holds the key (the model wrote it); the patch that leaves the machine does not.
        let patchPath = try #require(summary.patchPath)
        let patch = try String(contentsOfFile: patchPath, encoding: .utf8)
        #expect(patch.contains("+the key is [REDACTED:OPENAI_API_KEY]") && !patch.contains(key), "\(patch)")
        #expect(summary.patchRedactions == 1)
        let records = try RunHarness.records(summary.auditPath)
        #expect(records.first { $0.type == "patch" }?.data["redacted"]?.intValue == 1)
    }
}
