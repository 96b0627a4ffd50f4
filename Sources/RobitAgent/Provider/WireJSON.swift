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
        // Runs of bytes that need no escape are appended whole: a request resends the whole
        // conversation every step, so this is robit's hottest loop.
        out += "\""
        let utf8 = text.utf8
        var run = utf8.startIndex
        var i = run
        while i != utf8.endIndex {
            let byte = utf8[i]
            var escape: String?
            var width = 1
            switch byte {
            case UInt8(ascii: "\""): escape = "\\\""
            case UInt8(ascii: "\\"): escape = "\\\\"
            case UInt8(ascii: "\n"): escape = "\\n"
            case UInt8(ascii: "\r"): escape = "\\r"
            case UInt8(ascii: "\t"): escape = "\\t"
            case 0x08: escape = "\\b"
            case 0x0C: escape = "\\f"
            case 0xE2:  // U+2028 and U+2029 are E2 80 A8 / E2 80 A9
                let second = utf8.index(after: i)
                if second != utf8.endIndex, utf8[second] == 0x80 {
                    let third = utf8.index(after: second)
                    if third != utf8.endIndex, utf8[third] == 0xA8 || utf8[third] == 0xA9 {
                        escape = utf8[third] == 0xA8 ? "\\u2028" : "\\u2029"
                        width = 3
                    }
                }
            default:
                if byte < 0x20 {
                    let hex = String(byte, radix: 16)
                    escape = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
            }
            if let escape {
                out += text[run..<i]
                out += escape
                i = utf8.index(i, offsetBy: width)
                run = i
            } else {
                i = utf8.index(after: i)
            }
        }
        out += text[run..<utf8.endIndex]
        out += "\""
    }
}
