import Foundation
import RobitAudit
import RobitExec
import RobitOCI

/// The audit records of what RobitExec does in a run, shared by `robit sandbox run` and `robit run`.
public enum SandboxAudit {
    /// Default audit directory of a run: `$XDG_STATE_HOME/robit/runs/<run>` (~/.local/state/robit/runs/<run>).
    public static func defaultDirectory(run: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        RobitPaths.state(environment) + "/runs/" + run
    }

    /// The audit directory (`explicit`, or the run's default) and the signing key (`--key`, `ROBIT_AUDIT_KEY`,
    /// the default key file; nil = unsigned) of a run in a sandbox with these options, refusing either when
    /// the sandbox can see it. Every error is invalid input (exit 2).
    public static func placement(directory explicit: String?, key: String?, options: SandboxOptions, run: String,
                                 environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(RunSetupError) -> (directory: String, signer: AuditSigningKey?) {
        let directory = explicit ?? defaultDirectory(run: run, environment: environment)
        if let problem = placementProblem(directory, what: "audit directory", options: options, id: run) {
            throw RunSetupError(exitCode: 2, message: problem)
        }
        let resolved: (key: AuditSigningKey, path: String)?
        do { resolved = try AuditKeyLocation.resolve(explicit: key, environment: environment) } catch {
            throw RunSetupError(exitCode: 2, message: error.message)
        }
        guard let (signer, path) = resolved else { return (directory, nil) }
        if let problem = placementProblem(path, what: "signing key", options: options, id: run) {
            throw RunSetupError(exitCode: 2, message: problem)
        }
        return (directory, signer)
    }

    /// Why `path` may not hold an audit log or key for a sandbox with these options: it lies inside the
    /// workspace or inside a host path mounted into the sandbox. nil = fine.
    public static func placementProblem(_ path: String, what: String, options: SandboxOptions, id: String) -> String? {
        let target = resolved(path)
        var visible: [(String, String)] = [(options.workspace, "the workspace")]
        if let configuration = try? options.configuration(id: id) {
            let spec = SpecGenerator.spec(for: configuration, rootfsPath: "/nonexistent-robit-rootfs")
            for mount in spec.mounts ?? [] {
                guard let source = mount.source, source.hasPrefix("/"),
                      mount.type == "bind" || (mount.options ?? []).contains(where: { $0 == "bind" || $0 == "rbind" }) else { continue }
                visible.append((source, "\(mount.destination) in the sandbox"))
            }
            if case .path(let rootfs) = configuration.rootfs { visible.append((rootfs, "the sandbox's rootfs")) }
        }
        for (source, label) in visible where !source.isEmpty {
            let real = resolved(source)
            if target == real || target.hasPrefix(real == "/" ? "/" : real + "/") {
                return "\(what) \(path) lies inside \(label) (\(source)), which the sandbox can see; put it outside (default: ~/.local/state/robit/runs)"
            }
        }
        return nil
    }

    /// The real path of `path`, resolving the longest existing prefix (the rest may not exist yet).
    static func resolved(_ path: String) -> String {
        var absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        absolute = URL(fileURLWithPath: absolute).standardizedFileURL.path
        var head = absolute
        var tail: [String] = []
        while head != "/" && !head.isEmpty {
            if let real = realpath(head, nil) {
                defer { free(real) }
                let base = String(cString: real)
                return tail.isEmpty ? base : (base == "/" ? "" : base) + "/" + tail.reversed().joined(separator: "/")
            }
            tail.append(String(head.split(separator: "/").last ?? ""))
            head = (head as NSString).deletingLastPathComponent
        }
        return absolute
    }

    /// The `policy` record: SHA-256 of config.json as the runtime read it, of the seccomp profile (the bytes
    /// `robit bundle` writes as seccomp.json) and of the nft ruleset (null when the sandbox has no network).
    static func policyRecord(_ sandbox: Sandbox, policy: SandboxPolicy) -> AuditValue {
        let nftRuleset = sandbox.network?.rulesetText
        let config = FileManager.default.contents(atPath: sandbox.bundle.configPath).map { [UInt8]($0) } ?? []
        let seccomp = (sandbox.spec.linux?.seccomp).flatMap { try? OCIBundle.encode($0) }.map { [UInt8]($0) }
        return [
            "status": "ok",
            "config_sha256": .string(AuditHash.sha256Hex(config)),
            "seccomp_sha256": seccomp.map { .string(AuditHash.sha256Hex($0)) } ?? .null,
            "nft_sha256": nftRuleset.map { .string(AuditHash.sha256Hex($0)) } ?? .null,
            "network": nftRuleset == nil ? "none" : "allowlist",
            "policy_source": .string(policy.source),
            "capabilities": AuditValue(policy.capabilities),
            "runtime": .string(sandbox.runtime.kind.rawValue),
            "rootfs_readonly": .bool(sandbox.spec.root?.readonly ?? false),
            "no_new_privileges": .bool(sandbox.spec.process?.noNewPrivileges ?? false),
            "user": .string("\(sandbox.configuration.user.uid):\(sandbox.configuration.user.gid)"),
            "pinned_hosts": .array((sandbox.network?.pinnedHosts ?? []).map { ["name": .string($0.name), "address": .string($0.address)] }),
        ]
    }

    /// A `net.denied` record of the connection attempts the egress filter dropped since the last one; nil when
    /// there were none (or the sandbox has no network to filter: it has only loopback).
    public static func deniedRecord(_ sandbox: Sandbox, after call: String? = nil) async -> AuditValue? {
        guard let network = sandbox.network else { return nil }
        let denied = await network.deniedSinceLastRead()
        guard !denied.isEmpty else { return nil }
        var record: AuditValue = [
            "status": "error",
            "resource": .string(sandbox.id),
            "destinations": .array(denied.map {
                ["address": .string($0.address), "proto": .string($0.proto), "port": .int(Int64($0.port)), "packets": .int(Int64(clamping: $0.packets))]
            }),
        ]
        if let call { record.set("after", .string(call)) }
        return record
    }

    /// Creates the sandbox and records `sandbox.create` and `policy`; a failure is recorded as an `error`.
    public static func create(_ options: SandboxOptions, id: String, log: AuditLog) async throws(SandboxError) -> Sandbox {
        let start = ContinuousClock.now
        let box: Sandbox
        do { box = try await Sandbox.create(options, id: id) } catch {
            _ = try? log.append("error", errorRecord(error.message, stage: "sandbox.create"))
            throw error
        }
        _ = try? log.append("sandbox.create", createRecord(box, duration: ContinuousClock.now - start))
        _ = try? log.append("policy", policyRecord(box, policy: options.policy))
        return box
    }

    /// Destroys the sandbox and records `sandbox.destroy`; returns what could not be removed.
    public static func destroy(_ box: Sandbox, log: AuditLog) async -> [String] {
        let start = ContinuousClock.now
        let leftovers = await box.destroy()
        _ = try? log.append("sandbox.destroy", destroyRecord(box, leftovers: leftovers, duration: ContinuousClock.now - start))
        return leftovers
    }

    static func createRecord(_ sandbox: Sandbox, duration: Duration) -> AuditValue {
        [
            "status": "ok",
            "resource": .string(sandbox.id),
            "runtime": .string(sandbox.runtime.kind.rawValue),
            "runtime_path": .string(sandbox.runtime.path),
            "workspace": .string(sandbox.configuration.workspace),
            "memory_bytes": .int(Int64(clamping: sandbox.configuration.limits.memory)),
            "pids": .int(Int64(sandbox.configuration.limits.pids)),
            "cpu_millis": .int(Int64(sandbox.configuration.limits.cpu * 1000)),
            "duration_ns": AuditValue(nanoseconds: duration),
        ]
    }

    /// One exec's outcome: argv, status, duration, output inline or as blob references.
    public static func execRecord(argv: [String], result: ExecResult, log: AuditLog) throws(AuditError) -> AuditValue {
        var record: AuditValue = [
            "status": result.exitCode == 0 && !result.timedOut && !result.outOfMemory ? "ok" : "error",
            "argv": AuditValue(argv),
            "exit_code": .int(Int64(result.exitCode)),
            "duration_ns": AuditValue(nanoseconds: result.duration),
            "stdout": try log.payload([UInt8](result.stdout.data)),
            "stderr": try log.payload([UInt8](result.stderr.data)),
            "stdout_bytes": .int(Int64(result.stdout.totalBytes)),
            "stderr_bytes": .int(Int64(result.stderr.totalBytes)),
            "truncated": .bool(result.truncated),
            "timed_out": .bool(result.timedOut),
            "out_of_memory": .bool(result.outOfMemory),
            "interrupted": .bool(result.interrupted),
        ]
        if result.sandboxRestarted { record.set("sandbox_restarted", true) }
        if !result.notes.isEmpty { record.set("notes", AuditValue(result.notes)) }
        if case .signaled(let signal) = result.status { record.set("signal", .int(Int64(signal))) }
        return record
    }

    static func destroyRecord(_ sandbox: Sandbox, leftovers: [String], duration: Duration) -> AuditValue {
        [
            "status": leftovers.isEmpty ? "ok" : "error",
            "resource": .string(sandbox.id),
            "leftovers": AuditValue(leftovers),
            "duration_ns": AuditValue(nanoseconds: duration),
        ]
    }

    public static func errorRecord(_ message: String, stage: String) -> AuditValue {
        ["status": "error", "stage": .string(stage), "message": .string(message)]
    }
}
