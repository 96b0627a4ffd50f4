import RobitOCI

/// JSON as robit writes it onto the wire: object keys keep the order they are given in (so request
/// bodies read naturally and are byte-for-byte reproducible), and `raw` embeds JSON text verbatim
/// (tool arguments are sent back exactly as the model produced them).
indirect enum WireJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case number(Double)
    case string(String)
    /// Already-serialized JSON, written as is. The caller guarantees it is valid JSON.
    case raw(String)
    case array([WireJSON])
    case object([(String, WireJSON)])

    static func == (lhs: WireJSON, rhs: WireJSON) -> Bool { lhs.text == rhs.text }

    /// A `JSONValue`, with object keys sorted so the output does not depend on dictionary order.
    init(_ value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .number(let number): self = .number(number)
        case .string(let text): self = .string(text)
        case .array(let items): self = .array(items.map(WireJSON.init))
        case .object(let members):
            self = .object(members.keys.sorted().map { ($0, WireJSON(members[$0] ?? .null)) })
        }
    }

    var text: String {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// UTF-8 into a byte buffer: a request resends the whole conversation every step, so this is
    /// robit's hottest per-step code.
    func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .int(let number): out.append(contentsOf: String(number).utf8)
        case .number(let number): JSONText.number(number, into: &out)
        case .string(let text): JSONText.string(text, into: &out)
        case .raw(let text): out.append(contentsOf: text.utf8)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (index, (key, item)) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSONText.string(key, into: &out)
                out.append(UInt8(ascii: ":"))
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}

/// Writes a JSON object member by member, so that a member's value can be spliced in as bytes
/// already encoded (the conversation of a request body).
struct WireObjectWriter {
    private var empty = true

    /// Writes `"key":` (after `{` or `,`); the caller writes the value next.
    mutating func key(_ key: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: empty ? "{" : ","))
        empty = false
        JSONText.string(key, into: &out)
        out.append(UInt8(ascii: ":"))
    }

    mutating func member(_ key: String, _ value: WireJSON, into out: inout [UInt8]) {
        self.key(key, into: &out)
        value.write(into: &out)
    }

    func close(into out: inout [UInt8]) {
        if empty { out.append(UInt8(ascii: "{")) }
        out.append(UInt8(ascii: "}"))
    }
}
