import Foundation
import Synchronization
import RobitOCI

/// The network of a sandbox with an egress allowlist: a network namespace `/run/netns/<id>` joined
/// to the host by a veth pair (`rb<hex>` on the host, `eth0` inside) on a /30 link from
/// `AddressPool`, and the nft table of `EgressRuleset` on the host side of the pair. Without an
/// allowlist there is none of this: the runtime gives the sandbox a namespace with only loopback.
public final class SandboxNetwork: Sendable {
    public let id: String
    public let lease: AddressPool.Lease
    public let ruleset: EgressRuleset
    /// Names of the allowlist and the addresses they were resolved to, pinned in the sandbox's /etc/hosts.
    public let pinnedHosts: [PinnedHost]
    let pool: AddressPool
    private let lastDenied = Mutex<[DeniedDestination.Key: UInt64]>([:])

    public var namespacePath: String { Self.namespacePath(id: id) }
    public var hostInterface: String { ruleset.hostInterface }
    /// The nft text of the ruleset, as loaded: what `robit bundle` writes and the audit log hashes.
    public var rulesetText: String { ruleset.text }

    static func namespacePath(id: String) -> String { "/run/netns/" + id }

    private init(id: String, lease: AddressPool.Lease, ruleset: EgressRuleset, pinnedHosts: [PinnedHost], pool: AddressPool) {
        self.id = id
        self.lease = lease
        self.ruleset = ruleset
        self.pinnedHosts = pinnedHosts
        self.pool = pool
    }

    /// Resolves the allowlist, leases a link and sets up namespace, veth, addresses, routes and the
    /// nft table. Anything that cannot be set up is an error (exit 5) after everything done so far
    /// is removed again: there is never a sandbox with more network than asked.
    static func setUp(id: String, egress: [Egress], workDirectory: String, pool: AddressPool = AddressPool()) async throws(SandboxError) -> SandboxNetwork {
        let (resolved, hosts) = try EgressResolver.resolve(egress)
        let tools = try NetworkTools.locate()
        let lease = try pool.acquire(id: id)
        let ruleset = EgressRuleset(table: EgressRuleset.tableName(id: id), hostInterface: EgressRuleset.hostInterfaceName(id: id),
                                    sandboxAddress: lease.sandboxAddress, allowed: resolved)
        let network = SandboxNetwork(id: id, lease: lease, ruleset: ruleset, pinnedHosts: hosts, pool: pool)
        do {
            try network.configure(tools: tools, workDirectory: workDirectory)
        } catch {
            _ = await tearDown(id: id, pool: pool)
            throw error
        }
        return network
    }

    private func configure(tools: NetworkTools, workDirectory: String) throws(SandboxError) {
        let dev = ruleset.hostInterface
        let prefix = AddressPool.Lease.prefixLength
        let rulesFile = workDirectory + "/egress.nft"
        let hostBatch = workDirectory + "/net-host.ip"
        let nsBatch = workDirectory + "/net-ns.ip"
        do {
            try OCIBundle.write(Data(ruleset.text.utf8), to: rulesFile, mode: 0o600)
            try OCIBundle.write(Data("""
                netns add \(id)
                link add \(dev) type veth peer name eth0 netns \(id)
                addr add \(lease.hostAddress)/\(prefix) dev \(dev)
                link set \(dev) up

                """.utf8), to: hostBatch, mode: 0o600)
            try OCIBundle.write(Data("""
                link set lo up
                addr add \(lease.sandboxAddress)/\(prefix) dev eth0
                link set eth0 up
                route add default via \(lease.hostAddress)

                """.utf8), to: nsBatch, mode: 0o600)
        } catch {
            throw SandboxError(.createFailed, "cannot write the network setup files in \(workDirectory): \(error.localizedDescription)")
        }
        defer {
            unlink(hostBatch)
            unlink(nsBatch)
        }
        try Self.enableForwarding()
        // The table names the interface, not its index: it can be loaded while the link is made.
        let nft = ChildProcess(executable: tools.nft, arguments: ["-f", rulesFile], outputLimit: 1 << 16, timeout: .seconds(30), interruptible: false)
        let nftResult = Mutex<Result<ChildProcess.Result, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let r = Result { try nft.runBlocking() }
            nftResult.withLock { $0 = r }
            done.signal()
        }.start()
        func ip(_ args: [String]) throws(SandboxError) {
            let r: ChildProcess.Result
            do {
                r = try ChildProcess(executable: tools.ip, arguments: args, outputLimit: 1 << 16, timeout: .seconds(30), interruptible: false).runBlocking()
            } catch {
                done.wait()
                throw SandboxError(.hostNotReady, "cannot run ip: \(error)")
            }
            guard r.status == .exited(0) else {
                done.wait()
                throw SandboxError(.hostNotReady, "could not set up the sandbox's network (ip \(args.joined(separator: " "))): \(r.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines)); egress allowlists need veth, network namespace and nftables support")
            }
        }
        try ip(["-batch", hostBatch])
        // No IPv6 on the host's end: nothing of the host answers the sandbox there.
        _ = try? OCIBundle.write(Data("1".utf8), to: "/proc/sys/net/ipv6/conf/\(dev)/disable_ipv6", mode: 0o644)
        try ip(["-n", id, "-batch", nsBatch])
        done.wait()
        switch nftResult.withLock({ $0 }) {
        case .success(let r) where r.status == .exited(0):
            return
        case .success(let r):
            throw SandboxError(.hostNotReady, "nft could not load the sandbox's egress ruleset (\(r.status)): \(r.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines)); the kernel needs nf_tables with inet nat and dynamic sets")
        case .failure(let error):
            throw SandboxError(.hostNotReady, "cannot run nft: \(error)")
        case nil:
            throw SandboxError(.hostNotReady, "nft did not run")
        }
    }

    /// IPv4 forwarding, without which nothing leaves the namespace. robit turns it on and never off:
    /// other sandboxes (and other software) may rely on it, and robit's tables drop whatever is not allowed.
    static func enableForwarding() throws(SandboxError) {
        let path = "/proc/sys/net/ipv4/ip_forward"
        if (try? String(contentsOfFile: path, encoding: .utf8))?.hasPrefix("1") == true { return }
        do {
            try OCIBundle.write(Data("1".utf8), to: path, mode: 0o644)
        } catch {
            throw SandboxError(.hostNotReady, "cannot enable IPv4 forwarding (\(path)): \(error.localizedDescription); run `sysctl -w net.ipv4.ip_forward=1`")
        }
    }

    /// Denied attempts per destination since the previous call (since setup for the first).
    public func deniedSinceLastRead() async -> [DeniedDestination] {
        guard let tools = try? NetworkTools.locate(),
              let r = try? await ChildProcess(executable: tools.nft, arguments: ["-j", "list", "table", "inet", ruleset.table],
                                              outputLimit: 8 << 20, timeout: .seconds(20), interruptible: false).run(),
              r.status == .exited(0) else { return [] }
        let current = DeniedDestination.parse(nftJSON: r.stdout.data)
        return lastDenied.withLock { last in
            var delta: [DeniedDestination] = []
            for (key, packets) in current.sorted(by: { $0.key < $1.key }) {
                let before = last[key] ?? 0
                if packets > before { delta.append(DeniedDestination(key: key, packets: packets - before)) }
            }
            last = current
            return delta
        }
    }

    /// Removes the nft table, the namespace, the veth pair and the lease of sandbox `id`, whatever
    /// of them exists. Cheap (no process started) when the sandbox had no network. Returns what is left.
    static func tearDown(id: String, pool: AddressPool = AddressPool()) async -> [String] {
        let dev = EgressRuleset.hostInterfaceName(id: id)
        let leases = pool.leases().filter { $0.lease?.id == id }
        let hasNamespace = FileManager.default.fileExists(atPath: namespacePath(id: id))
        let hasLink = FileManager.default.fileExists(atPath: "/sys/class/net/\(dev)")
        guard !leases.isEmpty || hasNamespace || hasLink else { return [] }
        var problems: [String] = []
        guard let tools = try? NetworkTools.locate() else {
            return ["ip or nft is missing: cannot remove the network of \(id)"]
        }
        func run(_ tool: String, _ args: [String]) async -> ChildProcess.Result? {
            try? await ChildProcess(executable: tool, arguments: args, outputLimit: 1 << 16, timeout: .seconds(30), interruptible: false).run()
        }
        async let table = run(tools.nft, ["delete", "table", "inet", EgressRuleset.tableName(id: id)])
        if hasNamespace {
            // The sandbox's end of the veth lives in the namespace: the pair goes with it.
            let r = await run(tools.ip, ["netns", "delete", id])
            if FileManager.default.fileExists(atPath: namespacePath(id: id)) {
                problems.append("network namespace \(id) is left: \(r?.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines) ?? "ip did not run")")
            }
        }
        if FileManager.default.fileExists(atPath: "/sys/class/net/\(dev)") {
            let r = await run(tools.ip, ["link", "delete", dev])
            if r?.status != .exited(0), FileManager.default.fileExists(atPath: "/sys/class/net/\(dev)") {
                problems.append("veth \(dev) is left: \(r?.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines) ?? "ip did not run")")
            }
        }
        if let r = await table, r.status != .exited(0), !r.stderr.text.contains("No such file or directory") {
            problems.append("nft table inet \(EgressRuleset.tableName(id: id)) is left: \(r.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        // The link is free again only when nothing else of the sandbox is left.
        if problems.isEmpty {
            for entry in leases { if let lease = entry.lease { pool.release(lease) } }
        }
        return problems
    }
}

/// Where `ip` and `nft` are.
struct NetworkTools {
    var ip: String
    var nft: String

    static func locate() throws(SandboxError) -> NetworkTools {
        func find(_ tool: String, _ package: String) throws(SandboxError) -> String {
            for dir in Runtime.searchPath where access("\(dir)/\(tool)", X_OK) == 0 { return "\(dir)/\(tool)" }
            throw SandboxError(.hostNotReady, "\(tool) is not installed, and a sandbox with an egress allowlist needs it; run `apt-get install \(package)` (or remove sandbox.network.egress)")
        }
        return NetworkTools(ip: try find("ip", "iproute2"), nft: try find("nft", "nftables"))
    }
}

extension SandboxNetwork {
    /// Networks of robits that are gone: leases whose owner process has ended, and (with
    /// `includeUnleased`, which runs `nft`) namespaces, veths and nft tables named like robit's
    /// that no lease claims. A lease is taken before anything of a network is made and released
    /// after everything is removed, so neither of these can belong to a live robit.
    static func sweep(remove: Bool, skipping handled: Set<String>, includeUnleased: Bool, pool: AddressPool = AddressPool()) async -> [Leftover] {
        var found: [Leftover] = []
        let leases = pool.leases()
        for entry in leases where !entry.alive {
            if let id = entry.lease?.id, handled.contains(id) { continue }
            let id = entry.lease?.id ?? "lease \(entry.index)"
            var item = Leftover(id: id, runtime: nil, kind: "network of a robit that is gone", removed: false, detail: "not removed")
            if remove {
                let problems: [String]
                if let lease = entry.lease { problems = await tearDown(id: lease.id, pool: pool) } else { pool.removeFile(index: entry.index); problems = [] }
                item.removed = problems.isEmpty
                item.detail = problems.joined(separator: "; ")
            }
            found.append(item)
        }
        // A lease being written (not readable yet) could be anyone's: leave unleased things for later.
        guard includeUnleased, !leases.contains(where: { $0.lease == nil && $0.alive }) else { return found }
        let leased = Set(leases.compactMap { $0.lease?.id })
        var ids = Set<String>()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [] where isSandboxID(name) { ids.insert(name) }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? [] where name.hasPrefix("rb") && isHex(name.dropFirst(2)) {
            ids.insert("robit-" + name.dropFirst(2))
        }
        if let tools = try? NetworkTools.locate(),
           let r = try? await ChildProcess(executable: tools.nft, arguments: ["list", "tables"], outputLimit: 1 << 20, timeout: .seconds(20),
                                           interruptible: false).run() {
            for line in r.stdout.text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 3, parts[1] == "inet", parts[2].hasPrefix("robit_"), isHex(parts[2].dropFirst(6)) else { continue }
                ids.insert("robit-" + parts[2].dropFirst(6))
            }
        }
        for id in ids.sorted() where !leased.contains(id) && !handled.contains(id) {
            var item = Leftover(id: id, runtime: nil, kind: "network without a lease", removed: false, detail: "not removed")
            if remove {
                let problems = await tearDownUnleased(id: id)
                item.removed = problems.isEmpty
                item.detail = problems.joined(separator: "; ")
            }
            found.append(item)
        }
        return found
    }

    /// Like `tearDown`, for a network with no lease: the nft table is deleted whether or not there is anything else.
    static func tearDownUnleased(id: String) async -> [String] {
        var problems = await tearDown(id: id)
        if let tools = try? NetworkTools.locate(),
           let r = try? await ChildProcess(executable: tools.nft, arguments: ["delete", "table", "inet", EgressRuleset.tableName(id: id)],
                                           outputLimit: 1 << 16, timeout: .seconds(20), interruptible: false).run(),
           r.status != .exited(0), !r.stderr.text.contains("No such file or directory") {
            problems.append("nft table inet \(EgressRuleset.tableName(id: id)) is left: \(r.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return problems
    }

    static func isSandboxID(_ name: String) -> Bool { name.hasPrefix("robit-") && isHex(name.dropFirst(6)) }
    static func isHex(_ s: Substring) -> Bool { s.count == 12 && s.allSatisfy { $0.isHexDigit && !$0.isUppercase } }
}
