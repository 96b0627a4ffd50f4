import Foundation
import RobitAudit
import RobitExec
import RobitOCI

/// The audit records of what RobitExec does in a run, shared by `robit sandbox run` and `robit run`.
public enum SandboxAudit {
    /// Default audit directory of a run: `$XDG_STATE_HOME/robit/runs/<run>` (~/.local/state/robit/runs/<run>).
    static func defaultDirectory(run: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        RobitPaths.state(environment) + "/runs/" + run
    }

    /// The audit directory (`explicit`, or the run's default) and the signing key (`--key`, `ROBIT_AUDIT_KEY`,
    /// the default key file; nil = unsigned) of a run in a sandbox with these options, refusing either when
    /// the sandbox can see it. Every error is invalid input (exit 2). Also returns the sandbox's
    /// configuration for id `run`, worked out for this check, for `create` to use (nil: it is invalid,
    /// and `create` will say why).
    public static func placement(directory explicit: String?, key: String?, options: SandboxOptions, run: String,
                                 environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(RunSetupError) -> (directory: String, signer: AuditSigningKey?, configuration: SandboxConfiguration?) {
        let directory = explicit ?? defaultDirectory(run: run, environment: environment)
        let configuration = try? options.configuration(id: run)
        let visible = visiblePaths(options, configuration: configuration)
        if let problem = placementProblem(directory, what: "audit directory", visible: visible) {
            throw RunSetupError(.invalidInput, problem)
        }
        let resolved: (key: AuditSigningKey, path: String)?
        do { resolved = try AuditKeyLocation.resolve(explicit: key, environment: environment) } catch {
            throw RunSetupError(.invalidInput, error.message)
        }
        guard let (signer, path) = resolved else { return (directory, nil, configuration) }
        if let problem = placementProblem(path, what: "signing key", visible: visible) {
            throw RunSetupError(.invalidInput, problem)
        }
        return (directory, signer, configuration)
    }

    /// The host paths a sandbox with these options can see, each with what it is in the sandbox: the
    /// workspace, every host path bind-mounted into it, and a prepared rootfs.
    static func visiblePaths(_ options: SandboxOptions, configuration: SandboxConfiguration?) -> [(source: String, label: String)] {
        var visible: [(String, String)] = [(options.workspace, "the workspace")]
        if let configuration {
            let spec = SpecGenerator.spec(for: configuration, rootfsPath: "/nonexistent-robit-rootfs")
            for mount in spec.mounts ?? [] {
                guard let source = mount.source, source.hasPrefix("/"),
                      mount.type == "bind" || (mount.options ?? []).contains(where: { $0 == "bind" || $0 == "rbind" }) else { continue }
                visible.append((source, "\(mount.destination) in the sandbox"))
            }
            if case .path(let rootfs) = configuration.rootfs { visible.append((rootfs, "the sandbox's rootfs")) }
        }
        return visible
    }

    /// Why `path` may not hold an audit log or key: it lies inside one of the `visible` paths. nil = fine.
    static func placementProblem(_ path: String, what: String, visible: [(source: String, label: String)]) -> String? {
        let target = resolved(path)
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

    /// A `net.denied` record of the connection attempts the egress filter dropped since the last one; nil when
    /// there were none (or the sandbox has no network to filter: it has only loopback).
    static func deniedRecord(_ sandbox: any ToolSandbox, after call: String?) async -> AuditEvent? {
        let denied = await sandbox.deniedSinceLastRead()
        guard !denied.isEmpty else { return nil }
        return AuditRecords.netDenied(sandbox: sandbox.id, denied, after: call)
    }

    /// Creates the sandbox and records `sandbox.create` and `policy`; a failure is recorded as an `error`.
    public static func create(_ options: SandboxOptions, id: String, configuration: SandboxConfiguration? = nil,
                              log: AuditLog, policy recorded: ((AuditValue) -> Void)? = nil) async throws(SandboxError) -> Sandbox {
        let start = ContinuousClock.now
        let box: Sandbox
        do { box = try await Sandbox.create(options, id: id, configuration: configuration) } catch {
            _ = try? log.append(AuditRecords.error(error.message, stage: "sandbox.create"))
            throw error
        }
        _ = try? log.append(AuditRecords.sandboxCreate(box, duration: ContinuousClock.now - start))
        let policy = AuditRecords.policy(box, policy: options.policy)
        _ = try? log.append(policy)
        recorded?(policy.data)
        return box
    }

    /// Destroys the sandbox and records `sandbox.destroy`; returns what could not be removed.
    public static func destroy(_ box: Sandbox, log: AuditLog) async -> [String] {
        let start = ContinuousClock.now
        let leftovers = await box.destroy()
        _ = try? log.append(AuditRecords.sandboxDestroy(id: box.id, leftovers: leftovers, duration: ContinuousClock.now - start))
        return leftovers
    }

    /// `robit sandbox run`'s one command: records `tool.call`, runs it, records `tool.result` (or the
    /// `error` that stopped it) and what the egress filter dropped.
    public static func exec(_ box: Sandbox, _ request: ExecRequest, log: AuditLog) async throws(SandboxError) -> ExecResult {
        let arguments = (try? CanonicalJSON.encode(["argv": AuditValue(request.argv)])).map { String(decoding: $0, as: UTF8.self) } ?? ""
        _ = try? log.append(AuditRecords.toolCall(step: 1, id: "call-0", name: "exec", arguments: .string(arguments)))
        try? log.flush()
        let result: ExecResult
        do { result = try await box.exec(request) } catch {
            _ = try? log.append(AuditRecords.error(error.message, stage: "exec"))
            throw error
        }
        let failed = result.exitCode != 0 || result.timedOut || result.outOfMemory || result.interrupted
        _ = try? log.append(AuditRecords.toolResult(step: 1, id: "call-0", name: "exec", exec: ExecFacts(argv: request.argv, result: result),
                                                    stdout: log.storedPayload([UInt8](result.stdout.data)),
                                                    stderr: log.storedPayload([UInt8](result.stderr.data)),
                                                    truncated: result.truncated, content: .null, isError: failed))
        if let denied = await deniedRecord(box, after: "call-0") { _ = try? log.append(denied) }
        return result
    }

    /// Writes the patch of a run's workspace to `path` with the redactor's secrets replaced, and records
    /// `patch` (or the `error` that prevented it). Returns how many secret values were replaced.
    public static func writePatch(of workspace: RunWorkspace, to path: String, redactor: Redactor, log: AuditLog,
                                  tree: String? = nil) throws(RunSetupError) -> Int {
        let diff: String
        do { diff = try workspace.patch() } catch {
            let message = "no patch: \(redactor.redact(error.message))"
            _ = try? log.append(AuditRecords.error(message, stage: "patch"))
            throw RunSetupError(.sandboxFailed, message, underlying: error)
        }
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let (clean, count) = redactor.redactCounting(diff)
        do {
            try Data(clean.utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            let message = "cannot write the patch \(path): \(error.localizedDescription)"
            _ = try? log.append(AuditRecords.error(message, stage: "patch"))
            throw RunSetupError(.sandboxFailed, message)
        }
        _ = try? log.append(AuditRecords.patch(path: path, diff: clean, redacted: count, tree: tree))
        return count
    }

    /// Ends the log with `run.end`; returns the head, or nil (and says why on stderr) when it could not.
    public static func finish(_ log: AuditLog, status: String, exitCode: Int32, result: String, message: String = "",
                              usage: RunUsage = RunUsage(), finalText: AuditValue = .null, patch: String? = nil) -> String? {
        do {
            return try log.finish(AuditRecords.runEnd(status: status, result: result, exitCode: exitCode, message: message,
                                                      usage: usage, finalText: finalText, patch: patch))
        } catch {
            FileHandle.standardError.write(Data("robit: error: could not finish the audit log \(log.path): \(error.message)\n".utf8))
            return nil
        }
    }
}
