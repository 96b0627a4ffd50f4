import RobitExec
import RobitOCI

extension TaskFile {
    /// The sandbox this task runs in. A policy file that does not load is a TaskFileError naming
    /// the policy file, the key and the bad name.
    public func sandboxOptions() throws(TaskFileError) -> SandboxOptions {
        var policy = SandboxPolicy.builtInDefault()
        if let path = sandbox.policy {
            do {
                policy = try SandboxPolicy.load(path: path)
            } catch {
                throw TaskFileError(file: error.file, line: error.line, keyPath: error.keyPath, message: error.message)
            }
        }
        let rootfs: SandboxConfiguration.Rootfs
        switch sandbox.rootfs {
        case .host: rootfs = .host
        case .path(let p): rootfs = .path(p)
        }
        let runtime: RuntimeKind
        switch sandbox.runtime {
        case .runsc: runtime = .runsc
        case .crun: runtime = .crun
        case .runc: runtime = .runc
        }
        let l = sandbox.limits
        // A task's commands run as robit's sandbox user whoever owns the workspace: `robit run` gives
        // them an overlay of it in which the owner's files appear as that user's (RunWorkspace), and
        // `robit bundle` shows the same.
        var options = SandboxOptions(runtime: runtime, rootfs: rootfs, workspace: workspace.path, user: RunWorkspace.sandboxUser,
                                     limits: SandboxLimits(memory: l.memory.bytes, pids: l.pids, cpu: l.cpu, tmpSize: l.disk.bytes),
                                     policy: policy, egress: sandbox.network.egress.map(\.egress))
        options.keepBackgroundProcesses = sandbox.keepBackgroundProcesses
        return options
    }
}

extension EgressRule {
    /// The same destination and port as RobitOCI's value, which the sandbox's network is made from.
    public var egress: Egress {
        switch destination {
        case .host(let name): return Egress(.host(name), port: port)
        case .ipv4(let a): return Egress(.ipv4(a), port: port)
        case .ipv6(let a): return Egress(.ipv6(a), port: port)
        case .ipv4Network(let a, let n): return Egress(.ipv4Network(a, prefixLength: n), port: port)
        case .ipv6Network(let a, let n): return Egress(.ipv6Network(a, prefixLength: n), port: port)
        }
    }
}
