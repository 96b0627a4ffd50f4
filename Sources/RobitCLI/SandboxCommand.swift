import ArgumentParser
import Foundation
import RobitAgent
import RobitAudit
import RobitExec
import RobitOCI

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run commands in a sandbox by hand.",
        subcommands: [SandboxRun.self])
}

extension RuntimeKind: ExpressibleByArgument {}

/// Flags that shape a sandbox, shared by commands that create one.
struct SandboxFlags: ParsableArguments {
    @Option(help: "OCI runtime: runsc (gVisor, default), crun or runc.")
    var runtime: RuntimeKind = .runsc

    @Option(help: "Host directory mounted read-write at /work. Without it, an empty scratch directory is used and removed afterwards.")
    var workspace: String?

    @Option(help: "Policy file (capabilities and seccomp profile). Default: robit's built-in policy (policies/default.json).")
    var policy: String?

    @Option(help: "Root filesystem: `host` (read-only binds of the host's /usr and a curated /etc) or a prepared rootfs directory.")
    var rootfs: String = "host"

    @Option(help: "UID:GID inside the sandbox (never 0). Default: the owner of the workspace.")
    var user: String?

    @Option(help: "Memory limit, e.g. 512MiB.")
    var memory: String = "512MiB"

    @Option(help: "Maximum number of processes.")
    var pids: Int = 256

    @Option(help: "CPUs, e.g. 1.0 or 0.5.")
    var cpu: Double = 1.0

    @Option(name: .customLong("tmp-size"), help: "Size of the tmpfs at /tmp, e.g. 1GiB.")
    var tmpSize: String = "1GiB"

    @Option(name: .customLong("egress"), help: ArgumentHelp("A TCP destination the sandbox may reach: host:port, IPv4:port or CIDR:port (repeatable). Without it the sandbox has only loopback.", valueName: "host:port"))
    var egress: [String] = []

    func options() throws -> SandboxOptions {
        // The bounds and messages of a task file's sandbox.limits.
        let memory = ByteCount(try LimitRules.size(self.memory, in: LimitRules.memory).flag("memory"))
        let tmp = ByteCount(try LimitRules.size(tmpSize, in: LimitRules.tmp).flag("tmp-size"))
        if let error = LimitRules.pids(pids) { throw ValidationError("--pids: \(error.message)") }
        if let error = LimitRules.cpu(cpu) { throw ValidationError("--cpu: \(error.message)") }
        var policyValue = SandboxPolicy.builtInDefault()
        if let policy {
            do { policyValue = try SandboxPolicy.load(path: policy) } catch { throw RobitExit(.invalidInput, error.description) }
        }
        var userValue: User?
        if let user {
            let parts = user.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let uid = UInt32(parts[0]), let gid = UInt32(parts[1]) else {
                throw ValidationError("--user \(user) is not UID:GID (e.g. 1000:1000)")
            }
            userValue = User(uid: uid, gid: gid)
            if let problem = Workspace.problem(with: userValue!) { throw ValidationError("--user \(user): \(problem)") }
        }
        var egressValue: [Egress] = []
        for text in egress {
            do { egressValue.append(try EgressRule(parsing: text)) } catch { throw ValidationError("--egress: \(error.message)") }
        }
        let rootfsValue: SandboxConfiguration.Rootfs
        if rootfs == "host" {
            rootfsValue = .host
        } else {
            rootfsValue = .path(URL(fileURLWithPath: rootfs).standardizedFileURL.path)
        }
        return SandboxOptions(runtime: runtime, rootfs: rootfsValue, workspace: workspace ?? "", user: userValue,
                              limits: SandboxLimits(memory: memory.bytes, pids: pids, cpu: cpu, tmpSize: tmp.bytes), policy: policyValue,
                              egress: egressValue)
    }
}

struct SandboxRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one command in a fresh sandbox and mirror its exit status.",
        discussion: """
            The command is executed directly (no shell); use `-- sh -c '...'` for shell syntax. Its stdout and \
            stderr are passed through, each capped at --output. A command that runs past --timeout is killed \
            with everything it started, and robit exits 124; a command killed for using too much memory makes \
            robit exit 137. The sandbox is always removed afterwards, also on SIGINT and SIGTERM (exit 130).
            """)

    @OptionGroup var sandbox: SandboxFlags

    @OptionGroup var audit: AuditFlags

    @Option(help: "Kill the command after this long, e.g. 30s or 5m.")
    var timeout: String = "30s"

    @Option(help: "Bytes of stdout and of stderr kept, each, e.g. 1MiB.")
    var output: String = "1MiB"

    @Flag(help: "Work on a copy-on-write view of --workspace as uid 65532 (the directory itself is never written, whoever owns it), and write a patch of the changes.")
    var copy = false

    @Option(help: "With --copy: room for what the command writes to /work, e.g. 1GiB (a full disk is ENOSPC).")
    var disk: String?

    @Option(help: "With --copy: where to write the patch (default: the run's directory under robit's state; its path is printed).")
    var patch: String?

    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
        if command.isEmpty {
            throw ValidationError("give the command to run after --, e.g. `robit sandbox run -- uname -a`")
        }
        if copy && sandbox.workspace == nil { throw ValidationError("--copy works on a copy of --workspace DIR; give the directory") }
        if copy && sandbox.user != nil { throw ValidationError("--copy runs the command as uid 65532; leave out --user") }
        if !copy && (disk != nil || patch != nil) {
            throw ValidationError("--disk and --patch need --copy: without it /work is the host directory itself, whose size robit does not limit")
        }
    }

    /// --timeout, --output and --disk, checked by the rules of a task file's sandbox.limits.
    func checkedLimits() throws -> (timeout: Duration, output: ByteCount, disk: ByteCount) {
        (try LimitRules.duration(self.timeout, in: LimitRules.timeout).flag("timeout"),
         ByteCount(try LimitRules.size(self.output, in: LimitRules.output).flag("output")),
         ByteCount(try LimitRules.size(disk ?? "1GiB", in: LimitRules.disk).flag("disk")))
    }

    func run() async throws {
        let argv = command
        let (timeout, output, diskSize) = try checkedLimits()
        var options = try sandbox.options()
        Interrupts.install()
        var scratch: String?
        if sandbox.workspace == nil {
            let user = options.user ?? User.sandbox
            scratch = try Workspace.makeScratch(user: user)
            options.workspace = scratch!
            options.scratch = scratch
            options.user = user
        }
        defer { if let scratch { Workspace.removeScratch(scratch) } }

        let id = Sandbox.newID()
        var layered: RunWorkspace?
        if copy, let source = sandbox.workspace {
            do {
                layered = try RunWorkspace.prepare(from: URL(fileURLWithPath: source).standardizedFileURL.path,
                                                   at: RunWorkspace.defaultRoot(run: id), disk: diskSize.bytes)
            } catch {
                throw RobitExit(ExitStatus(error), error.message)
            }
            options.workspace = layered!.work
            options.user = RunWorkspace.sandboxUser
        }
        defer { layered?.finish(done: true) }
        let task: AuditValue = [
            "command": "sandbox run", "argv": AuditValue(argv), "runtime": .string(options.runtime.rawValue),
            "workspace": .string(sandbox.workspace ?? "(scratch)"), "policy": .string(options.policy.source),
            "rootfs": .string(sandbox.rootfs), "memory": .string(sandbox.memory), "pids": .int(Int64(sandbox.pids)),
            "egress": AuditValue(sandbox.egress), "copy": .bool(copy),
            "timeout": .string(self.timeout), "output": .string(self.output),
        ]
        let log = try audit.open(run: id, sandbox: options, start: try AuditRecords.sandboxRunStart(robitVersion: robitVersion, invocation: task))
        printError("robit: run \(id), audit log \(log.path)")

        let box: Sandbox
        do {
            box = try await SandboxAudit.create(options, id: id, log: log)
        } catch {
            finishLog(log, status: "error", exitCode: ExitStatus(error).code)
            throw error
        }
        let result: ExecResult
        do {
            result = try await SandboxAudit.exec(box, ExecRequest(argv: argv, timeout: timeout, outputLimit: Int(output.bytes)), log: log)
        } catch {
            _ = await SandboxAudit.destroy(box, log: log)
            finishLog(log, status: "error", exitCode: ExitStatus(error).code)
            throw error
        }
        // Teardown before output: a reader that goes away (`| head`) must not stop robit cleaning up.
        let leftovers = await SandboxAudit.destroy(box, log: log)
        var patchPath: String?
        if let layered {
            let target = patch.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? layered.root + "/changes.patch"
            do throws(RunSetupError) {
                // `sandbox run` knows no secrets: nothing to replace in its patch.
                _ = try SandboxAudit.writePatch(of: layered, to: target, redactor: Redactor([]), log: log)
                patchPath = target
                printError("robit: patch \(target)")
            } catch {
                printError("robit: warning: \(error.message)")
            }
        }
        try? FileHandle.standardOutput.write(contentsOf: result.stdout.data)
        try? FileHandle.standardError.write(contentsOf: result.stderr.data)
        if result.stdout.truncated {
            printError("robit: stdout truncated: kept \(result.stdout.data.count) of \(result.stdout.totalBytes) bytes")
        }
        if result.stderr.truncated {
            printError("robit: stderr truncated: kept \(result.stderr.data.count) of \(result.stderr.totalBytes) bytes")
        }
        if !leftovers.isEmpty { printError("robit: sandbox teardown incomplete: \(leftovers.joined(separator: "; ")); run `robit doctor --fix`") }
        let exit: Int32
        var message = ""
        if result.interrupted {
            (exit, message) = (ExitStatus.interrupted.code, "interrupted; sandbox removed")
        } else if result.timedOut {
            (exit, message) = (124, "command timed out after \(formatDuration(timeout)) and was killed")
        } else if result.outOfMemory {
            (exit, message) = (137, "command killed: out of memory (limit \(ByteCount(options.limits.memory)))")
        } else if !leftovers.isEmpty {
            exit = ExitStatus.sandboxFailed.code
        } else {
            exit = result.exitCode
        }
        finishLog(log, status: exit == 0 ? "ok" : "error", exitCode: exit, message: message, patch: patchPath)
        if exit == result.exitCode && message.isEmpty && leftovers.isEmpty { throw ExitCode(exit) }
        throw RobitExit(exit, message)
    }

    private func finishLog(_ log: AuditLog, status: String, exitCode: Int32, message: String = "", patch: String? = nil) {
        let result = exitCode == 0 ? "done" : (exitCode == ExitStatus.interrupted.code ? "interrupted" : "failed")
        if let head = SandboxAudit.finish(log, status: status, exitCode: exitCode, result: result, message: message, patch: patch) {
            printError("robit: audit head \(head) (\(log.path))")
        }
    }
}

extension Result where Failure == LimitError {
    /// The value of flag `--NAME`, or the usage error that names it.
    func flag(_ name: String) throws -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let error): throw ValidationError("--\(name): \(error.message)")
        }
    }
}
