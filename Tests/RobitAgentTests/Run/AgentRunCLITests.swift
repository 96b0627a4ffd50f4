import Foundation
import Glibc
@testable import RobitAgent
import RobitAudit
import RobitExec
import RobitTestSupport
import Testing

/// The robit binary built next to this test bundle (or `$ROBIT_BIN`).
enum RobitCLI {
    static func path() throws -> String { try RobitBinary.path() }

    /// A robit process with only `environment`; stdout and stderr go to files.
    final class Running: @unchecked Sendable {
        let process = Process()
        let outPath: String
        let errPath: String

        init(_ arguments: [String], environment: [String: String]) throws {
            let base = NSTemporaryDirectory() + "robit-runtests-cli-" + UUID().uuidString
            outPath = base + ".out"
            errPath = base + ".err"
            _ = FileManager.default.createFile(atPath: outPath, contents: nil)
            _ = FileManager.default.createFile(atPath: errPath, contents: nil)
            process.executableURL = URL(fileURLWithPath: try RobitCLI.path())
            process.arguments = arguments
            // A sanitized robit (scripts/test --sanitize) keeps the suite's sanitizer options.
            var environment = environment
            for (key, value) in ProcessInfo.processInfo.environment where key.hasSuffix("SAN_OPTIONS") { environment[key] = value }
            process.environment = environment
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle(forWritingAtPath: outPath)
            process.standardError = FileHandle(forWritingAtPath: errPath)
            try process.run()
        }

        var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

        /// The exit code (128 + N when killed by signal N), nil on timeout.
        func wait(timeout: Duration = .seconds(180)) async -> Int32? {
            let deadline = ContinuousClock.now + timeout
            while process.isRunning {
                if ContinuousClock.now > deadline { return nil }
                try? await Task.sleep(for: .milliseconds(50))
            }
            return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            unlink(outPath)
            unlink(errPath)
        }
    }
}

/// Scenarios that need the robit process itself: signals and exit codes (6), the --json summary (8).
@Suite(.serialized) struct AgentRunCLITests {
    /// SIGINT while a `sleep 30` runs in the sandbox: exit 130, no container left, a log that verifies.
    /// Then `robit resume` finishes the run in a new sandbox, one audit chain with a `resumed` record.
    @Test(arguments: [RuntimeKind.crun, .runsc])
    func interruptThenResume(runtime: RuntimeKind) async throws {
        try TestEnv.require(runtime)
        let h = try RunHarness()
        let server = try FakeProviderServer { n in
            switch n {
            case 0: return .sse(ProviderWire.openAI(text: "Running the slow part.", calls: [
                .init("slow", "shell", json: ["command": "echo started > started.txt; sleep 30; echo slept > slept.txt"]),
            ], input: 100, output: 10))
            case 1: return .sse(ProviderWire.openAI(calls: [
                .init("after", "write_file", json: ["path": "resumed.txt", "content": "resumed\n"]),
            ], input: 200, output: 20))
            default: return .sse(ProviderWire.openAI(text: "Finished after resuming.", input: 300, output: 30))
            }
        }
        defer { server.stop() }
        try h.writeTask(baseURL: Flavor.openai.baseURL(server), runtime: runtime)

        let first = try RobitCLI.Running(["run", h.taskPath], environment: h.environment)
        let auditRoot = h.state + "/robit/runs"
        var auditPath: String?
        let deadline = ContinuousClock.now + .seconds(60)
        // Wait until the shell call has started (its tool.call record is written just before it runs).
        while ContinuousClock.now < deadline, first.process.isRunning {
            if let run = try? FileManager.default.contentsOfDirectory(atPath: auditRoot).first {
                let path = auditRoot + "/" + run + "/" + AuditFormat.logFileName
                if let text = try? String(contentsOfFile: path, encoding: .utf8), text.contains("\"type\":\"tool.call\"") {
                    auditPath = path
                    break
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let path = try #require(auditPath, "the run never reached its tool call; stderr: \(first.stderr)")
        try await Task.sleep(for: .seconds(2))
        let interruptedAt = ContinuousClock.now
        kill(first.process.processIdentifier, SIGINT)
        let code = await first.wait(timeout: .seconds(60))
        #expect(code == 130, "stderr: \(first.stderr)")
        #expect(ContinuousClock.now - interruptedAt < .seconds(20), "robit waited for the tool after SIGINT")

        let verdict = AuditVerifier.verify(path: path)
        #expect(verdict.ok && verdict.finished, "\(verdict.failure.map(\.description) ?? "not finished")")
        let records = try RunHarness.records(path)
        try await RunHarness.checkNoContainers(records, runtime: runtime)
        let run = try #require(records.first?.run)
        let row = try #require(try h.store.get(run))
        #expect(row.status == RunStatus.interrupted.rawValue && row.exitCode == 130)
        #expect(records.last { $0.type == "run.end" }?.data["result"]?.stringValue == "interrupted")

        // Resume, in a new process with the same HOME.
        let second = try RobitCLI.Running(["resume", run], environment: h.environment)
        let resumedCode = await second.wait()
        #expect(resumedCode == 0, "stderr: \(second.stderr)")
        let after = AuditVerifier.verify(path: path)
        #expect(after.ok && after.finished, "\(after.failure.map(\.description) ?? "not finished")")
        let all = try RunHarness.records(path)
        #expect(all.filter { $0.type == "resumed" }.count == 1)
        #expect(all.filter { $0.type == "run.end" }.count == 2)
        #expect(Set(all.map(\.run)) == [run])
        let sandboxes = all.filter { $0.type == "sandbox.create" }.compactMap { $0.data["resource"]?.stringValue }
        #expect(sandboxes.count == 2 && Set(sandboxes).count == 2, "a new sandbox for the resumed run: \(sandboxes)")
        try await RunHarness.checkNoContainers(all, runtime: runtime)

        // The model heard that the interrupted call may not have finished; the resumed run's work is in the patch.
        let received = server.received
        #expect(received.count == 3)
        let told = Flavor.openai.toolResults(received[1])
        #expect(told.map(\.id) == ["slow"] && told.first?.content.contains("interrupted") == true, "\(told)")
        let done = try #require(try h.store.get(run))
        #expect(done.status == RunStatus.done.rawValue && done.exitCode == 0 && done.steps == 3)
        #expect(done.inputTokens == 600 && done.head == after.head)
        #expect(try h.store.steps(run: run).map(\.inputTokens) == [100, 200, 300], "each step's own tokens, across the resume")
        let patch = try String(contentsOfFile: try #require(done.patchPath), encoding: .utf8)
        #expect(patch.contains("resumed.txt") && patch.contains("started.txt") && !patch.contains("slept.txt"), "\(patch)")
    }

    /// SIGINT while the model is slow to answer: exit 130 at once, not when the model finishes; the
    /// resumed run asks the model again and ends with exit 0.
    @Test func interruptDuringASlowModelThenResume() async throws {
        try TestEnv.require(.crun)
        let h = try RunHarness()
        let server = try FakeProviderServer { n in
            if n == 0 {
                var r = FakeProviderServer.Response.sse(ProviderWire.openAI(text: "never finished", input: 10, output: 1), split: 20)
                r.stallAfter = 1
                r.stall = .seconds(60)
                return r
            }
            return .sse(ProviderWire.openAI(text: "Answered after the resume.", input: 20, output: 2))
        }
        defer { server.stop() }
        try h.writeTask(baseURL: Flavor.openai.baseURL(server))
        let first = try RobitCLI.Running(["run", h.taskPath], environment: h.environment)
        let deadline = ContinuousClock.now + .seconds(60)
        while server.received.isEmpty, ContinuousClock.now < deadline, first.process.isRunning {
            try? await Task.sleep(for: .milliseconds(20))
        }
        #expect(server.received.count == 1, "stderr: \(first.stderr)")
        try await Task.sleep(for: .milliseconds(500))
        let interruptedAt = ContinuousClock.now
        kill(first.process.processIdentifier, SIGINT)
        #expect(await first.wait(timeout: .seconds(60)) == 130, "stderr: \(first.stderr)")
        #expect(ContinuousClock.now - interruptedAt < .seconds(10), "robit waited for the model after SIGINT")

        let row = try #require(try h.store.list().first)
        #expect(row.status == RunStatus.interrupted.rawValue && row.exitCode == 130 && row.steps == 0)
        let verdict = AuditVerifier.verify(path: row.auditPath)
        #expect(verdict.ok && verdict.finished, "\(verdict.failure.map(\.description) ?? "not finished")")
        let records = try RunHarness.records(row.auditPath)
        #expect(records.last { $0.type == "model.response" }?.data["error"]?.stringValue == "interrupted")
        try await RunHarness.checkNoContainers(records, runtime: .crun)

        let second = try RobitCLI.Running(["resume", row.id], environment: h.environment)
        #expect(await second.wait() == 0, "stderr: \(second.stderr)")
        #expect(second.stdout.contains("Answered after the resume."))
        let after = AuditVerifier.verify(path: row.auditPath)
        #expect(after.ok && after.finished, "\(after.failure.map(\.description) ?? "not finished")")
        let all = try RunHarness.records(row.auditPath)
        #expect(all.filter { $0.type == "resumed" }.count == 1)
        try await RunHarness.checkNoContainers(all, runtime: .crun)
        let done = try #require(try h.store.get(row.id))
        #expect(done.status == RunStatus.done.rawValue && done.steps == 1 && done.head == after.head)
        #expect(server.received.count == 2)
    }

    /// `--json`: one JSON object on stdout with the run's summary; exit 0.
    @Test func jsonSummary() async throws {
        try TestEnv.require(.crun)
        let h = try RunHarness()
        let server = try scriptedServer(AgentRunTests.happyTurns(.openai))
        defer { server.stop() }
        try h.writeTask(baseURL: Flavor.openai.baseURL(server))
        let p = try RobitCLI.Running(["run", "--json", h.taskPath], environment: h.environment)
        let code = await p.wait()
        #expect(code == 0, "stderr: \(p.stderr)")
        let lines = p.stdout.split(separator: "\n")
        #expect(lines.count == 1, "stdout: \(p.stdout)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [String: Any])
        for key in ["run", "status", "steps", "tokens", "cost_usd", "audit_path", "head", "patch_path"] {
            #expect(object[key] != nil && !(object[key] is NSNull), "missing \(key): \(object)")
        }
        let run = try #require(object["run"] as? String)
        #expect(object["status"] as? String == "done")
        #expect(object["steps"] as? Int == 3 && object["tokens"] as? Int == 660)
        let row = try #require(try h.store.get(run))
        #expect(object["audit_path"] as? String == row.auditPath && object["head"] as? String == row.head)
        #expect(object["patch_path"] as? String == row.patchPath)
        let expected = PriceTable().cost(model: "gpt-4.1-mini", usage: Usage(inputTokens: 100, outputTokens: 10))! +
            PriceTable().cost(model: "gpt-4.1-mini", usage: Usage(inputTokens: 200, outputTokens: 20))! +
            PriceTable().cost(model: "gpt-4.1-mini", usage: Usage(inputTokens: 300, outputTokens: 30))!
        #expect(object["cost_micro_usd"] as? Int == Int(expected))
        let verdict = AuditVerifier.verify(path: row.auditPath)
        #expect(verdict.ok && verdict.finished && verdict.head == row.head)
    }
}
