import Foundation
import Testing
@testable import RobitAgent

@Suite("Provider streams: SSE parsing and stream decoders")
struct ProviderStreamTests {
    private func feed<D: TurnStreamDecoder>(_ decoder: D, _ pieces: [[UInt8]]) throws(AttemptError) -> DecodedTurn {
        var decoder = decoder
        for piece in pieces {
            let result: Result<Void, AttemptError> = piece.withUnsafeBytes { bytes in
                do throws(AttemptError) {
                    try decoder.consume(bytes)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            try result.get()
        }
        return try decoder.finish()
    }

    private func parse(_ pieces: [[UInt8]]) -> [SSEEvent] {
        var parser = SSEParser()
        var events: [SSEEvent] = []
        for piece in pieces { events += piece.withUnsafeBytes { parser.feed($0) } }
        return events + parser.finish()
    }

    @Test func lineEndingsCommentsMultilineDataAndEventNames() {
        let stream = ": hello\r\nevent: one\r\ndata: a\r\ndata:b\r\n\r\ndata: c\rdata:  d\r\revent: x\ndata\n\nid: 7\ndata: e\n\n: trailing"
        let events = parse([Array(stream.utf8)])
        #expect(events == [
            SSEEvent(event: "one", data: "a\nb"),
            SSEEvent(event: nil, data: "c\n d"),
            SSEEvent(event: "x", data: ""),
            SSEEvent(event: nil, data: "e", id: "7"),
        ])
    }

    @Test func everySplitOfAnSSEStreamGivesTheSameEvents() {
        let stream = Array("\u{FEFF}event: é\r\ndata: 😀 ü\r\n\r\ndata: x\r\rdata: {\"k\":\"ß\"}\n\n".utf8)
        let whole = parse([stream])
        #expect(whole.count == 3)
        #expect(whole.first == SSEEvent(event: "é", data: "😀 ü"))
        for cut in 1..<stream.count {
            #expect(parse([Array(stream[..<cut]), Array(stream[cut...])]) == whole, "split at byte \(cut)")
        }
        #expect(parse(stream.map { [$0] }) == whole)
    }

    @Test func openAIStreamDecodesAtEverySplit() throws {
        let bytes = Array(ProviderFixtures.openAIStream.utf8)
        let codec = OpenAIChatCodec(name: "openai", baseURL: "http://x/v1", flavor: .openai)
        #expect(try feed(codec.makeDecoder(), [bytes]) == ProviderFixtures.openAITurn)
        for cut in 1..<bytes.count {
            let turn = try feed(codec.makeDecoder(), [Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(turn == ProviderFixtures.openAITurn, "split at byte \(cut)")
        }
        #expect(try feed(codec.makeDecoder(), bytes.map { [$0] }) == ProviderFixtures.openAITurn)
    }

    @Test func anthropicStreamDecodesAtEverySplit() throws {
        let bytes = Array(ProviderFixtures.anthropicStream.utf8)
        let codec = AnthropicMessagesCodec(baseURL: "http://x")
        #expect(try feed(codec.makeDecoder(), [bytes]) == ProviderFixtures.anthropicTurn)
        for cut in 1..<bytes.count {
            let turn = try feed(codec.makeDecoder(), [Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(turn == ProviderFixtures.anthropicTurn, "split at byte \(cut)")
        }
        #expect(try feed(codec.makeDecoder(), bytes.map { [$0] }) == ProviderFixtures.anthropicTurn)
    }

    @Test func malformedChunksFailAsMalformed() {
        let openAI = OpenAIChatCodec(name: "openai", baseURL: "http://x/v1", flavor: .openai)
        for stream in ["data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}\n\n", "data: [1,2]\n\n", "data: {\"id\":\"x\"}\n\n"] {
            do throws(AttemptError) {
                _ = try feed(openAI.makeDecoder(), [Array(stream.utf8)])
                Issue.record("malformed stream accepted: \(stream)")
            } catch {
                #expect(error.error.kind == .malformed)
                #expect(!error.retryable)
            }
        }
        let anthropic = AnthropicMessagesCodec(baseURL: "http://x")
        let badDelta = "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n"
        do throws(AttemptError) {
            _ = try feed(anthropic.makeDecoder(), [Array(badDelta.utf8)])
            Issue.record("a delta for an unknown block was accepted")
        } catch {
            #expect(error.error.kind == .malformed)
        }
    }

    @Test func streamsWithoutTheirEndAreIncomplete() {
        let openAI = Array(ProviderFixtures.openAIStream.utf8)
        let cutOpenAI = Array(openAI[..<(openAI.count / 2)])
        do throws(AttemptError) {
            _ = try feed(OpenAIChatCodec(name: "openai", baseURL: "http://x/v1", flavor: .openai).makeDecoder(), [cutOpenAI])
            Issue.record("half a stream was accepted")
        } catch {
            #expect(error.error.kind == .network)
            #expect(error.retryable)
        }
        let anthropic = Array(ProviderFixtures.anthropicStream.utf8)
        do throws(AttemptError) {
            _ = try feed(AnthropicMessagesCodec(baseURL: "http://x").makeDecoder(), [Array(anthropic[..<(anthropic.count - 60)])])
            Issue.record("a stream without message_stop was accepted")
        } catch {
            #expect(error.error.kind == .network)
        }
    }

    @Test func anthropicErrorEventsFailTheAttempt() {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
        do throws(AttemptError) {
            _ = try feed(AnthropicMessagesCodec(baseURL: "http://x").makeDecoder(), [Array(stream.utf8)])
            Issue.record("an error event was accepted")
        } catch {
            #expect(error.error.kind == .http(status: 529))
            #expect(error.retryable)
            #expect(error.error.message.contains("Overloaded"))
        }
    }

    @Test func jsonParserIsStrictAndDecodesEscapes() {
        #expect(jsonParse(#" {"a": [1, -2.5e3, true, false, null], "s": "\u00e9\ud83d\ude00\n\/\"", "o": {}} "#)
            == .object(["a": .array([.number(1), .number(-2500), .bool(true), .bool(false), .null]), "s": .string("é😀\n/\""), "o": .object([:])]))
        #expect(jsonParse("\"ü\"") == .string("ü"))
        for bad in ["", "{", #"{"a":}"#, "[1,]", "01", "1.", "tru", #""a\u12""#, #"{"a":1} x"#, "\"tab\there\"", "{'a':1}", "[1 2]", "-", "1e", #""\x""#] {
            #expect(jsonParse(bad) == nil, "accepted \(bad)")
        }
        #expect(jsonParse(String(repeating: "[", count: 10_000)) == nil)
    }

    @Test func anthropicStopReasons() throws {
        for (wire, expected) in [("end_turn", StopReason.endTurn), ("max_tokens", .maxTokens), ("refusal", .other("refusal"))] {
            let stream = """
                data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":5,"output_tokens":0}}}

                data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":"hi"}}

                data: {"type":"message_delta","delta":{"stop_reason":"\(wire)"},"usage":{"output_tokens":3}}

                data: {"type":"message_stop"}


                """
            let turn = try feed(AnthropicMessagesCodec(baseURL: "http://x").makeDecoder(), [Array(stream.utf8)])
            #expect(turn.stopReason == expected)
            #expect(turn.text == "hi")
            #expect(turn.usage == Usage(inputTokens: 5, outputTokens: 3))
        }
    }
}

private func jsonParse(_ text: String) -> JSONValue? { try? JSONValue.parse(text, maxBytes: .max) }
