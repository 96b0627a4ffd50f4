import Foundation
import RobitSync
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
    private let lastDenied = Locked<[DeniedDestination.Key: UInt64]>([:])

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
    static func setUp(id: String, egress: [Egress], workDirectory: String, pool: AddressPool? = nil) async throws(SandboxError) -> SandboxNetwork {
        let network = try prepare(id: id, egress: egress, pool: pool)
        if let error = await network.configure(workDirectory: workDirectory) {
            _ = await tearDown(id: id, pool: network.pool)
            throw error
        }
        return network
    }

    /// The first half of `setUp`, with nothing of the kernel's yet: resolves the allowlist's names
    /// (what the bundle's /etc/hosts needs) and leases a link. The caller runs `configure` next (while
    /// it writes the bundle) and `tearDown` when that fails.
    /// `pool` nil: the configured one (`AddressPool.configured`), refused if it overlaps a host route.
    static func prepare(id: String, egress: [Egress], pool given: AddressPool? = nil) throws(SandboxError) -> SandboxNetwork {
        let pool: AddressPool
        if let given { pool = given } else { pool = try AddressPool.configured() }
        try pool.checkHostRoutes()
        let (resolved, hosts) = try EgressResolver.resolve(egress)
        let lease = try HostForwarding(pool: pool).acquire(id: id)
        let ruleset = EgressRuleset(table: EgressRuleset.tableName(id: id), hostInterface: EgressRuleset.hostInterfaceName(id: id),
                                    sandboxAddress: lease.sandboxAddress, allowed: resolved)
        return SandboxNetwork(id: id, lease: lease, ruleset: ruleset, pinnedHosts: hosts, pool: pool)
    }

    /// The second half: the nft table, and namespace, veth, addresses and route over rtnetlink, at
    /// the same time on threads of their own (the table names the interface, not its index, so it
    /// holds before the link exists; nothing runs in the namespace before both are done). No process
    /// is started. Returns what failed, with whatever was made left for `tearDown`.
    func configure(workDirectory: String) async -> SandboxError? {
        let rulesFile = workDirectory + "/" + Sandbox.rulesetFileName
        do {
            try OCIBundle.write(Data(ruleset.text.utf8), to: rulesFile, mode: 0o600)
        } catch {
            return SandboxError(.createFailed, "cannot write \(rulesFile): \(error.localizedDescription)")
        }
        let text = ruleset.text
        async let table: SandboxError? = KernelNetwork.offThread {
            do throws(NftError) {
                _ = try KernelNetwork.nft(text)
                return nil
            } catch {
                return SandboxError(.hostNotReady, error.libraryMissing ? error.description
                    : "nft could not load the sandbox's egress ruleset (\(rulesFile)): \(error.message); the kernel needs nf_tables with inet nat and dynamic sets")
            }
        }
        let (path, interface, host, sandbox) = (namespacePath, ruleset.hostInterface, lease.hostAddress, lease.sandboxAddress)
        async let link: SandboxError? = KernelNetwork.offThread {
            do throws(SandboxError) {
                try KernelNetwork.create(namespacePath: path, hostInterface: interface, hostAddress: host, sandboxAddress: sandbox,
                                         prefixLength: AddressPool.Lease.prefixLength)
                return nil
            } catch {
                return error
            }
        }
        let (tableError, linkError) = await (table, link)
        return tableError ?? linkError
    }

    /// Denied attempts per destination since the previous call (since setup for the first).
    public func deniedSinceLastRead() async -> [DeniedDestination] {
        guard let json = try? KernelNetwork.nft("list table inet \(ruleset.table)", json: true) else { return [] }
        let current = DeniedDestination.parse(nftJSON: Data(json.utf8))
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

    /// Removes the veth pair, the nft table, the namespace and the lease of sandbox `id`, whatever
    /// of them exists, without starting a process. The link goes first: from then on the sandbox
    /// reaches nothing, whatever else is still there. Returns what is left.
    static func tearDown(id: String, pool: AddressPool = AddressPool()) async -> [String] {
        let dev = EgressRuleset.hostInterfaceName(id: id)
        let table = EgressRuleset.tableName(id: id)
        let leases = pool.leases().filter { $0.lease?.id == id }
        let hasNamespace = FileManager.default.fileExists(atPath: namespacePath(id: id))
        let hasLink = FileManager.default.fileExists(atPath: "/sys/class/net/\(dev)")
        guard !leases.isEmpty || hasNamespace || hasLink else { return [] }
        var problems: [String] = []
        // Down first (at once: from then on the sandbox reaches nothing), then the link's removal and the
        // table's in parallel: each waits for the kernel's grace periods. The table goes only when the
        // link passes nothing, so a sandbox that still runs never has the link without the filter.
        let down = hasLink ? (try? KernelNetwork.setLinkDown(dev)) != nil : true
        let deleteTable: @Sendable () -> String? = {
            do throws(NftError) {
                _ = try KernelNetwork.nft("delete table inet \(table)")
                return nil
            } catch where error.isNotFound {
                return nil
            } catch {
                return "nft table inet \(table) is left: \(error)"
            }
        }
        let tableNow = down
        async let linkLeft: String? = hasLink ? KernelNetwork.offThread { () -> String? in
            do throws(SandboxError) { try KernelNetwork.deleteLink(dev); return nil } catch { return "veth \(dev) is left: \(error.message)" }
        } : nil
        async let tableLeft: String? = tableNow ? KernelNetwork.offThread(deleteTable) : nil
        if hasNamespace {
            // The sandbox's end of the veth lives in the namespace; the namespace ends with the sandbox's last process.
            do { try KernelNetwork.removeNamespace(namespacePath(id: id)) } catch { problems.append("network namespace \(id) is left: \(error.message)") }
        }
        let link = await linkLeft
        if let link { problems.append(link) }
        if tableNow {
            if let left = await tableLeft { problems.append(left) }
        } else if link == nil {
            if let left = deleteTable() { problems.append(left) }
        } else {
            problems.append("nft table inet \(table) is kept while the sandbox's link is there")
        }
        // The link is free again only when nothing else of the sandbox is left; with the host's last
        // network, forwarding goes back to what robit found.
        if problems.isEmpty, let problem = HostForwarding(pool: pool).release(leases.compactMap(\.lease)) {
            problems.append(problem)
        }
        return problems
    }
}

extension SandboxNetwork {
    /// Networks of robits that are gone: leases whose owner process has ended, and (with
    /// `includeUnleased`, which lists nft tables) namespaces, veths and nft tables named like robit's
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
                if let lease = entry.lease {
                    problems = await tearDown(id: lease.id, pool: pool)
                } else {
                    problems = HostForwarding(pool: pool).release([], files: [entry.index]).map { [$0] } ?? []
                }
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
        for line in ((try? KernelNetwork.nft("list tables")) ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[1] == "inet", parts[2].hasPrefix("robit_"), isHex(parts[2].dropFirst(6)) else { continue }
            ids.insert("robit-" + parts[2].dropFirst(6))
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
        let table = EgressRuleset.tableName(id: id)
        do {
            _ = try KernelNetwork.nft("delete table inet \(table)")
        } catch where !error.isNotFound {
            problems.append("nft table inet \(table) is left: \(error)")
        } catch {}
        return problems
    }

    static func isSandboxID(_ name: String) -> Bool { name.hasPrefix("robit-") && isHex(name.dropFirst(6)) }
    static func isHex(_ s: Substring) -> Bool { s.count == 12 && s.allSatisfy { $0.isHexDigit && !$0.isUppercase } }
}
