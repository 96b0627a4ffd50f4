import Foundation
@testable import RobitAgent

/// Recorded-style streams of each protocol, and the turn each must decode to.
enum ProviderFixtures {
    static let secret = "sk-test-SECRET-0123456789abcdef"

    static let request = ModelRequest(
        model: "gpt-4.1-mini", system: "You are terse.",
        messages: [
            .user("List the files, then count them."),
            .assistant(text: "Looking.", toolCalls: [ToolCall(id: "call_A", name: "shell", arguments: #"{"command":"ls"}"#)]),
            .tool(callID: "call_A", name: "shell", content: "a\nb", isError: false),
            .user("Go on."),
        ],
        tools: [ToolSpec(name: "shell", description: "Run a command", parameters: .object([
            "type": .string("object"),
            "properties": .object(["command": .object(["type": .string("string")])]),
            "required": .array([.string("command")]),
        ]))],
        maxOutputTokens: 256)

    /// OpenAI: text with multi-byte characters, two tool calls whose arguments arrive in many pieces
    /// (interleaved by index), a finish_reason, a usage chunk and [DONE].
    static let openAIStream = """
        data: {"id":"chatcmpl-42","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

        data: {"id":"chatcmpl-42","choices":[{"index":0,"delta":{"content":"héllo 😀 "},"finish_reason":null}]}

        : keep-alive comment

        data: {"id":"chatcmpl-42","choices":[{"index":0,"delta":{"content":"wörld"},"finish_reason":null}]}

        data: {"id":"chatcmpl-42","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":""}}]},"finish_reason":null}]}

        data: {"id":"chatcmpl-42","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"comm"}}]},"finish_reason":null}]}

        data: {"id":"chatcmpl-42","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"read_file","arguments":"{\\"pa"}}]},"finish_reason":null}]}

        data: {"id":"chatcmpl-42","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"and\\": \\"ls -la"}}]},"finish_reason":null}]}

        data: {"id":"chatcmpl-42","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"}"}}]},"finish_reason":null}]}

        data: {"id":"chatcmpl-42","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"th\\":\\"ä.txt\\"}"}}]},"finish_reason":null}]}

        data: {"id":"chatcmpl-42","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

        data: {"id":"chatcmpl-42","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":33,"total_tokens":153}}

        data: [DONE]


        """

    static let openAITurn = DecodedTurn(
        text: "héllo 😀 wörld",
        toolCalls: [
            ToolCall(id: "call_1", name: "shell", arguments: #"{"command": "ls -la"}"#),
            ToolCall(id: "call_2", name: "read_file", arguments: #"{"path":"ä.txt"}"#),
        ],
        stopReason: .toolUse, usage: Usage(inputTokens: 120, outputTokens: 33), responseID: "chatcmpl-42")

    /// Anthropic: text block, two tool_use blocks with input_json_delta pieces, ping, CRLF line ends.
    static let anthropicStream = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4","stop_reason":null,"usage":{"input_tokens":200,"output_tokens":1}}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type": "ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Ça va "}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"🚀"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"shell","input":{}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"command\\": "}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\\"ls\\"}"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":1}

        event: content_block_start
        data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"noargs","input":{}}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":2}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}

        event: message_stop
        data: {"type":"message_stop"}


        """.replacingOccurrences(of: "\n", with: "\r\n")

    static let anthropicTurn = DecodedTurn(
        text: "Ça va 🚀",
        toolCalls: [
            ToolCall(id: "toolu_1", name: "shell", arguments: #"{"command": "ls"}"#),
            ToolCall(id: "toolu_2", name: "noargs", arguments: "{}"),
        ],
        stopReason: .toolUse, usage: Usage(inputTokens: 200, outputTokens: 42), responseID: "msg_01")

    static let openAIText = """
        data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{"content":"fine"},"finish_reason":null}]}

        data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

        data: [DONE]


        """
}
