import Foundation

/// OpenAI Chat Completions (`POST {base}/chat/completions`, streamed), also spoken by Ollama's and
/// most local servers' OpenAI-compatible endpoints.
struct OpenAIChatCodec: ProviderCodec {
    enum Flavor: Sendable {
        /// api.openai.com: `max_completion_tokens`.
        case openai
        /// Ollama, vLLM, llama.cpp, LM Studio…: the older `max_tokens`, understood by all of them.
        case compatible
    }

    var name: String
    /// Base URL up to and including the version segment (`https://api.openai.com/v1`).
    var baseURL: String
    var flavor: Flavor

    var endpoint: String { baseURL.trimmingSuffix("/") + "/chat/completions" }

    func headers(apiKey: String?) -> [String] {
        var lines = ["Content-Type: application/json", "Accept: text/event-stream"]
        if let apiKey, !apiKey.isEmpty { lines.append("Authorization: Bearer \(apiKey)") }
        return lines
    }

    /// Whether the answer is asked for as an event stream (robit's calls) or as one JSON object
    /// (only the request bodies a replay reconstructs).
    var stream = true

    /// One wire message per message; the system prompt goes first, in `envelope`.
    func wireMessages(_ messages: [Message], from start: Int) -> [(end: Int, json: WireJSON)] {
        var groups: [(end: Int, json: WireJSON)] = []
        groups.reserveCapacity(messages.count - start)
        for index in start..<messages.count {
            let json: WireJSON
            switch messages[index] {
            case .user(let text):
                json = .object([("role", .string("user")), ("content", .string(text))])
            case .assistant(let text, let calls):
                var members: [(String, WireJSON)] = [("role", .string("assistant")), ("content", text.isEmpty && !calls.isEmpty ? .null : .string(text))]
                if !calls.isEmpty {
                    members.append(("tool_calls", .array(calls.map { call in
                        .object([
                            ("id", .string(call.id)),
                            ("type", .string("function")),
                            ("function", .object([("name", .string(call.name)), ("arguments", .string(call.arguments))])),
                        ])
                    })))
                }
                json = .object(members)
            case .tool(let callID, _, let content, _):
                json = .object([("role", .string("tool")), ("tool_call_id", .string(callID)), ("content", .string(content))])
            }
            groups.append((index + 1, json))
        }
        return groups
    }

    func envelope(_ request: ModelRequest, emptyConversation: Bool) -> (head: [UInt8], tail: [UInt8]) {
        var head: [UInt8] = [], tail: [UInt8] = []
        var body = WireObjectWriter()
        body.member("model", .string(request.model), into: &head)
        body.key("messages", into: &head)
        head.append(UInt8(ascii: "["))
        if let system = request.system, !system.isEmpty {
            WireJSON.object([("role", .string("system")), ("content", .string(system))]).write(into: &head)
            if !emptyConversation { head.append(UInt8(ascii: ",")) }
        }
        tail.append(UInt8(ascii: "]"))
        if !request.tools.isEmpty {
            body.member("tools", .array(request.tools.map { tool in
                .object([
                    ("type", .string("function")),
                    ("function", .object([
                        ("name", .string(tool.name)),
                        ("description", .string(tool.description)),
                        ("parameters", WireJSON(tool.parameters)),
                    ])),
                ])
            }), into: &tail)
        }
        if let limit = request.maxOutputTokens {
            body.member(flavor == .openai ? "max_completion_tokens" : "max_tokens", .int(limit), into: &tail)
        }
        body.member("stream", .bool(stream), into: &tail)
        if stream { body.member("stream_options", .object([("include_usage", .bool(true))]), into: &tail) }
        body.close(into: &tail)
        return (head, tail)
    }

    func makeDecoder() -> OpenAIChatStreamDecoder { OpenAIChatStreamDecoder(provider: name) }
}

/// Decodes a Chat Completions SSE stream: `data: {chunk}` events, then `data: [DONE]`.
///
/// Tool calls arrive as deltas keyed by `index`: the first carries `id` and `function.name`, later
/// ones pieces of `function.arguments`, which are concatenated exactly as received.
struct OpenAIChatStreamDecoder: TurnStreamDecoder {
    let provider: String
    private var parser = SSEParser()
    private var turn = DecodedTurn()
    private var calls: [Int: ToolCall] = [:]
    private var finishReason: String?
    private var done = false

    init(provider: String) {
        self.provider = provider
    }

    mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(AttemptError) {
        for event in parser.feed(bytes) { try handle(event) }
    }

    mutating func finish() throws(AttemptError) -> DecodedTurn {
        for event in parser.finish() { try handle(event) }
        guard done || finishReason != nil else {
            throw AttemptError(.network, "\(provider): the answer stream ended before it was complete (no finish_reason, no [DONE])", retryable: true)
        }
        turn.toolCalls = calls.keys.sorted().compactMap { index in
            calls[index].map { call in
                var call = call
                if call.id.isEmpty { call.id = "call_\(index)" }
                return call
            }
        }
        switch finishReason {
        case "stop"?: turn.stopReason = turn.toolCalls.isEmpty ? .endTurn : .toolUse
        case "tool_calls"?, "function_call"?: turn.stopReason = .toolUse
        case "length"?: turn.stopReason = .maxTokens
        case let other?: turn.stopReason = .other(other)
        case nil: turn.stopReason = turn.toolCalls.isEmpty ? .endTurn : .toolUse
        }
        return turn
    }

    private mutating func handle(_ event: SSEEvent) throws(AttemptError) {
        if done { return }
        let data = String(event.data.trimmingJSONWhitespace)
        if data == "[DONE]" {
            done = true
            return
        }
        if data.isEmpty { return }
        let chunk = try WireDecoding.object(data, what: "\(provider) stream chunk")
        if let error = chunk["error"] {
            let message = error["message"]?.stringValue ?? error.stringValue ?? data
            throw AttemptError(.http(status: 200), "\(provider) reported an error mid-stream: \(ProviderErrorText.excerpt(message))", retryable: true)
        }
        if turn.responseID == nil, let id = chunk["id"]?.stringValue, !id.isEmpty { turn.responseID = id }
        if let usage = chunk["usage"]?.objectValue {
            turn.usage = Usage(inputTokens: WireDecoding.int(usage["prompt_tokens"]) ?? turn.usage.inputTokens,
                               outputTokens: WireDecoding.int(usage["completion_tokens"]) ?? turn.usage.outputTokens)
        }
        guard let choices = chunk["choices"]?.arrayValue else {
            if chunk["usage"] == nil {
                throw AttemptError(.malformed, "\(provider) stream chunk has neither choices nor usage: \(ProviderErrorText.excerpt(data))", retryable: false)
            }
            return
        }
        for choice in choices where (WireDecoding.int(choice["index"]) ?? 0) == 0 {
            if let reason = choice["finish_reason"]?.stringValue { finishReason = reason }
            guard let delta = choice["delta"] else { continue }
            if let text = delta["content"]?.stringValue { turn.text += text }
            for callDelta in delta["tool_calls"]?.arrayValue ?? [] {
                let index = WireDecoding.int(callDelta["index"]) ?? calls.count
                var call = calls[index] ?? ToolCall(id: "", name: "", arguments: "")
                if let id = callDelta["id"]?.stringValue, !id.isEmpty, call.id.isEmpty { call.id = id }
                if let name = callDelta["function"]?["name"]?.stringValue, !name.isEmpty, name != call.name {
                    call.name += name
                }
                if let arguments = callDelta["function"]?["arguments"]?.stringValue { call.arguments += arguments }
                calls[index] = call
            }
        }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}
