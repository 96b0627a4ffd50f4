// The provider-neutral conversation types the loop speaks. Each provider translates them to and from
// its own wire format.

/// A tool the model may call: its name, what it does, and the JSON Schema of its arguments.
struct ToolSpec: Sendable, Equatable {
    var name: String
    var description: String
    var parameters: JSONValue

    init(name: String, description: String, parameters: JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// One tool call of a model turn. `arguments` holds the exact JSON text the model sent (concatenated
/// deltas when streamed), never re-encoded: it is validated and audited as received.
struct ToolCall: Sendable, Equatable {
    var id: String
    var name: String
    var arguments: String

    init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

enum Message: Sendable, Equatable {
    case user(String)
    case assistant(text: String, toolCalls: [ToolCall])
    /// The result of one tool call, answered in call order after the assistant turn that asked for it.
    case tool(callID: String, name: String, content: String, isError: Bool)
}

struct ModelRequest: Sendable, Equatable {
    var model: String
    var system: String?
    var messages: [Message]
    var tools: [ToolSpec]
    var maxOutputTokens: Int?

    init(model: String, system: String? = nil, messages: [Message], tools: [ToolSpec] = [], maxOutputTokens: Int? = nil) {
        self.model = model
        self.system = system
        self.messages = messages
        self.tools = tools
        self.maxOutputTokens = maxOutputTokens
    }
}

struct Usage: Sendable, Equatable {
    var inputTokens: Int
    var outputTokens: Int
    var total: Int { inputTokens + outputTokens }

    init(inputTokens: Int = 0, outputTokens: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

enum StopReason: Sendable, Equatable {
    /// The model is done: its text is the final answer.
    case endTurn
    /// The model asked for tool calls.
    case toolUse
    /// The output was cut at `max_output_tokens`.
    case maxTokens
    case other(String)
}

struct ModelResponse: Sendable, Equatable {
    var text: String
    var toolCalls: [ToolCall]
    var stopReason: StopReason
    var usage: Usage
    /// The provider's request id (`x-request-id`, `request-id`, or the response's `id`), when it sent one.
    var requestID: String?
    /// The exact JSON body robit sent (it never holds the API key, which travels only in a header).
    var requestBody: String
    /// SHA-256 (hex) of `requestBody` when the provider already knows it (it hashes the growing
    /// conversation incrementally); nil = hash `requestBody`.
    var requestSHA256: String?
    /// The exact bytes received for the successful attempt (the JSON body, or the whole SSE stream).
    var rawResponse: String
    /// HTTP attempts this answer took (1 = no retry).
    var attempts: Int
    /// Wall time from the first attempt to the end of the answer, retries included.
    var latency: Duration

    init(text: String, toolCalls: [ToolCall], stopReason: StopReason, usage: Usage = Usage(), requestID: String? = nil,
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
struct ProviderError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
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

    var kind: Kind
    var message: String
    /// HTTP attempts made before giving up.
    var attempts: Int

    init(_ kind: Kind, _ message: String, attempts: Int = 1) {
        self.kind = kind
        self.message = message
        self.attempts = attempts
    }

    var description: String { message }
}

protocol ModelProvider: Sendable {
    func complete(_ request: ModelRequest) async throws(ProviderError) -> ModelResponse
}
