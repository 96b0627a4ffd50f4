import Foundation
import Glibc
import RobitExec
import RobitOCI

/// A test host in a network namespace of its own, joined to the host by a veth pair on a /30 of
/// 198.18.0.0/15 (addresses for benchmarks and tests, never routed anywhere else). It serves HTTP
/// on TCP 8080 and 8081 and answers UDP on 53 and 9999.
final class EgressTestHost: @unchecked Sendable {
    let namespace: String
    let link: String
    let address: String
    let hostSide: String
    private let server = Foundation.Process()

    static let serverScript = """
        import socket, socketserver, http.server, threading, sys
        addr = sys.argv[1]
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = ("hello from %s:%d\\n" % (addr, self.server.server_address[1])).encode()
                self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
            def log_message(self, *a): pass
        for port in (8080, 8081):
            s = socketserver.ThreadingTCPServer((addr, port), H)
            threading.Thread(target=s.serve_forever, daemon=True).start()
        def udp(port):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, port))
            while True:
                data, peer = u.recvfrom(2048); u.sendto(data, peer)
        for port in (53, 9999):
            threading.Thread(target=udp, args=(port,), daemon=True).start()
        print("ready", flush=True)
        threading.Event().wait()
        """

    /// `block` picks the /30: 198.18.<block / 64>.<(block % 64) * 4>.
    init(block: Int) throws {
        let tag = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        namespace = "robtest-" + tag
        link = "rt" + tag
        let base = block * 4
        hostSide = "198.18.\(base >> 8).\((base & 0xff) + 1)"
        address = "198.18.\(base >> 8).\((base & 0xff) + 2)"
        try Self.sh("""
            ip netns add \(namespace)
            ip link add \(link) type veth peer name eth0 netns \(namespace)
            ip addr add \(hostSide)/30 dev \(link)
            ip link set \(link) up
            ip -n \(namespace) addr add \(address)/30 dev eth0
            ip -n \(namespace) link set eth0 up
            ip -n \(namespace) link set lo up
            ip -n \(namespace) route add default via \(hostSide)
            """)
        server.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        server.arguments = ["netns", "exec", namespace, "/usr/bin/python3", "-c", Self.serverScript, address]
        let out = Pipe()
        server.standardOutput = out
        server.standardError = FileHandle.nullDevice
        try server.run()
        let line = out.fileHandleForReading.availableData
        guard String(decoding: line, as: UTF8.self).hasPrefix("ready") else { throw TestFailure("the test host's servers did not start") }
    }

    func remove() {
        if server.isRunning { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        _ = try? Self.sh("ip netns delete \(namespace) 2>/dev/null; ip link delete \(link) 2>/dev/null; true")
    }

    deinit { remove() }

    @discardableResult
    static func sh(_ script: String) throws -> String {
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-ec", script]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw TestFailure("\(script): \(text)") }
        return text
    }

    /// Distinct random blocks for the hosts of one test.
    static func blocks(_ n: Int) -> [Int] {
        var picked: [Int] = []
        while picked.count < n {
            let b = Int.random(in: 1..<2000)
            if !picked.contains(b) { picked.append(b) }
        }
        return picked
    }

    /// Two test hosts on distinct blocks; the caller removes both.
    static func pair() throws -> (EgressTestHost, EgressTestHost) {
        let blocks = blocks(2)
        let first = try EgressTestHost(block: blocks[0])
        do {
            return (first, try EgressTestHost(block: blocks[1]))
        } catch {
            first.remove()
            throw error
        }
    }
}

/// A line `ADDRESS<TAB>NAME` appended to the host's /etc/hosts for one test (so the host resolves
/// the name), taken out again by `remove()`.
struct HostsFileEntry {
    let line: String
    let original: String

    init(address: String, name: String) throws {
        line = "\(address)\t\(name)\n"
        original = try String(contentsOfFile: "/etc/hosts", encoding: .utf8)
        try (original + line).write(toFile: "/etc/hosts", atomically: false, encoding: .utf8)
    }

    func remove() {
        let now = (try? String(contentsOfFile: "/etc/hosts", encoding: .utf8)) ?? original
        try? now.replacingOccurrences(of: line, with: "").write(toFile: "/etc/hosts", atomically: false, encoding: .utf8)
    }
}

/// The probes run inside a sandbox: one line per probe, `NAME ok` or `NAME fail`.
enum EgressProbe {
    static let script = """
        import socket, sys
        def tcp(name, host, port):
            try:
                s = socket.create_connection((host, port), timeout=2)
                s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n"); data = s.recv(200); s.close()
                print(name, "ok" if b"200" in data else "fail")
            except Exception as e:
                print(name, "fail")
        def udp(name, host, port):
            try:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
                u.sendto(b"ping", (host, port)); u.recvfrom(100); print(name, "ok")
            except Exception:
                print(name, "fail")
        def v6(name):
            try:
                s = socket.create_connection(("2001:db8::2", 8080), timeout=2); print(name, "ok")
            except Exception:
                print(name, "fail")
        def resolve(name, host):
            try:
                print(name, "ok", socket.gethostbyname(host))
            except Exception:
                print(name, "fail")
        for arg in sys.argv[1:]:
            kind, name, *rest = arg.split(",")
            if kind == "tcp": tcp(name, rest[0], int(rest[1]))
            elif kind == "udp": udp(name, rest[0], int(rest[1]))
            elif kind == "v6": v6(name)
            elif kind == "resolve": resolve(name, rest[0])
        """

    /// Runs the probes; returns each probe's result line without its name.
    static func run(_ box: Sandbox, _ probes: [String]) async throws -> [String: String] {
        let r = try await box.exec(ExecRequest(argv: ["/usr/bin/python3", "-c", script] + probes, timeout: .seconds(60)))
        var results: [String: String] = [:]
        for line in r.stdout.text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { results[String(parts[0])] = String(parts[1]) }
        }
        guard results.count == probes.count else { throw TestFailure("probe output: \(r.stdout.text) \(r.stderr.text)") }
        return results
    }
}

/// What a sandbox's network leaves on the host, by sandbox id.
enum NetworkTraces {
    static func of(_ id: String) throws -> [String] {
        var left: [String] = []
        if FileManager.default.fileExists(atPath: "/run/netns/\(id)") { left.append("netns \(id)") }
        let dev = EgressRuleset.hostInterfaceName(id: id)
        if FileManager.default.fileExists(atPath: "/sys/class/net/\(dev)") { left.append("veth \(dev)") }
        if try EgressTestHost.sh("nft list tables").contains(EgressRuleset.tableName(id: id)) { left.append("nft table") }
        let leases = (try? FileManager.default.contentsOfDirectory(atPath: "/run/robit-net/leases")) ?? []
        for name in leases where ((try? String(contentsOfFile: "/run/robit-net/leases/\(name)", encoding: .utf8)) ?? "").contains("\"\(id)\"") {
            left.append("lease \(name)")
        }
        return left
    }
}
