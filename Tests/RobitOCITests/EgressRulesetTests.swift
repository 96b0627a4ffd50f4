import Foundation
import RobitOCI
import Testing

@Suite struct EgressRulesetTests {
    let ruleset = EgressRuleset(
        table: EgressRuleset.tableName(id: "robit-0a1b2c3d4e5f"), hostInterface: EgressRuleset.hostInterfaceName(id: "robit-0a1b2c3d4e5f"),
        sandboxAddress: "10.213.0.2",
        allowed: [Egress(.ipv4("198.18.3.2"), port: 8080), Egress(.ipv4Network("198.19.0.0", prefixLength: 16), port: 443),
                  Egress(.ipv4("198.18.3.2"), port: 8080), Egress(.ipv6("2001:db8::1"), port: 443)])

    @Test func namesFitTheKernelsLimits() {
        #expect(ruleset.table == "robit_0a1b2c3d4e5f")
        #expect(ruleset.hostInterface == "rb0a1b2c3d4e5f")
        #expect(ruleset.hostInterface.utf8.count <= 15)
    }

    @Test func allowsExactlyTheListedTCPDestinations() {
        let text = ruleset.text
        #expect(text.contains("set allow4 { type ipv4_addr . inet_service; flags interval; elements = { 198.18.3.2 . 8080, 198.19.0.0/16 . 443 }; }"))
        #expect(text.contains("set allow6 { type ipv6_addr . inet_service; flags interval; elements = { 2001:db8::1 . 443 }; }"))
        #expect(text.contains("iifname \"rb0a1b2c3d4e5f\" ct state new ip saddr 10.213.0.2 meta l4proto tcp ip daddr . tcp dport @allow4 accept"))
        // Nothing but TCP is ever accepted: no udp accept rule, so DNS (udp/53) has nowhere to go.
        let accepts = text.split(separator: "\n").filter { $0.hasSuffix(" accept") }
        #expect(accepts.allSatisfy { $0.contains("ct state established,related") || $0.contains("meta l4proto tcp") })
        #expect(!text.contains("udp dport"))
    }

    @Test func everythingElseIsCountedAndDropped() {
        let text = ruleset.text
        #expect(text.contains("update @denied4 { ip daddr . meta l4proto . th dport } drop"))
        #expect(text.contains("update @denied6 { ip6 daddr . meta l4proto . th dport } drop"))
        #expect(text.contains("chain input {"))
        #expect(text.contains("oifname \"rb0a1b2c3d4e5f\" drop"))
        #expect(text.contains("ip saddr 10.213.0.2 oifname != \"rb0a1b2c3d4e5f\" masquerade"))
        // The last rule of each filter chain drops whatever came from the sandbox.
        for chain in ["forward", "input"] {
            let body = text.components(separatedBy: "chain \(chain) {")[1].components(separatedBy: "\n  }")[0]
            #expect(body.contains("iifname \"rb0a1b2c3d4e5f\" drop"))
        }
    }

    @Test func emptyAllowlistHasEmptySets() {
        let empty = EgressRuleset(table: "robit_x", hostInterface: "rbx", sandboxAddress: "10.213.0.6", allowed: [])
        #expect(empty.text.contains("set allow4 { type ipv4_addr . inet_service; flags interval; }"))
    }

    /// `nft -c` parses and checks the ruleset against the kernel without loading it.
    @Test func nftAcceptsTheText() throws {
        guard geteuid() == 0, let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("nft (and root) are needed under CI=true") }
            return
        }
        let file = NSTemporaryDirectory() + "robit-egress-\(getpid()).nft"
        try ruleset.text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: nft)
        p.arguments = ["-c", "-f", file]
        let err = Pipe()
        p.standardError = err
        try p.run()
        // Read to the end before waiting: a full pipe would block nft, and the wait with it.
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "nft -c rejected the ruleset: \(message)")
    }
}
