import RobitAudit
/// Retries, the breaker and timing around a provider's HTTP calls.
public struct HTTPProviderOptions: Sendable {
    var limits: HTTPLimits
    var retry: RetryPolicy
    /// Shared by every call of one provider instance.
    var breaker: CircuitBreaker

    init(limits: HTTPLimits = HTTPLimits(), retry: RetryPolicy = RetryPolicy(), breaker: CircuitBreaker = CircuitBreaker()) {
        self.limits = limits
        self.retry = retry
        self.breaker = breaker
    }
}

/// A model provider reached over HTTP with a streamed answer, in the wire format of `Codec`.
struct StreamingProvider<Codec: ProviderCodec>: ModelProvider {
    let codec: Codec
    /// Never logged, never put in a body or a message: it goes into one header.
    let apiKey: String?
    /// Where the key came from, for messages about it.
    let apiKeyEnv: String?
    let options: HTTPProviderOptions
    /// The previous call's conversation, already encoded: each call encodes only what was added.
    let encoding = EncodedConversation()
    /// libcurl's handles, and so the open connection to the provider, kept from one call to the next.
    let connection = HTTPConnectionCache()

    /// What hides the key in messages, should a provider echo it (whole or in part) in an error.
    var keyRedactor: Redactor { Redactor(apiKey.map { [Redaction(name: apiKeyEnv ?? "API_KEY", value: $0)] } ?? []) }

    func complete(_ request: ModelRequest) async throws(ProviderError) -> ModelResponse {
        try options.breaker.admit(provider: codec.name)
        let body = encoding.body(request, codec: codec)
        let http = HTTPRequest(url: codec.endpoint, headers: codec.headers(apiKey: apiKey), body: body.text)
        let started = ContinuousClock.now
        var attempt = 0
        while true {
            attempt += 1
            let failure: AttemptError
            switch await HTTPTransfer.post(http, limits: options.limits, connection: connection, consumer: codec.makeDecoder()) {
            case .success(let exchange):
                do throws(AttemptError) {
                    let turn = try outcome(of: exchange)
                    options.breaker.record(success: true)
                    return ModelResponse(
                        text: turn.text, toolCalls: turn.toolCalls,
                        stopReason: turn.stopReason ?? (turn.toolCalls.isEmpty ? .endTurn : .toolUse),
                        usage: turn.usage,
                        requestID: exchange.head.value("x-request-id") ?? exchange.head.value("request-id") ?? turn.responseID,
                        requestBody: body.text, requestSHA256: body.sha256,
                        rawResponse: String(decoding: exchange.body, as: UTF8.self),
                        attempts: attempt, latency: ContinuousClock.now - started)
                } catch {
                    failure = error
                }
            case .failure(let error):
                failure = error
            }
            var error = failure.error
            error.message = keyRedactor.redact(error.message)
            error.attempts = attempt
            if Task.isCancelled || !failure.retryable || attempt >= options.retry.maxAttempts {
                if failure.retryable && attempt > 1 { error.message += " (gave up after \(attempt) attempts)" }
                options.breaker.record(success: false)
                throw error
            }
            let delay: Duration
            if let retryAfter = failure.retryAfter {
                if retryAfter > options.retry.maxRetryAfter {
                    error.message += " (the provider asked to retry after \(retryAfter.shortDescription), more than robit waits: \(options.retry.maxRetryAfter.shortDescription))"
                    options.breaker.record(success: false)
                    throw error
                }
                delay = retryAfter
            } else {
                delay = options.retry.backoff(afterAttempt: attempt)
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                options.breaker.record(success: false)
                throw ProviderError(.network, "the model call was cancelled while waiting to retry", attempts: attempt)
            }
        }
    }

    /// The decoded turn of a completed exchange, or the failure its status or body means.
    private func outcome(of exchange: HTTPExchange<Codec.Decoder>) throws(AttemptError) -> DecodedTurn {
        let head = exchange.head
        guard head.isSuccess else {
            let message = ProviderErrorText.message(fromBody: exchange.body)
            var hint = ""
            if head.status == 401 || head.status == 403 {
                hint = apiKeyEnv.map { " (check the API key in $\($0))" } ?? " (the provider wants an API key: set model.api_key_env)"
            } else if head.status == 404 {
                hint = " (check model.name and model.base_url: \(codec.endpoint))"
            }
            let text = "\(codec.name) answered HTTP \(head.status): \(message.isEmpty ? "no message" : message)\(hint)"
            throw AttemptError(.http(status: head.status), text, retryable: RetryPolicy.isRetryable(status: head.status),
                               retryAfter: RetryAfter.parse(head))
        }
        if let type = head.value("content-type")?.lowercased(), type.hasPrefix("application/json") {
            throw AttemptError(.malformed, "\(codec.name) answered with plain JSON instead of an event stream (does this server support \"stream\": true?): "
                + ProviderErrorText.message(fromBody: exchange.body), retryable: false)
        }
        var decoder = exchange.consumer
        return try decoder.finish()
    }
}

/// Printing or dumping a provider never shows its key.
extension StreamingProvider: CustomStringConvertible, CustomReflectable {
    var description: String {
        "\(codec.name) at \(codec.endpoint)" + (apiKey == nil ? " (no key)" : " (key from $\(apiKeyEnv ?? "?"): <redacted>)")
    }

    var customMirror: Mirror {
        Mirror(self, children: ["provider": codec.name, "endpoint": codec.endpoint, "apiKeyEnv": apiKeyEnv as Any,
                                "apiKey": apiKey == nil ? "none" : "<redacted>"])
    }
}
