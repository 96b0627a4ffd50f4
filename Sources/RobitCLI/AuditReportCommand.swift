import ArgumentParser
import Foundation
import RobitAgent
import RobitAudit

struct AuditReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a self-contained HTML report of an audit log.",
        discussion: """
            One file with no external scripts, styles, fonts or images (it opens from file://): the \
            verification verdict first (ok, or failed with the first bad line; unsigned; unpinned key), \
            the run summary (task, model, budgets and totals, policy hashes, egress allowlist and denied \
            attempts), and a timeline of model turns and tool calls with their arguments, exit status, \
            duration and output (long outputs collapsed). A log that fails verification still gets a \
            report, whose first line says so, and robit exits 6.
            """)

    @Argument(help: "The audit log: a run's audit directory or its audit.jsonl.")
    var log: String

    @Option(help: "Where to write the report (an .html file).")
    var html: String

    @Option(help: "Pin the public key (a .pub file or the base64 of the key); without it the key named in run.start is used.")
    var key: String?

    @Option(help: "Expected head hash (the last record's hash, printed at the end of the run).")
    var anchor: String?

    func run() throws {
        var options = AuditVerifyOptions(anchor: anchor)
        if let key {
            do { options.key = try AuditPublicKey.load(key) } catch { throw RobitExit(.invalidInput, error.message) }
        }
        let path = AuditFormat.logPath(log)
        guard FileManager.default.fileExists(atPath: path) else {
            throw RobitExit(.invalidInput, "no audit log at \(path); give a run's audit directory or its audit.jsonl")
        }
        let report = AuditHTMLReport.render(logPath: path, options: options)
        do {
            try Data(report.html.utf8).write(to: URL(fileURLWithPath: html), options: .atomic)
        } catch {
            throw RobitExit(.invalidInput, "cannot write \(html): \(error.localizedDescription)")
        }
        printError("robit: report \(html): \(report.steps) steps; \(report.verdictLine)")
        if !report.verified { throw ExitCode(ExitStatus.auditFailed.code) }
    }
}
