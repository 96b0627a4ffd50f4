import RobitOCI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One entry of a sandbox's egress allowlist: a destination and a TCP/UDP port.
///
/// Written as `host:port` (`api.github.com:443`), `IPv4:port` (`10.1.2.3:5432`),
/// `[IPv6]:port` (`[2001:db8::1]:443`), or a network in CIDR form (`10.0.0.0/8:5432`, `[fd00::/8]:443`).
/// It is RobitOCI's `Egress` (the value the sandbox's network is made from); this file reads and
/// checks the written form.
public typealias EgressRule = Egress

extension Egress {
    init(destination: Destination, port: UInt16) {
        self.init(destination, port: port)
    }

    /// Why a string is not an egress entry; `message` says what to write instead.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Parses `host:port`, `IPv4:port`, `[IPv6]:port` or `CIDR:port`.
    public init(parsing text: String) throws(ParseError) {
        func fail(_ why: String) -> ParseError {
            ParseError(message: "\(quoted(text)) is not a valid egress entry: \(why)")
        }
        guard !text.isEmpty else {
            throw ParseError(message: "empty egress entry; write host:port, e.g. \"api.github.com:443\"")
        }
        guard !text.contains(where: { $0.isWhitespace }) else { throw fail("remove the spaces") }
        guard !text.contains("://") else {
            throw fail("write host:port without a scheme, e.g. \"api.github.com:443\"")
        }
        let hostPart: Substring
        let portPart: Substring
        let destination: Destination
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("missing \"]\" after the IPv6 address") }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let afterClose = text[text.index(after: close)...]
            guard afterClose.hasPrefix(":") else {
                throw fail("missing port; write [address]:port, e.g. \"[2001:db8::1]:443\"")
            }
            portPart = afterClose.dropFirst()
            destination = try Self.parseIPv6(hostPart, fail: fail)
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw fail("missing port; write host:port, e.g. \"api.github.com:443\"")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") {
                throw fail("IPv6 addresses go in brackets, e.g. \"[2001:db8::1]:443\"")
            }
            guard !hostPart.isEmpty else { throw fail("empty host; write host:port, e.g. \"api.github.com:443\"") }
            destination = try Self.parseHostOrIPv4(hostPart, fail: fail)
        }
        guard !portPart.isEmpty else { throw fail("missing port number after \":\"") }
        guard portPart.allSatisfy({ $0.isASCII && $0.isNumber }), portPart.count <= 5, let number = Int(portPart) else {
            throw fail("port \(quoted(String(portPart))) is not a number from 1 to 65535")
        }
        guard number >= 1, number <= 65535 else {
            throw fail("port \(portPart) is out of range; use a port from 1 to 65535")
        }
        guard !portPart.hasPrefix("0") else { throw fail("write the port without leading zeros") }
        self.init(destination, port: UInt16(number))
    }

    private static func parseHostOrIPv4(_ text: Substring, fail: (String) -> ParseError) throws(ParseError) -> Destination {
        if let slash = text.firstIndex(of: "/") {
            let address = text[..<slash]
            let length = try prefixLength(text[text.index(after: slash)...], max: 32, fail: fail)
            guard let bytes = ipv4Bytes(address) else {
                throw fail("\(quoted(String(address))) is not an IPv4 address (CIDR networks look like 10.0.0.0/8)")
            }
            guard hostBitsAreZero(bytes, prefixLength: length) else {
                let network = format(ipv4: masked(bytes, prefixLength: length))
                throw fail("host bits are set in \(address)/\(length); did you mean \(network)/\(length)?")
            }
            return .ipv4Network(format(ipv4: bytes), prefixLength: length)
        }
        if let bytes = ipv4Bytes(text) {
            return .ipv4(format(ipv4: bytes))
        }
        if text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
            throw fail("\(quoted(String(text))) is not an IPv4 address (four numbers 0-255 without leading zeros)")
        }
        if text.contains("*") {
            throw fail("wildcards are not supported; list each host name")
        }
        guard isValidHostName(text) else {
            throw fail("\(quoted(String(text))) is not a valid host name (letters, digits and hyphens, dot-separated, as in api.github.com)")
        }
        return .host(text.lowercased())
    }

    private static func parseIPv6(_ text: Substring, fail: (String) -> ParseError) throws(ParseError) -> Destination {
        var address = text
        var length: Int?
        if let slash = text.firstIndex(of: "/") {
            address = text[..<slash]
            length = try prefixLength(text[text.index(after: slash)...], max: 128, fail: fail)
        }
        guard !address.isEmpty, let bytes = ipv6Bytes(address) else {
            throw fail("\(quoted(String(address))) is not an IPv6 address")
        }
        guard let length else { return .ipv6(format(ipv6: bytes)) }
        guard hostBitsAreZero(bytes, prefixLength: length) else {
            let network = format(ipv6: masked(bytes, prefixLength: length))
            throw fail("host bits are set in \(address)/\(length); did you mean [\(network)/\(length)]?")
        }
        return .ipv6Network(format(ipv6: bytes), prefixLength: length)
    }

    private static func prefixLength(_ text: Substring, max: Int, fail: (String) -> ParseError) throws(ParseError) -> Int {
        guard !text.isEmpty, text.count <= 3, text.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(text), value <= max, text == "0" || !text.hasPrefix("0")
        else {
            throw fail("prefix length /\(text) is not a number from 0 to \(max)")
        }
        return value
    }

    /// RFC 1123: dot-separated labels of letters, digits and hyphens, 1-63 characters each, not starting or
    /// ending with a hyphen, at most 253 characters in all; the last label is not all digits.
    static func isValidHostName(_ name: Substring) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard (1...63).contains(label.utf8.count),
                  label.utf8.allSatisfy({ isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "-") }),
                  label.first != "-", label.last != "-"
            else { return false }
        }
        if let last = labels.last, last.allSatisfy({ $0.isNumber }) { return false }
        return true
    }

    private static func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }

    /// Strict dotted quad: exactly four decimal numbers 0-255, no leading zeros (which some parsers read as octal).
    static func ipv4Bytes(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  part == "0" || !part.hasPrefix("0"), let value = UInt8(part)
            else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    static func ipv6Bytes(_ text: Substring) -> [UInt8]? {
        // inet_pton accepts exactly the RFC 4291 text forms (including an embedded IPv4 tail), nothing else.
        guard text.utf8.count <= 45, text.allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }) else {
            return nil
        }
        var storage = in6_addr()
        let ok = String(text).withCString { inet_pton(AF_INET6, $0, &storage) }
        guard ok == 1 else { return nil }
        return withUnsafeBytes(of: &storage) { Array($0) }
    }

    private static func format(ipv4 bytes: [UInt8]) -> String {
        bytes.map(String.init).joined(separator: ".")
    }

    private static func format(ipv6 bytes: [UInt8]) -> String {
        var storage = in6_addr()
        withUnsafeMutableBytes(of: &storage) { buffer in
            for (i, byte) in bytes.enumerated() { buffer[i] = byte }
        }
        var output = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &storage, &output, socklen_t(output.count)) != nil else {
            return bytes.map { String($0, radix: 16) }.joined(separator: ":")
        }
        let length = output.firstIndex(of: 0) ?? output.count
        return String(decoding: output[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func masked(_ bytes: [UInt8], prefixLength: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bitsKept = min(max(prefixLength - index * 8, 0), 8)
            let mask: UInt8 = bitsKept == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsKept))
            return byte & mask
        }
    }

    private static func hostBitsAreZero(_ bytes: [UInt8], prefixLength: Int) -> Bool {
        masked(bytes, prefixLength: prefixLength) == bytes
    }
}
