import Foundation
@testable import RobitAgent
import RobitAudit
import RobitExec
import RobitTestSupport
import Testing

/// A provider's wire format as the end-to-end tests need it.
enum Flavor: String, CaseIterable, Sendable {
    case openai
    case anthropic
    case ollama
    case compatible = "openai-compatible"

    var model: String { self == .anthropic ? "claude-sonnet-4" : self == .openai ? "gpt-4.1-mini" : "qwen3:8b" }

    func baseURL(_ server: FakeProviderServer) -> String { self == .anthropic ? server.baseURL : server.baseURL + "/v1" }

    var path: String { self == .anthropic ? "/v1/messages" : "/v1/chat/completions" }

    func turn(text: String = "", calls: [ProviderWire.Call] = [], input: Int, output: Int, piece: Int = 3) -> String {
        self == .anthropic
            ? ProviderWire.anthropic(text: text, calls: calls, input: input, output: output, piece: piece)
            : ProviderWire.openAI(text: text, calls: calls, input: input, output: output, piece: piece)
    }

    /// The tool results a request sends back to the model: (call id, content), in order.
    func toolResults(_ request: FakeProviderServer.Received) -> [(id: String, content: String)] {
        self == .anthropic ? request.anthropicToolResults.map { ($0.id, $0.content) } : request.openAIToolMessages
    }
}

@Suite(.serialized) struct AgentRunTests {
    /// The model looks, fixes add.sh and runs the test over three turns (two calls per turn, arguments
    /// in 3-character deltas, interleaved), then answers.
    static func happyTurns(_ flavor: Flavor, piece: Int = 3) -> [String] {
        [
            flavor.turn(text: "Let me look — café ✓", calls: [
                .init("call_l", "list_files", json: [:]),
                .init("call_r", "read_file", json: ["path": "add.sh"]),
            ], input: 100, output: 10, piece: piece),
            flavor.turn(text: "Fixing.", calls: [
                .init("call_w", "write_file", json: ["path": "add.sh", "content": RunHarness.fixedAdd]),
                .init("call_s", "shell", json: ["command": "sh test.sh"]),
            ], input: 200, output: 20, piece: piece),
            flavor.turn(text: "Fixed: add.sh now adds ✓", input: 300, output: 30, piece: piece),
        ]
    }

    func happyPath(_ flavor: Flavor, runtime: RuntimeKind, split: Int? = nil) async throws {
        try TestEnv.require(runtime)
        let h = try RunHarness()
        let server = try scriptedServer(Self.happyTurns(flavor), split: split)
        defer { server.stop() }
        try h.writeTask(provider: flavor.rawValue, model: flavor.model, baseURL: flavor.baseURL(server), runtime: runtime)
        let summary = try await h.start()
        let records = try await h.checkEnded(summary, .done, runtime: runtime)

        #expect(summary.finalText == "Fixed: add.sh now adds ✓")
        #expect(summary.usage.steps == 3 && summary.usage.toolCalls == 4)
        #expect(summary.usage.inputTokens == 600 && summary.usage.outputTokens == 60)
        let prices = PriceTable()
        let expectedCost: Int64? = [(100, 10), (200, 20), (300, 30)].reduce(Int64(0) as Int64?) { total, u in
            guard let total, let c = prices.cost(model: flavor.model, usage: Usage(inputTokens: u.0, outputTokens: u.1)) else { return nil }
            return total + c
        }
        #expect(summary.usage.costMicroUSD == expectedCost)
        if flavor == .openai || flavor == .anthropic { #expect(expectedCost != nil && expectedCost! > 0) }

        // The patch holds exactly the fix.
        let patch = try String(contentsOfFile: try #require(summary.patchPath), encoding: .utf8)
        #expect(patch.contains("-echo $(( $1 - $2 ))") && patch.contains("+echo $(( $1 + $2 ))") && patch.contains("fixé ✓"), "\(patch)")
        #expect(!patch.contains("test.sh") && !patch.contains("README"))

        // Every request went to the protocol's endpoint with the key; results went back in call order.
        let received = server.received
        #expect(received.count == 3)
        for r in received {
            #expect(r.requestLine.hasPrefix("POST \(flavor.path) "), "\(r.requestLine)")
            switch flavor {
            case .openai: #expect(r.header("Authorization") == "Bearer \(RunHarness.secret)")
            case .anthropic: #expect(r.header("x-api-key") == RunHarness.secret)
            case .ollama, .compatible: #expect(r.header("Authorization") == nil)
            }
        }
        #expect(flavor.toolResults(received[1]).map(\.id) == ["call_l", "call_r"])
        #expect(flavor.toolResults(received[1]).last?.content.contains("$1 - $2") == true)
        let second = flavor.toolResults(received[2])
        #expect(second.map(\.id) == ["call_l", "call_r", "call_w", "call_s"])
        #expect(second.last?.content.contains("PASS") == true, "\(second.last?.content ?? "")")

        // The audit log: calls and results in call order, responses with the summed tokens.
        #expect(records.filter { $0.type == "tool.call" }.compactMap { $0.data["id"]?.stringValue } == ["call_l", "call_r", "call_w", "call_s"])
        let results = records.filter { $0.type == "tool.result" }
        #expect(results.compactMap { $0.data["id"]?.stringValue } == ["call_l", "call_r", "call_w", "call_s"])
        #expect(results.allSatisfy { $0.data["status"]?.stringValue == "ok" })
        #expect(results.last?.data["exit_code"]?.intValue == 0)
        let responses = records.filter { $0.type == "model.response" }
        #expect(responses.compactMap { $0.data["input_tokens"]?.intValue } == [100, 200, 300])
        #expect(responses.compactMap { $0.data["output_tokens"]?.intValue } == [10, 20, 30])
        let firstText = RunHarness.text(responses.first?.data["text"], auditPath: summary.auditPath)
        #expect(firstText == "Let me look — café ✓")
        let steps = try h.store.steps(run: summary.run)
        #expect(steps.map(\.inputTokens) == [100, 200, 300], "run store steps hold each step's tokens")
        #expect(steps.map(\.outputTokens) == [10, 20, 30] && steps.map(\.toolCalls) == [2, 2, 0])
        if let expectedCost { #expect(steps.compactMap(\.costMicroUSD).reduce(0, +) == expectedCost && steps.allSatisfy { $0.costMicroUSD != nil }) }
        #expect(h.outsideEntries.isEmpty)
    }

    // MARK: 1. The happy path in every protocol

    @Test(arguments: [RuntimeKind.crun, .runsc])
    func openAIHappyPath(runtime: RuntimeKind) async throws {
        try await happyPath(.openai, runtime: runtime)
    }

    @Test func anthropicHappyPath() async throws {
        try await happyPath(.anthropic, runtime: .crun)
    }

    @Test(arguments: [Flavor.ollama, .compatible])
    func compatibleHappyPath(flavor: Flavor) async throws {
        try await happyPath(flavor, runtime: .crun)
    }

    // MARK: 2. Chunk boundaries anywhere

    @Test(arguments: [Flavor.openai, .anthropic])
    func oneByteChunks(flavor: Flavor) async throws {
        try await happyPath(flavor, runtime: .crun, split: 1)
    }

    /// Chunks of 7 bytes cut through multi-byte characters and JSON tokens at other places.
    @Test func oddChunksWithOneCharacterDeltas() async throws {
        try TestEnv.require(.crun)
        let h = try RunHarness()
        let server = try scriptedServer(Self.happyTurns(.openai, piece: 1), split: 7)
        defer { server.stop() }
        try h.writeTask(baseURL: Flavor.openai.baseURL(server))
        let summary = try await h.start()
        try await h.checkEnded(summary, .done)
        #expect(summary.finalText == "Fixed: add.sh now adds ✓")
        let patch = try String(contentsOfFile: try #require(summary.patchPath), encoding: .utf8)
        #expect(patch.contains("+echo $(( $1 + $2 ))") && patch.contains("fixé ✓"))
    }
}
