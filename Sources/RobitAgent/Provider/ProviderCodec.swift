import Foundation

/// A model turn as decoded from one provider's answer.
struct DecodedTurn: Sendable, Equatable {
    var text = ""
    var toolCalls: [ToolCall] = []
    var stopReason: StopReason?
    var usage = Usage()
    /// The answer's own id (`chatcmpl-…`, `msg_…`), used when no request-id header came.
    var responseID: String?
}

/// A streaming decoder of one provider's wire format: it gets the body bytes as they arrive and
/// throws as soon as they cannot be what the protocol says.
protocol TurnStreamDecoder: HTTPStreamConsumer {
    /// The end of a successful transfer: the assembled turn, or `.malformed`/`.network` when the
    /// stream stopped before the protocol's end (a cut connection that still looked like a clean close).
    mutating func finish() throws(AttemptError) -> DecodedTurn
}

/// One provider's wire format: how a `ModelRequest` is written and how answers and errors are read.
protocol ProviderCodec: Sendable {
    associatedtype Decoder: TurnStreamDecoder
    /// Short name for messages (`openai`, `anthropic`, …).
    var name: String { get }
    /// The URL of the call, from the configured base URL.
    var endpoint: String { get }
    /// Header lines of the call, the key included.
    func headers(apiKey: String?) -> [String]
    /// The wire messages (the `messages` array's elements) of `messages[start...]`, each with the index
    /// just past the last message it holds. `start` is 0 or the end of a group of an earlier call over
    /// the same messages, and whether a group ends after a message depends only on that message and
    /// the next one, so groups encoded once can be reused (`EncodedConversation`).
    func wireMessages(_ messages: [Message], from start: Int) -> [(end: Int, json: WireJSON)]
    /// The body around the conversation (the wire messages, comma-separated): the JSON before them and
    /// the JSON after them. `emptyConversation`: there are no wire messages at all.
    func envelope(_ request: ModelRequest, emptyConversation: Bool) -> (head: [UInt8], tail: [UInt8])
    func makeDecoder() -> Decoder
}

extension ProviderCodec {
    /// The exact JSON body, encoded from scratch.
    func encode(_ request: ModelRequest) -> String {
        var conversation: [UInt8] = []
        for group in wireMessages(request.messages, from: 0) {
            if !conversation.isEmpty { conversation.append(UInt8(ascii: ",")) }
            group.json.write(into: &conversation)
        }
        let (head, tail) = envelope(request, emptyConversation: conversation.isEmpty)
        return String(decoding: head + conversation + tail, as: UTF8.self)
    }
}

/// Reading provider JSON: every chunk is decoded into a `JSONValue`.
enum WireDecoding {
    static func object(_ text: String, what: String) throws(AttemptError) -> [String: JSONValue] {
        guard let value = (try? JSONValue.parse(text, maxBytes: .max)) else {
            throw AttemptError(.malformed, "\(what) is not valid JSON: \(ProviderErrorText.excerpt(text))", retryable: false)
        }
        guard let members = value.objectValue else {
            throw AttemptError(.malformed, "\(what) is not a JSON object: \(ProviderErrorText.excerpt(text))", retryable: false)
        }
        return members
    }

    static func int(_ value: JSONValue?) -> Int? {
        // A hostile or broken server's 1e300 is no count (and Int(1e300) traps).
        if case .number(let number)? = value, number.isFinite, abs(number) < 9_007_199_254_740_992 { return Int(number) }
        return nil
    }
}

/// Text about failed calls: the provider's own error message, trimmed, with the key removed.
enum ProviderErrorText {
    /// At most `limit` characters of `text`, on one line.
    static func excerpt(_ text: String, limit: Int = 300) -> String {
        let flat = text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
            .trimmingCharacters(in: .whitespaces)
        return flat.count > limit ? String(flat.prefix(limit)) + "…" : flat
    }

    /// The message of an error body: `{"error":{"message":…}}` (OpenAI, Anthropic), `{"error":"…"}`
    /// (Ollama), `{"message":…}`, or the text itself.
    static func message(fromBody body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(64 << 10), as: UTF8.self)
        if let value = (try? JSONValue.parse(text, maxBytes: .max)) {
            if let message = value["error"]?["message"]?.stringValue { return excerpt(message) }
            if let message = value["error"]?.stringValue { return excerpt(message) }
            if let message = value["message"]?.stringValue { return excerpt(message) }
        }
        return excerpt(text)
    }
}
