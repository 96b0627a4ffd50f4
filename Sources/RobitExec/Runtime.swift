import Foundation

public enum RuntimeKind: String, Sendable, CaseIterable, Codable {
    case runsc, crun, runc
}

/// One OCI runtime binary and the arguments robit gives each of its verbs.
public struct Runtime: Sendable, Equatable {
    public var kind: RuntimeKind
    public var path: String
    /// The sandbox joins a network namespace robit set up (egress allowlist): under runsc, gVisor's
    /// own network stack then uses that namespace's interfaces instead of having no network at all.
    public var joinsNetwork: Bool

    public init(kind: RuntimeKind, path: String, joinsNetwork: Bool = false) {
        self.kind = kind
        self.path = path
        self.joinsNetwork = joinsNetwork
    }

    static let searchPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// Finds the runtime in the usual system directories.
    public static func locate(_ kind: RuntimeKind) throws(SandboxError) -> Runtime {
        for dir in searchPath where access("\(dir)/\(kind.rawValue)", X_OK) == 0 {
            return Runtime(kind: kind, path: "\(dir)/\(kind.rawValue)")
        }
        throw SandboxError(.runtimeMissing, "\(kind.rawValue) is not installed (looked in \(searchPath.joined(separator: ", "))); run ./scripts/setup or `apt-get install \(kind.rawValue)`")
    }

    /// Flags every invocation gets. runsc needs the same flags on every verb, and applies the
    /// spec's seccomp profile only when told to.
    package var globalArguments: [String] {
        switch kind {
        case .runsc: return ["--platform=ptrace", joinsNetwork ? "--network=sandbox" : "--network=none", "--oci-seccomp"]
        case .crun, .runc: return []
        }
    }

    /// `run --detach`, writing the pid of the process it leaves running (runsc's sandbox process,
    /// crun's and runc's container init) to `Runtime.pidFile(bundle:)`.
    package func runDetached(bundle: String, id: String) -> [String] {
        globalArguments + ["run", "--detach", "--pid-file", Self.pidFile(bundle: bundle), "--bundle", bundle, id]
    }

    static func pidFile(bundle: String) -> String { bundle + "/init.pid" }

    /// After `runDetached`, in a subreaper (`Subreaper`): the processes the runtime left running for
    /// sandbox `id`, now this process's children, watched and reaped when they end. runsc's gofer is
    /// named in runsc's own state file; it must be adopted too, since `runsc delete` waits for it.
    package func adoptDetached(bundle: String, id: String) async -> [AdoptedProcess] {
        guard Subreaper.isEnabled else { return [] }
        var more: [pid_t] = []
        if kind == .runsc, let data = FileManager.default.contents(atPath: "/var/run/runsc/\(id)_sandbox:\(id).state"),
           let state = try? JSONDecoder().decode(RunscState.self, from: data), let gofer = state.goferPid {
            more.append(gofer)
        }
        let pidFile = Self.pidFile(bundle: bundle)
        let gofer = more
        return await BlockingThreads.run { AdoptedProcess.adopt(pidFile: pidFile, more: gofer, sandbox: id) }
    }

    private struct RunscState: Decodable { var goferPid: Int32? }

    /// The command that starts a sandbox, and the directory it must not see (nil: none).
    /// runsc up to at least 20221219 decides that it is in the host's network namespace when
    /// /proc/sys/net/core/rmem_default exists, which since Linux 6.x is true in every namespace, and
    /// then refuses `--network=sandbox`. So with a joined network, runsc starts in a mount namespace
    /// of its own where that directory is hidden under an empty tmpfs (private propagation: the
    /// host's mounts are untouched). robit's spawn does this in the child before exec
    /// (`ChildProcess.hiddenDirectory`); if it cannot, runsc is not started.
    func startCommand(bundle: String, id: String) -> (executable: String, arguments: [String], hiddenDirectory: String?) {
        (path, runDetached(bundle: bundle, id: id), kind == .runsc && joinsNetwork ? "/proc/sys/net" : nil)
    }

    func exec(processFile: String, id: String) -> [String] {
        globalArguments + ["exec", "--process", processFile, id]
    }

    func delete(id: String, force: Bool = true) -> [String] {
        globalArguments + ["delete"] + (force ? ["--force"] : []) + [id]
    }

    func kill(id: String, signal: String = "KILL") -> [String] {
        globalArguments + ["kill", id, signal]
    }

    func state(id: String) -> [String] {
        globalArguments + ["state", id]
    }

    func list() -> [String] {
        switch kind {
        case .runsc: return globalArguments + ["list", "--quiet"]
        case .crun, .runc: return ["list", "--quiet"]
        }
    }

    /// The first line of `RUNTIME --version`.
    public func version() async -> String? {
        guard let r = try? await ChildProcess(executable: path, arguments: ["--version"], outputLimit: 4096,
                                              timeout: .seconds(10), interruptible: false).run(),
              r.status == .exited(0) else { return nil }
        return r.stdout.text.split(separator: "\n").first.map(String.init)
    }

    /// Container ids this runtime knows about.
    public func containerIDs() async -> [String] {
        guard let r = try? await ChildProcess(executable: path, arguments: list(), outputLimit: 1 << 20,
                                              timeout: .seconds(20), interruptible: false).run() else { return [] }
        return r.stdout.text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The runtime's state of a container: status, bundle path and creation time.
    func stateInfo(id: String) async -> (status: String, bundle: String?, created: Date?)? {
        guard let r = try? await ChildProcess(executable: path, arguments: state(id: id), outputLimit: 1 << 16,
                                              timeout: .seconds(20), interruptible: false).run(),
              r.status == .exited(0),
              let object = try? JSONSerialization.jsonObject(with: r.stdout.data) as? [String: Any],
              let status = object["status"] as? String else { return nil }
        var created: Date?
        if let text = object["created"] as? String {
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            created = f.date(from: String(text.prefix(23)) + "Z") ?? ISO8601DateFormatter().date(from: String(text.prefix(19)) + "Z")
        }
        return (status, object["bundle"] as? String, created)
    }

    /// The container's status ("running", "stopped", ...), or nil when the runtime does not know it.
    func status(id: String) async -> String? {
        await stateInfo(id: id)?.status
    }
}
