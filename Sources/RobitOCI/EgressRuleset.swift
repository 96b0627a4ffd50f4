/// The nftables ruleset of one sandbox with an egress allowlist, as `nft -f` text.
///
/// One `inet` table per sandbox, keyed on the host side of the sandbox's veth pair, so it sees the
/// packets of every runtime (gVisor's own network stack sends from inside the namespace without
/// passing its OUTPUT hooks, but every packet crosses the veth):
/// - forward: TCP from the sandbox's address to a listed address and port is accepted, and so are
///   replies of accepted connections; everything else from the sandbox (other ports and hosts, UDP
///   and therefore DNS, ICMP, IPv6) is counted per destination in the `denied4`/`denied6` sets and
///   dropped. Nothing may open a connection into the sandbox.
/// - input: the host itself is not a destination: everything the sandbox sends to the host's own
///   addresses is counted and dropped.
/// - postrouting: the sandbox's address is masqueraded behind the host's.
public struct EgressRuleset: Sendable, Equatable {
    /// The nft table, `robit_<hex>`.
    public var table: String
    /// Host-side veth of the sandbox.
    public var hostInterface: String
    /// The sandbox's IPv4 address.
    public var sandboxAddress: String
    /// Resolved destinations only (no `.host`).
    public var allowed: [Egress]

    public init(table: String, hostInterface: String, sandboxAddress: String, allowed: [Egress]) {
        self.table = table
        self.hostInterface = hostInterface
        self.sandboxAddress = sandboxAddress
        self.allowed = allowed
    }

    /// Names of the per-sandbox resources derived from a sandbox id (`robit-<12 hex>`).
    public static func tableName(id: String) -> String { "robit_" + suffix(id) }
    /// Interface names are at most 15 bytes: `rb` + the id's 12 hex digits.
    public static func hostInterfaceName(id: String) -> String { "rb" + suffix(id) }

    static func suffix(_ id: String) -> String {
        String(id.hasPrefix("robit-") ? id.dropFirst("robit-".count) : Substring(id)).filter { $0.isLetter || $0.isNumber }
    }

    /// Size of each per-destination counter set; further denied destinations are dropped uncounted.
    public static let deniedSetSize = 4096

    public var text: String {
        let iif = "iifname \"\(hostInterface)\""
        let oif = "oifname \"\(hostInterface)\""
        func elements(_ v6: Bool) -> String {
            let items = allowed.filter { $0.isIPv6 == v6 }.compactMap { e in e.nftAddress.map { "\($0) . \(e.port)" } }
            let unique = items.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            return unique.isEmpty ? "" : " elements = { \(unique.joined(separator: ", ")) };"
        }
        let counterSet = { (name: String, type: String) in
            "  set \(name) { type \(type) . inet_proto . inet_service; size \(Self.deniedSetSize); flags dynamic; counter; }\n"
        }
        var t = "# robit egress ruleset: TCP to the listed destinations only; everything else is counted and dropped.\n"
        t += "table inet \(table) {\n"
        t += "  set allow4 { type ipv4_addr . inet_service; flags interval;\(elements(false)) }\n"
        t += "  set allow6 { type ipv6_addr . inet_service; flags interval;\(elements(true)) }\n"
        t += counterSet("denied4", "ipv4_addr")
        t += counterSet("denied6", "ipv6_addr")
        t += "  chain forward {\n"
        t += "    type filter hook forward priority filter - 10; policy accept;\n"
        t += "    \(iif) ct state established,related accept\n"
        t += "    \(iif) ct state new ip saddr \(sandboxAddress) meta l4proto tcp ip daddr . tcp dport @allow4 accept\n"
        t += "    \(iif) ct state new meta nfproto ipv6 meta l4proto tcp ip6 daddr . tcp dport @allow6 accept\n"
        t += countAndDrop(iif)
        t += "    \(oif) ct state established,related accept\n"
        t += "    \(oif) drop\n"
        t += "  }\n"
        t += "  chain input {\n"
        t += "    type filter hook input priority filter - 10; policy accept;\n"
        t += countAndDrop(iif)
        t += "  }\n"
        t += "  chain postrouting {\n"
        t += "    type nat hook postrouting priority srcnat; policy accept;\n"
        t += "    ip saddr \(sandboxAddress) oifname != \"\(hostInterface)\" masquerade\n"
        t += "  }\n"
        t += "}\n"
        return t
    }

    /// Count per destination (address, protocol, port; port 0 for protocols without ports), then drop.
    private func countAndDrop(_ iif: String) -> String {
        var t = ""
        t += "    \(iif) meta l4proto { tcp, udp } update @denied4 { ip daddr . meta l4proto . th dport } drop\n"
        t += "    \(iif) meta nfproto ipv4 update @denied4 { ip daddr . meta l4proto . 0 } drop\n"
        t += "    \(iif) meta nfproto ipv6 meta l4proto { tcp, udp } update @denied6 { ip6 daddr . meta l4proto . th dport } drop\n"
        t += "    \(iif) meta nfproto ipv6 update @denied6 { ip6 daddr . meta l4proto . 0 } drop\n"
        t += "    \(iif) drop\n"
        return t
    }
}
