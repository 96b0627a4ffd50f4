/// Everything robit decides about one sandbox; `SpecGenerator` turns it into a runtime spec.
public struct SandboxConfiguration: Sendable, Equatable {
    public enum Rootfs: Sendable, Equatable {
        /// Read-only binds of the host's /usr (and /bin, /sbin, /lib* where they are real directories)
        /// and a curated /etc that robit writes: nothing else of the host.
        case host
        /// A prepared root filesystem directory, mounted read-only.
        case path(String)
    }

    /// How the pids limit is enforced. gVisor runs every sandboxed process inside one host process
    /// tree whose size has nothing to do with the sandbox's own processes, so under runsc the limit
    /// is RLIMIT_NPROC, which gVisor's kernel enforces per sandbox.
    public enum PidsEnforcement: Sendable, Equatable { case cgroup, rlimit }

    public var id: String
    public var rootfs: Rootfs
    /// Host path bind-mounted read-write at /work.
    public var workspace: String
    public var user: User
    public var limits: SandboxLimits
    public var policy: SandboxPolicy
    public var pidsEnforcement: PidsEnforcement
    /// Memory added to the cgroup limit for the runtime's own processes (gVisor's kernel).
    public var memoryOverhead: UInt64
    /// Host path of the static robit-init binary, bind-mounted at /.robit/init.
    public var initBinary: String
    /// Host path of the policy's seccomp filter as BPF, bind-mounted at /.robit/seccomp.bpf and loaded
    /// by robit-init before every exec'd command: for runtimes that filter only the container's first
    /// process (runsc applies `linux.seccomp` to it alone). nil = the runtime filters every process.
    public var execSeccompFilter: String?
    public var hostname: String
    public var env: [String]
    /// Let a command's background processes live on after it ends (`sandbox.keep_background_processes`);
    /// by default robit-init kills every process a command leaves when it ends.
    public var keepBackgroundProcesses: Bool = false
    /// Host entries of / for rootfs `host` (from `HostLayout.scan()`).
    public var hostLayout: HostLayout
    /// Path of an existing network namespace to join; nil = a new one with only loopback.
    public var networkNamespace: String?
    /// Names pinned in the sandbox's /etc/hosts (the resolved names of an egress allowlist).
    public var hosts: [PinnedHost]
    /// For a prepared rootfs with an egress allowlist: robit's /etc files mounted over the rootfs's
    /// own, so that the pinned names resolve and no nameserver is named whatever the rootfs. nil for
    /// rootfs `host` (its whole /etc is robit's) and without an allowlist.
    public var etcOverlay: EtcOverlay?
    public var annotations: [String: String]

    public init(id: String, rootfs: Rootfs = .host, workspace: String, user: User, limits: SandboxLimits = SandboxLimits(),
                policy: SandboxPolicy, pidsEnforcement: PidsEnforcement = .cgroup, memoryOverhead: UInt64 = 0,
                initBinary: String, execSeccompFilter: String? = nil, hostname: String = "robit", env: [String] = SandboxConfiguration.defaultEnvironment,
                hostLayout: HostLayout, networkNamespace: String? = nil, hosts: [PinnedHost] = [], etcOverlay: EtcOverlay? = nil,
                annotations: [String: String] = [:]) {
        self.id = id
        self.rootfs = rootfs
        self.workspace = workspace
        self.user = user
        self.limits = limits
        self.policy = policy
        self.pidsEnforcement = pidsEnforcement
        self.memoryOverhead = memoryOverhead
        self.initBinary = initBinary
        self.execSeccompFilter = execSeccompFilter
        self.hostname = hostname
        self.env = env
        self.hostLayout = hostLayout
        self.networkNamespace = networkNamespace
        self.hosts = hosts
        self.etcOverlay = etcOverlay
        self.annotations = annotations
    }

    /// The environment of every sandboxed process. Nothing of robit's own environment is passed on.
    public static let defaultEnvironment = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/work",
        "TMPDIR=/tmp",
        "LANG=C.UTF-8",
        "TERM=dumb",
        "USER=robit",
    ]

    /// Where robit-init appears inside the sandbox.
    public static let initPath = "/.robit/init"
    public static let seccompFilterPath = "/.robit/seccomp.bpf"
    public static let workPath = "/work"
}

/// Files of robit's curated /etc (`OCIBundle.curatedEtc`) that robit writes to `directory` (in the
/// bundle) and mounts read-only over /etc/NAME of a prepared rootfs.
public struct EtcOverlay: Sendable, Equatable {
    public var directory: String
    /// `hosts` always; `resolv.conf` when the rootfs has one as a regular file.
    public var files: [String]

    public init(directory: String, files: [String]) {
        self.directory = directory
        self.files = files
    }
}

public struct SandboxLimits: Sendable, Equatable {
    public var memory: UInt64
    public var pids: Int
    /// CPUs, e.g. 1.0 or 0.5.
    public var cpu: Double
    /// Size of the tmpfs at /tmp.
    public var tmpSize: UInt64
    /// Open files per process.
    public var openFiles: UInt64

    public init(memory: UInt64 = 512 << 20, pids: Int = 256, cpu: Double = 1.0, tmpSize: UInt64 = 1 << 30, openFiles: UInt64 = 4096) {
        self.memory = memory
        self.pids = pids
        self.cpu = cpu
        self.tmpSize = tmpSize
        self.openFiles = openFiles
    }
}

/// What the top level of the host's / looks like, for rootfs `host`.
public struct HostLayout: Sendable, Equatable {
    public enum Entry: Sendable, Equatable {
        case symlink(String)
        case directory
    }

    /// The entries among /bin, /sbin, /lib, /lib32, /lib64, /libx32 that exist, by name.
    public var entries: [String: Entry]
    /// Host directories of /etc that are bound read-only (CA certificates, alternatives), if present.
    public var etcBinds: [String]

    public init(entries: [String: Entry], etcBinds: [String]) {
        self.entries = entries
        self.etcBinds = etcBinds
    }

    public static let candidates = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]
    public static let etcCandidates = ["/etc/ssl/certs", "/etc/ca-certificates", "/etc/alternatives"]
}
