import ArgumentParser
import Foundation
import RobitAgent
import RobitOCI

struct RunsPrune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove runs that ended before a cut-off: run store rows, audit logs, run directories.",
        discussion: """
            A run's audit directory is removed only when its log is that run's; a run still running is \
            kept; a patch written to output.patch is never removed. Logs of robit batch older than the \
            cut-off go too. Audit logs are evidence: copy what you must keep (and its head hash) \
            first; see docs/headless.md.
            """)

    @Option(name: .customLong("older-than"), help: "Age of the runs to remove, e.g. 30d, 12h.")
    var olderThan: String

    @Flag(name: .customLong("dry-run"), help: "List what would be removed; remove nothing.")
    var dryRun = false

    @Flag(help: "Print one JSON object per run.")
    var json = false

    func run() throws {
        guard let age = parseDuration(olderThan), age > .zero else {
            throw RobitExit(.invalidInput, "--older-than \(olderThan) is not a duration such as 30d or 12h")
        }
        var entries: [RunPrune.Entry]
        do {
            entries = try RunPrune.plan(olderThan: age)
            if !dryRun { entries = try RunPrune.apply(entries) }
        } catch {
            throw RobitExit(.invalidInput, error.message)
        }
        let batchLogs = RunPrune.oldBatchLogs(olderThan: age)
        if !dryRun { for path in batchLogs { try? FileManager.default.removeItem(atPath: path) } }
        let formatter = ISO8601DateFormatter()
        var removed = 0, kept = 0, failed = 0
        var bytes: Int64 = 0
        for e in entries {
            let action = e.kept != nil ? "kept" : e.error != nil ? "failed" : dryRun ? "would_remove" : "removed"
            switch action {
            case "kept": kept += 1
            case "failed": failed += 1
            default: removed += 1; bytes += e.bytes
            }
            if json {
                var object: [String: Any] = ["run": e.run, "task_name": e.taskName, "status": e.status, "at": e.at, "action": action,
                                             "paths": e.paths, "bytes": e.bytes]
                object["reason"] = e.kept ?? e.error ?? NSNull()
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            } else {
                let when = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(e.at)))
                print(action.rightPad(12) + " " + e.run.rightPad(18) + " " + e.status.rightPad(15) + " " + when + " " + e.taskName
                      + ((e.kept ?? e.error).map { ": " + $0 } ?? ""))
            }
        }
        let verb = dryRun ? "would remove" : "removed"
        printError("robit: \(verb) \(removed) run\(removed == 1 ? "" : "s") (\(Self.megabytes(bytes))) and \(batchLogs.count) batch log director\(batchLogs.count == 1 ? "y" : "ies"); kept \(kept)"
                   + (failed > 0 ? "; \(failed) could not be removed" : ""))
        if failed > 0 { throw ExitCode(ExitStatus.failed.code) }
    }

    static func megabytes(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}
