/// The canonical encoding of audit format 1: what Python's
/// `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` prints.
///
/// Keys are sorted by code point (byte order of UTF-8 is code-point order); strings escape only `"`, `\`
/// and U+0000–U+001F (`\b \f \n \r \t`, the rest as `\u00xx`); integers only, |n| < 2^53.
public enum CanonicalJSON {
    /// Deepest nesting of arrays and objects accepted by the encoder and the verifier.
    public static let maxDepth = 64

    public static func encode(_ value: AuditValue) throws(AuditError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        try append(value, to: &out)
        return out
    }

    public static func append(_ value: AuditValue, to out: inout [UInt8]) throws(AuditError) {
        try append(value, to: &out, depth: 0)
    }

    private static func append(_ value: AuditValue, to out: inout [UInt8], depth: Int) throws(AuditError) {
        switch value {
        case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        case .bool(true): out.append(contentsOf: [0x74, 0x72, 0x75, 0x65])
        case .bool(false): out.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])
        case .int(let n):
            guard n >= -AuditValue.maxInteger, n <= AuditValue.maxInteger else {
                throw AuditError(.invalidValue, "integer \(n) is outside ±(2^53-1); store it as a string or in a larger unit")
            }
            appendInteger(n, to: &out)
        case .string(let s): appendString(s, to: &out)
        case .array(let items):
            guard depth < maxDepth else { throw AuditError(.invalidValue, "record nests deeper than \(maxDepth) levels") }
            out.append(0x5B)
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(0x2C) }
                try append(item, to: &out, depth: depth + 1)
            }
            out.append(0x5D)
        case .object(let members):
            guard depth < maxDepth else { throw AuditError(.invalidValue, "record nests deeper than \(maxDepth) levels") }
            out.append(0x7B)
            // Members in code-point order of their keys: an insertion sort of indices on the stack
            // (records have a handful of keys), no copy of the members.
            try withUnsafeTemporaryAllocation(of: Int.self, capacity: members.count) { order throws(AuditError) in
                for i in 0..<members.count {
                    var j = i
                    while j > 0 && members[i].0.utf8.lexicographicallyPrecedes(members[order[j - 1]].0.utf8) {
                        order[j] = order[j - 1]
                        j -= 1
                    }
                    order[j] = i
                }
                for k in 0..<members.count {
                    let member = members[order[k]]
                    if k > 0 {
                        if members[order[k - 1]].0.utf8.elementsEqual(member.0.utf8) {
                            throw AuditError(.invalidValue, "duplicate key \"\(member.0)\" in a record")
                        }
                        out.append(0x2C)
                    }
                    appendString(member.0, to: &out)
                    out.append(0x3A)
                    try append(member.1, to: &out, depth: depth + 1)
                }
            }
            out.append(0x7D)
        }
    }

    static func appendInteger(_ n: Int64, to out: inout [UInt8]) {
        if n == 0 { out.append(0x30); return }
        var magnitude = n.magnitude
        if n < 0 { out.append(0x2D) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude > 0 {
                buffer[count] = UInt8(truncatingIfNeeded: magnitude % 10) + 0x30
                magnitude /= 10
                count += 1
            }
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[i]) }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func appendString(_ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { appendString(utf8: $0, to: &out) }
    }

    /// Appends a JSON string literal for already-valid UTF-8 bytes.
    public static func appendString(utf8 bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        out.append(0x22)
        var runStart = 0
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b >= 0x20 && b != 0x22 && b != 0x5C { i += 1; continue }
            if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
            out.append(0x5C)
            switch b {
            case 0x22: out.append(0x22)
            case 0x5C: out.append(0x5C)
            case 0x08: out.append(0x62)
            case 0x0C: out.append(0x66)
            case 0x0A: out.append(0x6E)
            case 0x0D: out.append(0x72)
            case 0x09: out.append(0x74)
            default:
                out.append(contentsOf: [0x75, 0x30, 0x30, hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xF)]])
            }
            i += 1
            runStart = i
        }
        if runStart < n { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<n])) }
        out.append(0x22)
    }
}
