import Foundation
import Glibc
@testable import RobitAgent
@testable import RobitAudit
@testable import RobitExec
import RobitOCI
import Testing

/// The parts of `robit audit replay` that need no sandbox: the short diff, the workspace listing and
/// its differences, the tree after a run's changes, the policy templates, and the record comparison.
struct ReplayLogicTests {
    // MARK: LineDiff

    @Test func diffNamesTheFirstDifferingLineAndBothSides() {
        let d = LineDiff.short("ok   add(2, 3) = 5\nok   mul(4, 5) = 20\nall tests passed", "ok   add(2, 3) = 5\nFAIL mul(4, 5) = 0.8, want 20\n1 test(s) failed")
        #expect(d.hasPrefix("@@ line 2 @@\n"))
        #expect(d.contains("-ok   mul(4, 5) = 20") && d.contains("+FAIL mul(4, 5) = 0.8, want 20"))
        #expect(d.contains("-all tests passed") && d.contains("+1 test(s) failed"))
        #expect(!d.contains("add(2, 3)"), "common lines are left out")
        #expect(LineDiff.short("same\n", "same\n") == "")
    }

    @Test func diffIsShortForHugeAndHostileOutputs() {
        let a = (0..<100_000).map { "line \($0)" }.joined(separator: "\n")
        let b = (0..<100_000).map { $0 == 50_000 ? "changed" : "line \($0)" }.joined(separator: "\n")
        let d = LineDiff.short(a, b)
        #expect(d.hasPrefix("@@ line 50001 @@"))
        #expect(d.split(separator: "\n").count == 3)
        // Long lines are cut at a character boundary; control characters are shown, not emitted.
        let long = LineDiff.short(String(repeating: "é", count: 1000), "x\u{1B}[31m\0")
        #expect(long.utf8.count < 600)
        #expect(!long.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
        #expect(long.contains("\u{241B}") && long.contains("\u{2400}"))
        // Completely different, large on both sides: no quadratic table, all removed then all added.
        let many = LineDiff.short((0..<2000).map(String.init).joined(separator: "\n"), (0..<2000).map { "x\($0)" }.joined(separator: "\n"), maxLines: 5)
        #expect(many.contains("-0") && many.contains("more changed line(s)"))
    }

    // MARK: WorkspaceManifest

    @Test func listingParsesBackAndNamesEveryKindOfDifference() {
        let recorded = WorkspaceManifest(lines: [
            "a.txt": "f 644 3 \(String(repeating: "a", count: 64)) a.txt",
            "dir": "d 755 dir",
            "dir/b c.txt": "f 600 0 \(String(repeating: "b", count: 64)) dir/b c.txt",
            "link": "l link -> a.txt",
            "gone": "f 644 1 \(String(repeating: "c", count: 64)) gone",
        ])
        let parsed = WorkspaceManifest(text: recorded.text)
        #expect(parsed == recorded, "a path with a space survives the text")
        #expect(parsed.hash == recorded.hash)
        var now = recorded
        now.lines["a.txt"] = "f 644 3 \(String(repeating: "d", count: 64)) a.txt"
        now.lines["gone"] = nil
        now.lines["new"] = "d 700 new"
        let differences = recorded.differences(to: now)
        #expect(differences.map(\.path) == ["a.txt", "gone", "new"])
        #expect(differences.map(\.change) == ["changed", "removed", "added"])
        #expect(recorded.differences(to: recorded).isEmpty)
    }

    /// The tree after a run = the starting tree with the upper layer's entries applied; checked against
    /// walking the resulting directory itself.
    @Test func treeAfterChangesEqualsTheWalkedTree() throws {
        let base = NSTemporaryDirectory() + "robit-manifest-" + UUID().uuidString.prefix(8)
        let lower = base + "/lower", upper = base + "/upper", result = base + "/result"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let fm = FileManager.default
        for d in [lower + "/keep", lower + "/replace-dir/deep", lower + "/remove-dir/x", upper] {
            try fm.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        try Data("same".utf8).write(to: URL(fileURLWithPath: lower + "/keep/same.txt"))
        try Data("old".utf8).write(to: URL(fileURLWithPath: lower + "/keep/edit.txt"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: lower + "/replace-dir/deep/f"))
        try Data("y".utf8).write(to: URL(fileURLWithPath: lower + "/remove-dir/x/f"))
        try Data("z".utf8).write(to: URL(fileURLWithPath: lower + "/gone.txt"))
        let start = WorkspaceTree.manifest(lower)
        // What the run did, as the upper layer records it (whiteouts are stood for by `.removed`).
        try fm.createDirectory(atPath: upper + "/keep", withIntermediateDirectories: true)
        try Data("new contents".utf8).write(to: URL(fileURLWithPath: upper + "/keep/edit.txt"))
        try fm.createDirectory(atPath: upper + "/replace-dir", withIntermediateDirectories: true)
        try Data("now a file's sibling".utf8).write(to: URL(fileURLWithPath: upper + "/replace-dir/only"))
        try Data("#!/bin/sh\n".utf8).write(to: URL(fileURLWithPath: upper + "/added.sh"))
        chmod(upper + "/added.sh", 0o755)
        symlink("keep/same.txt", upper + "/alias")
        let changes = [
            LayerChange(relative: "added.sh", kind: .replaced, path: upper + "/added.sh"),
            LayerChange(relative: "alias", kind: .replaced, path: upper + "/alias"),
            LayerChange(relative: "gone.txt", kind: .removed, path: upper + "/gone.txt"),
            LayerChange(relative: "keep", kind: .merged, path: upper + "/keep"),
            LayerChange(relative: "keep/edit.txt", kind: .replaced, path: upper + "/keep/edit.txt"),
            LayerChange(relative: "remove-dir", kind: .removed, path: upper + "/remove-dir"),
            LayerChange(relative: "replace-dir", kind: .replaced, path: upper + "/replace-dir"),
            LayerChange(relative: "replace-dir/only", kind: .replaced, path: upper + "/replace-dir/only"),
        ]
        let after = start.applying(changes)
        // The same tree, built for real.
        try fm.copyItem(atPath: lower, toPath: result)
        try fm.removeItem(atPath: result + "/gone.txt")
        try fm.removeItem(atPath: result + "/remove-dir")
        try fm.removeItem(atPath: result + "/replace-dir")
        try fm.createDirectory(atPath: result + "/replace-dir", withIntermediateDirectories: false)
        try Data("now a file's sibling".utf8).write(to: URL(fileURLWithPath: result + "/replace-dir/only"))
        try Data("new contents".utf8).write(to: URL(fileURLWithPath: result + "/keep/edit.txt"))
        try Data("#!/bin/sh\n".utf8).write(to: URL(fileURLWithPath: result + "/added.sh"))
        chmod(result + "/added.sh", 0o755)
        symlink("keep/same.txt", result + "/alias")
        for dir in ["", "/keep", "/replace-dir"] {
            var st = stat()
            stat((dir.isEmpty ? upper : upper + dir), &st)
            chmod(result + dir, st.st_mode & 0o7777)
        }
        let walked = WorkspaceTree.manifest(result)
        #expect(start.differences(to: after) != [], "the changes change the tree")
        #expect(after.differences(to: walked) == [], "\(after.differences(to: walked))")
        #expect(after.hash == walked.hash)
    }

    // MARK: PolicyTemplate

    @Test func templatesReplaceOnlyTheSandboxsOwnValues() {
        let values = PolicyTemplate.Values(sandboxID: "robit-0123456789ab", bundleDirectory: "/run/robit/robit-0123456789ab",
                                           workspace: "/state/workspaces/robit-0123456789ab/work", address: "198.18.0.2", hostAddress: "198.18.0.1")
        let text = #"{"a":"/run/robit/robit-0123456789ab/seccomp.bpf","b":"/state/workspaces/robit-0123456789ab/work","c":"/robit/robit-0123456789ab"}"#
            + "\ntable inet robit_0123456789ab { iifname \"rb0123456789ab\" ip saddr 198.18.0.2 ip daddr { 198.18.0.21, 198.18.0.1 } }"
        let out = PolicyTemplate.text(text, values: values)
        #expect(out == #"{"a":"<bundle>/seccomp.bpf","b":"<workspace>","c":"/robit/<sandbox>"}"#
                + "\ntable inet robit_<id> { iifname \"rb<id>\" ip saddr <address> ip daddr { 198.18.0.21, <host-address> } }")
        // Two sandboxes of one policy: the same template.
        let other = PolicyTemplate.Values(sandboxID: "robit-ffffffffffff", bundleDirectory: "/run/robit/robit-ffffffffffff",
                                          workspace: "/state/workspaces/robit-ffffffffffff/work", address: "198.18.0.6", hostAddress: "198.18.0.5")
        let second = text.replacingOccurrences(of: "0123456789ab", with: "ffffffffffff").replacingOccurrences(of: "198.18.0.2 ", with: "198.18.0.6 ")
            .replacingOccurrences(of: "198.18.0.1 ", with: "198.18.0.5 ")
        #expect(PolicyTemplate.text(second, values: other) == out)
        // A policy that differs elsewhere keeps its difference.
        #expect(PolicyTemplate.text(text.replacingOccurrences(of: "198.18.0.21", with: "198.18.0.22"), values: values) != out)
    }

    // MARK: ReplayComparison

    static func record(_ seq: Int64, _ type: String, _ data: AuditValue, run: String = "robit-aaaaaaaaaaaa") -> AuditRecord {
        AuditRecord(seq: seq, ts: "2026-12-03T00:00:00.000000000Z", run: run, type: type, data: data, hash: "", line: "")
    }

    static func result(_ seq: Int64, step: Int64, id: String, name: String = "shell", exit: Int64 = 0, stdout: String = "out\n",
                       duration: Int64 = 1_000_000, run: String = "robit-aaaaaaaaaaaa") -> AuditRecord {
        record(seq, "tool.result", ["status": exit == 0 ? "ok" : "error", "step": .int(step), "id": .string(id), "name": .string(name),
                                   "argv": ["sh", "-c", "x"], "exit_code": .int(exit), "duration_ns": .int(duration), "stdout": .string(stdout), "stderr": "",
                                   "stdout_bytes": .int(Int64(stdout.utf8.count)), "stderr_bytes": 0, "truncated": false, "timed_out": false,
                                   "out_of_memory": false, "interrupted": false, "signal": .null, "sandbox_restarted": false, "notes": .array([]),
                                   "content": .string("exit \(exit)\n" + stdout), "is_error": .bool(exit != 0), "refused": .null], run: run)
    }

    static func end(_ seq: Int64, result: String = "done", steps: Int64 = 2, calls: Int64 = 2, message: String = "", run: String = "robit-aaaaaaaaaaaa") -> AuditRecord {
        record(seq, "run.end", ["status": result == "done" ? "ok" : "error", "result": .string(result), "exit_code": result == "done" ? 0 : 4,
                                "message": .string(message), "steps": .int(steps), "tool_calls": .int(calls)], run: run)
    }

    @Test func identicalRecordsDivergeNowhereAndTimingIsListedAsExpected() {
        let a = [Self.result(5, step: 1, id: "c1"), Self.result(9, step: 2, id: "c2", stdout: "two\n"), Self.end(12)]
        let b = [Self.result(5, step: 1, id: "c1", duration: 9_999_999, run: "robit-bbbbbbbbbbbb"),
                 Self.result(9, step: 2, id: "c2", stdout: "two\n", duration: 5, run: "robit-bbbbbbbbbbbb"), Self.end(12, run: "robit-bbbbbbbbbbbb")]
        let (divergences, expected) = ReplayComparison(recorded: a, recordedDirectory: "/nonexistent", replayed: b, replayDirectory: "/nonexistent").compare()
        #expect(divergences.isEmpty)
        #expect(expected.contains { $0.field == "duration_ns" && $0.count == 2 })
        #expect(expected.contains { $0.field == "run" && $0.detail.contains("robit-bbbbbbbbbbbb") })
    }

    @Test func eachDifferenceIsReportedAtItsStepAndSeq() {
        let a = [Self.result(5, step: 1, id: "c1"), Self.result(9, step: 2, id: "c2", stdout: "all tests passed\n"),
                 Self.result(11, step: 3, id: "c3"), Self.end(14, steps: 3, calls: 3)]
        let b = [Self.result(5, step: 1, id: "c1"), Self.result(10, step: 2, id: "c2", exit: 1, stdout: "1 test failed\n"),
                 Self.result(12, step: 4, id: "c4"), Self.end(15, steps: 4, calls: 3)]
        let (divergences, _) = ReplayComparison(recorded: a, recordedDirectory: "/nonexistent", replayed: b, replayDirectory: "/nonexistent").compare()
        let first = divergences.first
        #expect(first?.kind == "result" && first?.step == 2 && first?.seq == 9 && first?.replaySeq == 10 && first?.callID == "c2")
        #expect(Set(first?.fields.map(\.field) ?? []) == ["status", "exit_code", "is_error", "stdout", "stdout_bytes", "content"])
        #expect(first?.diff?.contains("-all tests passed") == true && first?.diff?.contains("+1 test failed") == true)
        #expect(divergences.contains { $0.kind == "not_run" && $0.step == 3 && $0.seq == 11 })
        #expect(divergences.contains { $0.kind == "extra_call" && $0.step == 4 && $0.replaySeq == 12 })
        #expect(divergences.contains { $0.kind == "end" && $0.fields.map(\.field) == ["steps"] })
    }

    @Test func aRecordingThatEndedWithoutAnAnswerIsNotADivergenceWhereTheReplayStops() {
        let a = [Self.result(5, step: 1, id: "c1"), Self.end(8, result: "provider_failed", steps: 1, calls: 1, message: "model provider openai failed: 503")]
        let b = [Self.result(5, step: 1, id: "c1"),
                 Self.end(8, result: "provider_failed", steps: 1, calls: 1, message: "the replay script x has only 1 model turns and the agent asked for turn 2")]
        let (divergences, expected) = ReplayComparison(recorded: a, recordedDirectory: "/nonexistent", replayed: b, replayDirectory: "/nonexistent").compare()
        #expect(divergences.isEmpty)
        #expect(expected.contains { $0.field == "run.end.result" })
        // Interrupted recordings stop the same way.
        let c = [Self.result(5, step: 1, id: "c1"), Self.end(8, result: "interrupted", steps: 1, calls: 1)]
        #expect(ReplayComparison(recorded: c, recordedDirectory: "/nonexistent", replayed: b, replayDirectory: "/nonexistent").compare().divergences.isEmpty)
    }

    @Test func deniedConnectionsAreComparedPerCall() {
        func denied(_ seq: Int64, after: String, port: Int64) -> AuditRecord {
            Self.record(seq, "net.denied", ["status": "error", "resource": "x", "after": .string(after),
                                            "destinations": [["address": "198.18.0.9", "proto": "tcp", "port": .int(port), "packets": 3]]])
        }
        let a = [Self.result(5, step: 1, id: "c1"), denied(6, after: "c1", port: 443), Self.end(8, steps: 1, calls: 1)]
        let b = [Self.result(5, step: 1, id: "c1"), denied(6, after: "c1", port: 80), Self.end(8, steps: 1, calls: 1)]
        let (divergences, _) = ReplayComparison(recorded: a, recordedDirectory: "/nonexistent", replayed: b, replayDirectory: "/nonexistent").compare()
        #expect(divergences.count == 1)
        #expect(divergences.first?.kind == "network" && divergences.first?.step == 1 && divergences.first?.fields.first?.recorded == "tcp 198.18.0.9:443")
    }

    /// Servers that send no call ids get `call_0` in every step: each result shows its own step's arguments.
    @Test func theHTMLReportPairsArgumentsByStepAndEscapesEverything() {
        let records = [
            Self.record(0, "model.response", ["status": "ok", "step": 1, "text": "one", "tool_calls": .array([])]),
            Self.record(1, "tool.call", ["status": "ok", "step": 1, "id": "call_0", "name": "shell", "arguments": #"{"command":"ls FIRST"}"#]),
            Self.result(2, step: 1, id: "call_0"),
            Self.record(3, "model.response", ["status": "ok", "step": 2, "text": "two\u{202E}evil", "tool_calls": .array([])]),
            Self.record(4, "tool.call", ["status": "ok", "step": 2, "id": "call_0", "name": "shell", "arguments": #"{"command":"rm SECOND"}"#]),
            Self.result(5, step: 2, id: "call_0", stdout: "<script>alert(1)</script>\u{1B}]52;c;x\u{07}"),
        ]
        var page = AuditHTMLReport.Page(directory: "/nonexistent")
        _ = page.build(path: "x", records: records, skipped: 0, verdict: AuditVerdict(), verdictLine: "v", verdictClass: "ok")
        let sections = page.out.components(separatedBy: "<section")
        #expect(sections.count == 3)
        #expect(sections[1].contains("ls FIRST") && !sections[1].contains("rm SECOND"))
        #expect(sections[2].contains("rm SECOND") && !sections[2].contains("ls FIRST"))
        #expect(page.out.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && page.out.lowercased().components(separatedBy: "<script").count == 2)
        #expect(!page.out.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x202E })
        #expect(page.out.contains("[U+202E]"))
        // The terminal report: no escape sequences reach it.
        #expect(!ReplayReport.short("a\u{1B}]52;c;x\u{07}\u{9B}b").unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x9B })
    }

    @Test func reportVerdictsAndJSON() throws {
        var report = ReplayReport(log: "/l", run: "robit-a", head: "h", signed: false, keyID: nil, workspace: "/w", recordedTree: "t", tree: "t")
        #expect(report.verdict == "reproduced" && report.exitCode == 0)
        report.divergences = [ReplayDivergence(kind: "result", step: 2, seq: 9, tool: "run_tests", callID: "c2",
                                               fields: [FieldDifference(field: "exit_code", recorded: "0", replayed: "1")])]
        #expect(report.verdict == "diverged" && report.exitCode == ExitStatus.replayDiverged.code && report.exitCode == 7)
        #expect(report.text.contains("divergence 1: result step 2 seq 9") && report.text.contains("verdict: DIVERGED"))
        let json = try JSONSerialization.jsonObject(with: Data(report.jsonText.utf8)) as! [String: Any]
        #expect(json["verdict"] as? String == "diverged")
        let first = (json["divergences"] as? [[String: Any]])?.first
        #expect(first?["step"] as? Int == 2 && first?["seq"] as? Int == 9 && first?["tool"] as? String == "run_tests")
        report.divergences = []
        report.refused = true
        #expect(report.verdict == "refused" && report.exitCode == 7)
    }
}
