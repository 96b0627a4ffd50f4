import Foundation
@testable import RobitAgent
import RobitAudit
import RobitExec
import RobitTestSupport
import Testing

/// Whole runs whose provider misbehaves (scenario 3) or whose model misbehaves (scenarios 4, 5).
@Suite(.serialized) struct AgentRunFailureTests {
    static let final = ProviderWire.openAI(text: "Done.", input: 50, output: 5)

    static func call(_ id: String, _ name: String, _ args: [String: Any]) -> String {
        ProviderWire.openAI(calls: [.init(id, name, json: args)], input: 100, output: 10)
    }

    func run(_ server: FakeProviderServer, budget: String? = nil, options: HTTPProviderOptions? = RunHarness.fastOptions,
             prepare: (RunHarness) throws -> Void = { _ in }) async throws -> (RunHarness, RunSummary) {
        try TestEnv.require(.crun)
        let h = try RunHarness()
        try prepare(h)
        if let budget {
            try h.writeTask(baseURL: Flavor.openai.baseURL(server), budget: budget)
        } else {
            try h.writeTask(baseURL: Flavor.openai.baseURL(server))
        }
        return (h, try await h.start(options: options))
    }

    func modelResponses(_ records: [AuditRecord]) -> [AuditRecord] { records.filter { $0.type == "model.response" } }

    // MARK: 3. The provider fails

    @Test func tooManyRequestsWithRetryAfterThenSuccess() async throws {
        let turns = AgentRunTests.happyTurns(.openai)
        let server = try FakeProviderServer { n in
            if n == 0 { return .json(429, #"{"error":{"message":"Rate limit reached","type":"requests"}}"#, headers: [("Retry-After", "1")]) }
            return .sse(turns[min(n - 1, turns.count - 1)])
        }
        defer { server.stop() }
        let (h, summary) = try await run(server)
        let records = try await h.checkEnded(summary, .done)
        let received = server.received
        #expect(received.count == 4)
        #expect(received[1].at - received[0].at >= .milliseconds(950), "Retry-After: 1 was not honoured")
        #expect(modelResponses(records).first?.data["attempts"]?.intValue == 2)
        #expect(summary.usage.inputTokens == 600)
    }

    @Test func serverErrorsUntilTheProviderGivesUp() async throws {
        let server = try FakeProviderServer { _ in .json(500, #"{"error":{"message":"internal error"}}"#) }
        defer { server.stop() }
        let (h, summary) = try await run(server)
        let records = try await h.checkEnded(summary, .providerFailed)
        #expect(server.received.count == RunHarness.fastOptions.retry.maxAttempts)
        let failed = try #require(modelResponses(records).last)
        #expect(failed.data["status"]?.stringValue == "error")
        #expect(failed.data["attempts"]?.intValue == Int64(RunHarness.fastOptions.retry.maxAttempts))
        #expect(summary.message.contains("HTTP 500"), "\(summary.message)")
        #expect(summary.usage.steps == 0)
    }

    /// The breaker is shared by the runs given the same options: after two failed runs it is open and
    /// the third fails at once, without a request, still with a finished log.
    @Test func serverErrorsUntilTheBreakerOpens() async throws {
        let server = try FakeProviderServer { _ in .json(503, #"{"error":{"message":"overloaded"}}"#) }
        defer { server.stop() }
        let options = RunHarness.fastOptions
        let attempts = options.retry.maxAttempts
        for run in 1...3 {
            let (h, summary) = try await self.run(server, options: options)
            let records = try await h.checkEnded(summary, .providerFailed)
            let failed = try #require(modelResponses(records).last)
            if run < 3 {
                #expect(server.received.count == run * attempts)
                #expect(failed.data["error_kind"]?.stringValue != "circuitOpen")
            } else {
                #expect(server.received.count == 2 * attempts, "a request went out through an open breaker")
                #expect(failed.data["error_kind"]?.stringValue == "circuitOpen", "\(failed.data)")
                #expect(summary.message.contains("circuit breaker open"), "\(summary.message)")
            }
        }
    }

    @Test func streamCutOnEveryAttempt() async throws {
        let text = AgentRunTests.happyTurns(.openai)[0]
        let server = try FakeProviderServer { _ in
            var r = FakeProviderServer.Response.sse(text, split: 40)
            r.cutAfter = 3
            return r
        }
        defer { server.stop() }
        let (h, summary) = try await run(server)
        let records = try await h.checkEnded(summary, .providerFailed)
        #expect(server.received.count == RunHarness.fastOptions.retry.maxAttempts)
        #expect(modelResponses(records).last?.data["attempts"]?.intValue == Int64(RunHarness.fastOptions.retry.maxAttempts))
        #expect(!records.contains { $0.type == "tool.call" })
    }

    @Test func malformedJSONIsNotRetried() async throws {
        let server = try FakeProviderServer { _ in
            .sse("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"id\":\"x\",\"choices\":[{\"index\":0,\"del\n\ndata: [DONE]\n\n")
        }
        defer { server.stop() }
        let (h, summary) = try await run(server)
        try await h.checkEnded(summary, .providerFailed)
        #expect(summary.message.contains("not valid JSON"), "\(summary.message)")
        #expect(server.received.count == 1)
    }

    @Test func fiftyMegabyteAnswerIsCutOff() async throws {
        let unit = Array(("data: " + ProviderWire.json(["id": "x", "choices": [["index": 0, "delta": ["content": String(repeating: "a", count: 1000)]]]]) + "\n\n").utf8)
        let count = (50 << 20) / unit.count
        let server = try FakeProviderServer { _ in
            FakeProviderServer.Response(body: .repeating(unit: unit, count: count))
        }
        defer { server.stop() }
        let (h, summary) = try await run(server)
        try await h.checkEnded(summary, .providerFailed)
        #expect(server.received.count == 1)
        #expect(summary.message.contains("exceeded \(HTTPLimits().maxResponseBytes) bytes"), "\(summary.message)")
        #expect((server.bytesSent.first ?? 0) < 50 << 20, "robit read the whole 50 MB")
        // The log does not hold the 16 MiB robit read before giving up.
        let size = (try? FileManager.default.attributesOfItem(atPath: summary.auditPath)[.size] as? Int) ?? 0
        #expect(size < 1 << 20)
    }

    // MARK: 4. The model sends bad calls

    @Test func badCallsGoBackAsToolErrorsAndTheRunContinues() async throws {
        let calls: [ProviderWire.Call] = [
            .init("c_unknown", "format_disk", json: ["device": "/dev/sda"]),
            .init("c_schema", "write_file", json: ["path": 42, "content": "x"]),
            .init("c_missing", "shell", json: [:]),
            .init("c_dotdot", "read_file", json: ["path": "../../etc/passwd"]),
            .init("c_dotdot_w", "write_file", json: ["path": "../../../outside/escape.txt", "content": "escaped"]),
            .init("c_abs", "write_file", json: ["path": "/etc/robit-escape", "content": "escaped"]),
            .init("c_link", "write_file", json: ["path": "link/escape.txt", "content": "escaped"]),
            .init("c_link_r", "read_file", json: ["path": "passwd_link"]),
            .init("c_ok", "write_file", json: ["path": "ok.txt", "content": "fine\n"]),
        ]
        let server = try scriptedServer([ProviderWire.openAI(text: "Trying things.", calls: calls, input: 100, output: 10), Self.final])
        defer { server.stop() }
        let (h, summary) = try await run(server) { h in
            try FileManager.default.createSymbolicLink(atPath: h.project + "/link", withDestinationPath: h.outside)
            try FileManager.default.createSymbolicLink(atPath: h.project + "/passwd_link", withDestinationPath: "/etc/passwd")
        }
        let records = try await h.checkEnded(summary, .done)
        let back = Flavor.openai.toolResults(try #require(server.received.last))
        #expect(back.map(\.id) == calls.map(\.id))
        let content = Dictionary(back.map { ($0.id, $0.content) }, uniquingKeysWith: { a, _ in a })
        #expect(content["c_unknown"]?.contains("unknown tool") == true, "\(content["c_unknown"] ?? "")")
        #expect(content["c_schema"]?.contains("/path") == true, "\(content["c_schema"] ?? "")")
        #expect(content["c_missing"]?.contains("command") == true, "\(content["c_missing"] ?? "")")
        for (id, says) in ["c_dotdot": "contains \"..\"", "c_dotdot_w": "contains \"..\"", "c_abs": "is outside /work",
                           "c_link": "is a symbolic link", "c_link_r": "is a symbolic link"] {
            #expect(content[id]?.contains(says) == true && content[id]?.contains("root:") == false, "\(id): \(content[id] ?? "")")
        }
        #expect(content["c_ok"]?.hasPrefix("wrote 5 bytes") == true)
        let results = records.filter { $0.type == "tool.result" }
        #expect(results.compactMap { $0.data["id"]?.stringValue } == calls.map(\.id))
        for r in results {
            let id = r.data["id"]?.stringValue ?? ""
            #expect(r.data["is_error"] == .bool(id != "c_ok"), "\(id) is_error")
        }
        #expect(h.outsideEntries.isEmpty, "written outside the workspace: \(h.outsideEntries)")
        #expect(!FileManager.default.fileExists(atPath: "/etc/robit-escape"))
        let patch = try String(contentsOfFile: try #require(summary.patchPath), encoding: .utf8)
        #expect(patch.contains("ok.txt") && !patch.contains("escaped"), "\(patch)")
    }

    // MARK: 5. Budgets

    @Test func identicalCallForeverStopsWithRepeatedCall() async throws {
        // The same call every turn, each with a new id: it appends to a file, so runs can be counted.
        let server = try FakeProviderServer { n in
            .sse(ProviderWire.openAI(calls: [.init("rep_\(n)", "shell", json: ["command": "echo ran >> count.txt"])], input: 100, output: 10))
        }
        defer { server.stop() }
        let (h, summary) = try await run(server, budget: "{ max_steps: 20, max_tokens: 1000000, max_wall: 5m }")
        let records = try await h.checkEnded(summary, .budget)
        #expect(summary.usage.steps == RepeatDetector.stopAfter)
        let budget = try #require(records.last { $0.type == "budget" })
        #expect(budget.data["limit"]?.stringValue == BudgetLimit.repeatedCall.rawValue)
        let results = records.filter { $0.type == "tool.result" }
        let refused = results.filter { $0.data["refused"]?.stringValue == "repeated_call" }
        #expect(results.count == RepeatDetector.stopAfter - 1)
        #expect(refused.count == RepeatDetector.stopAfter - RepeatDetector.refuseAfter)
        #expect(results.prefix(RepeatDetector.refuseAfter - 1).allSatisfy { $0.data["refused"]?.isNull == true && $0.data["status"]?.stringValue == "ok" })
        // Only the first two ran.
        let patch = try String(contentsOfFile: try #require(summary.patchPath), encoding: .utf8)
        #expect(patch.components(separatedBy: "+ran").count - 1 == RepeatDetector.refuseAfter - 1, "\(patch)")
        // The model was told.
        let told = Flavor.openai.toolResults(server.received[RepeatDetector.refuseAfter])
        #expect(told.last?.content.contains("not run again") == true, "\(told.last?.content ?? "")")
    }

    @Test func neverEndingModelStopsAtMaxSteps() async throws {
        let server = try FakeProviderServer { n in
            .sse(ProviderWire.openAI(calls: [.init("step_\(n)", "shell", json: ["command": "echo \(n)"])], input: 100, output: 10))
        }
        defer { server.stop() }
        let (h, summary) = try await run(server, budget: "{ max_steps: 4, max_tokens: 1000000, max_wall: 5m }")
        let records = try await h.checkEnded(summary, .budget)
        #expect(summary.usage.steps == 4 && server.received.count == 4)
        #expect(records.last { $0.type == "budget" }?.data["limit"]?.stringValue == BudgetLimit.steps.rawValue)
        #expect(records.filter { $0.type == "tool.result" }.count == 4)
    }

    @Test func maxTokensExhausted() async throws {
        let server = try FakeProviderServer { n in
            .sse(ProviderWire.openAI(calls: [.init("t_\(n)", "shell", json: ["command": "echo \(n)"])], input: 1000, output: 100))
        }
        defer { server.stop() }
        let (h, summary) = try await run(server, budget: "{ max_steps: 50, max_tokens: 2500, max_wall: 5m }")
        let records = try await h.checkEnded(summary, .budget)
        #expect(summary.usage.steps == 3 && summary.usage.tokens == 3300)
        #expect(records.last { $0.type == "budget" }?.data["limit"]?.stringValue == BudgetLimit.tokens.rawValue)
    }

    @Test func maxWallReachedDuringASlowModelResponse() async throws {
        let text = ProviderWire.openAI(text: "thinking very slowly", input: 10, output: 1)
        let server = try FakeProviderServer { _ in
            var r = FakeProviderServer.Response.sse(text, split: 30)
            r.stallAfter = 1
            r.stall = .seconds(20)
            return r
        }
        defer { server.stop() }
        let clock = ContinuousClock()
        let began = clock.now
        let (h, summary) = try await run(server, budget: "{ max_steps: 5, max_tokens: 100000, max_wall: 2s }")
        #expect(clock.now - began < .seconds(15), "the run waited for the model past max_wall")
        let records = try await h.checkEnded(summary, .budget)
        #expect(records.last { $0.type == "budget" }?.data["limit"]?.stringValue == BudgetLimit.wall.rawValue)
        #expect(modelResponses(records).last?.data["status"]?.stringValue == "error")
    }
}
