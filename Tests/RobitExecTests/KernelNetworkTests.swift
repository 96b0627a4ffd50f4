import Foundation
import Glibc
import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

/// `KernelNetwork`: the rtnetlink and libnftables calls behind a sandbox's network, and their error
/// paths. Names are the tests' own (`rkt…`), addresses from 198.18.0.0/15.
extension ExecIntegration {
    @Suite(.serialized)
    struct KernelNetworkTests {
        static func require() throws {
            guard TestEnv.isRoot else { try TestEnv.missing("network namespaces and veths need root") }
            for tool in ["/usr/sbin/ip", "/usr/sbin/nft"] where !FileManager.default.isExecutableFile(atPath: tool) {
                try TestEnv.missing("\(tool) is needed to check what KernelNetwork made")
            }
        }

        /// A TCP connection from namespace `ns` to port 9 of `address`: "refused" (reached, nothing listens), "timeout" or another error.
        static func connect(from ns: String, to address: String) throws -> String {
            try EgressTestHost.sh("""
                ip netns exec \(ns) /usr/bin/python3 -c '
                import socket
                try:
                    socket.create_connection(("\(address)", 9), timeout=1); print("connected")
                except ConnectionRefusedError:
                    print("refused")
                except (socket.timeout, TimeoutError):
                    print("timeout")
                except OSError as e:
                    print("error", e)'
                """).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        struct Names {
            let tag = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
            var namespace: String { "rkt-" + tag }
            var path: String { "/run/netns/" + namespace }
            var link: String { "rkt" + tag }
            let block = Int.random(in: 2000..<4000)
            var hostAddress: String { address(1) }
            var sandboxAddress: String { address(2) }
            func address(_ offset: Int) -> String {
                let v = block * 4 + offset
                return "198.18.\(v >> 8).\(v & 0xff)"
            }
            func cleanUp() {
                _ = try? KernelNetwork.deleteLink(link)
                _ = try? KernelNetwork.removeNamespace(path)
            }
        }

        @Test("create makes namespace, veth pair, addresses, links up and the default route; teardown removes them")
        func createAndRemove() throws {
            try Self.require()
            let n = Names()
            defer { n.cleanUp() }
            try KernelNetwork.create(namespacePath: n.path, hostInterface: n.link, hostAddress: n.hostAddress, sandboxAddress: n.sandboxAddress,
                                     prefixLength: 30)
            let host = try EgressTestHost.sh("ip -o -4 addr show dev \(n.link); ip -o link show dev \(n.link)")
            #expect(host.contains("inet \(n.hostAddress)/30"), "\(host)")
            #expect(host.contains("state UP") || host.contains(",UP"), "\(host)")
            let v6 = try String(contentsOfFile: "/proc/sys/net/ipv6/conf/\(n.link)/disable_ipv6", encoding: .utf8)
            #expect(v6.hasPrefix("1"))
            let inside = try EgressTestHost.sh("ip -n \(n.namespace) -o -4 addr; ip -n \(n.namespace) -o link; ip -n \(n.namespace) route")
            #expect(inside.contains("eth0    inet \(n.sandboxAddress)/30") || inside.contains("eth0 inet \(n.sandboxAddress)/30"), "\(inside)")
            #expect(inside.contains("lo    inet 127.0.0.1/8") || inside.contains("lo inet 127.0.0.1/8"), "\(inside)")
            #expect(inside.contains("default via \(n.hostAddress) dev eth0"), "\(inside)")
            #expect(!inside.contains(n.link), "the host end stays on the host: \(inside)")
            // The link works: the namespace reaches the host's end (refused: nothing listens there), until the host end is down.
            #expect(try Self.connect(from: n.namespace, to: n.hostAddress) == "refused")
            #expect(try KernelNetwork.setLinkDown(n.link))
            #expect(try Self.connect(from: n.namespace, to: n.hostAddress) == "timeout")

            #expect(try KernelNetwork.deleteLink(n.link))
            #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/\(n.link)"))
            #expect(try KernelNetwork.removeNamespace(n.path))
            #expect(!FileManager.default.fileExists(atPath: n.path))
            #expect(try !KernelNetwork.deleteLink(n.link), "a second delete finds nothing")
            #expect(try !KernelNetwork.removeNamespace(n.path))
        }

        @Test("a host interface name that exists already fails naming the veth step, and leaves no new link")
        func linkExists() throws {
            try Self.require()
            let n = Names()
            defer { n.cleanUp() }
            let before = try EgressTestHost.sh("ip -o link | wc -l")
            let error = #expect(throws: SandboxError.self) {
                try KernelNetwork.create(namespacePath: n.path, hostInterface: "lo", hostAddress: n.hostAddress, sandboxAddress: n.sandboxAddress,
                                         prefixLength: 30)
            }
            #expect(error?.code == .hostNotReady)
            #expect(error?.message.contains("create the veth pair") == true, "\(String(describing: error))")
            #expect(error?.message.contains("File exists") == true, "\(String(describing: error))")
            #expect(try EgressTestHost.sh("ip -o link | wc -l") == before)
            // What was made (the namespace) is the caller's to remove, and removable.
            #expect(try KernelNetwork.removeNamespace(n.path))
        }

        @Test("a namespace file that exists already is not taken over")
        func namespaceExists() throws {
            try Self.require()
            let n = Names()
            defer { n.cleanUp() }
            try FileManager.default.createDirectory(atPath: "/run/netns", withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: n.path, contents: nil))
            let error = #expect(throws: SandboxError.self) {
                try KernelNetwork.create(namespacePath: n.path, hostInterface: n.link, hostAddress: n.hostAddress, sandboxAddress: n.sandboxAddress,
                                         prefixLength: 30)
            }
            #expect(error?.message.contains("create the namespace file") == true, "\(String(describing: error))")
            #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/\(n.link)"))
        }

        @Test("bad names and addresses are refused before anything is made")
        func badInput() throws {
            try Self.require()
            let n = Names()
            defer { n.cleanUp() }
            let long = #expect(throws: SandboxError.self) {
                try KernelNetwork.create(namespacePath: n.path, hostInterface: "rkt-name-too-long-for-linux", hostAddress: n.hostAddress,
                                         sandboxAddress: n.sandboxAddress, prefixLength: 30)
            }
            #expect(long?.message.contains("check the names") == true, "\(String(describing: long))")
            let address = #expect(throws: SandboxError.self) {
                try KernelNetwork.create(namespacePath: n.path, hostInterface: n.link, hostAddress: "198.18.0.300", sandboxAddress: n.sandboxAddress,
                                         prefixLength: 30)
            }
            #expect(address?.code == .invalidInput)
            #expect(!FileManager.default.fileExists(atPath: n.path))
        }

        @Test("nft commands run in-process; errors carry nft's message, and a missing table is told apart")
        func nft() throws {
            try Self.require()
            let table = "rkt_" + Names().tag
            defer { _ = try? KernelNetwork.nft("delete table inet \(table)") }
            _ = try KernelNetwork.nft("table inet \(table) {\n set s { type ipv4_addr; elements = { 198.18.0.1 }; }\n}\n")
            #expect(try KernelNetwork.nft("list tables").contains("table inet \(table)"))
            #expect(try EgressTestHost.sh("nft list tables").contains("table inet \(table)"))
            let json = try KernelNetwork.nft("list table inet \(table)", json: true)
            #expect(json.hasPrefix("{\"nftables\""), "\(json)")
            #expect(json.contains("198.18.0.1"))

            let syntax = #expect(throws: NftError.self) { try KernelNetwork.nft("table inet \(table) { nonsense }") }
            #expect(syntax?.libraryMissing == false)
            #expect(syntax?.message.contains("syntax error") == true, "\(String(describing: syntax))")
            #expect(syntax?.isNotFound == false)

            _ = try KernelNetwork.nft("delete table inet \(table)")
            let gone = #expect(throws: NftError.self) { try KernelNetwork.nft("delete table inet \(table)") }
            #expect(gone?.isNotFound == true, "\(String(describing: gone))")
        }

        @Test("a sandbox whose network cannot be made fails closed, names the step and leaves nothing")
        func sandboxSetupFails() async throws {
            try Self.require()
            try TestEnv.require(.crun)
            let id = Sandbox.newID()
            let dev = EgressRuleset.hostInterfaceName(id: id)
            // Something already holds the host end's name.
            try EgressTestHost.sh("ip link add \(dev) type veth peer name rkt\(dev.dropFirst(2).prefix(8))")
            defer { _ = try? KernelNetwork.deleteLink(dev) }
            let ws = try TempWorkspace()
            let error = await #expect(throws: SandboxError.self) {
                _ = try await Sandbox.create(SandboxOptions(runtime: .crun, workspace: ws.path, user: TestEnv.user, limits: TestEnv.limits,
                                                            egress: [Egress(.ipv4("198.18.0.2"), port: 8080)]), id: id)
            }
            #expect(error?.code == .hostNotReady, "exit 5")
            #expect(error?.message.contains("create the veth pair") == true, "\(String(describing: error))")
            #expect(try NetworkTraces.of(id).isEmpty)
        }
    }
}
