import CRobitSys
import Foundation

/// What a sandbox's network asks of the kernel, without starting a process: namespace, veth pair,
/// addresses and routes over rtnetlink, and nft commands through libnftables (loaded on first use).
public enum KernelNetwork {
    /// Creates the namespace bound at `namespacePath` and the veth pair `hostInterface` / `eth0`
    /// (inside), with `hostAddress` and `sandboxAddress` on a /`prefixLength` link, loopback and both
    /// ends up, and a default route via the host's end. What was made before a failure is left for
    /// `removeNamespace` and `deleteLink`.
    public static func create(namespacePath: String, hostInterface: String, hostAddress: String, sandboxAddress: String,
                              prefixLength: Int) throws(SandboxError) {
        guard let host = ipv4(hostAddress), let sandbox = ipv4(sandboxAddress), (0...32).contains(prefixLength) else {
            throw SandboxError(.invalidInput, "not an IPv4 link: \(hostAddress), \(sandboxAddress)/\(prefixLength)")
        }
        var step: UnsafePointer<CChar>?
        let rc = robit_net_create(namespacePath, hostInterface, host, sandbox, Int32(prefixLength), &step)
        guard rc == 0 else {
            let what = step.map { String(cString: $0) } ?? "set up"
            throw SandboxError(.hostNotReady, "could not set up the sandbox's network (\(what) for \(namespacePath), \(hostInterface)): \(String(cString: strerror(rc))); egress allowlists need veth and network namespace support (CONFIG_VETH, CONFIG_NET_NS) and root")
        }
    }

    /// Deletes the link `name` of the host's namespace (a veth takes its peer along). False when there was none.
    @discardableResult
    public static func deleteLink(_ name: String) throws(SandboxError) -> Bool {
        let rc = robit_net_delete_link(name)
        if rc == ENODEV { return false }
        guard rc == 0 else { throw SandboxError(.hostNotReady, "cannot delete link \(name): \(String(cString: strerror(rc)))") }
        return true
    }

    /// Sets the link `name` of the host's namespace down; a veth pair with an end down passes nothing. False when there is none.
    @discardableResult
    public static func setLinkDown(_ name: String) throws(SandboxError) -> Bool {
        let rc = robit_net_set_link_down(name)
        if rc == ENODEV { return false }
        guard rc == 0 else { throw SandboxError(.hostNotReady, "cannot set link \(name) down: \(String(cString: strerror(rc)))") }
        return true
    }

    /// Runs blocking kernel calls on a thread of their own, off the cooperative pool: their waits
    /// (RCU grace periods, tens of ms) then overlap with each other and with the runtime's.
    static func offThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Unmounts and removes the namespace file at `path`; the namespace ends with its last process. False when there was none.
    @discardableResult
    public static func removeNamespace(_ path: String) throws(SandboxError) -> Bool {
        let rc = robit_net_remove_namespace(path)
        if rc == ENOENT { return false }
        guard rc == 0 else { throw SandboxError(.hostNotReady, "cannot remove network namespace \(path): \(String(cString: strerror(rc)))") }
        return true
    }

    /// Runs nft `commands` (nft -f syntax) in this process; returns nft's output (JSON with `json`).
    public static func nft(_ commands: String, json: Bool = false) throws(NftError) -> String {
        var output: UnsafeMutablePointer<CChar>?
        var error: UnsafeMutablePointer<CChar>?
        let rc = robit_nft_run(commands, json ? 1 : 0, &output, &error)
        defer {
            free(output)
            free(error)
        }
        let message = error.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        switch rc {
        case 0: return output.map { String(cString: $0) } ?? ""
        case -1: throw NftError(libraryMissing: true, message: message)
        default: throw NftError(libraryMissing: false, message: message.isEmpty ? "nft failed" : message)
        }
    }

    /// Network byte order, as the kernel takes it.
    static func ipv4(_ text: String) -> UInt32? {
        var addr = in_addr()
        guard inet_pton(AF_INET, text, &addr) == 1 else { return nil }
        return addr.s_addr
    }
}

/// An nft command that failed, or libnftables that could not be loaded.
public struct NftError: Error, Sendable, CustomStringConvertible {
    public var libraryMissing: Bool
    public var message: String
    /// nft's "No such file or directory": the object to delete or list is not there.
    public var isNotFound: Bool { !libraryMissing && message.contains("No such file or directory") }

    public var description: String {
        libraryMissing
            ? "libnftables cannot be loaded (\(message)); a sandbox with an egress allowlist needs it: run `apt-get install nftables` (or remove sandbox.network.egress)"
            : message
    }
}
