/// A secret that must never leave robit: its value is replaced by `[REDACTED:NAME]` wherever robit
/// writes or shows something (tool output to the model, the audit log, the run store, the summary, the
/// final answer, error messages, the patch).
public struct Redaction: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// robit's one redactor: one rule set, applied once to each output before it is shown or written.
///
/// - Every occurrence of a secret of at least `minimumLength` bytes is replaced by `[REDACTED:NAME]`,
///   longest secret first. Shorter values are ignored: they would match ordinary text.
/// - A secret of at least `fragmentSecretLength` bytes also has its first and last `fragmentLength`
///   bytes redacted wherever they appear: providers echo keys partially ("sk-abc…wxyz").
/// - Output cut at a cap (`cutAtEnd`) whose tail is the start of a secret (4 bytes or more) has that
///   tail redacted too, so a cap cannot leave a secret's first half readable.
///
/// Matching is on bytes, so binary output works too; text stays valid UTF-8 because a valid secret
/// only ever matches whole characters (fragments are cut at character boundaries).
public struct Redactor: Sendable {
    public static let minimumLength = 6
    public static let fragmentSecretLength = 16
    public static let fragmentLength = 8

    private struct Needle: Sendable {
        var bytes: [UInt8]
        var marker: [UInt8]
        /// A fragment of a secret rather than all of it: not used for the cut-at-end rule.
        var fragment: Bool
    }

    private let needles: [Needle]

    public init(_ redactions: [Redaction]) {
        var needles: [Needle] = []
        for secret in redactions where secret.value.utf8.count >= Self.minimumLength {
            let value = Array(secret.value.utf8)
            let marker = Array("[REDACTED:\(secret.name)]".utf8)
            needles.append(Needle(bytes: value, marker: marker, fragment: false))
            if value.count >= Self.fragmentSecretLength {
                for fragment in [Self.characterPrefix(value, Self.fragmentLength), Self.characterSuffix(value, Self.fragmentLength)]
                where fragment.count >= Self.minimumLength {
                    needles.append(Needle(bytes: fragment, marker: marker, fragment: true))
                }
            }
        }
        // Whole secrets before fragments, longest first: a fragment never splits a whole match.
        self.needles = needles.sorted { ($0.fragment ? 0 : 1, $0.bytes.count) > ($1.fragment ? 0 : 1, $1.bytes.count) }
    }

    public var isEmpty: Bool { needles.isEmpty }

    public func redact(_ bytes: [UInt8], cutAtEnd: Bool = false) -> [UInt8] {
        redactCounting(bytes, cutAtEnd: cutAtEnd).bytes
    }

    /// The redacted bytes and how many occurrences were replaced.
    public func redactCounting(_ input: [UInt8], cutAtEnd: Bool = false) -> (bytes: [UInt8], count: Int) {
        guard !needles.isEmpty else { return (input, 0) }
        var bytes = input
        var count = 0
        for needle in needles {
            let (out, n) = Self.replaceAll(needle.bytes, with: needle.marker, in: bytes)
            bytes = out
            count += n
        }
        if cutAtEnd {
            for needle in needles where !needle.fragment {
                for length in stride(from: min(needle.bytes.count - 1, bytes.count), through: 4, by: -1)
                where bytes.suffix(length).elementsEqual(needle.bytes.prefix(length)) {
                    bytes.removeLast(length)
                    bytes += needle.marker
                    count += 1
                    break
                }
            }
        }
        return (bytes, count)
    }

    public func redact(_ text: String) -> String { redactCounting(text).text }

    public func redactCounting(_ text: String) -> (text: String, count: Int) {
        guard !needles.isEmpty else { return (text, 0) }
        let (out, count) = redactCounting(Array(text.utf8))
        return (count == 0 ? text : String(decoding: out, as: UTF8.self), count)
    }

    public func redact(_ value: AuditValue) -> AuditValue {
        guard !needles.isEmpty else { return value }
        switch value {
        case .string(let s): return .string(redact(s))
        case .array(let items): return .array(items.map { redact($0) })
        case .object(let members): return .object(members.map { (redact($0.0), redact($0.1)) })
        default: return value
        }
    }

    private static func replaceAll(_ needle: [UInt8], with replacement: [UInt8], in haystack: [UInt8]) -> ([UInt8], Int) {
        guard needle.count <= haystack.count, let first = needle.first else { return (haystack, 0) }
        var out: [UInt8] = []
        var i = 0
        var copied = 0
        var count = 0
        let limit = haystack.count - needle.count
        while i <= limit {
            if haystack[i] == first && haystack[i ..< i + needle.count].elementsEqual(needle) {
                if out.isEmpty { out.reserveCapacity(haystack.count) }
                out.append(contentsOf: haystack[copied ..< i])
                out.append(contentsOf: replacement)
                i += needle.count
                copied = i
                count += 1
            } else {
                i += 1
            }
        }
        if count == 0 { return (haystack, 0) }
        out.append(contentsOf: haystack[copied...])
        return (out, count)
    }

    /// The first `n` bytes of UTF-8 `bytes`, shortened to end on a character boundary.
    private static func characterPrefix(_ bytes: [UInt8], _ n: Int) -> [UInt8] {
        var end = min(n, bytes.count)
        while end > 0 && end < bytes.count && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return Array(bytes[..<end])
    }

    /// The last `n` bytes of UTF-8 `bytes`, shortened to start on a character boundary.
    private static func characterSuffix(_ bytes: [UInt8], _ n: Int) -> [UInt8] {
        var start = max(0, bytes.count - n)
        while start < bytes.count && bytes[start] & 0xC0 == 0x80 { start += 1 }
        return Array(bytes[start...])
    }
}
