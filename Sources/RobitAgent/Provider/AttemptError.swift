/// How one HTTP attempt failed, and whether trying again can help.
struct AttemptError: Error, Sendable {
    var error: ProviderError
    var retryable: Bool
    /// The wait the provider asked for (`Retry-After`), when it asked.
    var retryAfter: Duration?

    init(_ kind: ProviderError.Kind, _ message: String, retryable: Bool, retryAfter: Duration? = nil) {
        self.error = ProviderError(kind, message)
        self.retryable = retryable
        self.retryAfter = retryAfter
    }
}
