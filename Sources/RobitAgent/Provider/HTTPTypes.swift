import Foundation

/// A POST robit sends to a model provider (or a GET of the git host's API).
struct HTTPRequest: Sendable {
    /// `POST` (with `body`) or `GET`.
    var method = "POST"
    var url: String
    /// Header lines without line ends (`Name: value`). The API key travels only here.
    var headers: [String]
    /// JSON text; also the `requestBody` of the answer (one copy of it for both).
    var body: String
}

/// Time and size limits of one HTTP attempt.
struct HTTPLimits: Sendable, Equatable {
    /// Longest wait for the TCP (and TLS) connection.
    var connectTimeout: Duration
    /// Longest time without a single byte from the server once connected (the model may think
    /// before its first token, so this is generous by default).
    var idleTimeout: Duration
    /// Longest time for the whole attempt.
    var totalTimeout: Duration
    /// Largest response body accepted; a larger one is aborted and fails with `.tooLarge`.
    var maxResponseBytes: Int

    init(connectTimeout: Duration = .seconds(15), idleTimeout: Duration = .seconds(120),
                totalTimeout: Duration = .seconds(900), maxResponseBytes: Int = 16 << 20) {
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.totalTimeout = totalTimeout
        self.maxResponseBytes = maxResponseBytes
    }
}

/// Status line and headers of a response (the final one, after any 1xx).
struct HTTPResponseHead: Sendable {
    var status: Int = 0
    var headers: [(name: String, value: String)] = []

    /// The first value of a header, matched case-insensitively.
    func value(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    var isSuccess: Bool { (200..<300).contains(status) }
}

/// Receives the body of a successful (2xx) response as it arrives, on the transfer's thread.
/// Throwing aborts the transfer with that error.
protocol HTTPStreamConsumer: Sendable {
    mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(AttemptError)
}

/// A completed exchange: the head, every body byte received, and the consumer that saw the body.
struct HTTPExchange<Consumer: HTTPStreamConsumer>: Sendable {
    var head: HTTPResponseHead
    var body: [UInt8]
    var consumer: Consumer
}

extension Duration {
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// `1.5s`, for messages.
    var shortDescription: String {
        String(format: "%.1fs", secondsDouble)
    }

    var secondsDouble: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Printing or dumping a request never shows credentials.
extension HTTPRequest: CustomStringConvertible, CustomReflectable {
    static let credentialHeaders: Set<String> = ["authorization", "x-api-key", "api-key", "proxy-authorization"]

    var redactedHeaders: [String] {
        headers.map { line in
            guard let colon = line.firstIndex(of: ":"), Self.credentialHeaders.contains(line[..<colon].lowercased()) else { return line }
            return line[..<colon] + ": <redacted>"
        }
    }

    var description: String { "\(method) \(url) \(redactedHeaders) (\(body.utf8.count) bytes)" }

    var customMirror: Mirror {
        Mirror(self, children: ["url": url, "headers": redactedHeaders, "bodyBytes": body.utf8.count])
    }
}
