import Foundation
import RobitAudit
import RobitExec
import RobitTestSupport
import Testing

/// README's first command, `robit run examples/hello/task.yaml`, end to end through the binary, and the
/// run store commands around it.
@Suite(.serialized) struct RunCLITests {
    static func environment(home: String) -> [String: String] {
        var env = AuditCLITests.environment(home: home)
        env.removeValue(forKey: "ROBIT_RUN_STORE")
        return env
    }

    /// A copy of examples/hello in a temporary directory (its out/ is written next to the task).
    static func helloCopy() throws -> String {
        let dir = try CLI.temporaryDirectory()
        let target = dir + "/hello"
        try FileManager.default.copyItem(atPath: CLI.packageRoot + "/examples/hello", toPath: target)
        try? FileManager.default.removeItem(atPath: target + "/out")
        return target
    }

    @Test(arguments: ["runsc", "crun"]) func helloExampleFixesTheBug(runtime: String) throws {
        let hello = try Self.helloCopy()
        let home = (hello as NSString).deletingLastPathComponent
        let env = Self.environment(home: home)
        let original = try String(contentsOfFile: hello + "/project/calc.py", encoding: .utf8)
        let r = try CLI.run(["run", hello + "/task.yaml", "--runtime", runtime, "--json"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(summary["status"] as? String == "done")
        #expect(summary["steps"] as? Int == 6)
        #expect(summary["tool_calls"] as? Int == 5)
        #expect((summary["head"] as? String)?.count == 64)
        let patchPath = try #require(summary["patch_path"] as? String)
        #expect(patchPath == hello + "/out/fix.patch")
        let patch = try String(contentsOfFile: patchPath, encoding: .utf8)
        #expect(patch.contains("--- a/calc.py\n+++ b/calc.py\n"))
        #expect(patch.contains("-    return a - b\n+    return a + b\n"))
        // The user's workspace is untouched; the patch applies to it and makes the tests pass.
        #expect(try String(contentsOfFile: hello + "/project/calc.py", encoding: .utf8) == original)
        let apply = Process()
        apply.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        apply.currentDirectoryURL = URL(fileURLWithPath: hello + "/project")
        apply.arguments = ["git", "apply", patchPath]
        try apply.run()
        apply.waitUntilExit()
        #expect(apply.terminationStatus == 0)
        #expect(try String(contentsOfFile: hello + "/project/calc.py", encoding: .utf8).contains("return a + b"))

        // The audit log verifies, pinned to its head, and shows the tool calls.
        let audit = try #require(summary["audit_path"] as? String)
        let head = summary["head"] as! String
        let verify = try CLI.run(["audit", "verify", audit, "--anchor", head], environment: env)
        #expect(verify.status == 0, "\(verify.stdout)")
        let show = try CLI.run(["audit", "show", audit, "--type", "tool.result", "--tool", "run_tests", "--json"], environment: env)
        let results = show.stdout.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(results.count == 2)
        #expect(results.map { ($0["data"] as! [String: Any])["exit_code"] as? Int } == [1, 0])
        let start = try CLI.run(["audit", "show", audit, "--type", "run.start", "--json"], environment: env)
        let startData = (try JSONSerialization.jsonObject(with: Data(start.stdout.utf8)) as! [String: Any])["data"] as! [String: Any]
        #expect((startData["workspace_tree_sha256"] as? String)?.count == 64)
        #expect((startData["task"] as? [String: Any])?["blob"] != nil, "the task file is stored as a blob")

        // The run store knows the run.
        let run = summary["run"] as! String
        let list = try CLI.run(["runs", "list"], environment: env)
        #expect(list.status == 0)
        #expect(list.stdout.contains(run) && list.stdout.contains("done"))
        let showRun = try CLI.run(["runs", "show", String(run.prefix(12))], environment: env)
        #expect(showRun.status == 0, "\(showRun.stderr)")
        let record = try JSONSerialization.jsonObject(with: Data(showRun.stdout.utf8)) as! [String: Any]
        #expect(record["head"] as? String == head)
        #expect(record["status"] as? String == "done")
        #expect((record["step_list"] as? [Any])?.count == 6)
        // A finished run cannot be resumed.
        let resume = try CLI.run(["resume", run], environment: env)
        #expect(resume.status == 2)
    }

    @Test func badTaskFilesExit2NamingTheLine() throws {
        let hello = try Self.helloCopy()
        let env = Self.environment(home: (hello as NSString).deletingLastPathComponent)
        var text = try String(contentsOfFile: hello + "/task.yaml", encoding: .utf8)
        text = text.replacingOccurrences(of: "budget:", with: "budgett:")
        try text.write(toFile: hello + "/task.yaml", atomically: false, encoding: .utf8)
        let r = try CLI.run(["run", hello + "/task.yaml"], environment: env)
        #expect(r.status == 2)
        #expect(r.stderr.contains("task.yaml:") && r.stderr.contains("budgett"), "\(r.stderr)")
        let missing = try CLI.run(["runs", "show", "robit-nope"], environment: env)
        #expect(missing.status == 2)
    }

    @Test func aScriptThatRunsOutIsAProviderFailure() throws {
        let hello = try Self.helloCopy()
        let env = Self.environment(home: (hello as NSString).deletingLastPathComponent)
        let lines = try String(contentsOfFile: hello + "/script.jsonl", encoding: .utf8).split(separator: "\n")
        try (lines.prefix(3).joined(separator: "\n") + "\n").write(toFile: hello + "/script.jsonl", atomically: false, encoding: .utf8)
        let r = try CLI.run(["run", hello + "/task.yaml", "--runtime", "crun", "--json"], environment: env)
        #expect(r.status == 4, "\(r.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(summary["status"] as? String == "provider_failed")
        let verify = try CLI.run(["audit", "verify", summary["audit_path"] as! String], environment: env)
        #expect(verify.status == 0, "\(verify.stdout)")
    }
}

/// `robit sandbox run --workspace DIR` on a root-owned checkout: `--copy` leaves DIR alone and writes
/// the patch; the refusal without it names `--copy`; `--disk` bounds what the command writes.
@Suite(.serialized) struct SandboxCopyCLITests {
    static func rootOwned() throws -> String {
        let dir = try CLI.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/ws", withIntermediateDirectories: true)
        try "old\n".write(toFile: dir + "/ws/a.txt", atomically: false, encoding: .utf8)
        chown(dir + "/ws", 0, 0)
        chown(dir + "/ws/a.txt", 0, 0)
        return dir
    }

    @Test func aRootOwnedWorkspaceIsRefusedNamingCopy() throws {
        try ReleaseBinaryTests.requireRuntime("crun")
        let dir = try Self.rootOwned()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try CLI.run(["sandbox", "run", "--runtime", "crun", "--workspace", dir + "/ws", "--", "true"])
        #expect(r.status == 2 && r.stderr.contains("--copy"), "\(r.status) \(r.stderr)")
        let misuse = try CLI.run(["sandbox", "run", "--runtime", "crun", "--workspace", dir + "/ws", "--disk", "1GiB", "--", "true"])
        #expect(misuse.status == 2 && misuse.stderr.contains("need --copy"), "\(misuse.stderr)")
    }

    @Test(arguments: ["runsc", "crun"])
    func copyWritesThePatchAndLeavesTheDirectoryAlone(runtime: String) throws {
        try ReleaseBinaryTests.requireRuntime(runtime)
        let dir = try Self.rootOwned()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try CLI.run(["sandbox", "run", "--runtime", runtime, "--workspace", dir + "/ws", "--copy", "--patch", dir + "/p.patch",
                             "--audit-dir", dir + "/audit", "--", "sh", "-c", "echo new > a.txt && echo made > b.txt && id -u"])
        #expect(r.status == 0 && r.stdout == "65532\n", "\(r.status) \(r.stderr)")
        #expect(try String(contentsOfFile: dir + "/ws/a.txt", encoding: .utf8) == "old\n")
        #expect(!FileManager.default.fileExists(atPath: dir + "/ws/b.txt"))
        let patch = try String(contentsOfFile: dir + "/p.patch", encoding: .utf8)
        #expect(patch.contains("diff --git a/a.txt b/a.txt") && patch.contains("diff --git a/b.txt b/b.txt") && patch.contains("+made"), "\(patch)")
        #expect(r.stderr.contains("robit: patch \(dir)/p.patch"), "\(r.stderr)")
        let records = Array(try AuditReader(path: dir + "/audit/" + AuditFormat.logFileName))
        #expect(try DocumentedRecords.load().problems(records) == [])
        let patchRecord = try #require(records.first { $0.type == "patch" })
        #expect(patchRecord.data["files"]?.intValue == 2 && patchRecord.data["redacted"]?.intValue == 0)
        #expect(records.last { $0.type == "run.end" }?.data["patch"]?.stringValue == dir + "/p.patch")
        let full = try CLI.run(["sandbox", "run", "--runtime", runtime, "--workspace", dir + "/ws", "--copy", "--disk", "16MiB", "--",
                                "sh", "-c", "head -c 50000000 /dev/zero > big; echo $?"])
        #expect(full.stdout == "1\n" && full.stderr.contains("No space left"), "\(full.stdout) \(full.stderr)")
    }
}
