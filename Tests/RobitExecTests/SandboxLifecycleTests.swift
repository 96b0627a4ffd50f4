import Foundation
import Glibc
import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

/// Policies that fail at load (invariant 7) and the CLI's lifecycle: exit statuses, output streams,
/// and nothing left behind after a normal exit, SIGINT, or SIGKILL followed by `robit doctor --fix`
/// (invariant 6).
extension ExecIntegration {
    @Suite(.serialized)
    struct SandboxLifecycleTests {
        // 12. A misspelled syscall is refused at load, naming the file and the name.
        @Test("a policy with a misspelled syscall is refused by SandboxPolicy.load")
        func misspelledSyscallRefused() throws {
            let dir = try TempWorkspace()
            let path = dir.root + "/bad.json"
            try Self.badPolicy.write(toFile: path, atomically: true, encoding: .utf8)
            #expect {
                _ = try SandboxPolicy.load(path: path)
            } throws: { error in
                let text = "\(error)"
                return text.contains(path) && text.contains("mkdri")
            }
            do {
                _ = try SandboxPolicy.load(path: path)
            } catch {
                #expect(error.file == path)
                #expect(error.message.contains("mkdri"), "\(error)")
                #expect(error.line == 7, "\(error)")
                #expect(error.keyPath == "seccomp.syscalls[0].names[2]", "\(error)")
            }
            // The same file with the name spelled right loads.
            let good = dir.root + "/good.json"
            try Self.badPolicy.replacingOccurrences(of: "mkdri", with: "mkdir").write(toFile: good, atomically: true, encoding: .utf8)
            #expect(throws: Never.self) { _ = try SandboxPolicy.load(path: good) }
        }

        @Test("robit sandbox run --policy bad.json exits 2 naming the file and the syscall", arguments: TestEnv.allRuntimes)
        func cliRefusesBadPolicy(runtime: RuntimeKind) async throws {
            let dir = try TempWorkspace()
            let path = dir.root + "/bad.json"
            try Self.badPolicy.write(toFile: path, atomically: true, encoding: .utf8)
            let r = try await RobitProcess.run(["sandbox", "run", "--runtime", runtime.rawValue, "--workspace", dir.path, "--policy", path, "--", "true"])
            #expect(r.code == 2, "exit \(r.code) under \(runtime); stderr: \(r.stderr)")
            #expect(r.stderr.contains(path) && r.stderr.contains("mkdri"), "stderr under \(runtime): \(r.stderr)")
        }

        static let badPolicy = """
            {
              "capabilities": [],
              "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                  {
                    "names": ["read", "write", "mkdri", "exit_group"],
                    "action": "SCMP_ACT_ALLOW"
                  }
                ]
              }
            }
            """

        // 14. The command's exit status is robit's, and stdout and stderr stay apart.
        @Test("robit sandbox run mirrors the exit status and keeps stdout and stderr apart; nothing is left behind",
              arguments: TestEnv.cliRuntimes)
        func cliExitStatusAndStreams(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let ws = try TempWorkspace()
            let seven = try await RobitProcess.run(["sandbox", "run", "--runtime", runtime.rawValue, "--workspace", ws.path, "--",
                                                    "sh", "-c", "exit 7"], environment: ["ROBIT_TRACE": "1"])
            #expect(seven.code == 7, "exit \(seven.code) under \(runtime); stderr: \(seven.stderr)")
            try await expectNothingLeft(traceOf: seven.stderr, runtime: runtime, after: "a normal exit")

            let streams = try await RobitProcess.run(["sandbox", "run", "--runtime", runtime.rawValue, "--workspace", ws.path, "--",
                                                      "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"])
            #expect(streams.code == 3, "exit \(streams.code) under \(runtime); stderr: \(streams.stderr)")
            #expect(streams.stdout == "to-stdout\n", "stdout under \(runtime): \(streams.stdout)")
            #expect(streams.stderr.contains("to-stderr\n") && !streams.stderr.contains("to-stdout"), "stderr under \(runtime): \(streams.stderr)")

            let ok = try await RobitProcess.run(["sandbox", "run", "--runtime", runtime.rawValue, "--", "echo", "fine"], environment: ["ROBIT_TRACE": "1"])
            #expect(ok.code == 0 && ok.stdout == "fine\n", "exit \(ok.code) under \(runtime): \(ok.stdout) \(ok.stderr)")
            try await expectNothingLeft(traceOf: ok.stderr, runtime: runtime, after: "a normal exit without --workspace")
        }

        @Test("the API reports exit statuses and separate streams", arguments: TestEnv.allRuntimes)
        func apiExitStatusAndStreams(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let ws = try TempWorkspace()
            let box = try await Sandbox.create(SandboxOptions(runtime: runtime, workspace: ws.path, user: TestEnv.user, limits: TestEnv.limits))
            let id = box.id
            do {
                let r = try await box.sh("echo out; echo err >&2; exit 7")
                #expect(r.status == .exited(7) && r.exitCode == 7, "\(r.summary)")
                #expect(r.stdout.text == "out\n" && r.stderr.text == "err\n", "\(r.summary)")
                let k = try await box.sh("kill -TERM $$")
                #expect(k.exitCode == 128 + SIGTERM, "\(k.summary)")
            } catch {
                Issue.record("\(error)")
            }
            let left = await box.destroy()
            #expect(left.isEmpty, "destroy() under \(runtime) left: \(left)")
            let traces = await HostTraces.leftovers(of: id)
            #expect(traces.isEmpty, "after destroy() under \(runtime): \(traces)")
        }

        @Test("a command killed by a signal reports 128+N, as every runtime does", arguments: TestEnv.allRuntimes)
        func signaledStatus(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let ws = try TempWorkspace()
            let box = try await Sandbox.create(SandboxOptions(runtime: runtime, workspace: ws.path, user: TestEnv.user, limits: TestEnv.limits))
            do {
                let term = try await box.sh("kill -TERM $$")
                #expect(term.exitCode == 128 + SIGTERM, "`kill -TERM $$` under \(runtime): \(term.summary)")
                let kill = try await box.exec(ExecRequest(argv: ["/usr/bin/python3", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]))
                #expect(kill.exitCode == 128 + SIGKILL, "python killing itself with SIGKILL under \(runtime): \(kill.summary)")
                #expect(!kill.outOfMemory && !kill.timedOut)
                // An exit status above 128 is still an exit status.
                let exit143 = try await box.sh("exit 143")
                #expect(exit143.status == .exited(143), "`exit 143` under \(runtime): \(exit143.summary)")
            } catch {
                Issue.record("\(error)")
            }
            let left = await box.destroy()
            #expect(left.isEmpty, "destroy() under \(runtime) left: \(left)")
        }

        // 13. SIGKILL of robit mid-command, then `robit doctor --fix`: nothing remains.
        @Test("after SIGKILL of robit, robit doctor --fix removes everything", arguments: TestEnv.cliRuntimes)
        func sigkillThenDoctorFix(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let ws = try TempWorkspace()
            let robit = try RobitProcess(["sandbox", "run", "--runtime", runtime.rawValue, "--workspace", ws.path, "--timeout", "300s",
                                          "--", "sleep", "100"])
            guard let id = await HostTraces.sandboxID(ownedBy: robit.pid) else {
                robit.signal(SIGKILL)
                _ = await robit.wait(timeout: .seconds(10))
                Issue.record("no sandbox state dir owned by robit (pid \(robit.pid)) appeared under \(runtime); stderr: \(robit.stderr)")
                return
            }
            let running = await HostTraces.waitForExec(id: id)
            #expect(running, "the command never started in \(id) under \(runtime); stderr: \(robit.stderr)")
            try await Task.sleep(for: .milliseconds(500))
            #expect(await HostTraces.containerIDs(runtime)?.contains(id) == true, "\(runtime) does not list \(id) while it runs")
            robit.signal(SIGKILL)
            let code = await robit.wait(timeout: .seconds(10))
            #expect(code == 128 + SIGKILL)
            // robit is gone but its sandbox is not: that is what doctor --fix is for.
            let before = await HostTraces.leftovers(of: id)
            #expect(!before.isEmpty, "nothing was left after SIGKILL: the test did not kill robit mid-command")

            let doctor = try await RobitProcess.run(["doctor", "--fix"])
            let after = await HostTraces.leftovers(of: id)
            #expect(after.isEmpty, "after SIGKILL and `robit doctor --fix` under \(runtime), left: \(after)\ndoctor (exit \(doctor.code)): \(doctor.stdout)\(doctor.stderr)")
            // What the killed robit had started on the host (runtime exec processes) is gone too.
            #expect(!Self.sleepOf(id), "the `sleep 100` of \(id) still runs on the host")
        }

        // 13. SIGINT: exit 130 and nothing left behind.
        @Test("SIGINT makes robit exit 130 and leave nothing behind", arguments: TestEnv.cliRuntimes)
        func sigintCleansUp(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let ws = try TempWorkspace()
            let robit = try RobitProcess(["sandbox", "run", "--runtime", runtime.rawValue, "--workspace", ws.path, "--timeout", "300s",
                                          "--", "sleep", "100"])
            guard let id = await HostTraces.sandboxID(ownedBy: robit.pid) else {
                robit.signal(SIGKILL)
                _ = await robit.wait(timeout: .seconds(10))
                Issue.record("no sandbox state dir owned by robit (pid \(robit.pid)) appeared under \(runtime); stderr: \(robit.stderr)")
                return
            }
            #expect(await HostTraces.waitForExec(id: id), "the command never started in \(id) under \(runtime)")
            try await Task.sleep(for: .milliseconds(500))
            let start = ContinuousClock.now
            robit.signal(SIGINT)
            let code = await robit.wait(timeout: .seconds(60))
            #expect(code == 130, "exit \(code.map(String.init) ?? "none (still running)") after SIGINT under \(runtime); stderr: \(robit.stderr)")
            #expect(ContinuousClock.now - start < .seconds(30), "robit took \(ContinuousClock.now - start) to stop after SIGINT")
            if code == nil { robit.signal(SIGKILL); _ = await robit.wait(timeout: .seconds(10)) }
            let left = await HostTraces.leftovers(of: id)
            #expect(left.isEmpty, "after SIGINT under \(runtime), left: \(left); stderr: \(robit.stderr)")
        }

        @Test("SIGTERM makes robit exit 130 and leave nothing behind", arguments: [RuntimeKind.runsc, .crun])
        func sigtermCleansUp(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let ws = try TempWorkspace()
            let robit = try RobitProcess(["sandbox", "run", "--runtime", runtime.rawValue, "--workspace", ws.path, "--", "sleep", "100"])
            guard let id = await HostTraces.sandboxID(ownedBy: robit.pid) else {
                robit.signal(SIGKILL)
                _ = await robit.wait(timeout: .seconds(10))
                Issue.record("no sandbox appeared under \(runtime); stderr: \(robit.stderr)")
                return
            }
            #expect(await HostTraces.waitForExec(id: id))
            try await Task.sleep(for: .milliseconds(500))
            robit.signal(SIGTERM)
            let code = await robit.wait(timeout: .seconds(60))
            #expect(code == 130, "exit \(code.map(String.init) ?? "none") after SIGTERM under \(runtime); stderr: \(robit.stderr)")
            if code == nil { robit.signal(SIGKILL); _ = await robit.wait(timeout: .seconds(10)) }
            let left = await HostTraces.leftovers(of: id)
            #expect(left.isEmpty, "after SIGTERM under \(runtime), left: \(left)")
        }

        /// Whether a host `sleep 100` belongs to sandbox `id` (its cgroup path names the id).
        static func sleepOf(_ id: String) -> Bool {
            let wanted = Data("sleep\u{0}100\u{0}".utf8)
            for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where pid.allSatisfy(\.isNumber) {
                guard FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") == wanted else { continue }
                if let cg = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8), cg.contains(id) { return true }
            }
            return false
        }

        func expectNothingLeft(traceOf stderr: String, runtime: RuntimeKind, after what: String,
                               sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let runLine = stderr.split(separator: "\n").first { $0.contains(" run --detach ") }
            let ids = runLine.map { HostTraces.tracedIDs(String($0)) } ?? []
            guard let id = ids.first else {
                Issue.record("no sandbox id in robit's ROBIT_TRACE output under \(runtime): \(stderr)", sourceLocation: sourceLocation)
                return
            }
            let left = await HostTraces.leftovers(of: id)
            #expect(left.isEmpty, "after \(what) under \(runtime), left: \(left)", sourceLocation: sourceLocation)
        }
    }
}
