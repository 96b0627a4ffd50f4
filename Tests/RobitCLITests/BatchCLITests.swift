import Foundation
import RobitSync
import RobitTestSupport
import Testing

/// `robit batch` through the release binary: a mix of passing, failing and budget-exhausted tasks,
/// overlapping batches, a lock held elsewhere, and SIGTERM.
@Suite(.serialized) struct BatchCLITests {
    /// A directory with a copy of examples/hello's project and script, and task files made from its task.
    struct Fixture {
        var root: String
        var env: [String: String]

        init() throws {
            root = try CLI.temporaryDirectory()
            try FileManager.default.createDirectory(atPath: root + "/tasks", withIntermediateDirectories: true)
            for item in ["project", "script.jsonl"] {
                try FileManager.default.copyItem(atPath: CLI.packageRoot + "/examples/hello/" + item, toPath: root + "/" + item)
            }
            env = RunCLITests.environment(home: root)
        }

        /// A task named `name` from examples/hello's, with `edits` applied (old → new).
        func task(_ file: String, name: String, _ edits: [(String, String)] = []) throws {
            var text = try String(contentsOfFile: CLI.packageRoot + "/examples/hello/task.yaml", encoding: .utf8)
            for (old, new) in [("name: hello-fix-add", "name: " + name), ("script: script.jsonl", "script: ../script.jsonl"),
                               ("path: project", "path: ../project"), ("patch: out/fix.patch", "patch: ../out/\(name).patch")] + edits {
                #expect(text.contains(old), "examples/hello/task.yaml no longer has \(old)")
                text = text.replacingOccurrences(of: old, with: new)
            }
            try text.write(toFile: root + "/tasks/" + file, atomically: true, encoding: .utf8)
        }

        func script(_ file: String, _ lines: [String]) throws {
            try (lines.joined(separator: "\n") + "\n").write(toFile: root + "/" + file, atomically: true, encoding: .utf8)
        }

        /// The four kinds of task: done (0), budget (3), invalid (2), provider failed (4).
        func mix() throws {
            try task("a-pass.yaml", name: "pass")
            try task("b-budget.yaml", name: "budget", [("max_steps: 12", "max_steps: 2")])
            try task("c-invalid.yaml", name: "invalid", [("prompt: |", "promt: |")])
            try script("short.jsonl", [#"{"text":"Looking.","tool_calls":[{"name":"list_files","arguments":{}}]}"#])
            try task("d-provider.yaml", name: "provider", [("script: ../script.jsonl", "script: ../short.jsonl")])
        }
    }

    static func objects(_ stdout: String) -> [[String: Any]] {
        stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    @Test(arguments: [1, 2]) func mixedTasksEachReportedAndWorstExitCode(jobs: Int) throws {
        let f = try Fixture()
        try f.mix()
        let r = try CLI.run(["batch", f.root + "/tasks", "--jobs", String(jobs), "--runtime", "crun", "--json"], environment: f.env)
        #expect(r.status == 4, "the worst exit code of 0, 3, 2 and 4: \(r.stderr)")
        let rows = Self.objects(r.stdout)
        try #require(rows.count == 4, "\(r.stdout)\n\(r.stderr)")
        #expect(rows.map { $0["task"] as? String } == ["a-pass", "b-budget", "c-invalid", "d-provider"].map { f.root + "/tasks/\($0).yaml" })
        #expect(rows.map { $0["status"] as? String } == ["done", "budget", "invalid", "provider_failed"])
        #expect(rows.map { $0["exit_code"] as? Int } == [0, 3, 2, 4])
        #expect(rows[0]["steps"] as? Int == 6 && rows[0]["tokens"] as? Int == 4081)
        #expect(rows[1]["steps"] as? Int == 2)
        #expect((rows[2]["message"] as? String)?.contains("promt") == true, "\(rows[2])")
        #expect(rows[2]["run"] is NSNull, "an invalid task runs nothing")
        #expect((rows[3]["message"] as? String)?.contains("replay") == true, "\(rows[3])")
        #expect(rows[0]["patch_path"] as? String == f.root + "/out/pass.patch")
        // Each ran in its own run with its own audit log, which verifies.
        let ran = [rows[0], rows[1], rows[3]]
        #expect(Set(ran.compactMap { $0["run"] as? String }).count == 3)
        for row in ran {
            let audit = try #require(row["audit_path"] as? String)
            let verify = try CLI.run(["audit", "verify", audit, "--anchor", row["head"] as? String ?? ""], environment: f.env)
            #expect(verify.status == 0, "\(row["name"] ?? ""): \(verify.stdout) \(verify.stderr)")
            let log = try #require(row["log"] as? String)
            #expect(FileManager.default.fileExists(atPath: log))
        }
        // The table says the same.
        let table = try CLI.run(["batch", f.root + "/tasks", "--jobs", String(jobs), "--runtime", "crun"], environment: f.env)
        #expect(table.status == 4)
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == 5 && lines[0].hasPrefix("TASK"), "\(table.stdout)")
        #expect(lines[1].hasPrefix("pass ") && lines[1].contains(" done ") && lines[1].contains("out/pass.patch"))
        #expect(lines[2].hasPrefix("budget ") && lines[2].contains(" budget "))
        #expect(lines[3].hasPrefix("c-invalid.yaml") && lines[3].contains(" invalid "))
        #expect(lines[4].hasPrefix("provider ") && lines[4].contains(" provider_failed "))
    }

    @Test func allPassingExitsZero() throws {
        let f = try Fixture()
        try f.task("one.yaml", name: "one")
        try f.task("two.yml", name: "two")
        try "not a task".write(toFile: f.root + "/tasks/README.md", atomically: true, encoding: .utf8)
        let r = try CLI.run(["batch", f.root + "/tasks", "--jobs", "2", "--runtime", "crun", "--json"], environment: f.env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.objects(r.stdout).map { $0["status"] as? String } == ["done", "done"], "a directory means its *.yaml and *.yml files")
    }

    @Test func noTasksAndBadJobsAreInvalidInput() throws {
        let f = try Fixture()
        let empty = try CLI.run(["batch", f.root + "/tasks"], environment: f.env)
        #expect(empty.status == 2 && empty.stderr.contains("no task files"), "\(empty.stderr)")
        try f.task("one.yaml", name: "one")
        let jobs = try CLI.run(["batch", f.root + "/tasks", "--jobs", "0"], environment: f.env)
        #expect(jobs.status == 2 && jobs.stderr.contains("--jobs"), "\(jobs.stderr)")
    }

    /// Two batches started together over the same tasks: every task runs once, in one of them.
    @Test func overlappingBatchesRunEachTaskOnce() throws {
        let f = try Fixture()
        // Each task lasts at least 2 s, so the second batch starts while the first holds every lock.
        try f.script("slow.jsonl", [#"{"text":"Waiting.","tool_calls":[{"name":"shell","arguments":{"command":"sleep 2"}}]}"#, #"{"text":"Done."}"#])
        for name in ["t1", "t2", "t3"] { try f.task(name + ".yaml", name: name, [("script: ../script.jsonl", "script: ../slow.jsonl")]) }
        let files = ["t1", "t2", "t3"].map { f.root + "/tasks/\($0).yaml" }
        let group = DispatchGroup()
        let results = Locked<[CLI.Result]>([])
        for order in [files, files.reversed()] {
            group.enter()
            DispatchQueue.global().async {
                if let r = try? CLI.run(["batch"] + order + ["--jobs", "1", "--runtime", "runsc", "--json"], environment: f.env) {
                    results.withLock { $0.append(r) }
                }
                group.leave()
            }
        }
        group.wait()
        let both = results.withLock { $0 }
        try #require(both.count == 2)
        var ran: [String: Int] = [:]
        for r in both {
            #expect(r.status == 0, "\(r.stderr)")
            for row in Self.objects(r.stdout) {
                let name = row["name"] as? String ?? "?"
                if row["status"] as? String == "done" { ran[name, default: 0] += 1 } else {
                    #expect(row["status"] as? String == "skipped", "\(row)")
                    #expect((row["message"] as? String)?.contains("already running or queued by another robit (pid ") == true, "\(row)")
                    #expect(row["exit_code"] is NSNull)
                }
            }
        }
        #expect(ran == ["t1": 1, "t2": 1, "t3": 1], "\(both.map(\.stderr))")
    }

    /// A lock held by another process skips the task; once that process is gone, the task runs.
    @Test func aLockHeldElsewhereSkipsUntilItsHolderDies() throws {
        let f = try Fixture()
        try f.task("held.yaml", name: "held")
        let locks = f.root + "/.local/state/robit/locks"
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: true)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = ["-c", "import fcntl,os,sys,time; f=open(sys.argv[1],'a+'); fcntl.flock(f, fcntl.LOCK_EX); f.truncate(0); f.write('%d\\n' % os.getpid()); f.flush(); print('locked', flush=True); time.sleep(120)",
                            locks + "/held.lock"]
        let pipe = Pipe()
        holder.standardOutput = pipe
        try holder.run()
        _ = pipe.fileHandleForReading.availableData  // "locked"
        let skipped = try CLI.run(["batch", f.root + "/tasks/held.yaml", "--runtime", "crun", "--json"], environment: f.env)
        #expect(skipped.status == 0, "a skipped task is no failure: \(skipped.stderr)")
        let row = try #require(Self.objects(skipped.stdout).first)
        #expect(row["status"] as? String == "skipped")
        #expect((row["message"] as? String)?.contains("(pid \(holder.processIdentifier))") == true, "\(row)")
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        let ran = try CLI.run(["batch", f.root + "/tasks/held.yaml", "--runtime", "crun", "--json"], environment: f.env)
        #expect(Self.objects(ran.stdout).first?["status"] as? String == "done", "\(ran.stderr)")
        // Two tasks of one batch with the same name: the second is skipped.
        try f.task("same.yaml", name: "held")
        let twice = try CLI.run(["batch", f.root + "/tasks", "--runtime", "crun", "--json"], environment: f.env)
        #expect(Self.objects(twice.stdout).map { $0["status"] as? String } == ["done", "skipped"], "\(twice.stdout)")
    }

    /// SIGTERM stops the running task (its log is finalized and verifies) and starts no more.
    @Test func sigtermFinalizesRunningTasksAndStartsNoMore() throws {
        let f = try Fixture()
        try f.script("slow.jsonl", [#"{"text":"Waiting.","tool_calls":[{"name":"shell","arguments":{"command":"sleep 20"}}]}"#,
                                    #"{"text":"Done."}"#])
        try f.task("a-slow.yaml", name: "slow", [("script: ../script.jsonl", "script: ../slow.jsonl")])
        try f.task("b-next.yaml", name: "next")
        let out = f.root + "/batch.out", err = f.root + "/batch.err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["batch", f.root + "/tasks", "--jobs", "1", "--runtime", "crun", "--json"]
        p.environment = f.env
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try p.run()
        // Until the slow task's shell call is running.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
            if let range = text.range(of: "[slow] started (log "), let end = text[range.upperBound...].firstIndex(of: ")") {
                let log = String(text[range.upperBound..<end])
                if ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("step 1: 1 tool call") { break }
            }
            usleep(50_000)
        }
        usleep(300_000)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130, "\((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")")
        let rows = Self.objects((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
        try #require(rows.count == 2, "\(rows)")
        #expect(rows[0]["status"] as? String == "interrupted" && rows[0]["exit_code"] as? Int == 130, "\(rows[0])")
        #expect(rows[1]["status"] as? String == "not_started" && rows[1]["run"] is NSNull, "\(rows[1])")
        let audit = try #require(rows[0]["audit_path"] as? String)
        let verify = try CLI.run(["audit", "verify", audit], environment: f.env)
        #expect(verify.status == 0, "the interrupted task's log is finalized: \(verify.stdout) \(verify.stderr)")
        let end = try CLI.run(["audit", "show", audit, "--type", "run.end", "--json"], environment: f.env)
        #expect(end.stdout.contains(#""result":"interrupted""#), "\(end.stdout)")
    }
}
