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
        let directory = auditDir ?? SandboxAudit.defaultDirectory(run: run)
        if let problem = SandboxAudit.placementProblem(directory, what: "audit directory", options: options, id: run) {
            throw RobitExit(RobitExit.invalidInput, problem)
        }
        let signer: AuditSigningKey?
        do {
            if let (key, path) = try AuditKeyLocation.resolve(explicit: key) {
                if let problem = SandboxAudit.placementProblem(path, what: "signing key", options: options, id: run) {
                    throw RobitExit(RobitExit.invalidInput, problem)
                }
                signer = key
            } else {
                signer = nil
            }
            return try AuditLog.create(directory: directory, run: run,
                                       options: AuditOptions(signer: signer, fsync: fsync, redactions: redactions), startData: start)
        } catch let error as AuditError {
            throw RobitExit(error.kind == .key ? RobitExit.invalidInput : RobitExit.auditFailed, error.message)
        }
    }
}
