import Foundation
import Testing
@testable import RobitAgent

@Suite("Provider factory, replay scripts, prices, retry rules")
struct ProviderFactoryTests {
    private func makeError(_ model: TaskFile.Model, environment: [String: String] = [:], baseDirectory: String = "/tmp") -> ProviderError? {
        do throws(ProviderError) {
            _ = try ProviderFactory.make(model: model, environment: environment, baseDirectory: baseDirectory)
            return nil
        } catch {
            return error
        }
    }

    @Test func missingKeysAndBadURLsAreConfigurationErrors() {
        let missing = makeError(TaskFile.Model(provider: .openai, name: "gpt-4.1"))
        #expect(missing?.kind == .configuration)
        #expect(missing?.message.contains("OPENAI_API_KEY") == true)
        #expect(makeError(TaskFile.Model(provider: .anthropic, name: "c"), environment: ["ANTHROPIC_API_KEY": " "])?.kind == .configuration)
        #expect(makeError(TaskFile.Model(provider: .openaiCompatible, name: "m"))?.message.contains("base_url") == true)
        #expect(makeError(TaskFile.Model(provider: .openaiCompatible, name: "m", baseURL: "ftp://x/v1"))?.kind == .configuration)
        #expect(makeError(TaskFile.Model(provider: .ollama, name: "m", baseURL: "http://user:pw@h/v1"))?.kind == .configuration)
        #expect(makeError(TaskFile.Model(provider: .ollama, name: "m", apiKeyEnv: "NOPE"))?.message.contains("NOPE") == true)
        #expect(makeError(TaskFile.Model(provider: .replay, name: "replay"))?.kind == .configuration)
        #expect(makeError(TaskFile.Model(provider: .replay, name: "replay", script: "/nonexistent/script.jsonl"))?.kind == .configuration)
        #expect(makeError(TaskFile.Model(provider: .openai, name: "gpt-4.1"), environment: ["OPENAI_API_KEY": "k"]) == nil)
        #expect(makeError(TaskFile.Model(provider: .ollama, name: "llama3.2")) == nil)
    }

    @Test func replayScriptAnswersInOrderThenRunsOut() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("robit-replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = """
            # two turns
            {"text":"Let me look.","tool_calls":[{"name":"shell","arguments":{"command":"ls"}},{"name":"read","arguments":"{\\"path\\": \\"a b\\"}"}],"usage":{"input_tokens":10,"output_tokens":5}}

            {"text":"Done."}
            """
        try script.write(to: directory.appendingPathComponent("turns.jsonl"), atomically: true, encoding: .utf8)
        let provider = try ProviderFactory.make(model: TaskFile.Model(provider: .replay, name: "replay", script: "turns.jsonl"),
                                                environment: [:], baseDirectory: directory.path)
        let first = try await provider.complete(ProviderFixtures.request)
        #expect(first.text == "Let me look.")
        #expect(first.toolCalls == [ToolCall(id: "replay-1-1", name: "shell", arguments: #"{"command":"ls"}"#),
                                    ToolCall(id: "replay-1-2", name: "read", arguments: #"{"path": "a b"}"#)])
        #expect(first.stopReason == .toolUse)
        #expect(first.usage == Usage(inputTokens: 10, outputTokens: 5))
        #expect(first.requestBody.contains("List the files"))
        let second = try await provider.complete(ProviderFixtures.request)
        #expect(second.text == "Done.")
        #expect(second.stopReason == .endTurn)
        do throws(ProviderError) {
            _ = try await provider.complete(ProviderFixtures.request)
            Issue.record("a third turn was answered")
        } catch {
            #expect(error.kind == .configuration)
            #expect(error.message.contains("only 2 model turns"))
        }
    }

    @Test func replayScriptErrorsNameTheLine() {
        do throws(ProviderError) {
            _ = try ReplayScript.parse("{\"text\":\"ok\"}\n{not json}\n", source: "s.jsonl")
            Issue.record("a bad line was accepted")
        } catch {
            #expect(error.message.hasPrefix("s.jsonl:2:"))
        }
        do throws(ProviderError) {
            _ = try ReplayScript.parse(#"{"tool_calls":[{"arguments":{}}]}"#, source: "s.jsonl")
            Issue.record("a call without a name was accepted")
        } catch {
            #expect(error.message.contains("no name"))
        }
    }

    @Test func replayScriptsRefuseInvalidUTF8AndSayWhenTooDeep() throws {
        let dir = NSTemporaryDirectory() + "robit-replay-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try (Data("{\"text\":\"ok\"}\n{\"text\":\"".utf8) + Data([0xFF, 0xFE]) + Data("\"}\n".utf8)).write(to: URL(fileURLWithPath: dir + "/bad.jsonl"))
        do throws(ProviderError) {
            _ = try ReplayScript.load(path: dir + "/bad.jsonl")
            Issue.record("invalid UTF-8 was accepted")
        } catch {
            #expect(error.message.contains("bad.jsonl:2: not valid UTF-8"), "\(error.message)")
        }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        do throws(ProviderError) {
            _ = try ReplayScript.parse("{\"text\":\"x\",\"d\":\(deep)}", source: "s.jsonl")
            Issue.record("a 10,000-deep line was accepted")
        } catch {
            #expect(error.message.contains("s.jsonl:1:") && error.message.contains("nested deeper than"), "\(error.message)")
        }
    }

    @Test func replayTakesTurnsFromAnySource() async throws {
        let provider = ReplayProvider(turns: [ModelResponse(text: "recorded", toolCalls: [], stopReason: .endTurn, requestBody: "{}")], source: "audit.jsonl")
        #expect(try await provider.complete(ProviderFixtures.request).requestBody == "{}")
    }

    @Test func pricesMatchByPrefixAndRoundUp() {
        let table = PriceTable()
        #expect(table.cost(model: "gpt-4.1-mini", usage: Usage(inputTokens: 1_000_000, outputTokens: 1_000_000)) == 2_000_000)
        #expect(table.cost(model: "gpt-4.1-mini-2025-04-14", usage: Usage(inputTokens: 1_000_000)) == 400_000)
        #expect(table.cost(model: "gpt-4o-mini", usage: Usage(inputTokens: 1_000_000)) == 150_000)
        #expect(table.cost(model: "claude-sonnet-4-20250514", usage: Usage(inputTokens: 1, outputTokens: 1)) == 18)
        #expect(table.cost(model: "gpt-4.1-nano", usage: Usage(inputTokens: 1)) == 1)
        #expect(table.cost(model: "claude-sonnet-4-20250514", usage: Usage(inputTokens: 1000, outputTokens: 1000)) == 18_000)
        #expect(table.cost(model: "llama3.2", usage: Usage(inputTokens: 1000)) == nil)
        #expect(table.cost(model: "gpt-4.10", usage: Usage(inputTokens: 1000)) == nil)
        let custom = PriceTable(overrides: ["llama3.2": .init(inputPerMillion: 0, outputPerMillion: 0), "gpt-4.1": .init(usdPerMillionInput: 1, output: 1)])
        #expect(custom.cost(model: "llama3.2:8b", usage: Usage(inputTokens: 1000)) == 0)
        #expect(custom.cost(model: "gpt-4.1", usage: Usage(inputTokens: 1_000_000)) == 1_000_000)
    }

    @Test func retryAfterSecondsAndHTTPDates() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        func head(_ name: String, _ value: String) -> HTTPResponseHead { HTTPResponseHead(status: 429, headers: [(name, value)]) }
        #expect(RetryAfter.parse(head("Retry-After", "7"), now: now) == .seconds(7))
        #expect(RetryAfter.parse(head("retry-after", "0.5"), now: now) == .milliseconds(500))
        #expect(RetryAfter.parse(head("retry-after-ms", "250"), now: now) == .milliseconds(250))
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        #expect(RetryAfter.parse(head("Retry-After", "Tue, 14 Nov 2023 22:13:32 GMT"), now: now) == .seconds(12))
        #expect(RetryAfter.parse(head("Retry-After", "Tue, 14 Nov 2023 22:00:00 GMT"), now: now) == .zero)
        #expect(RetryAfter.parse(head("Retry-After", "soon"), now: now) == nil)
        #expect(RetryAfter.parse(HTTPResponseHead(status: 429), now: now) == nil)
    }

    @Test func backoffGrowsWithJitterUnderTheCap() {
        let policy = RetryPolicy(maxAttempts: 6, baseDelay: .milliseconds(100), maxDelay: .milliseconds(500), jitter: 0.5)
        for attempt in 1...6 {
            let full = min(500, 100 << (attempt - 1))
            for _ in 0..<50 {
                let delay = policy.backoff(afterAttempt: attempt)
                #expect(delay <= .milliseconds(full) && delay >= .milliseconds(full / 2), "attempt \(attempt): \(delay)")
            }
        }
        #expect(RetryPolicy.isRetryable(status: 429) && RetryPolicy.isRetryable(status: 503) && RetryPolicy.isRetryable(status: 529))
        #expect(!RetryPolicy.isRetryable(status: 400) && !RetryPolicy.isRetryable(status: 401) && !RetryPolicy.isRetryable(status: 404))
    }

    @Test func wireJSONEscapesAndKeepsRawArguments() {
        let value = WireJSON.object([("s", .string("a\"b\\c\n\u{1}/é😀")), ("n", .number(2)), ("f", .number(0.5)), ("raw", .raw(#"{"z": 1,"a":[]}"#))])
        #expect(value.text == #"{"s":"a\"b\\c\n\u0001/é😀","n":2,"f":0.5,"raw":{"z": 1,"a":[]}}"#)
        #expect(AnthropicMessagesCodec.input(#" {"x": [1, 2]} "#) == .raw(#"{"x": [1, 2]}"#))
        #expect(AnthropicMessagesCodec.input("not json").text == "{}")
        #expect(AnthropicMessagesCodec.input("[1]").text == "{}")
    }
}
