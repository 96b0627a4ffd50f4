import Foundation
import RobitOCI

/// Resolves the host names of an allowlist once, on the host, when the sandbox starts. The sandbox
/// gets the addresses (in its nft allowlist and its /etc/hosts) and no DNS at all.
enum EgressResolver {
    /// The allowlist with every name replaced by its IPv4 addresses, and the names to pin.
    static func resolve(_ egress: [Egress]) throws(SandboxError) -> (allowed: [Egress], hosts: [PinnedHost]) {
        var allowed: [Egress] = []
        var hosts: [PinnedHost] = []
        var cache: [String: [String]] = [:]
        for entry in egress {
            if entry.isIPv6 {
                throw SandboxError(.hostNotReady, "egress to IPv6 destinations (\(entry)) is not supported yet: sandboxes get IPv4 only; list IPv4 addresses or host names instead")
            }
            guard case .host(let name) = entry.destination else {
                allowed.append(entry)
                continue
            }
            let addresses: [String]
            if let known = cache[name] {
                addresses = known
            } else {
                addresses = try ipv4Addresses(of: name)
                cache[name] = addresses
                for address in addresses { hosts.append(PinnedHost(address: address, name: name)) }
            }
            for address in addresses { allowed.append(Egress(.ipv4(address), port: entry.port)) }
        }
        return (allowed, hosts)
    }

    static func ipv4Addresses(of name: String) throws(SandboxError) -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &list)
        guard rc == 0, let first = list else {
            if hasIPv6Address(name) {
                throw SandboxError(.hostNotReady, "\(name) has only IPv6 addresses on the host; egress to IPv6 destinations is not supported yet (sandboxes get IPv4 only): list an IPv4 address or a name with one")
            }
            let why = rc == 0 ? "no address" : String(cString: gai_strerror(rc))
            throw SandboxError(.hostNotReady, "cannot resolve \(name) on the host (\(why)); egress names are resolved once when the sandbox starts: check the name or list its address")
        }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let n = node {
            if n.pointee.ai_family == AF_INET, let sa = n.pointee.ai_addr {
                var sin = sockaddr_in()
                memcpy(&sin, sa, MemoryLayout<sockaddr_in>.size)
                var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                if inet_ntop(AF_INET, &sin.sin_addr, &buffer, socklen_t(buffer.count)) != nil {
                    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    if !addresses.contains(text) { addresses.append(text) }
                }
            }
            node = n.pointee.ai_next
        }
        guard !addresses.isEmpty else {
            throw SandboxError(.hostNotReady, "\(name) has no IPv4 address on the host; sandboxes get IPv4 only")
        }
        return addresses
    }
}

extension EgressResolver {
    /// Whether `name` resolves to an IPv6 address on the host (to say why a name without IPv4 is refused).
    static func hasIPv6Address(_ name: String) -> Bool {
        var hints = addrinfo()
        hints.ai_family = AF_INET6
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &list) == 0, list != nil else { return false }
        freeaddrinfo(list)
        return true
    }
}

/// Attempts the ruleset dropped, for one destination.
public struct DeniedDestination: Sendable, Hashable, CustomStringConvertible {
    struct Key: Hashable, Comparable {
        var address: String
        var proto: String
        var port: UInt16
        static func < (a: Key, b: Key) -> Bool { (a.address, a.proto, a.port) < (b.address, b.proto, b.port) }
    }

    public var address: String
    /// `tcp`, `udp`, `icmp`, `ipv6-icmp`, ... (or the protocol number).
    public var proto: String
    /// The destination port; 0 for protocols without ports (ICMP).
    public var port: UInt16
    /// Packets dropped (a retried TCP connection counts each SYN).
    public var packets: UInt64

    init(key: Key, packets: UInt64) {
        address = key.address
        proto = key.proto
        port = key.port
        self.packets = packets
    }

    public var description: String {
        let host = address.contains(":") ? "[\(address)]" : address
        return port == 0 ? "\(host) \(proto): \(packets)" : "\(host):\(port) \(proto): \(packets)"
    }

    /// Packet counts per destination from `nft -j list table` of a robit egress table.
    static func parse(nftJSON data: Data) -> [Key: UInt64] {
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let items = root["nftables"] as? [[String: Any]] else { return [:] }
        var counts: [Key: UInt64] = [:]
        for item in items {
            guard let set = item["set"] as? [String: Any], let name = set["name"] as? String, name.hasPrefix("denied"),
                  let elements = set["elem"] as? [Any] else { continue }
            for case let element as [String: Any] in elements {
                guard let body = element["elem"] as? [String: Any],
                      let parts = (body["val"] as? [String: Any])?["concat"] as? [Any], parts.count == 3,
                      let address = parts[0] as? String,
                      let packets = ((body["counter"] as? [String: Any])?["packets"] as? NSNumber)?.uint64Value else { continue }
                let proto = (parts[1] as? String) ?? (parts[1] as? NSNumber).map { "\($0)" } ?? "?"
                let port = UInt16(truncatingIfNeeded: (parts[2] as? NSNumber)?.intValue ?? 0)
                counts[Key(address: address, proto: proto, port: port), default: 0] += packets
            }
        }
        return counts
    }
}
