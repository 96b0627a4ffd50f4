import Foundation
import RobitSync

/// Answers model calls from a fixed list of turns, in order, without any network: offline examples,
/// demos and tests (`provider: replay`). The turns come from a JSONL script (`ReplayScript`) or any
/// other source, such as a recorded audit log.
final class ReplayProvider: ModelProvider {
    let turns: [ModelResponse]
    /// Where the turns came from, for messages.
    let source: String
    private let next = Locked(0)
    /// The request bodies robit would have sent, reconstructed for the audit log (OpenAI's format).
    private let codec = OpenAIChatCodec(name: "replay", baseURL: "", flavor: .compatible, stream: false)
    private let encoding = EncodedConversation()

    init(turns: [ModelResponse], source: String) {
        self.turns = turns
        self.source = source
    }

    func complete(_ request: ModelRequest) async throws(ProviderError) -> ModelResponse {
        let started = ContinuousClock.now
        let index: Int? = next.withLock { next in
            guard next < turns.count else { return nil }
            defer { next += 1 }
            return next
        }
        guard let index else {
            throw ProviderError(.configuration, "the replay script \(source) has only \(turns.count) model turns and the agent asked for turn \(turns.count + 1): "
                + "add turns to the script (one JSON object per line) or lower the task's turn budget", attempts: 0)
        }
        var response = turns[index]
        if response.requestBody.isEmpty {
            let body = encoding.body(request, codec: codec)
            response.requestBody = body.text
            response.requestSHA256 = body.sha256
        }
        response.attempts = 1
        response.latency = ContinuousClock.now - started
        return response
    }
}

/// A JSONL script of model turns, one JSON object per line:
///
///     {"text":"Let me look.","tool_calls":[{"name":"shell","arguments":{"command":"ls"}}],"usage":{"input_tokens":10,"output_tokens":5}}
///     {"text":"Done: 3 files."}
///
/// `arguments` is an object or a string holding exact JSON text; `id` is optional (default
/// `replay-<turn>-<call>`, 1-based); `stop_reason` is optional (`end_turn`, `tool_use`,
/// `max_tokens`; default `tool_use` when there are tool calls, else `end_turn`). Blank lines and
/// lines starting with `#` are skipped.
enum ReplayScript {
    static func load(path: String) throws(ProviderError) -> [ModelResponse] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ProviderError(.configuration, "cannot read the replay script \(path): \(error.localizedDescription) (model.script must name a JSONL file of model turns)", attempts: 0)
        }
        // Invalid UTF-8 is refused, not repaired: a replay must answer exactly what was recorded.
        guard let text = String(validating: data, as: UTF8.self) else {
            let valid = String(decoding: data, as: UTF8.self).unicodeScalars.prefix { $0 != "\u{FFFD}" }
            let line = valid.reduce(1) { $0 + ($1 == "\n" ? 1 : 0) }
            throw ProviderError(.configuration, "\(path):\(line): not valid UTF-8 (a replay script is UTF-8 text; re-save it as UTF-8)", attempts: 0)
        }
        return try parse(text, source: path)
    }

    static func parse(_ text: String, source: String) throws(ProviderError) -> [ModelResponse] {
        var turns: [ModelResponse] = []
        for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let lineNumber = offset + 1
            func fail(_ message: String) -> ProviderError {
                ProviderError(.configuration, "\(source):\(lineNumber): \(message)", attempts: 0)
            }
            let parsed: JSONValue
            do { parsed = try JSONValue.parse(line, maxBytes: .max) } catch {
                throw fail("not a JSON object: \(error.message) at byte \(error.offset + 1) (each line is one model turn, e.g. {\"text\":\"hello\"})")
            }
            guard let object = parsed.objectValue else {
                throw fail("not a JSON object (each line is one model turn, e.g. {\"text\":\"hello\"})")
            }
            let turnNumber = turns.count + 1
            var calls: [ToolCall] = []
            for (callIndex, item) in (object["tool_calls"]?.arrayValue ?? []).enumerated() {
                guard let name = item["name"]?.stringValue, !name.isEmpty else {
                    throw fail("tool_calls[\(callIndex)] has no name")
                }
                let arguments: String
                switch item["arguments"] {
                case .string(let text)?: arguments = text
                case .object(let members)?: arguments = WireJSON(.object(members)).text
                case nil, .null?: arguments = "{}"
                default: throw fail("tool_calls[\(callIndex)].arguments must be an object or a string of JSON")
                }
                let id = item["id"]?.stringValue ?? "replay-\(turnNumber)-\(callIndex + 1)"
                calls.append(ToolCall(id: id, name: name, arguments: arguments))
            }
            let stopReason: StopReason
            switch object["stop_reason"]?.stringValue {
            case "end_turn"?: stopReason = .endTurn
            case "tool_use"?: stopReason = .toolUse
            case "max_tokens"?: stopReason = .maxTokens
            case let other?: stopReason = .other(other)
            case nil: stopReason = calls.isEmpty ? .endTurn : .toolUse
            }
            let usage = Usage(inputTokens: WireDecoding.int(object["usage"]?["input_tokens"]) ?? 0,
                              outputTokens: WireDecoding.int(object["usage"]?["output_tokens"]) ?? 0)
            turns.append(ModelResponse(text: object["text"]?.stringValue ?? "", toolCalls: calls, stopReason: stopReason, usage: usage,
                                       requestID: "replay-\(turnNumber)", rawResponse: line))
        }
        return turns
    }
}
