import Foundation

/// What a replay found: the divergences, the differences expected between any two executions, and
/// the verdict. `text` is the report `robit audit replay` prints; `jsonText` the same as one object.
public struct ReplayReport: Sendable {
    var log: String
    var run: String
    var head: String?
    var signed: Bool
    var keyID: String?
    var pinned = false
    var workspace: String
    var recordedTree: String?
    var tree: String
    var runtime = ""
    var replayRun: String?
    var replayLog: String?
    var replayHead: String?
    var replayStatus: String?
    var replayMessage: String?
    var policyDifferences: [FieldDifference] = []
    var policyAllowed = false
    /// The replay did not run: the policy differs and --allow-policy-change was not given.
    var refused = false
    var divergences: [ReplayDivergence] = []
    var expected: [ExpectedDifference] = []
    var steps = 0
    var toolCalls = 0
    var replayedToolCalls = 0

    init(log: String, run: String, head: String?, signed: Bool, keyID: String?, workspace: String, recordedTree: String?, tree: String) {
        self.log = log
        self.run = run
        self.head = head
        self.signed = signed
        self.keyID = keyID
        self.workspace = workspace
        self.recordedTree = recordedTree
        self.tree = tree
    }

    /// `reproduced`, `diverged` or `refused`.
    public var verdict: String { refused ? "refused" : divergences.isEmpty ? "reproduced" : "diverged" }
    public var exitStatus: ExitStatus { verdict == "reproduced" ? .ok : .replayDiverged }
    public var exitCode: Int32 { exitStatus.code }
    public var replayLogPath: String? { replayLog }

    public var text: String {
        var out = "replay of \(Self.short(run)): \(log)\n"
        out += "  log verified: head \(head ?? "none"), \(signed ? "signed, key \(keyID ?? "?")" + (pinned ? " (pinned)" : " (unpinned: pass --pin PUB)") : "unsigned")\n"
        out += "  replay: run \(replayRun ?? "none"), runtime \(runtime), log \(replayLog ?? "none")\(replayHead.map { ", head \($0)" } ?? "")\n"
        out += "  workspace: \(workspace) " + (recordedTree == tree ? "(tree as recorded, \(tree.prefix(16)))" : "(tree differs: recorded \(recordedTree?.prefix(16) ?? "none"), now \(tree.prefix(16)))") + "\n"
        if policyDifferences.isEmpty {
            out += "  policy: as recorded (config.json template, seccomp profile, nft ruleset)\n"
        } else {
            out += "  policy: DIFFERS" + (policyAllowed ? " (allowed by --allow-policy-change)" : "") + "\n"
            for d in policyDifferences { out += "    \(d.field): recorded \(d.recorded), now \(d.replayed)\n" }
        }
        if refused {
            out += "verdict: REFUSED: the replay would not run under the recorded policy; nothing was executed (pass --allow-policy-change to replay anyway)\n"
            return out
        }
        out += "  steps \(steps), tool calls recorded \(toolCalls), replayed \(replayedToolCalls)\n"
        for (i, d) in divergences.enumerated() {
            var head = "divergence \(i + 1): \(d.kind)"
            if let step = d.step { head += " step \(step)" }
            if let seq = d.seq { head += " seq \(seq)" }
            if let seq = d.replaySeq { head += " (replay seq \(seq))" }
            if let tool = d.tool { head += " tool \(Self.short(tool))" }
            if let id = d.callID { head += " call \(Self.short(id))" }
            out += head + "\n"
            for f in d.fields { out += "    \(f.field): recorded \(Self.short(f.recorded)) | replay \(Self.short(f.replayed))\n" }
            for p in d.paths.prefix(20) { out += "    \(p.change) \(Self.short(p.path))\n" }
            if d.paths.count > 20 { out += "    … \(d.paths.count - 20) more path(s)\n" }
            if let diff = d.diff.map(Self.safe) { out += diff.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n") + "\n" }
        }
        if !expected.isEmpty {
            out += "expected differences (not divergences):\n"
            for e in expected { out += "    \(e.field) (\(e.count)): \(e.detail)\n" }
        }
        switch verdict {
        case "reproduced":
            out += "verdict: REPRODUCED: every recorded tool call did the same again" + (policyDifferences.isEmpty ? "" : " (under a different policy)") + "\n"
        default:
            out += "verdict: DIVERGED: \(divergences.count) divergence(s), the first at " + (divergences.first.map { d in d.step.map { "step \($0)" } ?? d.kind } ?? "?") + "\n"
        }
        return out
    }

    /// One line for a terminal: newlines as `\n`, other control characters (C0, DEL, C1: terminal escapes)
    /// as symbols, at most 120 characters.
    static func short(_ s: String) -> String {
        let one = safe(s.replacingOccurrences(of: "\n", with: "\\n"))
        return one.count > 120 ? String(one.prefix(120)) + "…" : one
    }

    static func safe(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value) }) else { return s }
        return String(String.UnicodeScalarView(s.unicodeScalars.map { c in
            c.value < 0x20 && c != "\n" && c != "\t" ? Unicode.Scalar(0x2400 + c.value)! : (0x7F...0x9F).contains(c.value) ? "\u{FFFD}" : c
        }))
    }

    public var jsonText: String {
        func str(_ s: String?) -> WireJSON { s.map { .string($0) } ?? .null }
        func fields(_ list: [FieldDifference]) -> WireJSON {
            .array(list.map { .object([("field", .string($0.field)), ("recorded", .string($0.recorded)), ("replayed", .string($0.replayed))]) })
        }
        let divergenceObjects: [WireJSON] = divergences.map { d in
            .object([
                ("kind", .string(d.kind)), ("step", d.step.map { .int($0) } ?? .null), ("seq", d.seq.map { .int(Int($0)) } ?? .null),
                ("replay_seq", d.replaySeq.map { .int(Int($0)) } ?? .null), ("tool", str(d.tool)), ("id", str(d.callID)),
                ("fields", fields(d.fields)), ("diff", str(d.diff)),
                ("paths", .array(d.paths.map { .object([("path", .string($0.path)), ("change", .string($0.change)), ("recorded", str($0.recorded)), ("actual", str($0.actual))]) })),
            ])
        }
        let object: WireJSON = .object([
            ("verdict", .string(verdict)), ("exit_code", .int(Int(exitCode))),
            ("log", .string(log)), ("run", .string(run)), ("head", str(head)), ("signed", .bool(signed)), ("pinned", .bool(pinned)), ("key_id", str(keyID)),
            ("replay", .object([("run", str(replayRun)), ("audit_path", str(replayLog)), ("head", str(replayHead)),
                                ("status", str(replayStatus)), ("message", str(replayMessage)), ("runtime", .string(runtime))])),
            ("workspace", .object([("path", .string(workspace)), ("recorded_tree_sha256", str(recordedTree)), ("tree_sha256", .string(tree)),
                                   ("same", .bool(recordedTree == tree))])),
            ("policy", .object([("same", .bool(policyDifferences.isEmpty)), ("allowed_change", .bool(policyAllowed)), ("differences", fields(policyDifferences))])),
            ("steps", .int(steps)), ("tool_calls", .int(toolCalls)), ("replayed_tool_calls", .int(replayedToolCalls)),
            ("divergences", .array(divergenceObjects)),
            ("expected", .array(expected.map { .object([("field", .string($0.field)), ("count", .int($0.count)), ("detail", .string($0.detail))]) })),
        ])
        return object.text
    }
}
