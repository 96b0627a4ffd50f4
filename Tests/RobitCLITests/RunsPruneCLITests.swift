import Foundation
import RobitTestSupport
import Testing

/// `robit runs prune` through the release binary, on real runs whose store rows are then dated back.
@Suite(.serialized) struct RunsPruneCLITests {
    /// Runs examples/hello `count` times under crun in a fresh HOME; the run ids, in order.
    static func runs(_ count: Int, env: [String: String], hello: String) throws -> [[String: Any]] {
        try (0..<count).map { _ in
            let r = try CLI.run(["run", hello + "/task.yaml", "--runtime", "crun", "--json"], environment: env)
            #expect(r.status == 0, "\(r.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
    }

    /// Runs SQL against the run store with Python's sqlite3 (an independent writer).
    static func sql(_ db: String, _ statements: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", db, statements]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    static func lines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    @Test func removesOldRunsKeepsRunningOnesAndForeignLogs() throws {
        let hello = try RunCLITests.helloCopy()
        let home = (hello as NSString).deletingLastPathComponent
        let env = RunCLITests.environment(home: home)
        let summaries = try Self.runs(4, env: env, hello: hello)
        let ids = summaries.map { $0["run"] as! String }
        let audits = summaries.map { (($0["audit_path"] as! String) as NSString).deletingLastPathComponent }
        let db = home + "/.local/state/robit/runs.db"
        #expect(FileManager.default.fileExists(atPath: db))

        // A live process that looks like a robit: run 0 is "still running" in it.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = ["-c", "import time; time.sleep(120)", "robit"]
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() } }
        let old = Int64(Date().timeIntervalSince1970) - 40 * 86_400
        // Runs 0, 1 and 2 are 40 days old; run 3 is today's. Run 2's row points at run 1's audit directory.
        try Self.sql(db, """
            UPDATE runs SET started_at = \(old), ended_at = \(old) WHERE id IN ('\(ids[0])', '\(ids[1])', '\(ids[2])');
            UPDATE runs SET status = 'running', ended_at = NULL, pid = \(holder.processIdentifier) WHERE id = '\(ids[0])';
            UPDATE runs SET audit_path = '\(audits[1])/audit.jsonl' WHERE id = '\(ids[2])';
            """)

        // --dry-run: what would go, and nothing goes.
        let dry = try CLI.run(["runs", "prune", "--older-than", "30d", "--dry-run", "--json"], environment: env)
        #expect(dry.status == 0, "\(dry.stderr)")
        let planned = Dictionary(uniqueKeysWithValues: Self.lines(dry.stdout).map { ($0["run"] as! String, $0) })
        #expect(planned.count == 3, "\(dry.stdout)")
        #expect(planned[ids[0]]?["action"] as? String == "kept")
        #expect((planned[ids[0]]?["reason"] as? String)?.contains("still running (pid \(holder.processIdentifier))") == true)
        #expect(planned[ids[1]]?["action"] as? String == "would_remove")
        #expect((planned[ids[1]]?["paths"] as? [String])?.contains(audits[1]) == true, "\(planned[ids[1]] ?? [:])")
        #expect((planned[ids[1]]?["bytes"] as? Int ?? 0) > 0)
        #expect(planned[ids[2]]?["action"] as? String == "kept")
        #expect((planned[ids[2]]?["reason"] as? String)?.contains("does not hold this run's log") == true, "\(planned[ids[2]] ?? [:])")
        #expect(planned[ids[3]] == nil, "today's run is not old")
        #expect(dry.stderr.contains("would remove 1 run"), "\(dry.stderr)")
        for dir in audits { #expect(FileManager.default.fileExists(atPath: dir), "--dry-run removed \(dir)") }

        // For real.
        let prune = try CLI.run(["runs", "prune", "--older-than", "30d"], environment: env)
        #expect(prune.status == 0, "\(prune.stderr)")
        #expect(prune.stdout.contains("removed") && prune.stdout.contains(ids[1]), "\(prune.stdout)")
        #expect(!FileManager.default.fileExists(atPath: audits[1]), "run 1's audit directory is gone")
        #expect(try CLI.run(["runs", "show", ids[1]], environment: env).status != 0, "run 1's row is gone")
        for i in [0, 2, 3] {
            #expect(FileManager.default.fileExists(atPath: audits[i]), "run \(i)'s audit directory was removed")
            #expect(try CLI.run(["runs", "show", ids[i]], environment: env).status == 0, "run \(i)'s row was removed")
        }
        // The patch, outside robit's state, stays; the remaining logs still verify.
        #expect(FileManager.default.fileExists(atPath: hello + "/out/fix.patch"))
        #expect(try CLI.run(["audit", "verify", audits[3]], environment: env).status == 0)

        // Once run 0 is no longer running (its robit died), it goes too.
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        let again = try CLI.run(["runs", "prune", "--older-than", "30d", "--json"], environment: env)
        let second = Dictionary(uniqueKeysWithValues: Self.lines(again.stdout).map { ($0["run"] as! String, $0) })
        #expect(second[ids[0]]?["action"] as? String == "removed", "\(again.stdout)")
        #expect(!FileManager.default.fileExists(atPath: audits[0]))
        // Run 2's row named run 1's directory, which is gone now: its own run directory goes with its row.
        #expect(second[ids[2]]?["action"] as? String == "removed", "\(again.stdout)")
        #expect(!FileManager.default.fileExists(atPath: audits[2]))
        #expect(FileManager.default.fileExists(atPath: audits[3]), "today's run stays")
    }

    @Test(arguments: ["30", "-5d", "0d", "30x", "1e9d", "99999999999999999999d"])
    func aBadAgeIsRefused(age: String) throws {
        let home = try CLI.temporaryDirectory()
        let r = try CLI.run(["runs", "prune", "--older-than=" + age, "--dry-run"], environment: RunCLITests.environment(home: home))
        #expect(r.status == 2, "\(age): \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("is not a duration such as 30d"), "\(age): \(r.stderr)")
    }
}
