import Foundation

/// The private IPv4 addresses of sandboxes with egress: a pool (default 10.213.0.0/16, or
/// `$ROBIT_EGRESS_POOL`) cut into /30 links, one per running sandbox (.1 the host's end of the veth,
/// .2 the sandbox's). Leases are host-wide (one directory for every state directory and pool), so
/// concurrent robits never hand out the same link: a lease is a file created with O_EXCL in
/// `directory`, naming the sandbox, its owner process and the pool its index counts in.
public struct AddressPool: Sendable {
    /// The default pool.
    public static let defaultRange = Range(base: 0x0AD5_0000, prefixLength: 16)
    /// The variable that names another pool, e.g. `ROBIT_EGRESS_POOL=100.64.0.0/16`.
    public static let environmentVariable = "ROBIT_EGRESS_POOL"

    /// Host-wide, whatever the state directory: address clashes are host-wide too.
    public var directory: String
    public var range: Range
    public var slots: Int { range.slots }

    public init(directory: String = "/run/robit-net/leases", range: Range = AddressPool.defaultRange) {
        self.directory = directory
        self.range = range
    }

    /// The pool `$ROBIT_EGRESS_POOL` names, or the default; an invalid value is an error naming the variable.
    public static func configured(environment: [String: String] = ProcessInfo.processInfo.environment) throws(SandboxError) -> AddressPool {
        guard let text = environment[environmentVariable], !text.isEmpty else { return AddressPool() }
        do {
            return AddressPool(range: try Range(parsing: text))
        } catch {
            throw SandboxError(.invalidInput, "\(environmentVariable)=\(text): \(error.message)")
        }
    }

    /// An IPv4 network of /30 links.
    public struct Range: Sendable, Equatable, CustomStringConvertible {
        public var base: UInt32
        public var prefixLength: Int
        public var slots: Int { 1 << (32 - prefixLength - 2) }
        public var mask: UInt32 { prefixLength == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefixLength) }
        public var description: String { "\(AddressPool.dotted(base))/\(prefixLength)" }

        public init(base: UInt32, prefixLength: Int) {
            self.base = base
            self.prefixLength = prefixLength
        }

        /// `A.B.C.D/N`, N from 16 to 28, no host bits set, not loopback, link-local, multicast or reserved.
        public init(parsing text: String) throws(SandboxError) {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            let octets = parts.first?.split(separator: ".", omittingEmptySubsequences: false) ?? []
            guard parts.count == 2, octets.count == 4,
                  octets.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) && Int($0)! <= 255 }),
                  parts[1].count <= 2, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let prefix = Int(parts[1]) else {
                throw SandboxError(.invalidInput, "not an IPv4 network such as 100.64.0.0/16")
            }
            let base = octets.reduce(UInt32(0)) { $0 << 8 | UInt32($1)! }
            guard (16...28).contains(prefix) else {
                throw SandboxError(.invalidInput, "a /\(prefix) pool is not allowed; use /16 (16384 sandboxes) to /28 (4)")
            }
            let range = Range(base: base, prefixLength: prefix)
            guard base & ~range.mask == 0 else {
                throw SandboxError(.invalidInput, "has host bits set; the network is \(Range(base: base & range.mask, prefixLength: prefix))")
            }
            let first = base >> 24
            guard first != 0, first != 127, first < 224, base & 0xFFFF_0000 != 0xA9FE_0000 else {
                throw SandboxError(.invalidInput, "is a loopback, link-local, multicast or reserved network; use a private range such as 100.64.0.0/16 or 172.31.0.0/16")
            }
            self = range
        }

        /// Whether the networks overlap.
        public func overlaps(_ other: Range) -> Bool {
            let mask = self.mask & other.mask
            return base & mask == other.base & mask
        }

        /// The first route of the host's main IPv4 table (`/proc/net/route` text) that overlaps the
        /// pool, described; default routes and robit's own links (`rb*` interfaces) do not count.
        public func conflictingRoute(in routeTable: String) -> String? {
            for line in routeTable.split(separator: "\n").dropFirst() {
                let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
                guard f.count >= 8, let destination = UInt32(f[1], radix: 16), let mask = UInt32(f[7], radix: 16), mask != 0 else { continue }
                let interface = String(f[0])
                if interface.hasPrefix("rb") { continue }
                // The file holds addresses in the host's (little-endian) byte order.
                let route = Range(base: destination.byteSwapped, prefixLength: mask.byteSwapped.leadingZeroBitCount == 0 ? mask.nonzeroBitCount : 0)
                if overlaps(route) { return "\(route) on \(interface)" }
            }
            return nil
        }
    }

    /// Refuses a pool that overlaps a route the host has (exit 5): robit's /30 routes would shadow part of it.
    public func checkHostRoutes(routeTable: String? = nil) throws(SandboxError) {
        guard let table = routeTable ?? KernelFile.read("/proc/net/route"), let conflict = range.conflictingRoute(in: table) else { return }
        throw SandboxError(.hostNotReady, "the egress address pool \(range) overlaps the host's route \(conflict): robit's routes to sandboxes would take over part of that network; set \(Self.environmentVariable) to a range this host does not use (e.g. 100.64.0.0/16 or 172.31.0.0/16)")
    }

    static func dotted(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    }

    public struct Lease: Codable, Sendable, Equatable {
        public var index: Int
        public var id: String
        public var pid: Int32
        public var startTime: UInt64
        /// The pool's network address and prefix; absent in leases of robits before pools were configurable (10.213.0.0/16).
        public var network: UInt32?
        public var prefixLength: Int?

        public init(index: Int, id: String, pid: Int32, startTime: UInt64, range: Range = AddressPool.defaultRange) {
            self.index = index
            self.id = id
            self.pid = pid
            self.startTime = startTime
            network = range.base
            prefixLength = range.prefixLength
        }

        /// The host's end of the link.
        public var hostAddress: String { address(1) }
        /// The sandbox's end.
        public var sandboxAddress: String { address(2) }
        public static let prefixLength = 30

        func address(_ offset: Int) -> String {
            AddressPool.dotted((network ?? AddressPool.defaultRange.base) &+ UInt32(index * 4 + offset))
        }
    }

    /// Takes a free link for sandbox `id`, owned by this process.
    func acquire(id: String) throws(SandboxError) -> Lease {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw SandboxError(.hostNotReady, "cannot create the address lease directory \(directory): \(error.localizedDescription)")
        }
        let me = getpid()
        let start = Int.random(in: 0..<slots)
        for step in 0..<slots {
            let index = (start + step) % slots
            let path = "\(directory)/\(index)"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if fd < 0 {
                if errno == EEXIST { continue }
                throw SandboxError(.hostNotReady, "cannot create the address lease \(path): \(String(cString: strerror(errno)))")
            }
            let lease = Lease(index: index, id: id, pid: me, startTime: SandboxState.startTime(of: me) ?? 0, range: range)
            let data = (try? JSONEncoder().encode(lease)) ?? Data()
            let written = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard written == data.count else {
                unlink(path)
                throw SandboxError(.hostNotReady, "cannot write the address lease \(path)")
            }
            return lease
        }
        throw SandboxError(.hostNotReady, "all \(slots) sandbox links of \(range) are leased; run `robit doctor --fix` to free those of robits that are gone, or give \(Self.environmentVariable) a larger range")
    }

    func release(_ lease: Lease) {
        // Only ever the file that still names this sandbox.
        if self.lease(at: lease.index)?.id == lease.id { unlink("\(directory)/\(lease.index)") }
    }

    func lease(at index: Int) -> Lease? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(index)") else { return nil }
        return try? JSONDecoder().decode(Lease.self, from: data)
    }

    /// Every lease, with whether its owner process is still running. A lease file that cannot be
    /// read (an owner between O_EXCL and its write, or one that died there) counts as live for a minute.
    /// A slot of the pool in use: its lease (nil while being written or unreadable) and whether its
    /// holder still runs (or, without a lease, whether the slot is younger than a minute).
    /// A struct, not a tuple: Swift 6.3.1's optimizer (CopyPropagation) crashed on closures over a
    /// `(lease: Lease?, index: Int, alive: Bool)` element in release builds of the tests.
    struct Slot: Sendable {
        var lease: Lease?
        var index: Int
        var alive: Bool
    }

    func leases() -> [Slot] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> Slot? in
            guard let index = Int(name) else { return nil }
            guard let lease = lease(at: index) else {
                let attrs = try? FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")
                let age = Date().timeIntervalSince((attrs?[.modificationDate] as? Date) ?? .distantPast)
                return Slot(lease: nil, index: index, alive: age < 60)
            }
            return Slot(lease: lease, index: index, alive: SandboxState.startTime(of: lease.pid) == lease.startTime)
        }
    }

    func removeFile(index: Int) { unlink("\(directory)/\(index)") }
}
