import ArgumentParser
import Foundation
import RobitAgent
import RobitAudit
import RobitExec

extension AuditFsync: ExpressibleByArgument {}

/// Where a run's audit log goes and how it is signed.
struct AuditFlags: ParsableArguments {
    @Option(name: .customLong("audit-dir"), help: "Directory for this run's audit log (default ~/.local/state/robit/runs/RUN). Never inside the workspace or any path mounted into the sandbox.")
    var auditDir: String?

    @Option(help: "Private key that signs audit checkpoints (default: $ROBIT_AUDIT_KEY, then ~/.config/robit/audit.key if present; none = unsigned).")
    var key: String?

    @Option(help: "When the audit log is forced to disk: `checkpoint` (every checkpoint and the end) or `every` record.")
    var fsync: AuditFsync = .checkpoint

    /// Resolves the directory and key, refusing places the sandbox can see, and starts the log.
    func open(run: String, sandbox options: SandboxOptions, start: AuditValue, redactions: [Redaction] = []) throws -> AuditLog {
        let directory: String, signer: AuditSigningKey?
        do { (directory, signer, _) = try SandboxAudit.placement(directory: auditDir, key: key, options: options, run: run) } catch {
            throw RobitExit(error.exitCode, error.message)
        }
        do {
            return try AuditLog.create(directory: directory, run: run,
                                       options: AuditOptions(signer: signer, fsync: fsync, redactions: redactions), startData: start)
        } catch {
            throw RobitExit(error.kind == .key ? ExitStatus.invalidInput.code : ExitStatus.auditFailed.code, error.message)
        }
    }
}
