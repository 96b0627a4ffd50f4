import Foundation

/// Anthropic Messages (`POST {base}/v1/messages`, streamed), `anthropic-version: 2023-06-01`.
struct AnthropicMessagesCodec: ProviderCodec {
    static let apiVersion = "2023-06-01"
    /// Anthropic requires `max_tokens`; used when the task sets none.
    static let defaultMaxTokens = 8192

    var name = "anthropic"
    /// Base URL without the version segment (`https://api.anthropic.com`), as Anthropic's SDKs take it.
    var baseURL: String

    var endpoint: String { baseURL.trimmingSuffix("/") + "/v1/messages" }

    func headers(apiKey: String?) -> [String] {
        var lines = ["Content-Type: application/json", "Accept: text/event-stream", "anthropic-version: \(Self.apiVersion)"]
        if let apiKey, !apiKey.isEmpty { lines.append("x-api-key: \(apiKey)") }
        return lines
    }

    /// Messages alternate user/assistant: consecutive messages of one role are blocks of one wire
    /// message (tool results, and a user message right after them, are one user message).
    func wireMessages(_ messages: [Message], from start: Int) -> [(end: Int, json: WireJSON)] {
        var groups: [(end: Int, role: String, blocks: [WireJSON])] = []
        for index in start..<messages.count {
            let role: String
            var blocks: [WireJSON] = []
            switch messages[index] {
            case .user(let text):
                role = "user"
                blocks.append(.object([("type", .string("text")), ("text", .string(text))]))
            case .assistant(let text, let calls):
                role = "assistant"
                if !text.isEmpty || calls.isEmpty {
                    blocks.append(.object([("type", .string("text")), ("text", .string(text))]))
                }
                for call in calls {
                    blocks.append(.object([
                        ("type", .string("tool_use")), ("id", .string(call.id)), ("name", .string(call.name)),
                        ("input", Self.input(call.arguments)),
                    ]))
                }
            case .tool(let callID, _, let content, let isError):
                role = "user"
                var block: [(String, WireJSON)] = [("type", .string("tool_result")), ("tool_use_id", .string(callID)), ("content", .string(content))]
                if isError { block.append(("is_error", .bool(true))) }
                blocks.append(.object(block))
            }
            if let last = groups.last, last.role == role {
                groups[groups.count - 1].blocks.append(contentsOf: blocks)
                groups[groups.count - 1].end = index + 1
            } else {
                groups.append((index + 1, role, blocks))
            }
        }
        return groups.map { ($0.end, .object([("role", .string($0.role)), ("content", .array($0.blocks))])) }
    }

    func envelope(_ request: ModelRequest, emptyConversation: Bool) -> (head: [UInt8], tail: [UInt8]) {
        var head: [UInt8] = [], tail: [UInt8] = []
        var body = WireObjectWriter()
        body.member("model", .string(request.model), into: &head)
        body.member("max_tokens", .int(request.maxOutputTokens ?? Self.defaultMaxTokens), into: &head)
        if let system = request.system, !system.isEmpty { body.member("system", .string(system), into: &head) }
        body.key("messages", into: &head)
        head.append(UInt8(ascii: "["))
        tail.append(UInt8(ascii: "]"))
        if !request.tools.isEmpty {
            body.member("tools", .array(request.tools.map { tool in
                .object([("name", .string(tool.name)), ("description", .string(tool.description)), ("input_schema", WireJSON(tool.parameters))])
            }), into: &tail)
        }
        body.member("stream", .bool(true), into: &tail)
        body.close(into: &tail)
        return (head, tail)
    }

    /// A tool call's arguments as `input`: the model's JSON text verbatim when it is an object;
    /// `{}` when it is not (the call was already answered with an error).
    static func input(_ arguments: String) -> WireJSON {
        if (try? JSONValue.parse(arguments, maxBytes: .max))?.objectValue != nil {
            return .raw(String(arguments.trimmingJSONWhitespace))
        }
        return .object([])
    }

    func makeDecoder() -> AnthropicMessagesStreamDecoder { AnthropicMessagesStreamDecoder(provider: name) }
}

/// Decodes a Messages SSE stream: `message_start`, then per content block `content_block_start`,
/// `content_block_delta` (`text_delta`, `input_json_delta`), `content_block_stop`, then
/// `message_delta` (stop_reason, output usage) and `message_stop`. `ping` is ignored and `error`
/// fails the attempt (overloaded and api errors are retried).
struct AnthropicMessagesStreamDecoder: TurnStreamDecoder {
    let provider: String
    private var parser = SSEParser()
    private var turn = DecodedTurn()
    private enum Block {
        case text
        case toolUse(id: String, name: String, json: String, initialInput: String)
        case other
    }
    private var blocks: [Int: Block] = [:]
    private var order: [Int] = []
    private var stopReason: String?
    private var started = false
    private var stopped = false

    init(provider: String) {
        self.provider = provider
    }

    mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(AttemptError) {
        for event in parser.feed(bytes) { try handle(event) }
    }

    mutating func finish() throws(AttemptError) -> DecodedTurn {
        for event in parser.finish() { try handle(event) }
        guard stopped else {
            throw AttemptError(.network, "\(provider): the answer stream ended before message_stop", retryable: true)
        }
        for index in order {
            if case .toolUse(let id, let name, let json, let initialInput)? = blocks[index] {
                let arguments = json.isEmpty ? (initialInput.isEmpty ? "{}" : initialInput) : json
                turn.toolCalls.append(ToolCall(id: id, name: name, arguments: arguments))
            }
        }
        switch stopReason {
        case "end_turn"?, "stop_sequence"?: turn.stopReason = .endTurn
        case "tool_use"?: turn.stopReason = .toolUse
        case "max_tokens"?: turn.stopReason = .maxTokens
        case let other?: turn.stopReason = .other(other)
        case nil: turn.stopReason = turn.toolCalls.isEmpty ? .endTurn : .toolUse
        }
        return turn
    }

    private mutating func handle(_ event: SSEEvent) throws(AttemptError) {
        if stopped { return }
        let payload = try WireDecoding.object(event.data, what: "\(provider) stream event")
        let type = payload["type"]?.stringValue ?? event.event ?? ""
        switch type {
        case "message_start":
            started = true
            let message = payload["message"]
            if let id = message?["id"]?.stringValue { turn.responseID = id }
            if let usage = message?["usage"] { addUsage(usage) }
        case "content_block_start":
            try requireStarted(type)
            guard let index = WireDecoding.int(payload["index"]), let block = payload["content_block"] else {
                throw malformed("content_block_start without index or content_block", event)
            }
            if blocks[index] == nil { order.append(index) }
            switch block["type"]?.stringValue {
            case "text":
                blocks[index] = .text
                turn.text += block["text"]?.stringValue ?? ""
            case "tool_use":
                guard let id = block["id"]?.stringValue, let name = block["name"]?.stringValue else {
                    throw malformed("tool_use block without id or name", event)
                }
                var initial = ""
                if let input = block["input"], input.objectValue.map({ !$0.isEmpty }) ?? false {
                    initial = WireJSON(input).text
                }
                blocks[index] = .toolUse(id: id, name: name, json: "", initialInput: initial)
            default:
                blocks[index] = .other  // thinking, redacted_thinking, server tools: not part of the turn
            }
        case "content_block_delta":
            try requireStarted(type)
            guard let index = WireDecoding.int(payload["index"]), let delta = payload["delta"], let block = blocks[index] else {
                throw malformed("content_block_delta for a block that was not started", event)
            }
            switch (delta["type"]?.stringValue ?? "", block) {
            case ("text_delta", .text):
                turn.text += delta["text"]?.stringValue ?? ""
            case ("input_json_delta", .toolUse(let id, let name, let json, let initial)):
                blocks[index] = .toolUse(id: id, name: name, json: json + (delta["partial_json"]?.stringValue ?? ""), initialInput: initial)
            case ("text_delta", _), ("input_json_delta", _):
                throw malformed("delta type does not match its block", event)
            default:
                break
            }
        case "content_block_stop", "ping":
            break
        case "message_delta":
            try requireStarted(type)
            if let reason = payload["delta"]?["stop_reason"]?.stringValue { stopReason = reason }
            if let usage = payload["usage"] { addUsage(usage) }
        case "message_stop":
            try requireStarted(type)
            stopped = true
        case "error":
            let errorType = payload["error"]?["type"]?.stringValue ?? "error"
            let message = payload["error"]?["message"]?.stringValue ?? event.data
            let retryable = ["overloaded_error", "api_error", "rate_limit_error", "timeout_error"].contains(errorType)
            let status = errorType == "overloaded_error" ? 529 : errorType == "rate_limit_error" ? 429 : 500
            throw AttemptError(.http(status: status), "\(provider) reported \(errorType) mid-stream: \(ProviderErrorText.excerpt(message))", retryable: retryable)
        default:
            break  // new event types are ignored, as Anthropic's versioning policy asks
        }
    }

    private mutating func addUsage(_ usage: JSONValue) {
        let input = (WireDecoding.int(usage["input_tokens"]) ?? 0) + (WireDecoding.int(usage["cache_creation_input_tokens"]) ?? 0)
            + (WireDecoding.int(usage["cache_read_input_tokens"]) ?? 0)
        if input > 0 { turn.usage.inputTokens = input }
        if let output = WireDecoding.int(usage["output_tokens"]) { turn.usage.outputTokens = output }
    }

    private func requireStarted(_ type: String) throws(AttemptError) {
        if !started { throw AttemptError(.malformed, "\(provider) sent \(type) before message_start", retryable: false) }
    }

    private func malformed(_ what: String, _ event: SSEEvent) -> AttemptError {
        AttemptError(.malformed, "\(provider) stream: \(what): \(ProviderErrorText.excerpt(event.data))", retryable: false)
    }
}
