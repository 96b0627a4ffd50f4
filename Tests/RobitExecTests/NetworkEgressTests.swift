import Foundation
import Glibc
@testable import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

/// Security invariant 3: a sandbox reaches exactly the TCP destinations of its allowlist, under
/// every runtime, and its network leaves nothing behind. Traffic goes only to test hosts in
/// namespaces of their own (198.18.0.0/15) and to loopback.
extension ExecIntegration {
    @Suite(.serialized)
    struct NetworkEgressTests {
        static let runtimes: [RuntimeKind] = [.runsc, .crun]

        static func require(_ kind: RuntimeKind) throws {
            try TestEnv.require(kind)
            for tool in ["/usr/sbin/ip", "/usr/sbin/nft", "/usr/bin/python3"] where !FileManager.default.isExecutableFile(atPath: tool) {
                try TestEnv.missing("\(tool) is needed by the egress tests")
            }
        }

        static func sandbox(_ kind: RuntimeKind, egress: [Egress], workspace: TempWorkspace) async throws -> Sandbox {
            try await Sandbox.create(SandboxOptions(runtime: kind, workspace: workspace.path, user: TestEnv.user, limits: TestEnv.limits,
                                                    egress: egress))
        }

        @Test("without an allowlist the sandbox has only loopback", arguments: runtimes)
        func noEgressOnlyLoopback(_ kind: RuntimeKind) async throws {
            try Self.require(kind)
            let host = try EgressTestHost(block: EgressTestHost.blocks(1)[0])
            defer { host.remove() }
            let ws = try TempWorkspace()
            let box = try await Self.sandbox(kind, egress: [], workspace: ws)
            defer { Task { await box.destroy() } }
            #expect(box.network == nil)
            let r = try await EgressProbe.run(box, ["tcp,tcp,\(host.address),8080", "udp,udp,\(host.address),9999"])
            #expect(r["tcp"] == "fail")
            #expect(r["udp"] == "fail")
            let ifaces = try await box.exec(.shell("cat /proc/net/dev"))
            #expect(!ifaces.stdout.text.contains("eth0"), "\(ifaces.stdout.text)")
            await box.destroy()
        }

        @Test("the allowlisted host:port answers; nothing else leaves, and denials are counted", arguments: runtimes)
        func allowlist(_ kind: RuntimeKind) async throws {
            try Self.require(kind)
            let (allowed, other) = try EgressTestHost.pair()
            defer {
                allowed.remove()
                other.remove()
            }
            // A name the host resolves (through its /etc/hosts) to the allowed test host.
            let name = "robit-egress-\(UUID().uuidString.prefix(8).lowercased()).test"
            let entry = try HostsFileEntry(address: allowed.address, name: name)
            defer { entry.remove() }
            let ws = try TempWorkspace()
            let box = try await Self.sandbox(kind, egress: [Egress(.host(name), port: 8080)], workspace: ws)
            let id = box.id
            let network = try #require(box.network)
            #expect(network.pinnedHosts == [PinnedHost(address: allowed.address, name: name)])
            #expect(network.rulesetText.contains("\(allowed.address) . 8080"))
            let r = try await EgressProbe.run(box, [
                "tcp,allowed,\(name),8080", "tcp,allowedByAddress,\(allowed.address),8080", "tcp,otherPort,\(allowed.address),8081",
                "tcp,otherHost,\(other.address),8080", "udp,udp,\(allowed.address),9999", "udp,dns,\(allowed.address),53",
                "v6,ipv6", "resolve,pinned,\(name)", "resolve,dnsLookup,example.com", "tcp,hostItself,\(network.lease.hostAddress),22",
            ])
            #expect(r["allowed"] == "ok")
            #expect(r["allowedByAddress"] == "ok")
            #expect(r["otherPort"] == "fail")
            #expect(r["otherHost"] == "fail")
            #expect(r["udp"] == "fail")
            #expect(r["dns"] == "fail")
            #expect(r["ipv6"] == "fail")
            #expect(r["pinned"] == "ok \(allowed.address)")
            #expect(r["dnsLookup"] == "fail")
            #expect(r["hostItself"] == "fail")
            // ICMP from the sandbox's namespace (the test process has the raw socket the sandbox user lacks).
            // Under runsc gVisor takes the namespace's addresses for its own stack: crun only.
            let ping = kind == .runsc ? "none" : try EgressTestHost.sh("""
                ip netns exec \(id) /usr/bin/python3 -c '
                import socket, struct
                s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(2)
                t = sum(struct.unpack("!4H", struct.pack("!BBHHH", 8, 0, 0, 1, 1))); t = (t & 0xffff) + (t >> 16)
                s.sendto(struct.pack("!BBHHH", 8, 0, ~t & 0xffff, 1, 1), ("\(allowed.address)", 0))
                try:
                    s.recvfrom(100); print("reply")
                except Exception:
                    print("none")'
                """)
            #expect(ping.contains("none"), "ICMP got through: \(ping)")

            let denied = await network.deniedSinceLastRead()
            let keys = Set(denied.map { "\($0.address) \($0.proto) \($0.port)" })
            for expected in ["\(allowed.address) tcp 8081", "\(other.address) tcp 8080", "\(allowed.address) udp 9999",
                             "\(allowed.address) udp 53", "\(network.lease.hostAddress) tcp 22"] + (kind == .runsc ? [] : ["\(allowed.address) icmp 0"]) {
                #expect(keys.contains(expected), "\(expected) not among denied: \(denied)")
            }
            #expect(!keys.contains("\(allowed.address) tcp 8080"))
            #expect(await network.deniedSinceLastRead().isEmpty, "a second read reports only what is new")

            let left = await box.destroy()
            #expect(left.isEmpty, "\(left)")
            #expect(try NetworkTraces.of(id).isEmpty)
        }

        @Test("two concurrent sandboxes with different allowlists do not reach each other's hosts", arguments: runtimes)
        func concurrentRuns(_ kind: RuntimeKind) async throws {
            try Self.require(kind)
            let (a, b) = try EgressTestHost.pair()
            defer {
                a.remove()
                b.remove()
            }
            let wsA = try TempWorkspace()
            let wsB = try TempWorkspace()
            async let boxA = Self.sandbox(kind, egress: [Egress(.ipv4(a.address), port: 8080)], workspace: wsA)
            async let boxB = Self.sandbox(kind, egress: [Egress(.ipv4Network(b.address, prefixLength: 32), port: 8080)], workspace: wsB)
            let (x, y) = try await (boxA, boxB)
            #expect(x.network?.lease.index != y.network?.lease.index)
            let probes = ["tcp,a,\(a.address),8080", "tcp,b,\(b.address),8080", "tcp,peer,\(y.network?.lease.sandboxAddress ?? ""),8080"]
            async let rx = EgressProbe.run(x, probes)
            async let ry = EgressProbe.run(y, probes)
            let (resultX, resultY) = try await (rx, ry)
            #expect(resultX["a"] == "ok" && resultX["b"] == "fail" && resultX["peer"] == "fail", "\(resultX)")
            #expect(resultY["a"] == "fail" && resultY["b"] == "ok", "\(resultY)")
            #expect(await x.destroy().isEmpty)
            #expect(await y.destroy().isEmpty)
            #expect(try NetworkTraces.of(x.id).isEmpty && NetworkTraces.of(y.id).isEmpty)
        }

        @Test("IPv6 destinations, and names with only IPv6 addresses, are refused before anything is set up (exit 5)")
        func ipv6Refused() async throws {
            try Self.require(.crun)
            let name = "robit-v6only-\(UUID().uuidString.prefix(8).lowercased()).test"
            let entry = try HostsFileEntry(address: "2001:2::5", name: name)
            defer { entry.remove() }
            let cases: [(Egress, String)] = [
                (Egress(.ipv6("2001:2::2"), port: 8080), "IPv6 destinations"),
                (Egress(.ipv6Network("2001:2::", prefixLength: 48), port: 8080), "IPv6 destinations"),
                (Egress(.host(name), port: 8080), "only IPv6 addresses"),
            ]
            for (entry, says) in cases {
                let ws = try TempWorkspace()
                do {
                    let box = try await Sandbox.create(SandboxOptions(runtime: .crun, workspace: ws.path, user: TestEnv.user, limits: TestEnv.limits,
                                                                      egress: [entry]))
                    await box.destroy()
                    Issue.record("\(entry) was accepted")
                } catch {
                    #expect(error.code == .hostNotReady, "\(entry): \(error)")
                    #expect(error.message.contains(says), "\(entry): \(error.message)")
                }
                #expect(AddressPool().leases().allSatisfy { $0.lease?.pid != getpid() }, "a lease is left after \(entry)")
            }
            // The CLI: exit 5, naming the destination.
            let p = try RobitProcess(["sandbox", "run", "--runtime", "crun", "--egress", "[2001:2::2]:8080", "--", "/bin/true"])
            #expect(await p.wait(timeout: .seconds(60)) == 5, "\(p.stderr)")
            #expect(p.stderr.contains("2001:2::2"), "\(p.stderr)")
        }

        /// A prepared rootfs of the test's own: static busybox, the mount points robit uses, and an /etc
        /// whose hosts maps `name` to `wrongAddress` and whose resolv.conf names `nameserver`: what
        /// robit must mount its own files over.
        static func preparedRootfs(at rootfs: String, name: String, wrongAddress: String, nameserver: String, hosts: Bool = true) throws {
            let fm = FileManager.default
            for dir in ["bin", "etc", "proc", "dev", "sys", "tmp", "work", ".robit", "run", "var/tmp", "root", "home", "mnt", "usr"] {
                try fm.createDirectory(atPath: rootfs + "/" + dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            }
            chmod(rootfs + "/tmp", 0o1777)
            for file in [".robit/init", ".robit/seccomp.bpf"] { _ = fm.createFile(atPath: rootfs + "/" + file, contents: Data()) }
            try fm.copyItem(atPath: "/usr/bin/busybox", toPath: rootfs + "/bin/busybox")
            if hosts { try "127.0.0.1\tlocalhost\n\(wrongAddress)\t\(name)\n".write(toFile: rootfs + "/etc/hosts", atomically: false, encoding: .utf8) }
            try "nameserver \(nameserver)\n".write(toFile: rootfs + "/etc/resolv.conf", atomically: false, encoding: .utf8)
            try "hosts: files dns\n".write(toFile: rootfs + "/etc/nsswitch.conf", atomically: false, encoding: .utf8)
        }

        @Test("a prepared rootfs gets the allowlist's names in /etc/hosts and no nameserver; without /etc/hosts it is refused", arguments: runtimes)
        func preparedRootfsPinsNames(_ kind: RuntimeKind) async throws {
            try Self.require(kind)
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/busybox") else { try TestEnv.missing("/usr/bin/busybox (static) makes the test's rootfs") }
            let (allowed, other) = try EgressTestHost.pair()
            defer {
                allowed.remove()
                other.remove()
            }
            // A name only the sandbox knows: the host does not resolve it, the rootfs's own hosts maps it elsewhere.
            let name = "robit-rootfs-\(UUID().uuidString.prefix(8).lowercased()).test"
            let ws = try TempWorkspace()
            let rootfs = ws.root + "/rootfs"
            try Self.preparedRootfs(at: rootfs, name: name, wrongAddress: other.address, nameserver: other.address)
            let hostsBefore = try String(contentsOfFile: rootfs + "/etc/hosts", encoding: .utf8)
            // The host resolves the name (through its /etc/hosts) to the allowed test host.
            let entry = try HostsFileEntry(address: allowed.address, name: name)
            defer { entry.remove() }
            let options = SandboxOptions(runtime: kind, rootfs: .path(rootfs), workspace: ws.path, user: TestEnv.user, limits: TestEnv.limits,
                                         egress: [Egress(.host(name), port: 8080)])
            let box = try await Sandbox.create(options)
            let etc = try await box.exec(ExecRequest(argv: ["/bin/busybox", "cat", "/etc/hosts", "/etc/resolv.conf"]))
            #expect(etc.stdout.text.contains("\(allowed.address)\t\(name)\n"), "\(etc.stdout.text) \(etc.stderr.text)")
            #expect(!etc.stdout.text.contains(other.address), "the rootfs's own hosts or resolv.conf shows: \(etc.stdout.text)")
            #expect(!etc.stdout.text.contains("nameserver"))
            let fetch = try await box.exec(ExecRequest(argv: ["/bin/busybox", "wget", "-q", "-O", "-", "http://\(name):8080/"]))
            #expect(fetch.stdout.text.contains("hello from \(allowed.address):8080"), "\(fetch.status) \(fetch.stdout.text) \(fetch.stderr.text)")
            let lookup = try await box.exec(ExecRequest(argv: ["/bin/busybox", "timeout", "5", "/bin/busybox", "nslookup", "robit-dns-probe.example"]))
            #expect(lookup.exitCode != 0, "a DNS lookup answered: \(lookup.stdout.text)")
            let denied = await box.network?.deniedSinceLastRead() ?? []
            #expect(!denied.contains { $0.address == other.address && $0.proto == "tcp" }, "the name led to the rootfs's own address: \(denied)")
            #expect(await box.destroy().isEmpty)
            #expect(try String(contentsOfFile: rootfs + "/etc/hosts", encoding: .utf8) == hostsBefore, "the rootfs itself is untouched")

            // Without /etc/hosts in the rootfs the sandbox is not made (exit 5), and nothing of its network is left.
            unlink(rootfs + "/etc/hosts")
            do {
                let box = try await Sandbox.create(options)
                await box.destroy()
                Issue.record("a rootfs without /etc/hosts was accepted with an allowlist")
            } catch {
                #expect(error.code == .createFailed)
                #expect(error.message.contains("etc/hosts"), "\(error.message)")
            }
            #expect(AddressPool().leases().allSatisfy { $0.lease?.pid != getpid() }, "a lease is left")
        }

        /// Runs `body` with net.ipv4.ip_forward at 0 and no robit network on the host (waiting for other
        /// robits' networks to end), and puts the value found back afterwards.
        static func withForwardingOff(_ body: () async throws -> Void) async throws {
            let forwarding = HostForwarding()
            let original = try String(contentsOfFile: HostForwarding.ipv4Sysctl, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            var quiet = false
            for _ in 0..<600 where !quiet {
                // Under robit's lock: no robit can take a lease between the check and the write.
                quiet = try forwarding.locked { () throws(SandboxError) -> Bool in
                    guard forwarding.pool.leases().isEmpty else { return false }
                    unlink(forwarding.savedFile)
                    do { try "0".write(toFile: HostForwarding.ipv4Sysctl, atomically: false, encoding: .utf8) } catch {
                        throw SandboxError(.hostNotReady, "\(error)")
                    }
                    return true
                }
                if !quiet { try await Task.sleep(for: .milliseconds(100)) }
            }
            defer {
                if original == "1" { try? "1".write(toFile: HostForwarding.ipv4Sysctl, atomically: false, encoding: .utf8) }
            }
            guard quiet else { throw TestFailure("other robit networks stayed on the host for a minute: \(forwarding.pool.leases())") }
            try await body()
        }

        static func forwardingValue() -> String {
            ((try? String(contentsOfFile: HostForwarding.ipv4Sysctl, encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
        }

        @Test("IPv4 forwarding is on while a network exists and back off after the last, also after SIGKILL and the sweep")
        func forwardingRestored() async throws {
            try Self.require(.crun)
            let host = try EgressTestHost(block: EgressTestHost.blocks(1)[0])
            defer { host.remove() }
            try await Self.withForwardingOff {
                let wsA = try TempWorkspace()
                let wsB = try TempWorkspace()
                let a = try await Self.sandbox(.crun, egress: [Egress(.ipv4(host.address), port: 8080)], workspace: wsA)
                #expect(Self.forwardingValue() == "1")
                let b = try await Self.sandbox(.crun, egress: [Egress(.ipv4(host.address), port: 8080)], workspace: wsB)
                let r = try await EgressProbe.run(b, ["tcp,allowed,\(host.address),8080"])
                #expect(r["allowed"] == "ok")
                #expect(await a.destroy().isEmpty)
                #expect(Self.forwardingValue() == "1", "b's network still needs it")
                #expect(try await EgressProbe.run(b, ["tcp,allowed,\(host.address),8080"])["allowed"] == "ok")
                #expect(await b.destroy().isEmpty)
                #expect(Self.forwardingValue() == "0", "back to what it was after the last network")
                #expect(!FileManager.default.fileExists(atPath: HostForwarding().savedFile))

                // A SIGKILLed robit: its network, and forwarding, stay until the next sweep removes them.
                let ws = try TempWorkspace()
                let p = try RobitProcess(["sandbox", "run", "--runtime", "crun", "--workspace", ws.path, "--egress", "\(host.address):8080",
                                          "--", "/bin/sleep", "60"])
                var id: String?
                for _ in 0..<300 where id == nil {
                    try await Task.sleep(for: .milliseconds(50))
                    id = AddressPool().leases().first { $0.lease?.pid == p.pid }?.lease?.id
                    if let found = id, !FileManager.default.fileExists(atPath: "/run/netns/\(found)") { id = nil }
                }
                let sandboxID = try #require(id, "robit never set up its network: \(p.stderr)")
                try await Task.sleep(for: .milliseconds(300))
                p.signal(SIGKILL)
                _ = await p.wait(timeout: .seconds(30))
                #expect(Self.forwardingValue() == "1")
                _ = await Janitor.sweep(remove: true)
                #expect(try NetworkTraces.of(sandboxID).isEmpty)
                #expect(Self.forwardingValue() == "0", "the sweep removed the last network")
            }
        }

        @Test("nothing is left after SIGINT, and after SIGKILL once the next start sweeps", arguments: runtimes)
        func interruptedRuns(_ kind: RuntimeKind) async throws {
            try Self.require(kind)
            let host = try EgressTestHost(block: EgressTestHost.blocks(1)[0])
            defer { host.remove() }
            for signal in [SIGINT, SIGKILL] {
                let ws = try TempWorkspace()
                let p = try RobitProcess(["sandbox", "run", "--runtime", kind.rawValue, "--workspace", ws.path, "--egress", "\(host.address):8080",
                                          "--", "/bin/sleep", "60"])
                // Wait for its network: the lease naming its process.
                var id: String?
                for _ in 0..<300 where id == nil {
                    try await Task.sleep(for: .milliseconds(50))
                    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/run/robit-net/leases")) ?? [] {
                        guard let data = FileManager.default.contents(atPath: "/run/robit-net/leases/\(name)"),
                              let lease = try? JSONDecoder().decode(AddressPool.Lease.self, from: data), lease.pid == p.pid else { continue }
                        if FileManager.default.fileExists(atPath: "/run/netns/\(lease.id)") { id = lease.id }
                    }
                }
                let sandboxID = try #require(id, "robit never set up its network: \(p.stderr)")
                try await Task.sleep(for: .milliseconds(500))
                p.signal(signal)
                let code = await p.wait(timeout: .seconds(60))
                if signal == SIGINT {
                    #expect(code == 130, "\(p.stderr)")
                } else {
                    #expect(try !NetworkTraces.of(sandboxID).isEmpty, "SIGKILL leaves the network until the next sweep")
                    _ = await Janitor.sweep(remove: true)
                }
                #expect(try NetworkTraces.of(sandboxID).isEmpty, "after \(signal == SIGINT ? "SIGINT" : "SIGKILL")")
            }
        }
    }
}
