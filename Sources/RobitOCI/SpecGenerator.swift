/// Pure generation of a sandbox's runtime spec.
public enum SpecGenerator {
    /// Paths masked (bound to /dev/null or an empty tmpfs) as runc's default spec does.
    public static let maskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    /// Paths made read-only as runc's default spec does.
    public static let readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    public static let cpuPeriod: UInt64 = 100_000

    /// The long-running process of the sandbox: robit-init reaping orphans as PID 1. It runs as a
    /// user of its own (nobody, or 65533 when the sandbox user is nobody), so commands cannot
    /// signal it or reach its file descriptors.
    public static func initProcess(_ c: SandboxConfiguration) -> Process {
        var p = process(c, args: [SandboxConfiguration.initPath, "init"], cwd: "/")
        let id: UInt32 = c.user.uid == 65534 || c.user.gid == 65534 ? 65533 : 65534
        p.user = User(uid: id, gid: id, umask: 0o077)
        return p
    }

    /// The process of one exec, tagged ROBIT_EXEC=tag so a timeout can find and kill its whole tree.
    /// Where the runtime does not filter exec'd processes, robit-init loads the seccomp filter first.
    public static func execProcess(_ c: SandboxConfiguration, tag: String, argv: [String], cwd: String = SandboxConfiguration.workPath,
                                   env: [String] = []) -> Process {
        // robit-init runs every command: it loads the seccomp filter where the runtime does not, and
        // kills what the command leaves behind when it ends.
        // The tag is in its argv too: a running command is known by its robit-init, whose environment
        // another process of the same user cannot read.
        let args = [SandboxConfiguration.initPath, "exec", "--tag", tag]
            + (c.execSeccompFilter == nil ? [] : ["--seccomp", SandboxConfiguration.seccompFilterPath])
            + (c.keepBackgroundProcesses ? ["--keep-background"] : []) + ["--"] + argv
        var p = process(c, args: args, cwd: cwd)
        p.env = (p.env ?? []) + env + ["ROBIT_EXEC=\(tag)"]
        return p
    }

    /// The process robit execs into a gVisor sandbox to kill what a command left (`tag`), or
    /// everything but PID 1 (nil). It runs as uid 0 with CAP_KILL alone: the sandbox user's processes
    /// may have used up the per-user process limit (how the pids limit is enforced under gVisor),
    /// which does not count uid 0, and killing another user's processes takes CAP_KILL. Same seccomp
    /// filter and no_new_privs as every other process. (Under crun and runc robit kills from the host.)
    /// `keep` are the tags of commands still running, whose processes stay.
    public static func killerProcess(_ c: SandboxConfiguration, tag: String?, keep: [String] = []) -> Process {
        let args = tag.map { ["kill", $0, "killer"] + keep } ?? ["kill", "--all"]
        var p = execProcess(c, tag: "killer", argv: [SandboxConfiguration.initPath] + args, cwd: "/")
        p.user = User(uid: 0, gid: 0)
        p.capabilities = Capabilities(["CAP_KILL"])
        return p
    }

    static func process(_ c: SandboxConfiguration, args: [String], cwd: String) -> Process {
        var rlimits = [
            Rlimit(type: "RLIMIT_NOFILE", hard: c.limits.openFiles, soft: c.limits.openFiles),
            Rlimit(type: "RLIMIT_CORE", hard: 0, soft: 0),
        ]
        if c.pidsEnforcement == .rlimit {
            rlimits.append(Rlimit(type: "RLIMIT_NPROC", hard: UInt64(c.limits.pids), soft: UInt64(c.limits.pids)))
        }
        return Process(terminal: false, user: User(uid: c.user.uid, gid: c.user.gid, umask: 0o022), args: args, env: c.env, cwd: cwd,
                       capabilities: Capabilities(c.policy.capabilities), rlimits: rlimits, noNewPrivileges: true)
    }

    public static func spec(for c: SandboxConfiguration, rootfsPath: String) -> Spec {
        var mounts = [
            Mount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            Mount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            Mount(destination: "/dev/pts", type: "devpts", source: "devpts",
                  options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
            Mount(destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
        ]
        if case .host = c.rootfs {
            mounts.append(readOnlyBind("/usr", "/usr"))
            for name in HostLayout.candidates where c.hostLayout.entries[name] == .directory {
                mounts.append(readOnlyBind("/\(name)", "/\(name)"))
            }
            for dir in c.hostLayout.etcBinds {
                mounts.append(readOnlyBind(dir, dir))
            }
        }
        mounts += [
            Mount(destination: "/tmp", type: "tmpfs", source: "tmpfs",
                  options: ["nosuid", "nodev", "mode=1777", "size=\(c.limits.tmpSize)"]),
            Mount(destination: SandboxConfiguration.workPath, type: "bind", source: c.workspace, options: ["bind", "rw", "nosuid", "nodev"]),
            readOnlyBind(c.initBinary, SandboxConfiguration.initPath),
        ]
        if let filter = c.execSeccompFilter {
            mounts.append(readOnlyBind(filter, SandboxConfiguration.seccompFilterPath))
        }
        if let overlay = c.etcOverlay {
            for name in overlay.files { mounts.append(readOnlyBind(overlay.directory + "/" + name, "/etc/" + name)) }
        }

        var namespaces = ["pid", "ipc", "uts", "mount"].map { Namespace(type: $0) }
        namespaces.append(Namespace(type: "network", path: c.networkNamespace))

        let memory = Int64(clamping: c.limits.memory &+ c.memoryOverhead)
        let quota = Int64((c.limits.cpu * Double(cpuPeriod)).rounded())
        let resources = Resources(
            memory: Resources.Memory(limit: memory, swap: memory),
            cpu: Resources.CPU(quota: max(quota, 1000), period: cpuPeriod),
            pids: c.pidsEnforcement == .cgroup ? Resources.Pids(limit: Int64(c.limits.pids)) : nil)

        var annotations = c.annotations
        annotations["dev.robit.sandbox"] = c.id
        return Spec(
            ociVersion: "1.0.2",
            process: initProcess(c),
            root: Root(path: rootfsPath, readonly: true),
            hostname: c.hostname,
            mounts: mounts,
            annotations: annotations,
            linux: Linux(namespaces: namespaces, resources: resources, cgroupsPath: cgroupsPath(id: c.id), seccomp: c.policy.seccomp,
                         maskedPaths: maskedPaths, readonlyPaths: readonlyPaths))
    }

    /// Every sandbox's cgroup lives under /robit, one per sandbox id.
    public static func cgroupsPath(id: String) -> String { "/robit/\(id)" }

    static func readOnlyBind(_ source: String, _ destination: String) -> Mount {
        Mount(destination: destination, type: "bind", source: source, options: ["bind", "ro", "nosuid", "nodev"])
    }
}
