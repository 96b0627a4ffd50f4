/// A secret that must never reach the log: every occurrence of `value` in a string or payload is replaced by
/// `[REDACTED:NAME]` before the record is built.
public struct Redaction: Sendable, Equatable {
    public var name: String
    public var value: String

    /// Values shorter than this are not redacted (they would match ordinary text).
    public static let minimumLength = 6

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

struct Redactor: Sendable {
    private let secrets: [(needle: [UInt8], replacement: [UInt8])]

    init(_ redactions: [Redaction]) {
        secrets = redactions
            .filter { $0.value.utf8.count >= Redaction.minimumLength }
            .sorted { $0.value.utf8.count > $1.value.utf8.count }
            .map { (Array($0.value.utf8), Array("[REDACTED:\($0.name)]".utf8)) }
    }

    var isEmpty: Bool { secrets.isEmpty }

    func redact(_ bytes: [UInt8]) -> [UInt8] {
        var current = bytes
        for secret in secrets { current = replace(secret.needle, with: secret.replacement, in: current) }
        return current
    }

    func redact(_ text: String) -> String {
        guard !secrets.isEmpty else { return text }
        let bytes = Array(text.utf8)
        let out = redact(bytes)
        return out == bytes ? text : String(decoding: out, as: UTF8.self)
    }

    func redact(_ value: AuditValue) -> AuditValue {
        guard !secrets.isEmpty else { return value }
        switch value {
        case .string(let s): return .string(redact(s))
        case .array(let items): return .array(items.map { redact($0) })
        case .object(let members): return .object(members.map { (redact($0.0), redact($0.1)) })
        default: return value
        }
    }

    private func replace(_ needle: [UInt8], with replacement: [UInt8], in haystack: [UInt8]) -> [UInt8] {
        guard needle.count <= haystack.count, let first = needle.first else { return haystack }
        var out: [UInt8] = []
        var i = 0
        var copied = 0
        let limit = haystack.count - needle.count
        while i <= limit {
            if haystack[i] == first && haystack[i ..< i + needle.count].elementsEqual(needle) {
                if out.isEmpty { out.reserveCapacity(haystack.count) }
                out.append(contentsOf: haystack[copied ..< i])
                out.append(contentsOf: replacement)
                i += needle.count
                copied = i
            } else {
                i += 1
            }
        }
        if copied == 0 { return haystack }
        out.append(contentsOf: haystack[copied...])
        return out
    }
}
