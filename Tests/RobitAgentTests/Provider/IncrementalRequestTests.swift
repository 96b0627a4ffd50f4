import Foundation
import Testing
@testable import RobitAgent
import RobitAudit

/// Each model call encodes only what the conversation gained since the previous one
/// (`EncodedConversation`), and libcurl keeps the connection between calls (`HTTPConnectionCache`).
/// Neither may change a byte of what is sent.
@Suite("Incremental request bodies and kept connections")
struct IncrementalRequestTests {
    /// A deterministic pseudo-random conversation: runs of every message kind, including several
    /// tool results in a row, user messages right after results, empty texts and escapes.
    static func conversation(seed: UInt64, count: Int) -> [Message] {
        var state = seed
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        let texts = ["", "plain", "quote \" and \\ backslash", "line\nbreak\ttab", "ünïcödé ✓ 🚀", "\u{2028}\u{0001}"]
        var messages: [Message] = []
        for index in 0..<count {
            switch next(5) {
            case 0: messages.append(.user(texts[next(texts.count)]))
            case 1, 2:
                let calls = (0..<next(3)).map { ToolCall(id: "call_\(index)_\($0)", name: "shell", arguments: #"{"command":"echo \#(index)"}"#) }
                messages.append(.assistant(text: texts[next(texts.count)], toolCalls: calls))
            default:
                messages.append(.tool(callID: "call_\(index)", name: "shell", content: texts[next(texts.count)], isError: next(2) == 0))
            }
        }
        return messages
    }

    static func request(_ messages: [Message]) -> ModelRequest {
        var request = ProviderFixtures.request
        request.messages = messages
        return request
    }

    static func codecs() -> [(String, (ModelRequest, EncodedConversation) -> (String, String))] {
        let openAI = OpenAIChatCodec(name: "openai", baseURL: "http://x/v1", flavor: .openai)
        let anthropic = AnthropicMessagesCodec(baseURL: "http://x")
        return [
            ("openai", { request, cache in checked(cache.body(request, codec: openAI), openAI.encode(request)) }),
            ("anthropic", { request, cache in checked(cache.body(request, codec: anthropic), anthropic.encode(request)) }),
        ]
    }

    /// The body as encoded incrementally, with the expectation that its incremental SHA-256 is the
    /// hash of the body, and the body from scratch.
    static func checked(_ body: EncodedBody, _ fresh: String) -> (String, String) {
        #expect(body.sha256 == AuditHash.sha256Hex(body.text), "the incremental hash is not the hash of the body")
        return (body.text, fresh)
    }

    @Test func aGrowingConversationEncodesExactlyAsFromScratch() throws {
        for (name, encode) in Self.codecs() {
            for seed in 1...20 as ClosedRange<UInt64> {
                let all = Self.conversation(seed: seed, count: 60)
                let cache = EncodedConversation()
                var length = 0
                while length < all.count {
                    length = min(all.count, length + 1 + Int(seed % 3))
                    let (cached, fresh) = encode(Self.request(Array(all[..<length])), cache)
                    #expect(cached == fresh, "\(name), seed \(seed), \(length) messages")
                    // What is sent is one valid JSON document.
                    _ = try JSONSerialization.jsonObject(with: Data(cached.utf8))
                }
            }
        }
    }

    @Test func aConversationThatChangesOrShrinksIsReEncoded() {
        for (name, encode) in Self.codecs() {
            let cache = EncodedConversation()
            let base = Self.conversation(seed: 7, count: 40)
            var variants: [[Message]] = [base, Array(base[..<25]), base]
            var edited = base
            edited[10] = .user("an earlier message, edited")
            variants.append(edited)
            var replaced = base
            replaced[39] = .tool(callID: "other", name: "shell", content: "changed", isError: true)
            variants.append(replaced)
            variants.append([])
            variants.append(Self.conversation(seed: 8, count: 45))
            // One cache, unrelated conversations one after another (a provider reused for another run).
            for (index, messages) in variants.enumerated() {
                let (cached, fresh) = encode(Self.request(messages), cache)
                #expect(cached == fresh, "\(name), variant \(index)")
            }
        }
    }

    /// The prefix compare takes equal bytes as equal messages and falls back to `==` otherwise: equal
    /// messages in separate storage are still equal, and any one changed field is a difference.
    @Test func commonPrefixComparesValuesNotStorage() {
        let long = String(repeating: "x", count: 100)
        func build(_ suffix: String) -> [Message] {
            [.user(long + suffix), .assistant(text: String(long.reversed()) + suffix, toolCalls: [ToolCall(id: "c" + suffix, name: "shell", arguments: "{}")]),
             .tool(callID: "c" + suffix, name: "shell", content: long + "out" + suffix, isError: false)]
        }
        let a = build(""), b = build("")
        #expect(EncodedConversation.commonPrefix(a, b) == 3)
        #expect(EncodedConversation.commonPrefix(a, Array(b.prefix(2))) == 2)
        #expect(EncodedConversation.commonPrefix(a, []) == 0)
        var c = b
        c[2] = .tool(callID: "c", name: "shell", content: long + "out", isError: true)
        #expect(EncodedConversation.commonPrefix(a, c) == 2)
        c = b
        c[1] = .assistant(text: String(long.reversed()), toolCalls: [ToolCall(id: "c", name: "shell", arguments: "{ }")])
        #expect(EncodedConversation.commonPrefix(a, c) == 1)
        #expect(EncodedConversation.commonPrefix(a, build("!")) == 0)
    }

    @Test func theEnvelopeChangesAreNotCached() {
        let codec = OpenAIChatCodec(name: "openai", baseURL: "http://x/v1", flavor: .compatible)
        let cache = EncodedConversation()
        var request = Self.request(Self.conversation(seed: 3, count: 10))
        _ = cache.body(request, codec: codec)
        request.system = "another system prompt"
        request.tools = []
        request.maxOutputTokens = nil
        request.model = "another-model"
        var (cached, fresh) = Self.checked(cache.body(request, codec: codec), codec.encode(request))
        #expect(cached == fresh)
        request.system = nil
        (cached, fresh) = Self.checked(cache.body(request, codec: codec), codec.encode(request))
        #expect(cached == fresh)
        request.messages = []
        (cached, fresh) = Self.checked(cache.body(request, codec: codec), codec.encode(request))
        #expect(cached == fresh)
    }

    /// Real providers keep HTTP/1.1 connections open: calls after the first reuse the connection.
    @Test func callsReuseTheConnection() async throws {
        let server = try FakeProviderServer(keepAlive: true) { _ in .sse(ProviderFixtures.openAIText, split: 9) }
        defer { server.stop() }
        let provider = try ProviderHTTPTests.provider(.openai, server)
        var messages = ProviderFixtures.request.messages
        for _ in 0..<4 {
            var request = ProviderFixtures.request
            request.messages = messages
            let response = try await provider.complete(request)
            #expect(response.text == "fine")
            #expect(response.attempts == 1)
            messages.append(.assistant(text: response.text, toolCalls: []))
            messages.append(.user("again"))
        }
        let received = server.received
        #expect(received.count == 4)
        #expect(Set(received.map(\.connection)) == [0], "every call should have used the first connection")
        // Each body is the conversation as it was then, complete.
        for (index, request) in received.enumerated() {
            let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any])
            #expect((body["messages"] as? [Any])?.count == 1 + ProviderFixtures.request.messages.count + 2 * index)
        }
    }

    /// A server that closes an idle kept-alive connection (or after N requests): the next call opens a
    /// new one and succeeds at its first attempt, with nothing sent twice.
    @Test func aConnectionTheServerClosedIsReplaced() async throws {
        let server = try FakeProviderServer(keepAlive: true, closeAfter: 2) { _ in .sse(ProviderFixtures.openAIText) }
        defer { server.stop() }
        let provider = try ProviderHTTPTests.provider(.openai, server)
        for _ in 0..<5 {
            let response = try await provider.complete(ProviderFixtures.request)
            #expect(response.text == "fine")
            #expect(response.attempts == 1)
        }
        #expect(server.received.map(\.connection) == [0, 0, 1, 1, 2])
    }

    /// The same, when the server closes without a word (an idle timeout): libcurl notices the dead
    /// connection and the call still succeeds.
    @Test func aConnectionClosedSilentlyIsReplaced() async throws {
        let server = try FakeProviderServer(keepAlive: true, closeAfter: 1, closeSilently: true) { _ in .sse(ProviderFixtures.openAIText) }
        defer { server.stop() }
        let provider = try ProviderHTTPTests.provider(.openai, server)
        for _ in 0..<4 {
            let response = try await provider.complete(ProviderFixtures.request)
            #expect(response.text == "fine")
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(server.received.map(\.connection) == [0, 1, 2, 3])
    }

    /// A transfer abandoned mid-stream (a cut) never leaves the next call on a broken connection.
    @Test func aCutStreamDoesNotPoisonTheNextCall() async throws {
        let server = try FakeProviderServer(keepAlive: true) { n in
            var response = FakeProviderServer.Response.sse(ProviderFixtures.openAIText, split: 20)
            if n == 0 { response.cutAfter = 2 }
            return response
        }
        defer { server.stop() }
        let provider = try ProviderHTTPTests.provider(.openai, server)
        let response = try await provider.complete(ProviderFixtures.request)
        #expect(response.text == "fine")
        #expect(response.attempts == 2)
        #expect(server.received.count == 2)
        #expect(server.received.map(\.connection) == [0, 1])
    }
}
