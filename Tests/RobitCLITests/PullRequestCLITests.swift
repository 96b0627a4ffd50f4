import Foundation
import RobitTestSupport
import Testing

/// `output.pr` through the release binary: the branch is pushed to a local bare repository and the pull
/// request is opened against scripts/fake-github.py, which answers as GitHub's REST API does.
@Suite(.serialized) struct PullRequestCLITests {
    static let tokenEnv = "ROBIT_TEST_GH_TOKEN"

    /// A bare "remote" with examples/hello's project on main, a clone of it as the workspace, a fake
    /// GitHub API and a task that opens a pull request.
    final class Fixture {
        let root: String
        let token = "ghp_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        var env: [String: String]
        var api: Process?
        var apiURL = ""

        init() throws {
            root = try CLI.temporaryDirectory()
            env = RunCLITests.environment(home: root)
            env[PullRequestCLITests.tokenEnv] = token
            try git(["init", "-q", "--bare", "-b", "main", root + "/remote.git"])
            try git(["clone", "-q", root + "/remote.git", root + "/ws"])
            for name in try FileManager.default.contentsOfDirectory(atPath: CLI.packageRoot + "/examples/hello/project") {
                try FileManager.default.copyItem(atPath: CLI.packageRoot + "/examples/hello/project/" + name, toPath: root + "/ws/" + name)
            }
            try git(["-C", root + "/ws", "add", "-A"])
            try git(["-C", root + "/ws", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "init"])
            try git(["-C", root + "/ws", "push", "-q", "origin", "main"])
            try FileManager.default.copyItem(atPath: CLI.packageRoot + "/examples/hello/script.jsonl", toPath: root + "/script.jsonl")
        }

        deinit {
            // SIGKILL: a test thread's blocked signals are inherited by the child.
            if let api, api.isRunning { kill(api.processIdentifier, SIGKILL) }
            api?.waitUntilExit()
        }

        /// Starts the fake API with these flags; its URL is `apiURL`.
        func startAPI(_ flags: [String] = []) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            p.arguments = [CLI.packageRoot + "/scripts/fake-github.py", "--state-dir", root + "/api", "--port", "0", "--token", token,
                           "--repo", "octo/hello"] + flags
            let out = Pipe()
            p.standardOutput = out
            try FileManager.default.createDirectory(atPath: root + "/api", withIntermediateDirectories: true)
            try p.run()
            api = p
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { throw TestFailure("fake-github.py ended before it listened") }
                line += chunk
            }
            apiURL = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// A task from examples/hello's that opens a pull request of `branch`.
        func task(name: String = "hello-fix-add", branch: String = "robit/fix", script: String = "script.jsonl", extra: String = "") throws -> String {
            var text = try String(contentsOfFile: CLI.packageRoot + "/examples/hello/task.yaml", encoding: .utf8)
            for (old, new) in [("name: hello-fix-add", "name: " + name), ("script: script.jsonl", "script: " + script), ("path: project", "path: ws"),
                               ("  patch: out/fix.patch", "  patch: out/\(name).patch\n  pr: { repo: octo/hello, base: main, branch: \(branch), token_env: \(PullRequestCLITests.tokenEnv), api_url: \"\(apiURL)\"\(extra) }")] {
                #expect(text.contains(old), "examples/hello/task.yaml no longer has \(old)")
                text = text.replacingOccurrences(of: old, with: new)
            }
            let path = root + "/\(name).yaml"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        func run(_ task: String, environment: [String: String]? = nil) throws -> (CLI.Result, [String: Any]) {
            let r = try CLI.run(["run", task, "--runtime", "crun", "--json"], environment: environment ?? env)
            let summary = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
            return (r, summary)
        }

        /// The requests the fake API received.
        var requests: [[String: Any]] {
            let text = (try? String(contentsOfFile: root + "/api/requests.jsonl", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        /// The `pr` record of a run's log.
        func prRecord(_ summary: [String: Any]) throws -> [String: Any] {
            let audit = try #require(summary["audit_path"] as? String)
            let show = try CLI.run(["audit", "show", audit, "--type", "pr", "--json"], environment: env)
            let record = try #require((try? JSONSerialization.jsonObject(with: Data(show.stdout.utf8))) as? [String: Any], "\(show.stdout) \(show.stderr)")
            return try #require(record["data"] as? [String: Any])
        }

        @discardableResult
        func git(_ arguments: [String]) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/git")
            p.arguments = arguments
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw TestFailure("git \(arguments.joined(separator: " ")) exited \(p.terminationStatus)") }
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Every file under `dir` that contains `text`.
        func files(under dir: String, containing text: String) -> [String] {
            guard let walker = FileManager.default.enumerator(atPath: dir) else { return [] }
            var found: [String] = []
            for case let relative as String in walker {
                let path = dir + "/" + relative
                if let data = FileManager.default.contents(atPath: path), data.range(of: Data(text.utf8)) != nil { found.append(path) }
            }
            return found
        }
    }

    @Test func opensAPullRequestOnceAndFindsItTheSecondTime() throws {
        let f = try Fixture()
        try f.startAPI()
        // The model first looks at its environment and processes: the token must not be there.
        let probe = #"{"text":"Looking around.","tool_calls":[{"name":"shell","arguments":{"command":"env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; ls -la / /work"}}]}"#
        let lines = try String(contentsOfFile: f.root + "/script.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        try ([lines[0], probe] + lines.dropFirst()).joined(separator: "\n").write(toFile: f.root + "/probe.jsonl", atomically: true, encoding: .utf8)
        let task = try f.task(script: "probe.jsonl", extra: ", title: \"Fix add()\", draft: true")
        let (r, summary) = try f.run(task)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(summary["status"] as? String == "done")
        #expect(summary["pr_url"] as? String == "https://github.example/octo/hello/pull/1", "\(summary)")
        let run = try #require(summary["run"] as? String)

        // The branch: one commit on top of main, with the fix, the task, the run and the audit head.
        let mainCommit = try f.git(["-C", f.root + "/remote.git", "rev-parse", "main"])
        let parents = try f.git(["-C", f.root + "/remote.git", "rev-list", "--parents", "-n", "1", "robit/fix"]).split(separator: " ")
        #expect(parents.count == 2 && String(parents[1]) == mainCommit, "\(parents)")
        let calc = try f.git(["-C", f.root + "/remote.git", "show", "robit/fix:calc.py"])
        #expect(calc.contains("return a + b"))
        let message = try f.git(["-C", f.root + "/remote.git", "log", "-1", "--format=%B", "robit/fix"])
        #expect(message.hasPrefix("Fix add()\n") && message.contains("task hello-fix-add, run \(run)"), "\(message)")
        #expect(message.contains("Robit-Run: \(run)\nRobit-Audit-Head: "), "\(message)")
        let author = try f.git(["-C", f.root + "/remote.git", "log", "-1", "--format=%an <%ae>", "robit/fix"])
        #expect(author == "robit <robit@localhost>", "the workspace repository sets no user: \(author)")
        // The user's checkout is untouched.
        #expect(try f.git(["-C", f.root + "/ws", "status", "--porcelain"]).isEmpty)
        #expect(try f.git(["-C", f.root + "/ws", "branch", "--list", "robit/fix"]).isEmpty)

        // The request, as GitHub wants it.
        let posts = f.requests.filter { $0["method"] as? String == "POST" }
        try #require(posts.count == 1, "\(f.requests)")
        #expect(posts[0]["path"] as? String == "/repos/octo/hello/pulls")
        let headers = try #require(posts[0]["headers"] as? [String: Any])
        #expect(headers["authorization"] as? String == "Bearer " + f.token)
        #expect(headers["accept"] as? String == "application/vnd.github+json")
        #expect(headers["x-github-api-version"] as? String == "2022-11-28")
        #expect((headers["user-agent"] as? String)?.hasPrefix("robit/") == true)
        #expect((headers["content-type"] as? String)?.hasPrefix("application/json") == true)
        let body = try #require(posts[0]["json"] as? [String: Any])
        #expect(body["title"] as? String == "Fix add()" && body["head"] as? String == "robit/fix" && body["base"] as? String == "main")
        #expect(body["draft"] as? Bool == true)
        #expect((body["body"] as? String)?.contains(run) == true)

        // The run store and the log know the pull request.
        let show = try CLI.run(["runs", "show", run], environment: f.env)
        #expect(show.stdout.contains(#""pr_url" : "https://github.example/octo/hello/pull/1""#), "\(show.stdout)")
        let record = try f.prRecord(summary)
        #expect(record["result"] as? String == "created" && record["number"] as? Int == 1 && record["pushed"] as? Bool == true, "\(record)")
        let audit = try #require(summary["audit_path"] as? String)
        #expect(try CLI.run(["audit", "verify", audit], environment: f.env).status == 0)

        // The token is nowhere: not in the sandbox (the probe's output), the log, the run store, the outputs.
        let auditDir = (audit as NSString).deletingLastPathComponent
        #expect(f.files(under: auditDir, containing: f.token).isEmpty, "the token is in the audit directory")
        #expect(f.files(under: f.root + "/.local/state/robit", containing: f.token).isEmpty, "the token is in robit's state (run store, workspaces)")
        #expect(!r.stdout.contains(f.token) && !r.stderr.contains(f.token))
        let probeOut = try CLI.run(["audit", "show", audit, "--type", "tool.result", "--json"], environment: f.env)
        #expect(probeOut.stdout.contains("/work"), "the probe ran: \(probeOut.stdout.prefix(500))")
        #expect(!probeOut.stdout.contains(PullRequestCLITests.tokenEnv), "the token's variable is visible inside the sandbox")
        #expect(!probeOut.stdout.contains("REDACTED"), "the token reached the sandbox (and was redacted on the way out)")
        #expect(f.files(under: f.root + "/out", containing: f.token).isEmpty)

        // The same task again: the branch already holds this change, the API says 422, robit finds the open one.
        let (again, second) = try f.run(task)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(second["pr_url"] as? String == "https://github.example/octo/hello/pull/1", "\(second)")
        let secondRecord = try f.prRecord(second)
        #expect(secondRecord["result"] as? String == "existing" && secondRecord["pushed"] as? Bool == false, "\(secondRecord)")
        #expect(f.requests.filter { $0["method"] as? String == "POST" }.count == 2)
        let gets = f.requests.filter { $0["method"] as? String == "GET" }
        try #require(gets.count == 1, "\(f.requests)")
        let query = gets[0]["query"] as? [String: [String]] ?? [:]
        #expect(query["head"] == ["octo:robit/fix"] && query["base"] == ["main"] && query["state"] == ["open"], "\(query)")
        let state = try Data(contentsOf: URL(fileURLWithPath: f.root + "/api/pulls.json"))
        let pulls = (try JSONSerialization.jsonObject(with: state) as? [String: Any])?["pulls"] as? [Any]
        #expect(pulls?.count == 1, "no duplicate pull request")
    }

    @Test func wrongTokenUnknownRepoAndMissingTokenSayWhatIsWrong() throws {
        let f = try Fixture()
        try f.startAPI()
        let task = try f.task()
        var env = f.env
        env[PullRequestCLITests.tokenEnv] = "ghp_wrong_" + UUID().uuidString
        let (r, summary) = try f.run(task, environment: env)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(summary["status"] as? String == "pr_failed" && summary["pr_url"] is NSNull, "\(summary)")
        let message = summary["message"] as? String ?? ""
        #expect(message.contains("rejected the token in $\(PullRequestCLITests.tokenEnv) (401"), "\(message)")
        #expect(!r.stdout.contains(env[PullRequestCLITests.tokenEnv]!) && !r.stderr.contains(env[PullRequestCLITests.tokenEnv]!))
        #expect(try f.prRecord(summary)["result"] as? String == "failed")
        #expect(FileManager.default.fileExists(atPath: summary["patch_path"] as? String ?? ""), "the patch is kept")

        // A repository the API does not know: 404, and the message names repo, URL and token.
        var text = try String(contentsOfFile: task, encoding: .utf8)
        text = text.replacingOccurrences(of: "repo: octo/hello", with: "repo: octo/nope").replacingOccurrences(of: "robit/fix", with: "robit/fix2")
        try text.write(toFile: task, atomically: true, encoding: .utf8)
        let (missing, notFound) = try f.run(task)
        #expect(missing.status == 2)
        #expect((notFound["message"] as? String)?.contains("octo/nope was not found at \(f.apiURL) (404") == true, "\(notFound)")

        // No token at all: refused before anything runs.
        env.removeValue(forKey: PullRequestCLITests.tokenEnv)
        let none = try CLI.run(["run", task, "--runtime", "crun", "--json"], environment: env)
        #expect(none.status == 2 && none.stdout.isEmpty, "\(none.stdout)")
        #expect(none.stderr.contains("output.pr needs a token in $\(PullRequestCLITests.tokenEnv), which is not set"), "\(none.stderr)")
    }

    @Test func noChangesNoBranchAndNeverPushesOverAnotherBranch() throws {
        let f = try Fixture()
        try f.startAPI()
        // A model that only looks.
        try [#"{"text":"Looking.","tool_calls":[{"name":"list_files","arguments":{}}]}"#, #"{"text":"Nothing to change."}"#]
            .joined(separator: "\n").write(toFile: f.root + "/look.jsonl", atomically: true, encoding: .utf8)
        let look = try f.task(name: "look", branch: "robit/look", script: "look.jsonl")
        let (r, summary) = try f.run(look)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(summary["pr_url"] is NSNull)
        #expect(r.stderr.contains("the run changed nothing: no branch and no pull request"), "\(r.stderr)")
        #expect(try f.prRecord(summary)["result"] as? String == "no_changes")
        #expect(try f.git(["-C", f.root + "/remote.git", "branch", "--list", "robit/look"]).isEmpty)
        #expect(f.requests.isEmpty, "no API call without changes")

        // A branch that exists with another commit is left as it is.
        try f.git(["-C", f.root + "/ws", "checkout", "-q", "-b", "robit/taken"])
        try "someone else's work\n".write(toFile: f.root + "/ws/NOTES", atomically: true, encoding: .utf8)
        try f.git(["-C", f.root + "/ws", "add", "NOTES"])
        try f.git(["-C", f.root + "/ws", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "other"])
        try f.git(["-C", f.root + "/ws", "push", "-q", "origin", "robit/taken"])
        try f.git(["-C", f.root + "/ws", "checkout", "-q", "main"])
        let before = try f.git(["-C", f.root + "/remote.git", "rev-parse", "robit/taken"])
        let taken = try f.task(name: "taken", branch: "robit/taken")
        let (t, takenSummary) = try f.run(taken)
        #expect(t.status == 2, "\(t.stderr)")
        #expect((takenSummary["message"] as? String)?.contains("branch robit/taken already exists in origin with other commits") == true, "\(takenSummary)")
        #expect(try f.git(["-C", f.root + "/remote.git", "rev-parse", "robit/taken"]) == before, "the branch was pushed over")
        #expect(f.requests.isEmpty)
    }

    @Test func aWorkspaceWithoutARepositoryIsRefusedBeforeTheRun() throws {
        let f = try Fixture()
        try f.startAPI()
        let task = try f.task()
        let plain = f.root + "/plain"
        try FileManager.default.copyItem(atPath: CLI.packageRoot + "/examples/hello/project", toPath: plain)
        let r = try CLI.run(["run", task, "--workspace", plain, "--runtime", "crun"], environment: f.env)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("is not in a git repository"), "\(r.stderr)")
        #expect(!r.stderr.contains("audit log"), "nothing ran")
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
