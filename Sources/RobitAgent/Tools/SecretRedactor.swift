import Foundation

/// Replaces every exact occurrence of a secret's value with `[REDACTED:NAME]`, longest value first.
///
/// Values shorter than `minimumLength` bytes are ignored: they would match ordinary text and say
/// nothing about the secret. Matching is on bytes, so it works on binary output as well; text stays
/// valid UTF-8 because a valid secret only ever matches whole characters.
public struct SecretRedactor: Sendable {
    public static let minimumLength = 8

    struct Secret: Sendable {
        var name: String
        var value: [UInt8]
        var marker: [UInt8]
    }

    let secrets: [Secret]

    public init(secrets: [(name: String, value: String)]) {
        var list: [Secret] = []
        for s in secrets where s.value.utf8.count >= Self.minimumLength {
            list.append(Secret(name: s.name, value: Array(s.value.utf8), marker: Array("[REDACTED:\(s.name)]".utf8)))
        }
        self.secrets = list.sorted { $0.value.count > $1.value.count }
    }

    public var isEmpty: Bool { secrets.isEmpty }

    public func redact(_ text: String) -> String {
        guard !secrets.isEmpty else { return text }
        return String(decoding: redact(Array(text.utf8), cutAtEnd: false), as: UTF8.self)
    }

    /// Redacts captured bytes. With `cutAtEnd` (the capture was truncated) a tail that is the start of
    /// a secret (4 bytes or more) is redacted too, so a cap cannot leave a secret's first half readable.
    public func redact(_ data: Data, cutAtEnd: Bool = false) -> Data {
        guard !secrets.isEmpty else { return data }
        return Data(redact([UInt8](data), cutAtEnd: cutAtEnd))
    }

    func redact(_ input: [UInt8], cutAtEnd: Bool) -> [UInt8] {
        var bytes = input
        for secret in secrets {
            bytes = replaceAll(secret.value, with: secret.marker, in: bytes)
        }
        if cutAtEnd {
            for secret in secrets {
                for length in stride(from: min(secret.value.count - 1, bytes.count), through: 4, by: -1)
                where bytes.suffix(length).elementsEqual(secret.value.prefix(length)) {
                    bytes.removeLast(length)
                    bytes += secret.marker
                    break
                }
            }
        }
        return bytes
    }

    private func replaceAll(_ needle: [UInt8], with replacement: [UInt8], in haystack: [UInt8]) -> [UInt8] {
        guard haystack.count >= needle.count, let first = needle.first else { return haystack }
        var out: [UInt8] = []
        out.reserveCapacity(haystack.count)
        var i = 0
        var changed = false
        let last = haystack.count - needle.count
        while i < haystack.count {
            if i <= last, haystack[i] == first, haystack[i..<(i + needle.count)].elementsEqual(needle) {
                out += replacement
                i += needle.count
                changed = true
            } else {
                out.append(haystack[i])
                i += 1
            }
        }
        return changed ? out : haystack
    }
}
