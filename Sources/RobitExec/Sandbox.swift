import Foundation
import RobitSync
import RobitOCI

/// What to start a sandbox with.
public struct SandboxOptions: Sendable {
    public var runtime: RuntimeKind
    public var rootfs: SandboxConfiguration.Rootfs
    /// Host directory mounted read-write at /work.
    public var workspace: String
    /// The uid/gid inside; nil = the owner of the workspace (never root).
    public var user: User?
    public var limits: SandboxLimits
    public var policy: SandboxPolicy
    /// Host path of robit-init; nil = next to the robit executable, or `$ROBIT_INIT`.
    public var initBinary: String?
    /// The exact path of a scratch workspace robit made for this sandbox (removed with it).
    public var scratch: String?
    public var state: SandboxState
    /// TCP destinations the sandbox may reach; empty = a network namespace with only loopback.
    public var egress: [Egress]
    /// Background processes of a command live on after it (see `SandboxConfiguration`).
    public var keepBackgroundProcesses = false

    public init(runtime: RuntimeKind = .runsc, rootfs: SandboxConfiguration.Rootfs = .host, workspace: String, user: User? = nil,
                limits: SandboxLimits = SandboxLimits(), policy: SandboxPolicy = .builtInDefault(), initBinary: String? = nil,
                state: SandboxState = .default(), egress: [Egress] = []) {
        self.runtime = runtime
        self.rootfs = rootfs
        self.workspace = workspace
        self.user = user
        self.limits = limits
        self.policy = policy
        self.initBinary = initBinary
        self.state = state
        self.egress = egress
    }

    /// Memory allowed to gVisor's own kernel on top of the sandbox's limit.
    public static let runscMemoryOverhead: UInt64 = 128 << 20

    /// The full configuration for a sandbox with this id whose bundle is written to `bundleDirectory`
    /// (default: its state directory): validates the workspace, the user and robit-init.
    public func configuration(id: String, bundleDirectory: String? = nil) throws(SandboxError) -> SandboxConfiguration {
        let workspace = try Workspace.validate(workspace, scratch: scratch)
        let user: User
        if let explicit = self.user { user = explicit } else { user = try Workspace.owner(of: workspace) }
        if let problem = Workspace.problem(with: user) { throw SandboxError(.invalidInput, problem) }
        var rootfs = self.rootfs
        if case .path(let dir) = rootfs {
            guard dir.hasPrefix("/") else {
                throw SandboxError(.invalidInput, "rootfs \(dir) is not an absolute path (give a prepared root filesystem directory, or use `host`)")
            }
            rootfs = .path(try Workspace.validateRootfs(dir, workspace: workspace, state: state))
        }
        var etcOverlay: EtcOverlay?
        if case .path(let dir) = rootfs, !egress.isEmpty {
            etcOverlay = try Self.etcOverlay(rootfs: dir, directory: (bundleDirectory ?? state.directory(for: id)) + "/etc")
        }
        let options = self
        let initPath: String
        if let given = initBinary { initPath = given } else { initPath = try InitBinary.locate() }
        var configuration = SandboxConfiguration(
            id: id, rootfs: rootfs, workspace: workspace, user: user, limits: limits, policy: policy,
            pidsEnforcement: runtime == .runsc ? .rlimit : .cgroup,
            memoryOverhead: runtime == .runsc ? Self.runscMemoryOverhead : 0,
            initBinary: initPath,
            execSeccompFilter: runtime == .runsc ? (bundleDirectory ?? options.state.directory(for: id)) + "/seccomp.bpf" : nil,
            hostLayout: .scan(), etcOverlay: etcOverlay)
        configuration.keepBackgroundProcesses = keepBackgroundProcesses
        return configuration
    }

    /// A prepared rootfs with an egress allowlist gets robit's /etc/hosts (the pinned names) mounted
    /// over its own, and robit's resolv.conf (no nameserver) over its own when that is a regular
    /// file. The runtimes mount onto what is there: the rootfs must have /etc/hosts as a regular file.
    static func etcOverlay(rootfs: String, directory: String) throws(SandboxError) -> EtcOverlay {
        func isA(_ type: mode_t, _ path: String) -> Bool {
            var st = stat()
            return lstat(path, &st) == 0 && st.st_mode & S_IFMT == type
        }
        func isRegularFile(_ path: String) -> Bool { isA(S_IFREG, path) }
        guard isA(S_IFDIR, rootfs + "/etc"), isRegularFile(rootfs + "/etc/hosts") else {
            throw SandboxError(.createFailed, "rootfs \(rootfs) has no regular file etc/hosts (in a real directory etc); with an egress allowlist robit mounts the allowlist's pinned names over the rootfs's /etc/hosts: create one (e.g. an empty \(rootfs)/etc/hosts owned by root), or use rootfs host")
        }
        return EtcOverlay(directory: directory, files: ["hosts"] + (isRegularFile(rootfs + "/etc/resolv.conf") ? ["resolv.conf"] : []))
    }
}

extension Sandbox {
    /// Writes the bundle a sandbox with these options would run in, without running it: config.json
    /// (root path relative to the bundle), the rootfs skeleton (or a `rootfs` link to a prepared
    /// rootfs), the seccomp profile as JSON, and under runsc its BPF form.
    public static func writeBundle(_ options: SandboxOptions, to directory: String) throws(SandboxError) -> (bundle: OCIBundle, spec: Spec) {
        let dir = URL(fileURLWithPath: directory).standardizedFileURL.path
        let configuration = try options.configuration(id: newID(), bundleDirectory: dir)
        // robit writes as root: nobody else may be able to redirect those writes with a symlink.
        let parent = (dir as NSString).deletingLastPathComponent
        if let problem = SecurePath.problem(parent.isEmpty ? "/" : parent) {
            throw SandboxError(.invalidInput, "refusing to write a bundle into \(dir): \(problem), so another user could redirect robit's writes; choose a directory only root can change")
        }
        do {
            var st = stat()
            if lstat(dir, &st) == 0 {
                guard st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid(),
                      ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? ["?"]).isEmpty else {
                    throw SandboxError(.invalidInput, "\(dir) exists and is not an empty directory of robit's user; give a new or empty directory")
                }
            } else if mkdir(dir, 0o755) != 0 {
                throw SandboxError(.invalidInput, "cannot create \(dir): \(String(cString: strerror(errno)))")
            }
            var configuration = configuration
            var ruleset: EgressRuleset?
            if !options.egress.isEmpty {
                // What a run would load, for review: the names resolved now, the link's address
                // the first of the pool (a run leases its own).
                let (allowed, hosts) = try EgressResolver.resolve(options.egress)
                ruleset = EgressRuleset(table: EgressRuleset.tableName(id: configuration.id), hostInterface: EgressRuleset.hostInterfaceName(id: configuration.id),
                                        sandboxAddress: AddressPool.Lease(index: 0, id: configuration.id, pid: 0, startTime: 0,
                                                                          range: try AddressPool.configured().range).sandboxAddress,
                                        allowed: allowed)
                configuration.networkNamespace = SandboxNetwork.namespacePath(id: configuration.id)
                configuration.hosts = hosts
            }
            let result = try OCIBundle.create(at: dir, configuration: configuration, relativeRoot: true)
            if let ruleset {
                try OCIBundle.write(Data(ruleset.text.utf8), to: dir + "/" + Sandbox.rulesetFileName, mode: 0o644)
            }
            if let seccomp = result.spec.linux?.seccomp {
                try OCIBundle.encode(seccomp).write(to: URL(fileURLWithPath: dir + "/seccomp.json"))
            }
            return result
        } catch let error as SandboxError {
            throw error
        } catch {
            throw SandboxError(.createFailed, "cannot write the bundle in \(dir): \(error.localizedDescription)")
        }
    }
}

/// One command to run in a sandbox.
public struct ExecRequest: Sendable {
    public var argv: [String]
    public var cwd: String
    public var timeout: Duration
    /// Bytes kept of stdout and of stderr, each.
    public var outputLimit: Int
    public var env: [String]
    /// Bytes fed to the command's stdin, which is then closed (empty: stdin is /dev/null).
    public var stdin: Data

    public init(argv: [String], cwd: String = SandboxConfiguration.workPath, timeout: Duration = .seconds(30),
                outputLimit: Int = 1 << 20, env: [String] = [], stdin: Data = Data()) {
        self.argv = argv
        self.stdin = stdin
        self.cwd = cwd
        self.timeout = timeout
        self.outputLimit = outputLimit
        self.env = env
    }

    /// `sh -c SCRIPT`.
    public static func shell(_ script: String, timeout: Duration = .seconds(30), outputLimit: Int = 1 << 20) -> ExecRequest {
        ExecRequest(argv: ["/bin/sh", "-c", script], timeout: timeout, outputLimit: outputLimit)
    }
}

public struct ExecResult: Sendable {
    public var status: TerminationStatus
    public var stdout: CapturedOutput
    public var stderr: CapturedOutput
    public var duration: Duration
    /// Killed, with everything it started, because it ran past its timeout.
    public var timedOut: Bool
    /// Killed by the kernel for going over the sandbox's memory limit.
    public var outOfMemory: Bool
    /// Stopped because robit was interrupted (SIGINT/SIGTERM).
    public var interrupted: Bool
    /// The sandbox had to be started again after this command (gVisor ends a whole sandbox on OOM).
    public var sandboxRestarted: Bool
    /// What robit had to do to run the command, for the log (e.g. killing leftovers that held the pids limit).
    public var notes: [String]

    public init(status: TerminationStatus, stdout: CapturedOutput = CapturedOutput(), stderr: CapturedOutput = CapturedOutput(),
                duration: Duration = .zero, timedOut: Bool = false, outOfMemory: Bool = false, interrupted: Bool = false,
                sandboxRestarted: Bool = false, notes: [String] = []) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        self.timedOut = timedOut
        self.outOfMemory = outOfMemory
        self.interrupted = interrupted
        self.sandboxRestarted = sandboxRestarted
        self.notes = notes
    }

    public var truncated: Bool { stdout.truncated || stderr.truncated }

    /// The shell convention: the exit code, or 128 + the signal. The runtimes report a command
    /// killed by signal N as exit 128+N, so `status` is `.exited(128+N)` for it; `.signaled` appears
    /// only where robit itself knows (the sandbox was OOM-killed).
    public var exitCode: Int32 {
        switch status {
        case .exited(let c): return c
        case .signaled(let s): return 128 + s
        }
    }
}

/// A running sandbox: created once per run, every command an exec into it.
public actor Sandbox {
    public nonisolated let id: String
    public nonisolated let runtime: Runtime
    public nonisolated let configuration: SandboxConfiguration
    public nonisolated let bundle: OCIBundle
    public nonisolated let spec: Spec
    /// The sandbox's network when it has an egress allowlist; nil = only loopback.
    public nonisolated let network: SandboxNetwork?
    let state: SandboxState
    /// The host's cgroup mounts, read once.
    private let cgroups = CgroupMounts.current()
    /// OOM kills, counted before and after every exec.
    private lazy var oomKills = OOMKillCounter(cgroups: cgroups, path: SpecGenerator.cgroupsPath(id: id))
    /// Tags of the commands running now: a timeout kills everything else but init.
    private let activeTags = ActiveTags()
    private var destroyed = false
    /// The runtime's processes (sandbox or init, gofer) when this process adopts them (`Subreaper`).
    private var adopted: [AdoptedProcess] = []
    private var lost = false
    private var restarts = 0

    /// The file `robit bundle` writes the egress ruleset to, next to config.json.
    public static let rulesetFileName = "egress.nft"

    private init(id: String, runtime: Runtime, configuration: SandboxConfiguration, bundle: OCIBundle, spec: Spec, network: SandboxNetwork?,
                 state: SandboxState) {
        self.id = id
        self.network = network
        self.runtime = runtime
        self.configuration = configuration
        self.bundle = bundle
        self.spec = spec
        self.state = state
    }

    public static func newID() -> String {
        let value = UInt64.random(in: 0...0xFFFF_FFFF_FFFF)
        let hex = String(value, radix: 16)
        return "robit-" + String(repeating: "0", count: 12 - hex.count) + hex
    }

    /// Removes leftovers of dead robits, writes the bundle and starts the sandbox's init. `configuration`
    /// is `options.configuration(id: id)` when the caller has already worked it out.
    public static func create(_ options: SandboxOptions, id: String = newID(),
                              configuration prepared: SandboxConfiguration? = nil) async throws(SandboxError) -> Sandbox {
        var runtime = try Runtime.locate(options.runtime)
        runtime.joinsNetwork = !options.egress.isEmpty
        try Preflight.check(runtime: runtime)
        try? FileManager.default.createDirectory(atPath: options.state.sandboxesDirectory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        if let problem = SecurePath.problem(options.state.root) {
            throw SandboxError(.hostNotReady, "robit's state directory is not safe: \(problem); use a directory only root can change (ROBIT_STATE_DIR)")
        }
        _ = await Janitor.sweep(state: options.state, remove: true)
        var configuration: SandboxConfiguration
        if let prepared { configuration = prepared } else { configuration = try options.configuration(id: id) }
        let dir = options.state.directory(for: id)
        let bundle: OCIBundle
        let spec: Spec
        var network: SandboxNetwork?
        do {
            try options.state.writeOwner(id: id, runtime: options.runtime, workspace: configuration.workspace, scratch: options.scratch)
        } catch {
            _ = await Janitor.teardown(id: id, runtimes: [], state: options.state)
            throw SandboxError(.createFailed, "cannot write the sandbox's state in \(dir): \(error.localizedDescription)")
        }
        if !options.egress.isEmpty {
            do {
                let made = try SandboxNetwork.prepare(id: id, egress: options.egress)
                network = made
                configuration.networkNamespace = made.namespacePath
                configuration.hosts = made.pinnedHosts
            } catch {
                _ = await Janitor.teardown(id: id, runtimes: [], state: options.state)
                throw error
            }
        }
        // The network's kernel work (nft table, namespace, veth) runs while the bundle is written.
        async let networkError = network?.configure(workDirectory: dir)
        let written = Result { () throws -> (OCIBundle, Spec) in try OCIBundle.create(at: dir, configuration: configuration, readable: false) }
        if let error = await networkError {
            _ = await Janitor.teardown(id: id, runtimes: [], state: options.state)
            throw error
        }
        do {
            (bundle, spec) = try written.get()
        } catch {
            _ = await Janitor.teardown(id: id, runtimes: [], state: options.state)
            throw SandboxError(.createFailed, "cannot write the sandbox bundle in \(dir): \(error.localizedDescription)")
        }
        let sandbox = Sandbox(id: id, runtime: runtime, configuration: configuration, bundle: bundle, spec: spec, network: network,
                              state: options.state)
        try await sandbox.start()
        return sandbox
    }

    private func start() async throws(SandboxError) {
        let log = bundle.path + "/runtime.log"
        unlink(Runtime.pidFile(bundle: bundle.path))  // a restart's runtime writes it again
        let command = runtime.startCommand(bundle: bundle.path, id: id)
        var run = ChildProcess(executable: command.executable, arguments: command.arguments,
                               stdout: .null, stderr: .file(log), timeout: .seconds(60), interruptible: false)
        run.hiddenDirectory = command.hiddenDirectory
        let result: ChildProcess.Result
        do {
            result = try await run.run()
        } catch {
            _ = await destroy()
            throw SandboxError(.createFailed, "could not start the sandbox: \(error)")
        }
        // Also after a failed start: whatever it left running is killed and reaped by destroy().
        adopted = await runtime.adoptDetached(bundle: bundle.path, id: id)
        guard result.status == .exited(0) else {
            let message = (try? String(contentsOfFile: log, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            _ = await destroy()
            throw SandboxError(.createFailed, "\(runtime.kind.rawValue) could not start the sandbox (\(result.status)): \(message.isEmpty ? "no message" : String(message.suffix(2000)))")
        }
    }

    /// Kills every process in the sandbox but its init.
    private func killAll() async {
        let file = bundle.path + "/killall-\(Self.newID()).json"
        defer { unlink(file) }
        _ = try? await Self.killer(tag: nil, keep: [], runtime: runtime, id: id, configuration: configuration, cgroups: cgroups, file: file)?.run()
    }

    /// Kills the processes of command `tag` and of no running command (`keep` are the running ones'
    /// tags); with `tag` nil, every process but init. crun's and runc's processes are host processes:
    /// they are killed from the host here, which needs no free pid in the sandbox, and nil is
    /// returned. gVisor's are not: the returned process execs robit-init's killer into the sandbox,
    /// its spec written to `file`.
    static func killer(tag: String?, keep: Set<String>, runtime: Runtime, id: String, configuration: SandboxConfiguration,
                       cgroups: CgroupMounts, file: String) -> ChildProcess? {
        guard runtime.kind == .runsc else {
            cgroups.killTagged(in: SpecGenerator.cgroupsPath(id: id), tag: tag, keep: keep)
            return nil
        }
        let spec = SpecGenerator.killerProcess(configuration, tag: tag, keep: keep.sorted())
        guard (try? OCIBundle.write(Data(spec.compactJSON), to: file, mode: 0o600)) != nil else { return nil }
        return ChildProcess(executable: runtime.path, arguments: runtime.exec(processFile: file, id: id), outputLimit: 4096,
                            timeout: .seconds(10), interruptible: false)
    }

    /// Runs one command. A non-zero exit, a timeout or an OOM kill is a result; a sandbox that is
    /// gone or a runtime that cannot exec is an error.
    public func exec(_ request: ExecRequest) async throws(SandboxError) -> ExecResult {
        guard !destroyed else { throw SandboxError(.sandboxLost, "the sandbox \(id) was already destroyed") }
        guard !request.argv.isEmpty, !request.argv[0].isEmpty else { throw SandboxError(.invalidInput, "empty command") }
        if lost { try await restart() }
        if Interrupts.pending { throw SandboxError(.interrupted, "interrupted") }

        let random = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let tag = Substring(String(repeating: "0", count: 16 - random.count) + random)
        let processFile = bundle.path + "/exec-\(tag).json"
        let killFile = bundle.path + "/kill-\(tag).json"
        do {
            let process = SpecGenerator.execProcess(configuration, tag: String(tag), argv: request.argv, cwd: request.cwd, env: request.env)
            try OCIBundle.write(Data(process.compactJSON), to: processFile, mode: 0o600)
        } catch {
            throw SandboxError(.execFailed, "cannot write \(processFile): \(error.localizedDescription)")
        }
        defer {
            unlink(processFile)
            unlink(killFile)
        }

        let oomBefore = oomKills.read() ?? 0
        let runtime = self.runtime
        let id = self.id
        activeTags.withLock { _ = $0.insert(String(tag)) }
        defer { activeTags.withLock { _ = $0.remove(String(tag)) } }
        let activeTags = self.activeTags
        let configuration = self.configuration
        let cgroups = self.cgroups
        // Only a command that times out, is interrupted or leaves something behind needs the killer.
        let killTree: @Sendable () -> Void = {
            let keep = activeTags.withLock { $0 }.subtracting([String(tag)])
            _ = try? Self.killer(tag: String(tag), keep: keep, runtime: runtime, id: id, configuration: configuration, cgroups: cgroups,
                                 file: killFile)?.runBlocking()
        }
        let child = ChildProcess(executable: runtime.path, arguments: runtime.exec(processFile: processFile, id: id),
                                 stdin: request.stdin, outputLimit: request.outputLimit, timeout: request.timeout, onStop: killTree, onLingering: killTree)
        let r: ChildProcess.Result
        do {
            r = try await child.run()
        } catch {
            throw SandboxError(.execFailed, "\(error)")
        }
        if !configuration.keepBackgroundProcesses, !r.timedOut, !r.interrupted, case .exited(let code) = r.status, code > 128 {
            // robit-init kills what a command leaves when the command ends, unless the command killed
            // robit-init itself (exit 137 looks the same as a command killed by a signal): then the
            // leftovers are killed from outside, as after a timeout.
            await BlockingThreads.run { killTree() }
        }
        let oomAfter = oomKills.read() ?? 0
        var result = ExecResult(status: r.status, stdout: r.stdout, stderr: r.stderr, duration: r.duration, timedOut: r.timedOut,
                                outOfMemory: oomAfter > oomBefore, interrupted: r.interrupted, sandboxRestarted: false, notes: [])
        if runtime.kind == .runsc, r.status == .exited(128), r.stderr.text.contains("try again") {
            // runsc may not have been able to start the command at all: processes left by earlier
            // commands hold the whole pids limit (RLIMIT_NPROC). Kill everything but PID 1 so the
            // next command can run. (The command is not run again: it may have run.)
            await killAll()
            result.notes.append("the pids limit may have been used up by processes earlier commands left running; robit killed every process in the sandbox")
            return result
        }
        if case .exited(let code) = r.status, code != 0, !result.timedOut, !result.interrupted {
            // A runtime error and a command's exit code look alike: ask whether the sandbox is still there.
            if await runtime.status(id: id) != "running" {
                lost = true
                if result.outOfMemory || runtime.kind == .runsc {
                    // gVisor's whole sandbox is the unit the kernel OOM-kills; start it again for the next command.
                    result.status = .signaled(SIGKILL)
                    result.sandboxRestarted = true
                    try await restart()
                } else {
                    throw SandboxError(.sandboxLost, "the sandbox \(id) stopped: \(r.stderr.text.suffix(500))")
                }
            }
        }
        return result
    }

    /// Starts the same sandbox again after gVisor's kernel was OOM-killed. The workspace is kept; /tmp is not.
    private func restart() async throws(SandboxError) {
        restarts += 1
        guard restarts <= 20 else { throw SandboxError(.sandboxLost, "the sandbox \(id) was restarted 20 times; giving up") }
        _ = await Janitor.removeContainer(id: id, runtime: runtime, adopted: adopted)
        adopted = []
        CgroupMounts.current().remove(path: SpecGenerator.cgroupsPath(id: id))
        try await start()
        lost = false
    }

    /// Kills and deletes the container and removes its cgroups and bundle. Safe to call twice.
    /// Returns what could not be removed (empty when everything is gone).
    @discardableResult
    public func destroy() async -> [String] {
        guard !destroyed else { return [] }
        destroyed = true
        return await Janitor.teardown(id: id, runtimes: [runtime.kind], state: state, adopted: adopted)
    }

    /// True while the runtime reports the sandbox running.
    public func isRunning() async -> Bool {
        await runtime.status(id: id) == "running"
    }
}

/// The set of running commands' tags, shared with the threads that kill timed-out commands.
final class ActiveTags: Sendable {
    private let tags = Locked<Set<String>>([])
    func withLock<R>(_ body: (inout Set<String>) -> R) -> R { tags.withLock { body(&$0) } }
}

/// Checks of the host that must pass before a sandbox is created.
enum Preflight {
    static func check(runtime: Runtime) throws(SandboxError) {
        guard geteuid() == 0 else {
            throw SandboxError(.hostNotReady, "robit creates sandboxes as root (it manages cgroups, mounts and network namespaces); run it with sudo")
        }
        if runtime.kind == .crun, CgroupMounts.current().crunHybridQuirk {
            throw SandboxError(.hostNotReady, "crun refuses cgroups in hybrid mode while the cgroup2 tree has controllers (hugetlb); run `robit doctor --fix` (it mounts hugetlb as a v1 hierarchy) or use --runtime runsc")
        }
    }
}

/// Where robit-init is.
public enum InitBinary {
    public static func locate() throws(SandboxError) -> String {
        if let path = ProcessInfo.processInfo.environment["ROBIT_INIT"], access(path, X_OK) == 0 { return path }
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            var dir = (exe as NSString).deletingLastPathComponent
            candidates.append(dir + "/robit-init")
            // Test bundles live one level below the build products (robitPackageTests.xctest/...).
            while dir.count > 1 && !candidates.contains(dir + "/robit-init") {
                dir = (dir as NSString).deletingLastPathComponent
                candidates.append(dir + "/robit-init")
            }
        }
        candidates += ["/usr/local/libexec/robit/robit-init", "/usr/libexec/robit/robit-init"]
        for path in candidates where access(path, X_OK) == 0 { return path }
        throw SandboxError(.hostNotReady, "robit-init was not found next to robit (looked in \(candidates.prefix(3).joined(separator: ", "))); build it with `swift build` or set ROBIT_INIT")
    }
}
