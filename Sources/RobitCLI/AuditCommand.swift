import ArgumentParser
import Foundation
import RobitAgent
import RobitAudit

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify and read audit logs.",
        subcommands: [AuditVerify.self, AuditShow.self, AuditReplayCommand.self, AuditReportCommand.self])
}


struct AuditVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that an audit log is complete and untampered.",
        discussion: """
            Checks every line: canonical JSON, its hash, the chain (seq and prev), every checkpoint \
            signature, every blob, and that the log ends with run.end and a checkpoint. Prints `ok` and \
            the head hash, or names the first bad line and why (modified, inserted, deleted, reordered, \
            truncated, bad signature, missing blob, altered blob, anchor mismatch) and exits 6.
            """)

    @Argument(help: "The audit log: a run's audit directory or its audit.jsonl.")
    var log: String

    @Option(help: "Pin the public key (a .pub file or the base64 of the key); without it the key named in run.start is used.")
    var key: String?

    @Option(help: "Expected head hash (the last record's hash, printed at the end of the run).")
    var anchor: String?

    @Flag(name: .customLong("allow-incomplete"), help: "Accept a log that has not ended yet (a run in progress).")
    var allowIncomplete = false

    @Flag(help: "Print the verdict as one JSON object.")
    var json = false

    func run() throws {
        var options = AuditVerifyOptions(anchor: anchor, allowIncomplete: allowIncomplete)
        if let key {
            do { options.key = try AuditPublicKey.load(key) } catch { throw RobitExit(.invalidInput, error.message) }
        }
        if let anchor, anchor.utf8.count != 64 || !anchor.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) }) {
            throw RobitExit(.invalidInput, "--anchor must be a 64-digit hex SHA-256 (the head hash)")
        }
        let path = AuditFormat.logPath(log)
        let verdict = AuditVerifier.verify(path: path, options: options)
        if json {
            var object: [String: Any] = [
                "ok": verdict.ok, "records": verdict.records, "checkpoints": verdict.checkpoints, "blobs": verdict.blobs,
                "signed": verdict.signed, "pinned": verdict.pinned, "finished": verdict.finished, "warnings": verdict.warnings,
            ]
            object["head"] = verdict.head ?? NSNull()
            object["run"] = verdict.run ?? NSNull()
            object["key_id"] = verdict.keyID ?? NSNull()
            if let f = verdict.failure {
                object["failure"] = ["line": f.line, "reason": f.problem.rawValue, "detail": f.detail]
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else if let failure = verdict.failure {
            print("FAIL \(path)")
            print("line \(failure.line): \(failure.problem.rawValue): \(failure.detail)")
        } else {
            let signature = verdict.signed ? (verdict.pinned ? "signed, pinned key \(verdict.keyID!)" : "signed, unpinned key \(verdict.keyID!)") : "unsigned"
            print("ok \(path)")
            print("records \(verdict.records), checkpoints \(verdict.checkpoints), blobs \(verdict.blobs), \(signature)\(verdict.finished ? "" : ", incomplete")")
            print("run \(verdict.run ?? "?")")
            print("head \(verdict.head ?? "none")")
        }
        if !json { for warning in verdict.warnings { printError("robit: warning: \(warning)") } }
        if !verdict.ok { throw ExitCode(ExitStatus.auditFailed.code) }
    }
}

struct AuditShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print an audit log as a timeline.",
        discussion: """
            One line per record: time, type, tool, status, duration and bytes. --json prints the records \
            themselves, one per line. Show does not verify: run `robit audit verify` for that.
            """)

    @Argument(help: "The audit log: a run's audit directory or its audit.jsonl.")
    var log: String

    @Flag(help: "Print the matching records as JSON lines, exactly as stored.")
    var json = false

    @Option(help: "Only records of this type (e.g. tool.result).")
    var type: String?

    @Option(help: "Only records of this tool.")
    var tool: String?

    @Flag(help: "Only records whose status is error.")
    var failed = false

    @Flag(help: "Keep printing records as they are appended, until the run ends.")
    var follow = false

    func run() throws {
        let path = AuditFormat.logPath(log)
        let color = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        var printed = 0
        var seen = 0
        var finished = false
        var out = ""
        while true {
            var reader: AuditReader
            do { reader = try AuditReader(path: path) } catch { throw RobitExit(.invalidInput, error.message) }
            var index = 0
            while let record = reader.next() {
                index += 1
                if index <= seen { continue }
                seen = index
                if record.type == "run.end" { finished = true }
                guard matches(record) else { continue }
                out += (json ? record.line : AuditTimeline.line(for: record, color: color)) + "\n"
                printed += 1
                if out.utf8.count > 1 << 16 { flush(&out) }
            }
            flush(&out)
            if reader.skipped > 0 && !follow { printError("robit: \(reader.skipped) line(s) are not records (torn or not canonical); run `robit audit verify`") }
            if !follow || finished { break }
            usleep(200_000)
        }
        if printed == 0 && !json { printError("robit: no matching records") }
    }

    private func flush(_ out: inout String) {
        guard !out.isEmpty else { return }
        try? FileHandle.standardOutput.write(contentsOf: Data(out.utf8))
        out = ""
    }

    func matches(_ record: AuditRecord) -> Bool {
        if let type, record.type != type { return false }
        if let tool, AuditTimeline.toolName(record) != tool { return false }
        if failed, record.data["status"]?.stringValue != "error" { return false }
        return true
    }
}

enum AuditTimeline {
    static func toolName(_ record: AuditRecord) -> String? {
        record.data["name"]?.stringValue ?? record.data["tool"]?.stringValue
    }

    static func line(for record: AuditRecord, color: Bool) -> String {
        // 2026-11-25T17:03:36.123456789Z -> 17:03:36.123
        let time = record.ts.count >= 23 ? String(record.ts.dropFirst(11).prefix(12)) : record.ts
        let status = record.data["status"]?.stringValue ?? ""
        var duration = ""
        if let ns = record.data["duration_ns"]?.intValue ?? record.data["latency_ns"]?.intValue {
            duration = ns >= 1_000_000_000 ? String(format: "%.2fs", Double(ns) / 1e9) : String(format: "%.1fms", Double(ns) / 1e6)
        }
        var bytes = ""
        let sizes = ["stdout", "stderr", "content", "response"].compactMap { key -> Int64? in
            guard let v = record.data[key] else { return nil }
            if let s = v.stringValue { return Int64(s.utf8.count) }
            return v["size"]?.intValue
        }
        if !sizes.isEmpty { bytes = "\(sizes.reduce(0, +))B" }
        var detail = ""
        switch record.type {
        case "tool.result":
            if let code = record.data["exit_code"]?.intValue { detail = "exit \(code)" }
            if record.data["truncated"]?.boolValue == true { detail += " truncated" }
        case "tool.call":
            let arguments = record.data["arguments"]
            detail = arguments?.stringValue.map { String($0.prefix(60)) }
                ?? arguments?["size"]?.intValue.map { "(\($0) bytes\(arguments?["omitted"]?.boolValue == true ? ", not kept" : " in a blob"))" } ?? ""
        case "model.response":
            if let i = record.data["input_tokens"]?.intValue, let o = record.data["output_tokens"]?.intValue { detail = "tokens \(i)+\(o)" }
        case "run.end":
            detail = record.data["exit_code"]?.intValue.map { "exit \($0)" } ?? ""
        case "checkpoint":
            detail = "upto \(record.data["upto"]?.intValue ?? -1)" + (record.data["sig"]?.isNull == false ? " signed" : " unsigned")
        default: break
        }
        let seq = String(record.seq).leftPad(5)
        var statusText = status.rightPad(5)
        if color {
            if status == "error" { statusText = "\u{1B}[31m\(statusText)\u{1B}[0m" } else if status == "ok" { statusText = "\u{1B}[32m\(statusText)\u{1B}[0m" }
        }
        return "\(seq) \(time) \(record.type.rightPad(15)) \((toolName(record) ?? "").rightPad(12)) \(statusText) \(duration.leftPad(9)) \(bytes.leftPad(9)) \(detail)"
    }
}

extension String {
    func rightPad(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
