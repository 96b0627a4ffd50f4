import Foundation
@testable import RobitAudit
import RobitTestSupport
import Testing

/// `robit audit replay` end to end, with the binary users run: a run of examples/hello replayed
/// untouched, from a changed workspace, from a log whose recorded output was forged and re-signed,
/// under another policy, and refused where it must be.
@Suite(.serialized) struct ReplayCLITests {
    struct Run {
        var hello: String
        var home: String
        var env: [String: String]
        var audit: String
        var run: String
        var head: String
    }

    /// A fresh copy of examples/hello run with `runtime`; its summary.
    static func helloRun(_ runtime: String) throws -> Run {
        try ReleaseBinaryTests.requireRuntime(runtime)
        let hello = try RunCLITests.helloCopy()
        let home = (hello as NSString).deletingLastPathComponent
        let env = RunCLITests.environment(home: home)
        let r = try CLI.run(["run", hello + "/task.yaml", "--runtime", runtime, "--json"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return Run(hello: hello, home: home, env: env, audit: try #require(summary["audit_path"] as? String),
                   run: try #require(summary["run"] as? String), head: try #require(summary["head"] as? String))
    }

    static func replay(_ run: Run, _ extra: [String] = []) throws -> (CLI.Result, [String: Any]?) {
        let r = try CLI.run(["audit", "replay", run.audit, "--json"] + extra, environment: run.env)
        return (r, try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    static func divergences(_ json: [String: Any]?) -> [[String: Any]] { json?["divergences"] as? [[String: Any]] ?? [] }

    @Test(arguments: ["runsc", "crun"]) func anUntouchedRunIsReproduced(runtime: String) throws {
        let run = try Self.helloRun(runtime)
        defer { try? FileManager.default.removeItem(atPath: run.home) }
        let patchBefore = try Data(contentsOf: URL(fileURLWithPath: run.hello + "/out/fix.patch"))
        let (r, json) = try Self.replay(run)
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(json?["verdict"] as? String == "reproduced")
        #expect(Self.divergences(json).isEmpty, "\(Self.divergences(json))")
        #expect(json?["tool_calls"] as? Int == 5 && json?["replayed_tool_calls"] as? Int == 5 && json?["steps"] as? Int == 6)
        #expect((json?["policy"] as? [String: Any])?["same"] as? Bool == true)
        #expect((json?["workspace"] as? [String: Any])?["same"] as? Bool == true)
        // Timing and ids are listed, not counted.
        let expected = (json?["expected"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
        #expect(expected.contains("ts") && expected.contains("duration_ns") && expected.contains("sandbox"))
        // The recorded run's patch is left alone; the replay has a log of its own, which verifies, follows
        // the documented layouts and names the log it replayed.
        #expect(try Data(contentsOf: URL(fileURLWithPath: run.hello + "/out/fix.patch")) == patchBefore)
        let replay = try #require(json?["replay"] as? [String: Any])
        let path = try #require(replay["audit_path"] as? String)
        #expect(path != run.audit)
        let verify = try CLI.run(["audit", "verify", path], environment: run.env)
        #expect(verify.status == 0, "\(verify.stdout)")
        let records = Array(try AuditReader(path: path))
        #expect(try DocumentedRecords.load().problems(records) == [])
        let start = try #require(records.first)
        #expect(start.data["command"]?.stringValue == "audit replay")
        #expect(start.data["replay_of"]?["run"]?.stringValue == run.run && start.data["replay_of"]?["head"]?.stringValue == run.head)
        #expect(records.filter { $0.type == "tool.result" }.count == 5)
        // The human report says the same.
        let text = try CLI.run(["audit", "replay", run.audit], environment: run.env)
        #expect(text.status == 0 && text.stdout.contains("verdict: REPRODUCED"), "\(text.stdout)")
    }

    /// The recorded end-of-run tree is the documented tree hash of the starting workspace with the patch
    /// applied, computed independently (Python, from docs/sandbox.md).
    @Test func theRecordedEndTreeIsTheStartingTreeWithThePatch() throws {
        let run = try Self.helloRun("crun")
        defer { try? FileManager.default.removeItem(atPath: run.home) }
        let records = Array(try AuditReader(path: run.audit))
        let start = try #require(records.first)
        let patch = try #require(records.last { $0.type == "patch" })
        let copy = run.home + "/applied"
        try FileManager.default.copyItem(atPath: run.hello + "/project", toPath: copy)
        let apply = try CLI.run(binary: "/usr/bin/git", ["-C", copy, "apply", run.hello + "/out/fix.patch"])
        #expect(apply.status == 0, "\(apply.stderr)")
        let script = """
            import hashlib, os, stat, sys
            root = sys.argv[1]; lines = []
            for d, dirs, files in os.walk(root):
                for n in dirs + files:
                    p = os.path.join(d, n); rel = os.path.relpath(p, root); st = os.lstat(p); mode = oct(st.st_mode & 0o7777)[2:]
                    if stat.S_ISLNK(st.st_mode): lines.append(f"l {rel} -> {os.readlink(p)}")
                    elif stat.S_ISDIR(st.st_mode): lines.append(f"d {mode} {rel}")
                    elif stat.S_ISREG(st.st_mode): lines.append(f"f {mode} {st.st_size} {hashlib.sha256(open(p, 'rb').read()).hexdigest()} {rel}")
                    else: lines.append(f"o {mode} {rel}")
            print(hashlib.sha256("\\n".join(sorted(lines)).encode()).hexdigest())
            """
        let original = try CLI.run(binary: "/usr/bin/python3", ["-c", script, run.hello + "/project"])
        let applied = try CLI.run(binary: "/usr/bin/python3", ["-c", script, copy])
        #expect(original.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == start.data["workspace_tree_sha256"]?.stringValue)
        #expect(applied.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == patch.data["workspace_tree_sha256"]?.stringValue)
        #expect(patch.data["workspace_tree_sha256"]?.stringValue != start.data["workspace_tree_sha256"]?.stringValue)
    }

    @Test func aChangedWorkspaceFileIsTheFirstDivergenceAndTheStepItChangesIsNamed() throws {
        let run = try Self.helloRun("crun")
        defer { try? FileManager.default.removeItem(atPath: run.home) }
        // Same size, other behaviour: mul divides. list_files (step 1) shows sizes only, so the tests (step 2)
        // are the first call whose result differs.
        let calc = run.hello + "/project/calc.py"
        let text = try String(contentsOfFile: calc, encoding: .utf8)
        try text.replacingOccurrences(of: "return a * b", with: "return a / b").write(toFile: calc, atomically: true, encoding: .utf8)
        let (r, json) = try Self.replay(run)
        #expect(r.status == 7, "\(r.stdout) \(r.stderr)")
        #expect(json?["verdict"] as? String == "diverged")
        let all = Self.divergences(json)
        let first = try #require(all.first)
        #expect(first["kind"] as? String == "workspace" && first["step"] as? Int == 0)
        let paths = (first["paths"] as? [[String: Any]] ?? []).map { "\($0["change"] ?? "") \($0["path"] ?? "")" }
        #expect(paths == ["changed calc.py"])
        let results = all.filter { $0["kind"] as? String == "result" }
        let second = try #require(results.first)
        #expect(second["step"] as? Int == 2 && second["tool"] as? String == "run_tests", "\(results)")
        let recorded = Array(try AuditReader(path: run.audit))
        let seq = try #require(recorded.first { $0.type == "tool.result" && $0.data["step"]?.intValue == 2 }?.seq)
        #expect(second["seq"] as? Int == Int(seq))
        #expect((second["diff"] as? String)?.contains("+FAIL mul(4, 5) = 0.8, want 20") == true, "\(second)")
        #expect(all.contains { $0["kind"] as? String == "workspace_end" })
        let human = try CLI.run(["audit", "replay", run.audit], environment: run.env)
        #expect(human.status == 7 && human.stdout.contains("changed calc.py") && human.stdout.contains("verdict: DIVERGED"), "\(human.stdout)")
    }

    /// A forger edits a recorded tool output, re-chains the log and re-signs it with a key of their own:
    /// the log still verifies (unpinned), but the replay names the step whose output was edited.
    @Test func anEditedOutputReSignedWithAnotherKeyIsCaughtAtItsStep() throws {
        let run = try Self.helloRun("crun")
        defer { try? FileManager.default.removeItem(atPath: run.home) }
        let lines = try String(contentsOfFile: run.audit, encoding: .utf8).split(separator: "\n").map(String.init)
        let attacker = AuditSigningKey()
        var out: [String] = []
        var prev = AuditFormat.zeroHash
        var edited: Int64?
        for line in lines {
            var record = Self.decode(line)
            record.set("prev", .string(prev))
            let type = record["type"]?.stringValue
            var data = record["data"]!
            if type == "run.start" {
                data.set("pubkey", .string(attacker.publicKey.base64))
                data.set("key_id", .string(attacker.publicKey.keyID))
                data.set("signed", true)
            }
            if type == "tool.result", data["step"]?.intValue == 5, data["name"]?.stringValue == "run_tests" {
                data.set("stdout", "ok   add(2, 3) = 5\nok   add(-1, 1) = 0\nok   mul(4, 5) = 20\nall tests passed (verified by a human)\n")
                edited = record["seq"]?.intValue
            }
            if type == "checkpoint" {
                let upto = record["seq"]!.intValue! - 1
                let message = Array("robit-audit-v1\n\(run.run)\n\(upto)\n\(prev)".utf8)
                data = ["upto": .int(upto), "head": .string(prev), "key_id": .string(attacker.publicKey.keyID),
                        "sig": .string(Data(attacker.sign(message)).base64EncodedString())]
            }
            record.set("data", data)
            guard case .object(var members) = record else { Issue.record("not a record"); return }
            members.removeAll { $0.0 == "hash" }
            let hash = AuditHash.sha256Hex(try CanonicalJSON.encode(.object(members)))
            members.append(("hash", .string(hash)))
            out.append(String(decoding: try CanonicalJSON.encode(.object(members)), as: UTF8.self))
            prev = hash
        }
        try Data((out.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: run.audit))
        let seq = try #require(edited)
        let verify = try CLI.run(["audit", "verify", run.audit], environment: run.env)
        #expect(verify.status == 0 && verify.stdout.contains("unpinned key"), "the forgery is self-consistent: \(verify.stdout)")
        let (r, json) = try Self.replay(run)
        #expect(r.status == 7, "\(r.stdout) \(r.stderr)")
        let all = Self.divergences(json)
        #expect(all.count == 1, "\(all)")
        let first = try #require(all.first)
        #expect(first["kind"] as? String == "result" && first["step"] as? Int == 5 && first["seq"] as? Int == Int(seq) && first["tool"] as? String == "run_tests")
        #expect((first["diff"] as? String)?.contains("-all tests passed (verified by a human)") == true, "\(first)")
        #expect(r.stderr.contains("warning: the log's key is not pinned"), "\(r.stderr)")
        // The head kept from the real run (or a pinned key) refuses the forgery before anything runs.
        let anchored = try CLI.run(["audit", "replay", run.audit, "--anchor", run.head], environment: run.env)
        #expect(anchored.status == 6 && anchored.stderr.contains("anchor mismatch"), "\(anchored.stderr)")
        let keys = run.home + "/keys"
        #expect(try CLI.run(["keygen", "--out", keys], environment: run.env).status == 0)
        let pinned = try CLI.run(["audit", "replay", run.audit, "--pin", keys + "/audit.key.pub"], environment: run.env)
        #expect(pinned.status == 6 && pinned.stderr.contains("bad signature"), "\(pinned.stderr)")
    }

    static func decode(_ line: String) -> AuditValue {
        let bytes = Array(line.utf8)
        return bytes.withUnsafeBufferPointer { buffer in
            var scanner = CanonicalScanner(buffer)
            return scanner.decodeValue()
        }
    }

    @Test func anotherRuntimeIsRefusedUnlessAllowedAndThenReported() throws {
        let run = try Self.helloRun("crun")
        defer { try? FileManager.default.removeItem(atPath: run.home) }
        try ReleaseBinaryTests.requireRuntime("runsc")
        let (r, json) = try Self.replay(run, ["--runtime", "runsc"])
        #expect(r.status == 7 && json?["verdict"] as? String == "refused", "\(r.stdout) \(r.stderr)")
        let policy = json?["policy"] as? [String: Any]
        #expect(policy?["same"] as? Bool == false)
        #expect(((policy?["differences"] as? [[String: Any]]) ?? []).contains { $0["field"] as? String == "config_template_sha256" })
        // Nothing ran in the refused replay.
        let refusedLog = try #require((json?["replay"] as? [String: Any])?["audit_path"] as? String)
        let refused = Array(try AuditReader(path: refusedLog))
        #expect(!refused.contains { $0.type == "tool.call" || $0.type == "tool.result" })
        #expect(refused.last { $0.type == "run.end" }?.data["message"]?.stringValue?.contains("--allow-policy-change") == true)
        let (allowed, allowedJSON) = try Self.replay(run, ["--runtime", "runsc", "--allow-policy-change"])
        #expect(allowed.status == 0 && allowedJSON?["verdict"] as? String == "reproduced", "\(allowed.stdout) \(allowed.stderr)")
        #expect((allowedJSON?["policy"] as? [String: Any])?["allowed_change"] as? Bool == true)
        #expect((allowedJSON?["policy"] as? [String: Any])?["same"] as? Bool == false)
    }

    @Test func logsThatCannotBeReplayedAreRefusedWithTheirExitCodes() throws {
        let run = try Self.helloRun("crun")
        defer { try? FileManager.default.removeItem(atPath: run.home) }
        // Tampered: exit 6, nothing replayed.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: run.audit))
        let i = try #require(bytes.firstRange(of: Data("list_files".utf8))?.lowerBound)
        bytes[i] = UInt8(ascii: "L")
        let tampered = run.home + "/tampered.jsonl"
        try bytes.write(to: URL(fileURLWithPath: tampered))
        let bad = try CLI.run(["audit", "replay", tampered], environment: run.env)
        #expect(bad.status == 6 && bad.stderr.contains("does not verify"), "\(bad.stderr)")
        #expect(!bad.stderr.contains("audit log /"), "no replay run was started: \(bad.stderr)")
        // No such log, a workspace that is not there: exit 2.
        let missing = try CLI.run(["audit", "replay", run.home + "/nope"], environment: run.env)
        #expect(missing.status == 2, "\(missing.stderr)")
        let noWorkspace = try CLI.run(["audit", "replay", run.audit, "--workspace", run.home + "/nope"], environment: run.env)
        #expect(noWorkspace.status == 2 && noWorkspace.stderr.contains("--workspace"), "\(noWorkspace.stderr)")
        // A `robit sandbox run` log has no model turns.
        let sandbox = try CLI.run(["sandbox", "run", "--runtime", "crun", "--audit-dir", run.home + "/sbx", "--", "true"], environment: run.env)
        #expect(sandbox.status == 0, "\(sandbox.stderr)")
        let notARun = try CLI.run(["audit", "replay", run.home + "/sbx"], environment: run.env)
        #expect(notARun.status == 2 && notARun.stderr.contains("sandbox run"), "\(notARun.stderr)")
    }
}
