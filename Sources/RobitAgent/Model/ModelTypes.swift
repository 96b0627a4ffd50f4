// The provider-neutral conversation types the loop speaks. Each provider translates them to and from
// its own wire format.

/// A tool the model may call: its name, what it does, and the JSON Schema of its arguments.
public struct ToolSpec: Sendable, Equatable {
    public var name: String
    public var description: String
    public var parameters: JSONValue

    public init(name: String, description: String, parameters: JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// One tool call of a model turn. `arguments` holds the exact JSON text the model sent (concatenated
/// deltas when streamed), never re-encoded: it is validated and audited as received.
public struct ToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

public enum Message: Sendable, Equatable {
    case user(String)
    case assistant(text: String, toolCalls: [ToolCall])
    /// The result of one tool call, answered in call order after the assistant turn that asked for it.
    case tool(callID: String, name: String, content: String, isError: Bool)
}

public struct ModelRequest: Sendable, Equatable {
    public var model: String
    public var system: String?
    public var messages: [Message]
    public var tools: [ToolSpec]
    public var maxOutputTokens: Int?

    public init(model: String, system: String? = nil, messages: [Message], tools: [ToolSpec] = [], maxOutputTokens: Int? = nil) {
        self.model = model
        self.system = system
        self.messages = messages
        self.tools = tools
        self.maxOutputTokens = maxOutputTokens
    }
}

public struct Usage: Sendable, Equatable {
    public var inputTokens: Int
    public var outputTokens: Int
    public var total: Int { inputTokens + outputTokens }

    public init(inputTokens: Int = 0, outputTokens: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

public enum StopReason: Sendable, Equatable {
    /// The model is done: its text is the final answer.
    case endTurn
    /// The model asked for tool calls.
    case toolUse
    /// The output was cut at `max_output_tokens`.
    case maxTokens
    case other(String)
}

public struct ModelResponse: Sendable, Equatable {
    public var text: String
    public var toolCalls: [ToolCall]
    public var stopReason: StopReason
    public var usage: Usage
    /// The provider's request id (`x-request-id`, `request-id`, or the response's `id`), when it sent one.
    public var requestID: String?
    /// The exact JSON body robit sent (it never holds the API key, which travels only in a header).
    public var requestBody: String
    /// SHA-256 (hex) of `requestBody` when the provider already knows it (it hashes the growing
    /// conversation incrementally); nil = hash `requestBody`.
    public var requestSHA256: String?
    /// The exact bytes received for the successful attempt (the JSON body, or the whole SSE stream).
    public var rawResponse: String
    /// HTTP attempts this answer took (1 = no retry).
    public var attempts: Int
    /// Wall time from the first attempt to the end of the answer, retries included.
    public var latency: Duration

    public init(text: String, toolCalls: [ToolCall], stopReason: StopReason, usage: Usage = Usage(), requestID: String? = nil,
                requestBody: String = "", requestSHA256: String? = nil, rawResponse: String = "", attempts: Int = 1, latency: Duration = .zero) {
        self.text = text
        self.toolCalls = toolCalls
        self.stopReason = stopReason
        self.usage = usage
        self.requestID = requestID
        self.requestBody = requestBody
        self.requestSHA256 = requestSHA256
        self.rawResponse = rawResponse
        self.attempts = attempts
        self.latency = latency
    }
}

/// Why a model call failed after retries. The loop maps every case to exit 4.
public struct ProviderError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The provider answered with an HTTP error status that is not retried (400, 401, 403, 404...) or kept failing.
        case http(status: Int)
        case timeout
        /// Connection refused, reset, DNS failure, TLS failure.
        case network
        /// The response was not the protocol it should be (bad JSON, bad SSE, missing fields).
        case malformed
        /// The response exceeded robit's size cap.
        case tooLarge
        /// Too many consecutive failures: the breaker is open and calls fail fast.
        case circuitOpen
        /// The task is misconfigured for this provider (no API key in the named variable, bad base_url, bad script).
        case configuration
    }

    public var kind: Kind
    public var message: String
    /// HTTP attempts made before giving up.
    public var attempts: Int

    public init(_ kind: Kind, _ message: String, attempts: Int = 1) {
        self.kind = kind
        self.message = message
        self.attempts = attempts
    }

    public var description: String { message }
}

public protocol ModelProvider: Sendable {
    func complete(_ request: ModelRequest) async throws(ProviderError) -> ModelResponse
}
