import Foundation

/// The private IPv4 addresses of sandboxes with egress: 10.213.0.0/16 cut into /30 links, one per
/// running sandbox (.1 the host's end of the veth, .2 the sandbox's). The pool is host-wide (one
/// for every state directory), so concurrent robits never hand out the same link: a lease is a
/// file created with O_EXCL in `directory`, naming the sandbox and its owner process.
public struct AddressPool: Sendable {
    public static let network = "10.213.0.0/16"
    static let firstOctets: (UInt8, UInt8) = (10, 213)
    public static let slots = 16384

    /// Host-wide, whatever the state directory: address clashes are host-wide too.
    public var directory: String

    public init(directory: String = "/run/robit-net/leases") {
        self.directory = directory
    }

    public struct Lease: Codable, Sendable, Equatable {
        public var index: Int
        public var id: String
        public var pid: Int32
        public var startTime: UInt64

        /// The host's end of the link.
        public var hostAddress: String { Self.address(index, 1) }
        /// The sandbox's end.
        public var sandboxAddress: String { Self.address(index, 2) }
        public static let prefixLength = 30

        static func address(_ index: Int, _ offset: Int) -> String {
            let value = index * 4 + offset
            return "\(AddressPool.firstOctets.0).\(AddressPool.firstOctets.1).\(value >> 8).\(value & 0xff)"
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
        let start = Int.random(in: 0..<Self.slots)
        for step in 0..<Self.slots {
            let index = (start + step) % Self.slots
            let path = "\(directory)/\(index)"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if fd < 0 {
                if errno == EEXIST { continue }
                throw SandboxError(.hostNotReady, "cannot create the address lease \(path): \(String(cString: strerror(errno)))")
            }
            let lease = Lease(index: index, id: id, pid: me, startTime: SandboxState.startTime(of: me) ?? 0)
            let data = (try? JSONEncoder().encode(lease)) ?? Data()
            let written = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard written == data.count else {
                unlink(path)
                throw SandboxError(.hostNotReady, "cannot write the address lease \(path)")
            }
            return lease
        }
        throw SandboxError(.hostNotReady, "all \(Self.slots) sandbox links of \(Self.network) are leased; run `robit doctor --fix` to free those of robits that are gone")
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
