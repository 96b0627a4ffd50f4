/// A JSON value as the audit format allows it: integers only (|n| < 2^53), strings, and objects whose
/// members keep their insertion order (the encoder sorts them by code point).
public enum AuditValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case string(String)
    case array([AuditValue])
    case object([(String, AuditValue)])

    /// The largest magnitude an audit integer may have: 2^53 - 1, so every JSON reader keeps it exact.
    public static let maxInteger: Int64 = (1 << 53) - 1

    public subscript(key: String) -> AuditValue? {
        guard case .object(let members) = self else { return nil }
        let wanted = Array(key.utf8)
        return members.last { $0.0.utf8.elementsEqual(wanted) }?.1
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var intValue: Int64? {
        if case .int(let n) = self { return n }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Adds or replaces `key` in an object (no effect on other values).
    public mutating func set(_ key: String, _ value: AuditValue) {
        guard case .object(var members) = self else { return }
        let wanted = Array(key.utf8)
        if let i = members.firstIndex(where: { $0.0.utf8.elementsEqual(wanted) }) {
            members[i].1 = value
        } else {
            members.append((key, value))
        }
        self = .object(members)
    }

    public static func == (a: AuditValue, b: AuditValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.string(let x), .string(let y)): return x.utf8.elementsEqual(y.utf8)
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0.utf8.elementsEqual($1.0.utf8) && $0.1 == $1.1 }
        default: return false
        }
    }
}

extension AuditValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
                      ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: AuditValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, AuditValue)...) { self = .object(elements) }
}

extension AuditValue {
    public init(_ value: Int) { self = .int(Int64(value)) }
    public init(_ value: String?) { self = value.map { .string($0) } ?? .null }
    public init(_ values: [String]) { self = .array(values.map { .string($0) }) }
    /// A duration in integer nanoseconds.
    public init(nanoseconds duration: Duration) {
        let (s, atto) = duration.components
        self = .int(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
