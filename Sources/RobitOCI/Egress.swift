/// One destination a sandbox may open TCP connections to. Host names are resolved on the host when
/// the sandbox starts and replaced by their addresses; everything else is already an address.
public struct Egress: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Destination: Sendable, Hashable, Codable {
        case host(String)
        case ipv4(String)
        case ipv6(String)
        case ipv4Network(String, prefixLength: Int)
        case ipv6Network(String, prefixLength: Int)
    }

    public var destination: Destination
    public var port: UInt16

    public init(_ destination: Destination, port: UInt16) {
        self.destination = destination
        self.port = port
    }

    public var isIPv6: Bool {
        switch destination {
        case .ipv6, .ipv6Network: return true
        case .host, .ipv4, .ipv4Network: return false
        }
    }

    /// The address part as nft writes it (`10.0.0.0/8`, `2001:db8::1`); nil for a host name.
    public var nftAddress: String? {
        switch destination {
        case .host: return nil
        case .ipv4(let a), .ipv6(let a): return a
        case .ipv4Network(let a, let n), .ipv6Network(let a, let n): return "\(a)/\(n)"
        }
    }

    public var description: String {
        switch destination {
        case .host(let name): return "\(name):\(port)"
        case .ipv4(let a): return "\(a):\(port)"
        case .ipv6(let a): return "[\(a)]:\(port)"
        case .ipv4Network(let a, let n): return "\(a)/\(n):\(port)"
        case .ipv6Network(let a, let n): return "[\(a)/\(n)]:\(port)"
        }
    }
}

/// A name of the allowlist and the address it was resolved to on the host.
public struct PinnedHost: Sendable, Hashable, Codable {
    public var address: String
    public var name: String

    public init(address: String, name: String) {
        self.address = address
        self.name = name
    }
}
