/// robit's one compact JSON writer of scalars and strings, used for request bodies, tool messages,
/// custom-tool arguments and exec process files. (The audit log has its own canonical encoding,
/// RobitAudit's `CanonicalJSON`: that is a format reviewers re-implement, not a choice of ours.)
///
/// Strings: `"` and `\` escaped; `\b \f \n \r \t` for those controls and `\u00xx` (lowercase hex) for
/// the other U+0000–U+001F; U+2028 and U+2029 as `\u2028`/`\u2029` (they end lines in JavaScript and
/// in some JSONL readers); everything else, DEL and non-ASCII included, as its UTF-8. A Swift string
/// holds no lone surrogate: one decoded from input is already U+FFFD, and is written as such.
public enum JSONText {
    public static func bool(_ value: Bool, into out: inout [UInt8]) {
        out.append(contentsOf: (value ? "true" : "false").utf8)
    }

    public static func integer<T: BinaryInteger>(_ value: T, into out: inout [UInt8]) {
        out.append(contentsOf: String(value).utf8)
    }

    /// An integral number without a fraction (`3`, not `3.0`); any other in Swift's shortest form;
    /// NaN and the infinities, which JSON cannot hold, as `null`.
    public static func number(_ value: Double, into out: inout [UInt8]) {
        if !value.isFinite {
            out.append(contentsOf: "null".utf8)
        } else if value == value.rounded(), abs(value) < 9_007_199_254_740_992 {
            out.append(contentsOf: String(Int64(value)).utf8)
        } else {
            out.append(contentsOf: "\(value)".utf8)
        }
    }

    public static func array<T>(_ items: [T], into out: inout [UInt8], _ item: (T, inout [UInt8]) -> Void) {
        out.append(UInt8(ascii: "["))
        for (index, element) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            item(element, &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    public static func strings(_ items: [String], into out: inout [UInt8]) {
        array(items, into: &out) { string($0, into: &$1) }
    }

    /// `text` as a JSON string literal.
    public static func quoted(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        string(text, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// A JSON string: runs of bytes that need no escape are copied whole (request bodies resend the
    /// whole conversation every step, so this is robit's hottest per-step code).
    public static func string(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var run = 0
            var i = 0
            while i < bytes.count {
                let byte = bytes[i]
                var escape: StaticString?
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
                    if i + 2 < bytes.count, bytes[i + 1] == 0x80, bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9 {
                        escape = bytes[i + 2] == 0xA8 ? "\\u2028" : "\\u2029"
                        width = 3
                    }
                default:
                    if byte < 0x20 {
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i]))
                        out.append(contentsOf: "\\u00".utf8)
                        out.append(hexDigits[Int(byte >> 4)])
                        out.append(hexDigits[Int(byte & 0xF)])
                        i += 1
                        run = i
                        continue
                    }
                }
                if let escape {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i]))
                    escape.withUTF8Buffer { out.append(contentsOf: $0) }
                    i += width
                    run = i
                } else {
                    i += 1
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<bytes.count]))
        }
        out.append(UInt8(ascii: "\""))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}
