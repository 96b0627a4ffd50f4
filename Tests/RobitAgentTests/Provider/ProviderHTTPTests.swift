import Foundation
import Testing
@testable import RobitAgent
#if canImport(Glibc)
import Glibc
#endif

/// End to end: each provider against the fake server over loopback, through libcurl.
@Suite("Providers over HTTP against a fake provider server")
struct ProviderHTTPTests {
    static let keyEnv = "ROBIT_TEST_PROVIDER_KEY"

    static func options(attempts: Int = 3, threshold: Int = 1000, cooldown: Duration = .seconds(60), idle: Duration = .seconds(5),
                        maxBytes: Int = 16 << 20) -> HTTPProviderOptions {
        HTTPProviderOptions(
            limits: HTTPLimits(connectTimeout: .seconds(2), idleTimeout: idle, totalTimeout: .seconds(60), maxResponseBytes: maxBytes),
            retry: RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(10), maxDelay: .milliseconds(40), jitter: 0.5, maxRetryAfter: .seconds(5)),
            breaker: CircuitBreaker(.init(failureThreshold: threshold, cooldown: cooldown)))
    }

    static func provider(_ kind: TaskFile.Model.Provider, _ server: FakeProviderServer, key: Bool = true,
                         options: HTTPProviderOptions = options()) throws -> any ModelProvider {
        let base = kind == .anthropic ? server.baseURL : server.baseURL + "/v1"
        let model = TaskFile.Model(provider: kind, name: kind == .anthropic ? "claude-sonnet-4" : "gpt-4.1-mini", baseURL: base,
                                   apiKeyEnv: key ? keyEnv : nil)
        return try ProviderFactory.make(model: model, environment: [keyEnv: ProviderFixtures.secret], baseDirectory: "/tmp", options: options)
    }

    static func call(_ provider: any ModelProvider) async -> Result<ModelResponse, ProviderError> {
        do throws(ProviderError) {
            return .success(try await provider.complete(ProviderFixtures.request))
        } catch {
            return .failure(error)
        }
    }

    static func expectNoSecret(_ text: String, _ place: String) {
        for fragment in [ProviderFixtures.secret, String(ProviderFixtures.secret.prefix(12)), String(ProviderFixtures.secret.suffix(12))] {
            #expect(!text.contains(fragment), "the API key leaked into \(place)")
        }
    }

    static func expectFailure(_ result: Result<ModelResponse, ProviderError>) -> ProviderError? {
        switch result {
        case .success(let response):
            Issue.record("expected a failure, got \(response.text)")
            return nil
        case .failure(let error):
            expectNoSecret(error.message, "the error message")
            expectNoSecret(error.description, "the error description")
            return error
        }
    }

    @Test func openAIHappyPathStreamsToolCallsAndUsage() async throws {
        let server = try FakeProviderServer { _ in
            var response = FakeProviderServer.Response.sse(ProviderFixtures.openAIStream, split: 7, headers: [("x-request-id", "req_123")])
            response.delay = .microseconds(200)
            return response
        }
        defer { server.stop() }
        let response = try await Self.provider(.openai, server).complete(ProviderFixtures.request)
        let expected = ProviderFixtures.openAITurn
        #expect(response.text == expected.text)
        #expect(response.toolCalls == expected.toolCalls)
        #expect(response.stopReason == .toolUse)
        #expect(response.usage == Usage(inputTokens: 120, outputTokens: 33))
        #expect(response.requestID == "req_123")
        #expect(response.attempts == 1)
        #expect(response.rawResponse == ProviderFixtures.openAIStream)
        let received = try #require(server.received.first)
        #expect(received.requestLine == "POST /v1/chat/completions HTTP/1.1")
        #expect(received.header("Authorization") == "Bearer \(ProviderFixtures.secret)")
        #expect(received.body == response.requestBody)
        Self.expectNoSecret(response.requestBody, "requestBody")
        Self.expectNoSecret(response.rawResponse, "rawResponse")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(received.body.utf8)) as? [String: Any])
        #expect(body["stream"] as? Bool == true)
        #expect((body["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect(body["max_completion_tokens"] as? Int == 256)
        let messages = try #require(body["messages"] as? [[String: Any]])
        #expect(messages.map { $0["role"] as? String } == ["system", "user", "assistant", "tool", "user"])
        #expect(messages[3]["tool_call_id"] as? String == "call_A")
        let calls = try #require(messages[2]["tool_calls"] as? [[String: Any]])
        #expect((calls[0]["function"] as? [String: Any])?["arguments"] as? String == #"{"command":"ls"}"#)
    }

    @Test func anthropicHappyPathStreamsToolUseBlocks() async throws {
        let server = try FakeProviderServer { _ in
            .sse(ProviderFixtures.anthropicStream, split: 11, headers: [("request-id", "req_ant")])
        }
        defer { server.stop() }
        let response = try await Self.provider(.anthropic, server).complete(ProviderFixtures.request)
        #expect(response.text == ProviderFixtures.anthropicTurn.text)
        #expect(response.toolCalls == ProviderFixtures.anthropicTurn.toolCalls)
        #expect(response.stopReason == .toolUse)
        #expect(response.usage == Usage(inputTokens: 200, outputTokens: 42))
        #expect(response.requestID == "req_ant")
        let provider = try Self.provider(.anthropic, server)
        var dumped = ""
        dump(provider, to: &dumped)
        for text in ["\(provider)", String(reflecting: provider), dumped] {
            Self.expectNoSecret(text, "the provider's description")
        }
        let request = HTTPRequest(url: "http://x", headers: AnthropicMessagesCodec(baseURL: "http://x").headers(apiKey: ProviderFixtures.secret), body: "")
        var dumpedRequest = ""
        dump(request, to: &dumpedRequest)
        Self.expectNoSecret("\(request)" + dumpedRequest, "the request's description")
        let received = try #require(server.received.first)
        #expect(received.requestLine == "POST /v1/messages HTTP/1.1")
        #expect(received.header("x-api-key") == ProviderFixtures.secret)
        #expect(received.header("anthropic-version") == "2023-06-01")
        #expect(received.header("Authorization") == nil)
        #expect(received.body == response.requestBody)
        Self.expectNoSecret(response.requestBody, "requestBody")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(received.body.utf8)) as? [String: Any])
        #expect(body["system"] as? String == "You are terse.")
        #expect(body["max_tokens"] as? Int == 256)
        let messages = try #require(body["messages"] as? [[String: Any]])
        #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "user"])
        let assistant = try #require(messages[1]["content"] as? [[String: Any]])
        #expect(assistant.map { $0["type"] as? String } == ["text", "tool_use"])
        #expect((assistant[1]["input"] as? [String: Any])?["command"] as? String == "ls")
        let results = try #require(messages[2]["content"] as? [[String: Any]])
        #expect(results.map { $0["type"] as? String } == ["tool_result", "text"])
        #expect(results[0]["tool_use_id"] as? String == "call_A")
        let tools = try #require(body["tools"] as? [[String: Any]])
        #expect(tools.first?["input_schema"] != nil)
    }

    @Test(arguments: [TaskFile.Model.Provider.ollama, .openaiCompatible])
    func compatibleServersNeedNoKey(kind: TaskFile.Model.Provider) async throws {
        let server = try FakeProviderServer { _ in .sse(ProviderFixtures.openAIText) }
        defer { server.stop() }
        let response = try await Self.provider(kind, server, key: false).complete(ProviderFixtures.request)
        #expect(response.text == "fine")
        #expect(response.stopReason == .endTurn)
        #expect(response.requestID == "chatcmpl-7")
        let received = try #require(server.received.first)
        #expect(received.header("Authorization") == nil)
        #expect(received.requestLine == "POST /v1/chat/completions HTTP/1.1")
        #expect(received.body.contains(#""max_tokens":256"#))
    }

    @Test func everyByteInItsOwnChunk() async throws {
        for (kind, stream, turn) in [(TaskFile.Model.Provider.openai, ProviderFixtures.openAIStream, ProviderFixtures.openAITurn),
                                     (.anthropic, ProviderFixtures.anthropicStream, ProviderFixtures.anthropicTurn)] {
            let server = try FakeProviderServer { _ in .sse(stream, split: 1) }
            defer { server.stop() }
            let response = try await Self.provider(kind, server).complete(ProviderFixtures.request)
            #expect(response.text == turn.text)
            #expect(response.toolCalls == turn.toolCalls)
            #expect(response.rawResponse == stream)
        }
    }

    @Test func honoursRetryAfterOn429ThenSucceeds() async throws {
        let server = try FakeProviderServer { index in
            index == 0 ? .json(429, #"{"error":{"message":"Rate limit reached","type":"requests"}}"#, headers: [("Retry-After", "1")])
                : .sse(ProviderFixtures.openAIText)
        }
        defer { server.stop() }
        let response = try await Self.provider(.openai, server).complete(ProviderFixtures.request)
        #expect(response.text == "fine")
        #expect(response.attempts == 2)
        let times = server.received.map(\.at)
        try #require(times.count == 2)
        #expect(times[1] - times[0] >= .milliseconds(950), "Retry-After: 1 was not honoured: \(times[1] - times[0])")
        #expect(response.latency >= .milliseconds(950))
        #expect(server.received[0].body == server.received[1].body)
    }

    @Test func retryAfterLongerThanTheLimitFailsAtOnce() async throws {
        let server = try FakeProviderServer { _ in .json(503, #"{"error":{"message":"busy"}}"#, headers: [("Retry-After", "3600")]) }
        defer { server.stop() }
        let error = Self.expectFailure(await Self.call(try Self.provider(.openai, server)))
        #expect(error?.kind == .http(status: 503))
        #expect(error?.attempts == 1)
        #expect(error?.message.contains("retry after") == true)
        #expect(server.received.count == 1)
    }

    @Test func serverErrorsUntilTheBreakerOpens() async throws {
        let server = try FakeProviderServer { _ in .json(500, #"{"error":{"message":"internal"}}"#) }
        defer { server.stop() }
        let provider = try Self.provider(.openai, server, options: Self.options(attempts: 2, threshold: 3))
        for _ in 0..<3 {
            let error = Self.expectFailure(await Self.call(provider))
            #expect(error?.kind == .http(status: 500))
            #expect(error?.attempts == 2)
            #expect(error?.message.contains("internal") == true)
        }
        let started = ContinuousClock.now
        let error = Self.expectFailure(await Self.call(provider))
        #expect(error?.kind == .circuitOpen)
        #expect(error?.attempts == 0)
        #expect(ContinuousClock.now - started < .milliseconds(500))
        #expect(server.received.count == 6)
    }

    @Test func breakerLetsATrialThroughAfterItsCooldown() async throws {
        let server = try FakeProviderServer { index in index == 0 ? .json(502, "bad gateway") : .sse(ProviderFixtures.openAIText) }
        defer { server.stop() }
        let provider = try Self.provider(.openai, server, options: Self.options(attempts: 1, threshold: 1, cooldown: .milliseconds(300)))
        #expect(Self.expectFailure(await Self.call(provider))?.kind == .http(status: 502))
        #expect(Self.expectFailure(await Self.call(provider))?.kind == .circuitOpen)
        try await Task.sleep(for: .milliseconds(350))
        let response = try await provider.complete(ProviderFixtures.request)
        #expect(response.text == "fine")
        #expect(server.received.count == 2)
    }

    @Test func streamCutMidwayIsANetworkErrorAfterRetries() async throws {
        let half = ProviderFixtures.openAIStream.utf8.count / 2
        for framing in [FakeProviderServer.Framing.chunked, .contentLength, .close] {
            let server = try FakeProviderServer { _ in
                var response = FakeProviderServer.Response.sse(ProviderFixtures.openAIStream, split: half)
                response.framing = framing
                response.cutAfter = 1
                return response
            }
            defer { server.stop() }
            let error = Self.expectFailure(await Self.call(try Self.provider(.openai, server)))
            #expect(error?.kind == .network, "framing \(framing)")
            #expect(error?.attempts == 3)
            #expect(server.received.count == 3)
        }
    }

    @Test func malformedJSONIsNotRetried() async throws {
        let server = try FakeProviderServer { _ in .sse("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"choices\": [tru\n\n") }
        defer { server.stop() }
        let error = Self.expectFailure(await Self.call(try Self.provider(.openai, server)))
        #expect(error?.kind == .malformed)
        #expect(error?.attempts == 1)
        #expect(server.received.count == 1)
    }

    @Test func plainJSONInsteadOfAStreamIsMalformed() async throws {
        let server = try FakeProviderServer { _ in .json(200, #"{"id":"x","choices":[{"message":{"content":"hi"}}]}"#) }
        defer { server.stop() }
        let error = Self.expectFailure(await Self.call(try Self.provider(.openaiCompatible, server, key: false)))
        #expect(error?.kind == .malformed)
        #expect(error?.message.contains("event stream") == true)
        #expect(server.received.count == 1)
    }

    @Test func aFiftyMegabyteResponseIsAbortedAtTheCap() async throws {
        let unit = Array(("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + String(repeating: "a", count: 1000) + "\"}}]}\n\n").utf8)
        let count = 50_000_000 / unit.count + 1
        let server = try FakeProviderServer { _ in
            FakeProviderServer.Response(body: .repeating(unit: unit, count: count), framing: .contentLength)
        }
        defer { server.stop() }
        let provider = try Self.provider(.openai, server)
        let rssBefore = Self.rssKiB("VmRSS")
        Self.resetPeakRSS()
        let started = ContinuousClock.now
        let error = Self.expectFailure(await Self.call(provider))
        let elapsed = ContinuousClock.now - started
        let growthMiB = (Self.rssKiB("VmHWM") - rssBefore) / 1024
        #expect(error?.kind == .tooLarge)
        #expect(error?.attempts == 1)
        #expect(elapsed < .seconds(20))
        #expect(growthMiB < 80, "peak RSS grew by \(growthMiB) MiB for a 16 MiB cap")
        try await Task.sleep(for: .milliseconds(200))
        let sent = server.bytesSent.first ?? 0
        #expect(sent < 40_000_000, "the server could send \(sent) bytes: the transfer was not aborted")
        print("50 MB response: tooLarge after \(elapsed), server sent \(sent) bytes, peak RSS growth \(growthMiB) MiB")
    }

    @Test func idleStreamTimesOut() async throws {
        for stallAfter in [0, 2] {
            let server = try FakeProviderServer { _ in
                var response = FakeProviderServer.Response.sse(ProviderFixtures.openAIStream, split: 100)
                response.stallAfter = stallAfter
                response.stall = .seconds(10)
                return response
            }
            defer { server.stop() }
            let started = ContinuousClock.now
            let error = Self.expectFailure(await Self.call(try Self.provider(.openai, server, options: Self.options(attempts: 1, idle: .milliseconds(400)))))
            #expect(error?.kind == .timeout)
            #expect(error?.message.contains("idle") == true)
            #expect(ContinuousClock.now - started < .seconds(5), "the idle timeout did not cut a 10 s stall")
        }
    }

    @Test func connectionRefusedIsANetworkErrorAfterRetries() async throws {
        let port = try Self.closedPort()
        let model = TaskFile.Model(provider: .openaiCompatible, name: "m", baseURL: "http://127.0.0.1:\(port)/v1")
        let provider = try ProviderFactory.make(model: model, environment: [:], baseDirectory: "/tmp", options: Self.options(attempts: 2))
        let error = Self.expectFailure(await Self.call(provider))
        #expect(error?.kind == .network)
        #expect(error?.attempts == 2)
        #expect(error?.message.contains("could not connect") == true)
    }

    @Test func httpsURLsSpeakTLS() async throws {
        // The fake server speaks plain HTTP and waits for a request head that a TLS ClientHello
        // never completes: the handshake runs into the connect timeout.
        let server = try FakeProviderServer { _ in .sse(ProviderFixtures.openAIText) }
        defer { server.stop() }
        let model = TaskFile.Model(provider: .openaiCompatible, name: "m", baseURL: "https://127.0.0.1:\(server.port)/v1")
        let provider = try ProviderFactory.make(model: model, environment: [:], baseDirectory: "/tmp", options: Self.options(attempts: 1))
        let error = Self.expectFailure(await Self.call(provider))
        #expect(error?.kind == .timeout)
        #expect(error?.message.uppercased().contains("SSL") == true || error?.message.uppercased().contains("TLS") == true, "\(String(describing: error))")
    }

    @Test func unauthorizedIsNotRetriedAndTheKeyIsNotEchoed() async throws {
        let echo = "Incorrect API key provided: \(ProviderFixtures.secret). You can find your API key at https://platform.openai.com."
        let server = try FakeProviderServer { _ in .json(401, #"{"error":{"message":"\#(echo)","type":"invalid_request_error"}}"#) }
        defer { server.stop() }
        let error = Self.expectFailure(await Self.call(try Self.provider(.openai, server)))
        #expect(error?.kind == .http(status: 401))
        #expect(error?.attempts == 1)
        #expect(error?.message.contains("Incorrect API key provided") == true)
        #expect(error?.message.contains("$\(Self.keyEnv)") == true)
        #expect(server.received.count == 1)
    }

    @Test func cancellationStopsAStalledTransfer() async throws {
        let server = try FakeProviderServer { _ in
            var response = FakeProviderServer.Response.sse(ProviderFixtures.openAIStream, split: 100)
            response.stallAfter = 1
            response.stall = .seconds(10)
            return response
        }
        defer { server.stop() }
        let provider = try Self.provider(.openai, server)
        let started = ContinuousClock.now
        let task = Task { await Self.call(provider) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let error = Self.expectFailure(await task.value)
        #expect(error != nil)
        #expect(ContinuousClock.now - started < .seconds(5), "cancelling did not stop a 10 s stall")
    }

    /// Resets the kernel's peak-RSS mark of this process (`/proc/self/clear_refs`, value 5).
    static func resetPeakRSS() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    /// Resident set size (`VmRSS`) or its peak since the last reset (`VmHWM`), in KiB.
    static func rssKiB(_ field: String) -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// A loopback port nobody listens on (bound, then closed).
    static func closedPort() throws -> Int {
        let server = try FakeProviderServer { _ in .json(200, "{}") }
        let port = server.port
        server.stop()
        return port
    }
}
