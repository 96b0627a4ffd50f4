import Foundation
import RobitAudit

/// One way in which a replay did not do what the log recorded.
struct ReplayDivergence: Sendable, Equatable {
    /// `workspace` (the starting tree), `result` (a tool call's result), `not_run` (recorded, not run by the
    /// replay), `extra_call` (run only by the replay), `network` (denied connection attempts), `end` (how the
    /// run ended), `patch`, `workspace_end` (the tree at the end).
    var kind: String
    var step: Int?
    /// The recorded record's seq, and the replay's.
    var seq: Int64?
    var replaySeq: Int64?
    var tool: String?
    var callID: String?
    var fields: [FieldDifference] = []
    /// A short line diff of the first output that differs.
    var diff: String?
    var paths: [PathDifference] = []
}

struct FieldDifference: Sendable, Equatable {
    var field: String
    var recorded: String
    var replayed: String
}

/// A difference that is expected between any two executions (timestamps, durations, ids) and so is
/// listed, not counted as a divergence.
struct ExpectedDifference: Sendable, Equatable {
    var field: String
    var count: Int
    var detail: String
}

/// Compares a replay's log with the log it replayed, record by record.
struct ReplayComparison {
    let recorded: [AuditRecord]
    let recordedDirectory: String
    let replayed: [AuditRecord]
    let replayDirectory: String

    /// The fields of `tool.result` that must be the same, compared as their canonical JSON.
    static let resultFields = ["status", "argv", "exit_code", "signal", "timed_out", "out_of_memory", "interrupted", "truncated",
                               "stdout_bytes", "stderr_bytes", "sandbox_restarted", "is_error", "refused", "notes"]
    /// Outputs, compared by the SHA-256 of their bytes (a short diff when they differ).
    static let outputFields = ["stdout", "stderr", "content"]

    func compare() -> (divergences: [ReplayDivergence], expected: [ExpectedDifference]) {
        var divergences: [ReplayDivergence] = []
        var expected: [ExpectedDifference] = []

        // Tool results, paired by step and call id, in the recorded order.
        let recordedResults = recorded.filter { $0.type == "tool.result" }
        // The n-th result with a step and call id is paired with the replay's n-th (a log may hold a call id twice).
        var replayByKey: [String: [AuditRecord]] = [:]
        for r in replayed where r.type == "tool.result" { replayByKey[Self.key(r), default: []].append(r) }
        var used: [String: Int] = [:]
        var durations = 0
        for r in recordedResults {
            let key = Self.key(r)
            let n = used[key, default: 0]
            used[key] = n + 1
            guard let candidates = replayByKey[key], n < candidates.count else {
                divergences.append(ReplayDivergence(kind: "not_run", step: r.step, seq: r.seq, tool: r.name, callID: r.callID,
                                                    fields: [FieldDifference(field: "tool.result", recorded: "recorded at seq \(r.seq)", replayed: "none: the replay did not run this call")]))
                continue
            }
            let mine = candidates[n]
            var fields: [FieldDifference] = []
            for field in Self.resultFields {
                let a = Self.show(r.data[field]), b = Self.show(mine.data[field])
                if a != b { fields.append(FieldDifference(field: field, recorded: a, replayed: b)) }
            }
            var diff: String?
            for field in Self.outputFields {
                let a = payload(r.data[field], directory: recordedDirectory), b = payload(mine.data[field], directory: replayDirectory)
                guard a.sha != b.sha else { continue }
                fields.append(FieldDifference(field: field, recorded: a.summary, replayed: b.summary))
                if diff == nil, let ta = a.text, let tb = b.text {
                    let d = LineDiff.short(ta, tb)
                    diff = d.isEmpty ? nil : "\(field):\n" + d
                }
            }
            if r.data["duration_ns"]?.intValue != nil { durations += 1 }
            if !fields.isEmpty {
                divergences.append(ReplayDivergence(kind: "result", step: r.step, seq: r.seq, replaySeq: mine.seq, tool: r.name, callID: r.callID,
                                                    fields: fields, diff: diff))
            }
        }
        for (key, list) in replayByKey.sorted(by: { $0.key < $1.key }) {
            for r in list.dropFirst(used[key, default: 0]) {
            divergences.append(ReplayDivergence(kind: "extra_call", step: r.step, replaySeq: r.seq, tool: r.name, callID: r.callID,
                                                    fields: [FieldDifference(field: "tool.result", recorded: "none", replayed: "run by the replay at seq \(r.seq)")]))
            }
        }

        // What the egress filter dropped, per call.
        let deniedA = Self.denied(recorded), deniedB = Self.denied(replayed)
        let steps = Dictionary(recordedResults.compactMap { r in r.callID.map { ($0, r) } }, uniquingKeysWith: { a, _ in a })
        for call in Set(deniedA.keys).union(deniedB.keys).sorted() where deniedA[call] != deniedB[call] {
            let a = deniedA[call]?.sorted().joined(separator: ", ") ?? "none"
            let b = deniedB[call]?.sorted().joined(separator: ", ") ?? "none"
            divergences.append(ReplayDivergence(kind: "network", step: steps[call]?.step, seq: steps[call]?.seq, tool: steps[call]?.name, callID: call,
                                                fields: [FieldDifference(field: "net.denied", recorded: a, replayed: b)]))
        }

        // How the run ended.
        if let endA = recorded.last(where: { $0.type == "run.end" }), let endB = replayed.last(where: { $0.type == "run.end" }) {
            var fields: [FieldDifference] = []
            let resultA = endA.data["result"]?.stringValue ?? "", resultB = endB.data["result"]?.stringValue ?? ""
            let stepsA = endA.data["steps"]?.intValue, stepsB = endB.data["steps"]?.intValue
            // A recording that ended without the model finishing (provider failure, interruption, a wall-clock
            // budget) has no further answer to give: the replay ends there for want of one.
            let limitA = recorded.last { $0.type == "budget" }?.data["limit"]?.stringValue
            let noAnswer = resultA == "provider_failed" || resultA == "interrupted" || (resultA == "budget" && limitA == "max_wall")
            let ranOut = noAnswer && resultB == "provider_failed" && stepsA == stepsB
                && (endB.data["message"]?.stringValue ?? "").contains("model turns")
            if ranOut {
                expected.append(ExpectedDifference(field: "run.end.result", count: 1,
                                                   detail: "the recording ended \(resultA) after step \(stepsA ?? 0) (\(endA.data["message"]?.stringValue ?? "")); the replay stopped there, having no further recorded answer"))
            } else {
                for field in ["result", "exit_code"] {
                    let a = Self.show(endA.data[field]), b = Self.show(endB.data[field])
                    if a != b { fields.append(FieldDifference(field: field, recorded: a, replayed: b)) }
                }
                if !fields.isEmpty { fields.append(FieldDifference(field: "message", recorded: Self.show(endA.data["message"]), replayed: Self.show(endB.data["message"]))) }
            }
            for field in ["steps", "tool_calls"] {
                let a = Self.show(endA.data[field]), b = Self.show(endB.data[field])
                if a != b { fields.append(FieldDifference(field: field, recorded: a, replayed: b)) }
            }
            if !fields.isEmpty { divergences.append(ReplayDivergence(kind: "end", seq: endA.seq, replaySeq: endB.seq, fields: fields)) }
        }

        // The patch and the tree at the end.
        let patchA = recorded.last { $0.type == "patch" }, patchB = replayed.last { $0.type == "patch" }
        if patchA?.data["sha256"]?.stringValue != patchB?.data["sha256"]?.stringValue {
            let a = patchA.map { "\($0.data["sha256"]?.stringValue ?? "?") (\($0.data["bytes"]?.intValue ?? 0) bytes)" } ?? "none"
            let b = patchB.map { "\($0.data["sha256"]?.stringValue ?? "?") (\($0.data["bytes"]?.intValue ?? 0) bytes)" } ?? "none"
            var diff: String?
            if let ta = patchA.flatMap(Self.patchText), let tb = patchB.flatMap(Self.patchText) {
                let d = LineDiff.short(ta, tb)
                diff = d.isEmpty ? nil : "patch:\n" + d
            }
            divergences.append(ReplayDivergence(kind: "patch", seq: patchA?.seq, replaySeq: patchB?.seq,
                                                fields: [FieldDifference(field: "sha256", recorded: a, replayed: b)], diff: diff))
        }
        let treeA = patchA?.data["workspace_tree_sha256"]?.stringValue, treeB = patchB?.data["workspace_tree_sha256"]?.stringValue
        if let treeA, let treeB, treeA != treeB {
            divergences.append(ReplayDivergence(kind: "workspace_end", seq: patchA?.seq, replaySeq: patchB?.seq,
                                                fields: [FieldDifference(field: "workspace_tree_sha256", recorded: treeA, replayed: treeB)]))
        } else if treeA == nil && patchA != nil {
            expected.append(ExpectedDifference(field: "workspace_tree_sha256", count: 1, detail: "the log does not record the tree at the end (an older robit); only the patch is compared"))
        }

        // What differs in any two executions, listed.
        expected.append(ExpectedDifference(field: "ts", count: recorded.count, detail: "every record's timestamp"))
        if durations > 0 { expected.append(ExpectedDifference(field: "duration_ns", count: durations, detail: "tool call durations")) }
        let models = recorded.filter { $0.type == "model.response" && $0.data["status"]?.stringValue == "ok" }.count
        if models > 0 {
            expected.append(ExpectedDifference(field: "latency_ns, request_id, request_sha256", count: models,
                                               detail: "model turns are answered from the log; the requests are rebuilt by the replay provider and not compared"))
        }
        let idA = recorded.first { $0.type == "sandbox.create" }?.data["resource"]?.stringValue
        let idB = replayed.first { $0.type == "sandbox.create" }?.data["resource"]?.stringValue
        if let idA, let idB { expected.append(ExpectedDifference(field: "sandbox", count: 1, detail: "\(idA) → \(idB) (and the paths and cgroup named after it)")) }
        if let runA = recorded.first?.run, let runB = replayed.first?.run { expected.append(ExpectedDifference(field: "run", count: 1, detail: "\(runA) → \(runB)")) }
        let configA = recorded.first { $0.type == "policy" }?.data["config_sha256"]?.stringValue
        let configB = replayed.first { $0.type == "policy" }?.data["config_sha256"]?.stringValue
        if let configA, let configB, configA != configB {
            expected.append(ExpectedDifference(field: "config_sha256", count: 1, detail: "config.json names the sandbox's id and paths; config_template_sha256 is what is compared"))
        }
        let durationKeys = ["sandbox.create", "sandbox.destroy"].filter { t in recorded.contains { $0.type == t } }
        if !durationKeys.isEmpty { expected.append(ExpectedDifference(field: "duration_ns", count: durationKeys.count, detail: durationKeys.joined(separator: ", "))) }
        return (divergences, expected)
    }

    // MARK: - Helpers

    static func key(_ r: AuditRecord) -> String { "\(r.step ?? -1)/\(r.callID ?? "")" }

    /// A value as a report shows it: its canonical JSON (`null` when absent).
    static func show(_ value: AuditValue?) -> String {
        guard let value else { return "null" }
        if let s = value.stringValue { return s }
        return (try? CanonicalJSON.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
    }

    struct Payload {
        var sha: String?
        var text: String?
        var summary: String
    }

    /// A recorded payload's bytes (inline, a blob, or only the hash of bytes not kept).
    func payload(_ value: AuditValue?, directory: String) -> Payload {
        guard let value, !value.isNull else { return Payload(sha: nil, text: nil, summary: "null") }
        if let s = value.stringValue {
            return Payload(sha: AuditHash.sha256Hex(s), text: s, summary: "\(s.utf8.count) bytes, sha256 \(AuditHash.sha256Hex(s).prefix(12))")
        }
        if let ref = value["blob"]?.stringValue, ref.hasPrefix("sha256:") {
            let hex = String(ref.dropFirst(7))
            let data = AuditHistory.blobPath(ref, directory: directory).flatMap { FileManager.default.contents(atPath: $0) }
            let text = data.flatMap { String(validating: [UInt8]($0), as: UTF8.self) }
            return Payload(sha: hex, text: text, summary: "\(value["size"]?.intValue ?? 0) bytes, sha256 \(hex.prefix(12)) (blob)")
        }
        if let sha = value["sha256"]?.stringValue {
            return Payload(sha: sha, text: nil, summary: "\(value["size"]?.intValue ?? 0) bytes, sha256 \(sha.prefix(12)) (not kept)")
        }
        return Payload(sha: Self.show(value), text: nil, summary: Self.show(value))
    }

    /// Denied destinations by the call they followed.
    static func denied(_ records: [AuditRecord]) -> [String: Set<String>] {
        var out: [String: Set<String>] = [:]
        for r in records where r.type == "net.denied" {
            let after = r.data["after"]?.stringValue ?? "(before any call)"
            guard case .array(let list)? = r.data["destinations"] else { continue }
            for d in list {
                out[after, default: []].insert("\(d["proto"]?.stringValue ?? "?") \(d["address"]?.stringValue ?? "?"):\(d["port"]?.intValue ?? 0)")
            }
        }
        return out
    }

    /// The patch file a `patch` record names, when it is still there with the recorded hash.
    /// Read only as a regular file (no symlink, FIFO or device) of the recorded size, at most 16 MiB.
    static func patchText(_ record: AuditRecord) -> String? {
        guard let path = record.data["path"]?.stringValue, let size = record.data["bytes"]?.intValue, size >= 0, size <= 16 << 20 else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, Int64(st.st_size) == size else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            done += n
        }
        guard AuditHash.sha256Hex(bytes) == record.data["sha256"]?.stringValue else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension AuditRecord {
    var step: Int? { data["step"]?.intValue.map { Int($0) } }
    var callID: String? { data["id"]?.stringValue }
    var name: String? { data["name"]?.stringValue }
}
