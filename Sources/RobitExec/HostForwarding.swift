import Foundation
import RobitOCI

/// `net.ipv4.ip_forward`, without which nothing leaves a sandbox's namespace. robit turns it on with
/// the first sandbox network on the host and puts back the value it found when the last one is
/// removed. Host-wide, like the address pool whose leases count the networks: the value found is
/// kept in `savedFile` while robit has forwarding on, and every lease taken or released, and every
/// change of the sysctl, happens under an exclusive flock of `lockFile`, so concurrent robits agree
/// on which network is the last.
///
/// If forwarding was already on when robit first needed it, robit never turns it off. If another
/// program comes to rely on forwarding while robit has it on, robit cannot tell: see docs/network.md.
public struct HostForwarding: Sendable {
    public var pool: AddressPool
    /// The sysctl's file (a plain file in the tests).
    public var sysctl: String
    /// Where the lock and the saved value live: the lease directory's parent, /run/robit-net.
    public var directory: String { (pool.directory as NSString).deletingLastPathComponent }
    var lockFile: String { directory + "/lock" }
    public var savedFile: String { directory + "/ip_forward.saved" }

    public static let ipv4Sysctl = "/proc/sys/net/ipv4/ip_forward"

    public init(pool: AddressPool = AddressPool(), sysctl: String = HostForwarding.ipv4Sysctl) {
        self.pool = pool
        self.sysctl = sysctl
    }

    /// Takes a link for sandbox `id` and makes sure forwarding is on, under the lock. Nothing is
    /// left taken when this throws.
    func acquire(id: String) throws(SandboxError) -> AddressPool.Lease {
        try locked { () throws(SandboxError) -> AddressPool.Lease in
            let lease = try pool.acquire(id: id)
            do throws(SandboxError) {
                try enableLocked()
            } catch {
                pool.release(lease)
                throw error
            }
            return lease
        }
    }

    /// Releases `leases` (and lease files `indexes` that could not be read) under the lock; when no
    /// lease is left on the host, puts back the forwarding value robit found. Returns what went wrong.
    @discardableResult
    func release(_ leases: [AddressPool.Lease], files indexes: [Int] = []) -> String? {
        do {
            return try locked { () throws(SandboxError) -> String? in
                for lease in leases { pool.release(lease) }
                for index in indexes { pool.removeFile(index: index) }
                return restoreIfUnusedLocked()
            }
        } catch {
            return error.message
        }
    }

    /// What `robit doctor` says about forwarding: the value, whether robit turned it on, and for how
    /// many networks. With `fix`, a value robit turned on while no network of robit's is left is put back.
    public func report(fix: Bool) -> Finding {
        if fix, FileManager.default.fileExists(atPath: savedFile), let problem = release([]) {
            return Finding(level: .fail, subject: "ip_forward", message: problem)
        }
        let current = read(sysctl) ?? "unknown"
        let networks = pool.leases().count
        guard let saved = read(savedFile) else {
            return Finding(level: .ok, subject: "ip_forward",
                           message: "net.ipv4.ip_forward = \(current), not changed by robit (sandboxes with egress turn it on while they run and put the value back after the last)")
        }
        if networks > 0 {
            return Finding(level: .ok, subject: "ip_forward",
                           message: "net.ipv4.ip_forward = \(current), turned on by robit for \(networks) sandbox network(s); robit puts back \(saved) after the last")
        }
        return Finding(level: .warn, subject: "ip_forward",
                       message: "net.ipv4.ip_forward = \(current): robit turned it on (it was \(saved)) and no sandbox network of robit's is left",
                       fix: "robit doctor --fix")
    }

    // MARK: - Under the lock

    private func enableLocked() throws(SandboxError) {
        let current = read(sysctl)
        if current == "1" { return }
        if !FileManager.default.fileExists(atPath: savedFile) {
            do {
                try OCIBundle.write(Data((current ?? "0").utf8), to: savedFile, mode: 0o600)
            } catch {
                throw SandboxError(.hostNotReady, "cannot record the IPv4 forwarding value in \(savedFile): \(error.localizedDescription)")
            }
        }
        do {
            try OCIBundle.write(Data("1".utf8), to: sysctl, mode: 0o644)
        } catch {
            throw SandboxError(.hostNotReady, "cannot enable IPv4 forwarding (\(sysctl)): \(error.localizedDescription); run `sysctl -w net.ipv4.ip_forward=1`")
        }
    }

    private func restoreIfUnusedLocked() -> String? {
        guard pool.leases().isEmpty, let saved = read(savedFile) else { return nil }
        // Someone turned it off in the meantime: nothing to put back.
        if read(sysctl) == "1" && saved != "1" {
            do {
                try OCIBundle.write(Data(saved.utf8), to: sysctl, mode: 0o644)
            } catch {
                return "cannot put IPv4 forwarding (\(sysctl)) back to \(saved): \(error.localizedDescription)"
            }
        }
        unlink(savedFile)
        return nil
    }

    func locked<T>(_ body: () throws(SandboxError) -> T) throws(SandboxError) -> T {
        do {
            try FileManager.default.createDirectory(atPath: pool.directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw SandboxError(.hostNotReady, "cannot create \(pool.directory): \(error.localizedDescription)")
        }
        let fd = open(lockFile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw SandboxError(.hostNotReady, "cannot open the lock \(lockFile): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw SandboxError(.hostNotReady, "cannot lock \(lockFile): \(String(cString: strerror(errno)))") }
        }
        return try body()
    }

    private func read(_ path: String) -> String? {
        KernelFile.read(path)?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
