import RobitExec
import RobitOCI

extension TaskFile {
    /// The sandbox section: runtime, root filesystem, policy, network allowlist and resource limits.
    struct Sandbox: Sendable, Equatable {
        /// The runtime and root filesystem are RobitExec's and RobitOCI's own types: one each.
        typealias Runtime = RuntimeKind
        typealias RootFS = SandboxConfiguration.Rootfs

        /// The sandbox's network: nothing at all unless `egress` lists destinations.
        struct Network: Sendable, Equatable {
            var egress: [EgressRule]

            init(egress: [EgressRule] = []) {
                self.egress = egress
            }
        }

        /// Resource limits of the sandbox and of each tool call.
        struct Limits: Sendable, Equatable {
            /// Memory limit of the sandbox (default 512MiB).
            var memory: ByteCount
            /// Maximum number of processes (default 256).
            var pids: Int
            /// CPUs, e.g. 1.0 or 0.5 (default 1.0).
            var cpu: Double
            /// Wall-clock limit of one tool call (default 30s).
            var timeout: Duration
            /// Output captured per tool call, stdout and stderr each (default 1MiB).
            var output: ByteCount
            /// What the run may write: the size of the filesystem holding the workspace's changes, and of /tmp (default 1GiB).
            var disk: ByteCount

            init(memory: ByteCount = .mebibytes(512), pids: Int = 256, cpu: Double = 1.0, timeout: Duration = .seconds(30),
                        output: ByteCount = .mebibytes(1), disk: ByteCount = .gibibytes(1)) {
                self.memory = memory
                self.pids = pids
                self.cpu = cpu
                self.timeout = timeout
                self.output = output
                self.disk = disk
            }
        }

        /// Default `runsc` (gVisor).
        var runtime: Runtime
        var rootfs: RootFS
        /// Absolute path of a policy file (seccomp and capabilities); nil = the built-in default policy.
        var policy: String?
        var network: Network
        var limits: Limits
        /// `keep_background_processes`: processes a tool call starts in the background live on into
        /// later calls (a dev server the next call tests). Off by default: robit kills every process a
        /// call leaves, because a process that outlives its call can read and write what later calls
        /// do, including their output before robit captures it.
        var keepBackgroundProcesses: Bool

        init(runtime: Runtime = .runsc, rootfs: RootFS = .host, policy: String? = nil, network: Network = Network(),
                    limits: Limits = Limits(), keepBackgroundProcesses: Bool = false) {
            self.keepBackgroundProcesses = keepBackgroundProcesses
            self.runtime = runtime
            self.rootfs = rootfs
            self.policy = policy
            self.network = network
            self.limits = limits
        }
    }
}
