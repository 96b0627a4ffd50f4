import Foundation
import RobitAudit
import RobitTestSupport
import Testing

/// `robit keygen`, the audit log of `robit sandbox run`, and `robit audit verify/show` through the binary.
@Suite(.serialized) struct AuditCLITests {
    /// An environment whose HOME has no default key, so runs are unsigned unless --key is given.
    static func environment(home: String) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = home
        env.removeValue(forKey: "XDG_CONFIG_HOME")
        env.removeValue(forKey: "XDG_STATE_HOME")
        env.removeValue(forKey: "ROBIT_AUDIT_KEY")
        return env
    }

    static func head(in stderr: String) -> String? {
        guard let range = stderr.range(of: "audit head ") else { return nil }
        return String(stderr[range.upperBound...].prefix(64))
    }

    @Test func keygenSignedRunVerifyShowAndTamper() throws {
        let dir = try CLI.temporaryDirectory()
        let env = Self.environment(home: dir)
        let keygen = try CLI.run(["keygen", "--out", dir + "/keys"], environment: env)
        #expect(keygen.status == 0, "\(keygen.stderr)")
        var st = stat()
        stat(dir + "/keys/audit.key", &st)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(try CLI.run(["keygen", "--out", dir + "/keys"], environment: env).status == 2)

        let audit = dir + "/audit"
        let run = try CLI.run(["sandbox", "run", "--runtime", "crun", "--key", dir + "/keys/audit.key", "--audit-dir", audit,
                               "--", "sh", "-c", "echo out; echo err >&2; exit 3"], environment: env)
        #expect(run.status == 3, "\(run.stderr)")
        let head = try #require(Self.head(in: run.stderr))

        let verify = try CLI.run(["audit", "verify", audit, "--key", dir + "/keys/audit.key.pub", "--anchor", head], environment: env)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("signed, pinned key"))
        // `robit sandbox run` writes the layouts docs/audit-format.md lists, as `robit run` does.
        let written = Array(try AuditReader(path: audit + "/" + AuditFormat.logFileName))
        #expect(try DocumentedRecords.load().problems(written) == [])
        #expect(written.first { $0.type == "tool.result" }?.data["stdout_bytes"]?.intValue == 4)

        let show = try CLI.run(["audit", "show", audit], environment: env)
        #expect(show.status == 0)
        for type in ["run.start", "policy", "sandbox.create", "tool.call", "tool.result", "sandbox.destroy", "run.end", "checkpoint"] {
            #expect(show.stdout.contains(type), "show lacks \(type):\n\(show.stdout)")
        }
        #expect(show.stdout.contains("exit 3"))
        #expect(!show.stdout.contains("\u{1B}["), "colour only on a TTY")
        let json = try CLI.run(["audit", "show", audit, "--json", "--type", "tool.result"], environment: env)
        let lines = json.stdout.split(separator: "\n")
        #expect(lines.count == 1)
        let record = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        let data = record["data"] as! [String: Any]
        #expect(data["stdout"] as? String == "out\n")
        #expect(data["stderr"] as? String == "err\n")
        #expect(data["exit_code"] as? Int == 3)
        #expect(data["argv"] as? [String] == ["sh", "-c", "echo out; echo err >&2; exit 3"])

        let policy = try CLI.run(["audit", "show", audit, "--json", "--type", "policy"], environment: env)
        let policyData = (try JSONSerialization.jsonObject(with: Data(policy.stdout.utf8)) as! [String: Any])["data"] as! [String: Any]
        #expect((policyData["config_sha256"] as? String)?.count == 64)
        #expect((policyData["seccomp_sha256"] as? String)?.count == 64)
        #expect(policyData["network"] as? String == "none")

        // The Python verifier in docs/ agrees.
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", CLI.packageRoot + "/docs/verify_audit.py", audit, "--key", dir + "/keys/audit.key.pub", "--anchor", head]
        try python.run()
        python.waitUntilExit()
        #expect(python.terminationStatus == 0)

        // One changed byte: exit 6 naming the line.
        let path = audit + "/audit.jsonl"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: "out\\n", with: "0ut\\n")
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let tampered = try CLI.run(["audit", "verify", audit, "--key", dir + "/keys/audit.key.pub"], environment: env)
        #expect(tampered.status == 6)
        #expect(tampered.stdout.contains(": modified:"), "\(tampered.stdout)")
        let tamperedJSON = try CLI.run(["audit", "verify", path, "--json"], environment: env)
        #expect(tamperedJSON.status == 6)
        #expect(tamperedJSON.stdout.contains(#""reason":"modified""#))
    }

    @Test func unsignedWithoutAKey() throws {
        let dir = try CLI.temporaryDirectory()
        let env = Self.environment(home: dir)
        let run = try CLI.run(["sandbox", "run", "--runtime", "crun", "--audit-dir", dir + "/a", "--", "true"], environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        let verify = try CLI.run(["audit", "verify", dir + "/a"], environment: env)
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("unsigned"))
        #expect(verify.stderr.contains("unsigned"))
        // The default location is under ~/.local/state/robit/runs/.
        let defaultRun = try CLI.run(["sandbox", "run", "--runtime", "crun", "--", "true"], environment: env)
        #expect(defaultRun.status == 0)
        let runs = try FileManager.default.contentsOfDirectory(atPath: dir + "/.local/state/robit/runs")
        #expect(runs.count == 1)
        // A named key that cannot be loaded is an error, never a silently unsigned log.
        let missing = try CLI.run(["sandbox", "run", "--runtime", "crun", "--key", dir + "/nope", "--", "true"], environment: env)
        #expect(missing.status == 2)
    }

    @Test func auditDirectoryTheSandboxCanSeeIsRefused() throws {
        let dir = try CLI.temporaryDirectory()
        let env = Self.environment(home: dir)
        let workspace = dir + "/ws"
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
        chown(workspace, 1000, 1000)
        for auditDir in [workspace + "/audit", workspace, "/usr/lib/robit-audit-test", "/etc/../usr/share/x"] {
            let r = try CLI.run(["sandbox", "run", "--runtime", "crun", "--workspace", workspace, "--audit-dir", auditDir, "--", "true"], environment: env)
            #expect(r.status == 2, "\(auditDir): \(r.stderr)")
            #expect(r.stderr.contains("which the sandbox can see"), "\(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: workspace + "/audit"))
        // Through a symlink that points into the workspace.
        symlink(workspace, dir + "/link")
        let r = try CLI.run(["sandbox", "run", "--runtime", "crun", "--workspace", workspace, "--audit-dir", dir + "/link/a", "--", "true"], environment: env)
        #expect(r.status == 2)
    }

    @Test func secondWriterOfOneLogIsRefused() throws {
        let dir = try CLI.temporaryDirectory()
        let env = Self.environment(home: dir)
        let first = Process()
        first.executableURL = URL(fileURLWithPath: CLI.binary)
        first.arguments = ["sandbox", "run", "--runtime", "crun", "--audit-dir", dir + "/a", "--", "sleep", "3"]
        first.environment = env
        first.standardError = FileHandle.nullDevice
        try first.run()
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: dir + "/a/audit.jsonl") && Date() < deadline { usleep(20_000) }
        let second = try CLI.run(["sandbox", "run", "--runtime", "crun", "--audit-dir", dir + "/a", "--", "true"], environment: env)
        #expect(second.status != 0)
        #expect(second.stderr.contains("another robit process"), "\(second.stderr)")
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
        #expect(try CLI.run(["audit", "verify", dir + "/a"], environment: env).status == 0)
    }
}
