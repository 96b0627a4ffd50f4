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
        var out = ""
        write(into: &out)
        return out
    }

    func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let flag): out += flag ? "true" : "false"
        case .int(let number): out += String(number)
        case .number(let number):
            if !number.isFinite {
                out += "null"
            } else if number == number.rounded(), abs(number) < 9_007_199_254_740_992 {
                out += String(Int(number))
            } else {
                out += "\(number)"
            }
        case .string(let text): WireJSON.writeString(text, into: &out)
        case .raw(let text): out += text
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, (key, item)) in members.enumerated() {
                if index > 0 { out += "," }
                WireJSON.writeString(key, into: &out)
                out += ":"
                item.write(into: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
