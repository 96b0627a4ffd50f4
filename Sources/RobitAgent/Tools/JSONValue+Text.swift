import RobitOCI

extension JSONValue {
    /// Compact JSON text with object members in sorted order (deterministic), as robit's one JSON
    /// writer (`WireJSON`, `JSONText`) writes it.
    var compactText: String { WireJSON(self).text }

    static func quoted(_ s: String) -> String { JSONText.quoted(s) }

    static func numberText(_ n: Double) -> String {
        var out: [UInt8] = []
        JSONText.number(n, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The JSON type name used in messages and by JSON Schema's `type`.
    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number(let n): return n == n.rounded() ? "integer" : "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    init(stringLiteral value: String) { self = .string(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(integerLiteral value: Int) { self = .number(Double(value)) }
    init(floatLiteral value: Double) { self = .number(value) }
    init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(Dictionary(elements, uniquingKeysWith: { $1 })) }
    init(nilLiteral: ()) { self = .null }
}

extension BidirectionalCollection where Element == UInt8 {
    /// Without space, tab, line feed or carriage return at either end: JSON's whitespace, which is also
    /// HTTP's optional whitespace plus line ends. Bytewise (hot paths: every stream event, every tool
    /// call, every response header).
    var trimmingJSONWhitespace: SubSequence {
        func blank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
        var lower = startIndex, upper = endIndex
        while lower < upper, blank(self[lower]) { lower = index(after: lower) }
        while upper > lower, blank(self[index(before: upper)]) { upper = index(before: upper) }
        return self[lower..<upper]
    }
}

extension String {
    /// Without JSON's whitespace at either end: what a JSON parser skips anyway.
    var trimmingJSONWhitespace: Substring {
        let bytes = utf8.trimmingJSONWhitespace
        return self[bytes.startIndex..<bytes.endIndex]
    }
}
