import Foundation

/// When and how long to wait before trying a failed model call again.
///
/// Retried: connection failures, timeouts, broken streams, 408, 425, 429 and 5xx. Not retried: other
/// 4xx (a bad key or a bad request fails the same way every time), oversized and malformed answers.
struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first one included.
    var maxAttempts: Int
    /// Wait before the second attempt; it doubles for each further one.
    var baseDelay: Duration
    /// Ceiling of the exponential wait.
    var maxDelay: Duration
    /// Fraction of each exponential wait that is randomized (0 = none, 1 = "full jitter").
    var jitter: Double
    /// The longest `Retry-After` robit honours; a provider asking for more fails the call at once.
    var maxRetryAfter: Duration

    init(maxAttempts: Int = 4, baseDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(30),
                jitter: Double = 0.5, maxRetryAfter: Duration = .seconds(120)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.jitter = min(1, max(0, jitter))
        self.maxRetryAfter = maxRetryAfter
    }

    /// The exponential wait after failed attempt number `attempt` (1-based), jitter applied.
    func backoff(afterAttempt attempt: Int) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let full = min(maxDelay.secondsDouble, baseDelay.secondsDouble * Double(1 << exponent))
        let randomized = full * (1 - jitter * Double.random(in: 0...1))
        return .milliseconds(Int64((randomized * 1000).rounded()))
    }

    static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 425 || status == 429 || status >= 500
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Also `retry-after-ms`, which
/// OpenAI sends. Nil when absent or unreadable.
enum RetryAfter {
    static func parse(_ head: HTTPResponseHead, now: Date = Date()) -> Duration? {
        if let milliseconds = head.value("retry-after-ms").flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }),
           milliseconds >= 0, milliseconds.isFinite {
            return .milliseconds(Int64(milliseconds))
        }
        guard let value = head.value("retry-after")?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value) {
            return seconds.isFinite && seconds >= 0 ? .milliseconds(Int64(seconds * 1000)) : nil
        }
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if let date = formatter.date(from: value) {
                let seconds = max(0, date.timeIntervalSince(now))
                return .milliseconds(Int64(seconds * 1000))
            }
        }
        return nil
    }
}
