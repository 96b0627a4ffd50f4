import Foundation

/// Model turns written in the providers' real streaming wire formats, for the fake provider server.
/// Tool-call arguments are cut into many small deltas, and in OpenAI streams the calls of one turn
/// are interleaved by index, as real servers do.
enum ProviderWire {
    struct Call: Sendable {
        var id: String
        var name: String
        var arguments: String

        init(_ id: String, _ name: String, _ arguments: String) {
            self.id = id
            self.name = name
            self.arguments = arguments
        }

        /// Arguments built from a JSON object, so that escaping is right.
        init(_ id: String, _ name: String, json: [String: Any]) {
            self.init(id, name, ProviderWire.json(json))
        }
    }

    static func json(_ object: Any) -> String {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// `text` in pieces of `size` characters (whole characters: every delta is a JSON string).
    static func pieces(_ text: String, size: Int) -> [String] {
        var out: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if current.count == size { out.append(current); current = "" }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// An OpenAI Chat Completions stream (`stream: true` with `include_usage`).
    static func openAI(text: String = "", calls: [Call] = [], input: Int, output: Int, piece: Int = 3, id: String = "chatcmpl-fake") -> String {
        var events: [Any] = []
        func chunk(_ delta: [String: Any], finish: String? = nil) {
            events.append(["id": id, "object": "chat.completion.chunk",
                           "choices": [["index": 0, "delta": delta, "finish_reason": finish as Any? ?? NSNull()]]])
        }
        chunk(["role": "assistant", "content": ""])
        for part in pieces(text, size: max(1, piece)) { chunk(["content": part]) }
        let argumentPieces = calls.map { pieces($0.arguments, size: piece) }
        for (index, call) in calls.enumerated() {
            chunk(["tool_calls": [["index": index, "id": call.id, "type": "function", "function": ["name": call.name, "arguments": ""]]]])
        }
        let rounds = argumentPieces.map(\.count).max() ?? 0
        for round in 0..<rounds {
            for (index, parts) in argumentPieces.enumerated() where round < parts.count {
                chunk(["tool_calls": [["index": index, "function": ["arguments": parts[round]]]]])
            }
        }
        chunk([:], finish: calls.isEmpty ? "stop" : "tool_calls")
        events.append(["id": id, "object": "chat.completion.chunk", "choices": [Any](),
                       "usage": ["prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output]])
        return events.map { "data: " + json($0) + "\n\n" }.joined() + "data: [DONE]\n\n"
    }

    /// An Anthropic Messages stream: a text block, then one tool_use block per call with its input
    /// as `input_json_delta` pieces.
    static func anthropic(text: String = "", calls: [Call] = [], input: Int, output: Int, piece: Int = 3, id: String = "msg_fake") -> String {
        var out = ""
        func event(_ name: String, _ data: [String: Any]) { out += "event: \(name)\ndata: \(json(data))\n\n" }
        event("message_start", ["type": "message_start", "message": [
            "id": id, "type": "message", "role": "assistant", "content": [Any](), "model": "claude-sonnet-4",
            "stop_reason": NSNull(), "usage": ["input_tokens": input, "output_tokens": 1]]])
        var index = 0
        if !text.isEmpty {
            event("content_block_start", ["type": "content_block_start", "index": index, "content_block": ["type": "text", "text": ""]])
            event("ping", ["type": "ping"])
            for part in pieces(text, size: max(1, piece)) {
                event("content_block_delta", ["type": "content_block_delta", "index": index, "delta": ["type": "text_delta", "text": part]])
            }
            event("content_block_stop", ["type": "content_block_stop", "index": index])
            index += 1
        }
        for call in calls {
            event("content_block_start", ["type": "content_block_start", "index": index,
                                          "content_block": ["type": "tool_use", "id": call.id, "name": call.name, "input": [String: Any]()]])
            for part in [""] + pieces(call.arguments, size: piece) {
                event("content_block_delta", ["type": "content_block_delta", "index": index,
                                              "delta": ["type": "input_json_delta", "partial_json": part]])
            }
            event("content_block_stop", ["type": "content_block_stop", "index": index])
            index += 1
        }
        event("message_delta", ["type": "message_delta", "delta": ["stop_reason": calls.isEmpty ? "end_turn" : "tool_use", "stop_sequence": NSNull()],
                                "usage": ["output_tokens": output]])
        event("message_stop", ["type": "message_stop"])
        return out
    }
}
