import RobitExec
import RobitOCI

extension TaskFile {
    /// The sandbox this task runs in. A policy file that does not load is a TaskFileError naming
    /// the policy file, the key and the bad name.
    public func sandboxOptions() throws(TaskFileError) -> SandboxOptions {
        var policy = SandboxPolicy.builtInDefault()
        if let path = sandbox.policy {
            policy = try SandboxPolicy.load(path: path)
        }
        let l = sandbox.limits
        // A task's commands run as robit's sandbox user whoever owns the workspace: `robit run` gives
        // them an overlay of it in which the owner's files appear as that user's (RunWorkspace), and
        // `robit bundle` shows the same.
        var options = SandboxOptions(runtime: sandbox.runtime, rootfs: sandbox.rootfs, workspace: workspace.path, user: User.sandbox,
                                     limits: SandboxLimits(memory: l.memory.bytes, pids: l.pids, cpu: l.cpu, tmpSize: l.disk.bytes),
                                     policy: policy, egress: sandbox.network.egress)
        options.keepBackgroundProcesses = sandbox.keepBackgroundProcesses
        return options
    }
}
