import ArgumentParser
import Foundation
import RobitAgent
import RobitAudit
import RobitExec

struct AuditReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-execute a run's recorded tool calls and report where they do not do the same again.",
        discussion: """
            Verifies the log first (exit 6 if it does not verify; --pin PUB / --anchor HEAD pin it, and \
            without either robit warns: the log names the task and every command the replay runs). Checks that the starting workspace \
            (--workspace, default the recorded one) has the recorded tree hash, works on a copy of it as \
            `robit run` does, rebuilds the sandbox from the recorded task and refuses when its policy \
            (config.json template, seccomp profile, nft ruleset) differs from the recorded one, unless \
            --allow-policy-change. Every model turn is answered from the log (no network, no key); every \
            recorded tool call runs again, in order, and is compared: exit status, output hashes (with a \
            short diff), timeouts and OOM, then the patch and the workspace tree at the end. The replay \
            writes an audit log of its own, which names the log it replayed.

            Exit codes: 0 reproduced, 7 diverged (or refused: the policy differs), 2 invalid input, \
            5 sandbox failed, 6 the log does not verify, 130 interrupted.
            """)

    @Argument(help: "The audit log: a run's audit directory or its audit.jsonl.")
    var log: String

    @Option(help: "The run's starting workspace (default: the workspace run.start records).")
    var workspace: String?

    @Option(help: "OCI runtime: runsc, crun or runc (default: the recorded one; another one changes the policy).")
    var runtime: RuntimeKind?

    @Flag(help: "Print the report as one JSON object on stdout.")
    var json = false

    @Flag(name: .customLong("allow-policy-change"), help: "Replay even when the sandbox's policy differs from the recorded one (reported).")
    var allowPolicyChange = false

    @Option(name: .customLong("audit-dir"), help: "Directory for the replay's own audit log (default ~/.local/state/robit/runs/RUN).")
    var auditDir: String?

    @Option(help: "Pin the replayed log's public key (a .pub file or the base64 of the key); without it (or --anchor) robit warns that anyone could have written the log.")
    var pin: String?

    @Option(help: "Expected head hash of the replayed log (printed at the end of its run).")
    var anchor: String?

    @Option(help: "Private key that signs the replay's audit checkpoints (default: $ROBIT_AUDIT_KEY, then ~/.config/robit/audit.key if present).")
    var key: String?

    func run() async throws {
        var verify = AuditVerifyOptions(anchor: anchor)
        if let pin {
            do { verify.key = try AuditPublicKey.load(pin) } catch { throw RobitExit(.invalidInput, error.message) }
        }
        let request = ReplayRequest(log: log, workspace: workspace, runtime: runtime, allowPolicyChange: allowPolicyChange,
                                    auditDirectory: auditDir, signingKey: key, verify: verify, robitVersion: robitVersion)
        let report: ReplayReport
        do {
            report = try await AuditReplay.run(request, notice: { printError("robit: \($0)") })
        } catch {
            throw RobitExit(error.exitCode, error.message)
        }
        if json {
            print(report.jsonText)
        } else {
            FileHandle.standardOutput.write(Data(report.text.utf8))
        }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}
