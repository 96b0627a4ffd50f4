/// Checks that bytes are the canonical encoding of a JSON value (see `CanonicalJSON`) without building it,
/// and decodes values out of checked bytes. Used by the verifier on every line, so it allocates nothing on
/// the common path.
struct CanonicalScanner {
    struct Failure: Error {
        var offset: Int
        var reason: String
    }

    /// A `{"blob": "sha256:<hex>", "size": N}` reference found while scanning.
    struct BlobReference {
        var hex: String
        var size: Int64
    }

    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    var blobs: [BlobReference] = []

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    private func fail(_ reason: String) -> Failure { Failure(offset: position, reason: reason) }

    // MARK: - Validation

    /// Validates one value starting at `position` and leaves `position` after it.
    mutating func skipValue(depth: Int = 0) throws(Failure) {
        guard position < bytes.count else { throw fail("unexpected end of line") }
        switch bytes[position] {
        case 0x7B: try skipObject(depth: depth)
        case 0x5B:
            guard depth < CanonicalJSON.maxDepth else { throw fail("nested deeper than \(CanonicalJSON.maxDepth) levels") }
            position += 1
            if position < bytes.count, bytes[position] == 0x5D { position += 1; return }
            while true {
                try skipValue(depth: depth + 1)
                guard position < bytes.count else { throw fail("unterminated array") }
                if bytes[position] == 0x2C { position += 1; continue }
                if bytes[position] == 0x5D { position += 1; return }
                throw fail("expected , or ] in array")
            }
        case 0x22: _ = try skipString()
        case 0x74: try literal([0x74, 0x72, 0x75, 0x65])
        case 0x66: try literal([0x66, 0x61, 0x6C, 0x73, 0x65])
        case 0x6E: try literal([0x6E, 0x75, 0x6C, 0x6C])
        case 0x2D, 0x30...0x39: _ = try skipInteger()
        default: throw fail("unexpected byte 0x\(String(bytes[position], radix: 16)) (not canonical JSON)")
        }
    }

    private mutating func literal(_ word: [UInt8]) throws(Failure) {
        guard position + word.count <= bytes.count else { throw fail("truncated literal") }
        for (i, b) in word.enumerated() where bytes[position + i] != b { throw fail("bad literal") }
        position += word.count
    }

    /// Skips a canonical integer and returns its value.
    mutating func skipInteger() throws(Failure) -> Int64 {
        var negative = false
        if bytes[position] == 0x2D { negative = true; position += 1 }
        guard position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 else { throw fail("bad number") }
        if bytes[position] == 0x30 {
            position += 1
            if negative { throw fail("-0 is not canonical") }
            if position < bytes.count, bytes[position] >= 0x30 && bytes[position] <= 0x39 { throw fail("leading zero in a number") }
            if position < bytes.count, bytes[position] == 0x2E || bytes[position] == 0x65 || bytes[position] == 0x45 {
                throw fail("numbers are integers only")
            }
            return 0
        }
        var value: Int64 = 0
        while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 {
            value = value &* 10 &+ Int64(bytes[position] - 0x30)
            if value > AuditValue.maxInteger { throw fail("integer outside ±(2^53-1)") }
            position += 1
        }
        if position < bytes.count, bytes[position] == 0x2E || bytes[position] == 0x65 || bytes[position] == 0x45 {
            throw fail("numbers are integers only")
        }
        return negative ? -value : value
    }

    /// Skips a canonical string; returns whether it holds any escape (then its raw bytes differ from its value).
    @discardableResult
    mutating func skipString() throws(Failure) -> Bool {
        position += 1 // opening quote
        var escaped = false
        let n = bytes.count
        guard let base = bytes.baseAddress else { throw fail("unterminated string") }
        while position < n {
            // Fast path: plain printable ASCII, in a local loop the optimizer keeps in registers.
            var i = position
            while i < n {
                let c = base[i]
                if c < 0x20 || c >= 0x80 || c == 0x22 || c == 0x5C { break }
                i += 1
            }
            position = i
            guard position < n else { break }
            let b = base[position]
            if b == 0x22 { position += 1; return escaped }
            if b == 0x5C {
                escaped = true
                guard position + 1 < n else { throw fail("truncated escape") }
                switch bytes[position + 1] {
                case 0x22, 0x5C, 0x62, 0x66, 0x6E, 0x72, 0x74: position += 2
                case 0x75:
                    guard position + 5 < n, bytes[position + 2] == 0x30, bytes[position + 3] == 0x30,
                          let hi = Self.lowerHex(bytes[position + 4]), let lo = Self.lowerHex(bytes[position + 5]) else {
                        throw fail("\\u escape is only canonical for control characters, in lowercase hex")
                    }
                    let c = hi << 4 | lo
                    guard c < 0x20, c != 0x08, c != 0x09, c != 0x0A, c != 0x0C, c != 0x0D else {
                        throw fail("\\u00\(String(c, radix: 16)) is not the canonical escape")
                    }
                    position += 6
                default: throw fail("escape that canonical JSON does not use")
                }
                continue
            }
            if b < 0x20 { throw fail("unescaped control character in a string") }
            try skipUTF8Sequence()
        }
        throw fail("unterminated string")
    }

    private static func lowerHex(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    private mutating func skipUTF8Sequence() throws(Failure) {
        let b0 = bytes[position]
        let n = bytes.count
        func cont(_ i: Int) -> Bool { i < n && bytes[i] & 0xC0 == 0x80 }
        switch b0 {
        case 0xC2...0xDF:
            guard cont(position + 1) else { throw fail("invalid UTF-8") }
            position += 2
        case 0xE0...0xEF:
            guard cont(position + 1), cont(position + 2) else { throw fail("invalid UTF-8") }
            let b1 = bytes[position + 1]
            if b0 == 0xE0 && b1 < 0xA0 { throw fail("overlong UTF-8") }
            if b0 == 0xED && b1 >= 0xA0 { throw fail("UTF-8 encoded surrogate") }
            position += 3
        case 0xF0...0xF4:
            guard cont(position + 1), cont(position + 2), cont(position + 3) else { throw fail("invalid UTF-8") }
            let b1 = bytes[position + 1]
            if b0 == 0xF0 && b1 < 0x90 { throw fail("overlong UTF-8") }
            if b0 == 0xF4 && b1 >= 0x90 { throw fail("UTF-8 beyond U+10FFFF") }
            position += 4
        default: throw fail("invalid UTF-8")
        }
    }

    private mutating func skipObject(depth: Int) throws(Failure) {
        guard depth < CanonicalJSON.maxDepth else { throw fail("nested deeper than \(CanonicalJSON.maxDepth) levels") }
        position += 1
        if position < bytes.count, bytes[position] == 0x7D { position += 1; return }
        var previousKey: Range<Int>? = nil
        var previousEscaped = false
        var keyCount = 0
        var blobKey: Range<Int>? = nil, sizeValue: Int64? = nil, blobValue: Range<Int>? = nil
        while true {
            guard position < bytes.count, bytes[position] == 0x22 else { throw fail("expected a key") }
            let keyStart = position
            let escaped = try skipString()
            let key = keyStart + 1 ..< position - 1
            if let previous = previousKey {
                guard Self.keyPrecedes(bytes, previous, previousEscaped, key, escaped) else {
                    position = keyStart
                    throw fail("object keys are not sorted by code point or repeat")
                }
            }
            previousKey = key
            previousEscaped = escaped
            keyCount += 1
            guard position < bytes.count, bytes[position] == 0x3A else { throw fail("expected : after a key") }
            position += 1
            let valueStart = position
            try skipValue(depth: depth + 1)
            if !escaped && Self.equals(bytes, key, "blob") && bytes[valueStart] == 0x22 {
                blobKey = key
                blobValue = valueStart + 1 ..< position - 1
            } else if !escaped && Self.equals(bytes, key, "size") && bytes[valueStart] != 0x2D && bytes[valueStart] >= 0x30 && bytes[valueStart] <= 0x39 {
                var inner = CanonicalScanner(bytes)
                inner.position = valueStart
                sizeValue = try? inner.skipInteger()
            }
            guard position < bytes.count else { throw fail("unterminated object") }
            if bytes[position] == 0x2C { position += 1; continue }
            if bytes[position] == 0x7D { position += 1; break }
            throw fail("expected , or } in object")
        }
        if keyCount == 2, blobKey != nil, let size = sizeValue, let value = blobValue {
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[value]), as: UTF8.self)
            if text.hasPrefix("sha256:") {
                blobs.append(BlobReference(hex: String(text.dropFirst(7)), size: size))
            }
        }
    }

    static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ word: StaticString) -> Bool {
        guard range.count == word.utf8CodeUnitCount else { return false }
        let w = word.utf8Start
        for i in 0..<range.count where bytes[range.lowerBound + i] != w[i] { return false }
        return true
    }

    /// Strict code-point order of two keys given as raw (possibly escaped) string contents.
    private static func keyPrecedes(_ bytes: UnsafeBufferPointer<UInt8>, _ a: Range<Int>, _ aEscaped: Bool,
                                    _ b: Range<Int>, _ bEscaped: Bool) -> Bool {
        if !aEscaped && !bEscaped {
            return UnsafeBufferPointer(rebasing: bytes[a]).lexicographicallyPrecedes(UnsafeBufferPointer(rebasing: bytes[b]))
        }
        return unescape(bytes, a).lexicographicallyPrecedes(unescape(bytes, b))
    }

    /// The UTF-8 bytes a validated string literal's contents stand for.
    static func unescape(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var i = range.lowerBound
        while i < range.upperBound {
            let b = bytes[i]
            guard b == 0x5C else { out.append(b); i += 1; continue }
            switch bytes[i + 1] {
            case 0x62: out.append(0x08); i += 2
            case 0x66: out.append(0x0C); i += 2
            case 0x6E: out.append(0x0A); i += 2
            case 0x72: out.append(0x0D); i += 2
            case 0x74: out.append(0x09); i += 2
            case 0x75: out.append((lowerHex(bytes[i + 4])! << 4) | lowerHex(bytes[i + 5])!); i += 6
            default: out.append(bytes[i + 1]); i += 2
            }
        }
        return out
    }

    // MARK: - Decoding checked bytes

    /// Decodes the (already validated) value at `position`.
    mutating func decodeValue() -> AuditValue {
        switch bytes[position] {
        case 0x7B:
            position += 1
            var members: [(String, AuditValue)] = []
            if bytes[position] == 0x7D { position += 1; return .object(members) }
            while true {
                let key = decodeString()
                position += 1 // :
                members.append((key, decodeValue()))
                if bytes[position] == 0x2C { position += 1; continue }
                position += 1
                return .object(members)
            }
        case 0x5B:
            position += 1
            var items: [AuditValue] = []
            if bytes[position] == 0x5D { position += 1; return .array(items) }
            while true {
                items.append(decodeValue())
                if bytes[position] == 0x2C { position += 1; continue }
                position += 1
                return .array(items)
            }
        case 0x22: return .string(decodeString())
        case 0x74: position += 4; return .bool(true)
        case 0x66: position += 5; return .bool(false)
        case 0x6E: position += 4; return .null
        default: return .int((try? skipInteger()) ?? 0)
        }
    }

    mutating func decodeString() -> String {
        let start = position + 1
        _ = try? skipString()
        return String(decoding: Self.unescape(bytes, start ..< position - 1), as: UTF8.self)
    }
}
