import Foundation
import RobitAudit
import RobitTestSupport
import Testing

/// `robit audit report --html`, opened in a real headless browser (Debian's chromium, installed by
/// scripts/setup, driven by scripts/browser-check): it loads from file:// without a single request,
/// shows the verdict first and the step count, says FAILED for a tampered log, and shows hostile output
/// as text. Screenshots are kept in .build/test-artifacts/.
@Suite(.serialized) struct ReportCLITests {
    static var artifacts: String {
        let dir = Repository.root + "/.build/test-artifacts"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs scripts/browser-check on `html`; its JSON verdict.
    static func browse(_ html: String, screenshot: String? = nil, expect: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else {
            try TestEnv.missing("chromium is not installed; run ./scripts/setup", sourceLocation: sourceLocation)
        }
        var args = [html, "--strict"]
        if let screenshot { args += ["--screenshot", screenshot] }
        for e in expect { args += ["--expect", e] }
        let r = try CLI.run(binary: Repository.root + "/scripts/browser-check", args)
        guard let json = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
            Issue.record("scripts/browser-check gave no JSON (exit \(r.status)): \(r.stdout.prefix(500)) \(r.stderr.prefix(500))", sourceLocation: sourceLocation)
            return [:]
        }
        return json
    }

    static func visibleText(_ html: String) throws -> String {
        let out = NSTemporaryDirectory() + "robit-report-text-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try CLI.run(binary: Repository.root + "/scripts/browser-check", [html, "--text-out", out])
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    }

    @Test func aRunsReportLoadsWithNoRequestsAndShowsTheVerdictAndSteps() throws {
        let run = try ReplayCLITests.helloRun("crun")
        defer { try? FileManager.default.removeItem(atPath: run.home) }
        let html = run.home + "/report.html"
        let r = try CLI.run(["audit", "report", run.audit, "--html", html], environment: run.env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("6 steps"), "\(r.stderr)")
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(!page.contains("http://") && !page.contains("https://") && !page.contains(" src="), "nothing to fetch")
        #expect(page.contains("Content-Security-Policy") && page.contains("default-src 'none'"))
        let json = try Self.browse(html, screenshot: Self.artifacts + "/audit-report.png",
                                   expect: ["Verified, but UNSIGNED", "6 steps", "5 tool calls", "hello-fix-add", "run_tests", "all tests passed"])
        #expect(json["ok"] as? Bool == true, "\(json)")
        #expect((json["requests"] as? [Any])?.isEmpty == true, "\(json["requests"] ?? "")")
        #expect((json["console"] as? [Any])?.isEmpty == true && (json["csp_violations"] as? [Any])?.isEmpty == true, "\(json)")
        let text = try Self.visibleText(html)
        #expect(text.hasPrefix("Verified, but UNSIGNED"), "the verdict is the first line: \(text.prefix(200))")
        #expect(FileManager.default.fileExists(atPath: Self.artifacts + "/audit-report.png"))
    }

    /// The verdict line tells signed-and-pinned from unpinned, and fails for another pinned key.
    @Test func theVerdictNamesTheKeyAndWhetherItIsPinned() throws {
        try ReleaseBinaryTests.requireRuntime("crun")
        let hello = try RunCLITests.helloCopy()
        let home = (hello as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: home) }
        let env = RunCLITests.environment(home: home)
        for dir in ["k", "other"] {
            let keygen = try CLI.run(["keygen", "--out", home + "/" + dir], environment: env)
            #expect(keygen.status == 0, "\(keygen.stderr)")
        }
        let run = try CLI.run(["run", hello + "/task.yaml", "--runtime", "crun", "--json", "--key", home + "/k/audit.key"], environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let audit = try #require(summary["audit_path"] as? String)
        let html = home + "/report.html"
        let pinned = try CLI.run(["audit", "report", audit, "--html", html, "--key", home + "/k/audit.key.pub"], environment: env)
        #expect(pinned.status == 0, "\(pinned.stderr)")
        #expect(try Self.visibleText(html).hasPrefix("Verified: signed with the pinned key"))
        let unpinned = try CLI.run(["audit", "report", audit, "--html", html], environment: env)
        #expect(unpinned.status == 0, "\(unpinned.stderr)")
        #expect(try Self.visibleText(html).hasPrefix("Verified with an UNPINNED key"))
        let wrong = try CLI.run(["audit", "report", audit, "--html", html, "--key", home + "/other/audit.key.pub"], environment: env)
        #expect(wrong.status == 6, "\(wrong.stderr)")
        #expect(try Self.visibleText(html).hasPrefix("FAILED verification: line 1: bad signature"))
    }

    @Test func aTamperedLogStillGetsAReportWhoseFirstLineSaysFailed() throws {
        let run = try ReplayCLITests.helloRun("crun")
        defer { try? FileManager.default.removeItem(atPath: run.home) }
        var bytes = try Data(contentsOf: URL(fileURLWithPath: run.audit))
        let i = try #require(bytes.firstRange(of: Data("all tests passed".utf8))?.lowerBound)
        bytes[i] = UInt8(ascii: "A")
        try bytes.write(to: URL(fileURLWithPath: run.audit))
        let html = run.home + "/tampered.html"
        let r = try CLI.run(["audit", "report", run.audit, "--html", html], environment: run.env)
        #expect(r.status == 6, "\(r.stderr)")
        let json = try Self.browse(html, screenshot: Self.artifacts + "/audit-report-tampered.png", expect: ["FAILED verification: line", "modified"])
        #expect(json["ok"] as? Bool == true, "\(json)")
        #expect(try Self.visibleText(html).hasPrefix("FAILED verification: line "))
    }

    /// Output that is markup, a script, an image on a network address and control characters is shown as
    /// text: the browser fetches nothing, runs nothing and logs no CSP violation.
    @Test func hostileOutputIsShownAsText() throws {
        try ReleaseBinaryTests.requireRuntime("crun")
        let hello = try RunCLITests.helloCopy()
        let home = (hello as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: home) }
        let hostile = "</pre></details><script>document.title='pwned'</script><img src=http://198.18.0.1/x.png><a href=\\\"javascript:alert(1)\\\">x</a>"
        let command = "printf '%s\\\\033[31m\\\\000' \\\"\(hostile)\\\""
        let script = """
            {"text":"<style>body{display:none}</style>","tool_calls":[{"name":"shell","arguments":{"command":"\(command)"}}]}
            {"text":"</section><script>document.body.innerHTML=''</script>done"}

            """
        try script.write(toFile: hello + "/script.jsonl", atomically: true, encoding: .utf8)
        let env = RunCLITests.environment(home: home)
        let run = try CLI.run(["run", hello + "/task.yaml", "--runtime", "crun", "--json"], environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let audit = try #require(summary["audit_path"] as? String)
        let html = home + "/hostile.html"
        let r = try CLI.run(["audit", "report", audit, "--html", html], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let json = try Self.browse(html, screenshot: Self.artifacts + "/audit-report-hostile.png",
                                   expect: ["<script>document.title='pwned'</script>", "<img src=http://198.18.0.1/x.png>", "<style>body{display:none}</style>"])
        #expect(json["ok"] as? Bool == true, "\(json)")
        #expect((json["requests"] as? [Any])?.isEmpty == true, "\(json["requests"] ?? "")")
        #expect((json["title"] as? String)?.hasPrefix("robit audit report") == true, "no script ran: \(json["title"] ?? "")")
        #expect((json["csp_violations"] as? [Any])?.isEmpty == true, "the markup never reached the parser as markup: \(json)")
    }
}
