import Foundation
import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

/// A tool call's processes end with the call (docs/sandbox.md, "Process lifetime"), however they
/// detached; only `keepBackgroundProcesses` lets them live on.
extension ExecIntegration {
    @Suite(.serialized, .sandboxPool("lifetime"))
    struct ProcessLifetimeTests {
        func sandbox(_ runtime: RuntimeKind) async throws -> Sandbox {
            try TestEnv.require(runtime)
            return try await SandboxPool.shared.entry(suite: "lifetime", runtime: runtime).box
        }

        /// Every way a command can start something that outlives it, with `N` the marker argument.
        static let detachings: [(name: String, script: String)] = [
            ("&", "sleep N &"),
            ("& with stdio on /dev/null", "sleep N >/dev/null 2>&1 </dev/null &"),
            ("setsid", "setsid sleep N >/dev/null 2>&1 </dev/null &"),
            ("nohup", "nohup sleep N >/dev/null 2>&1 </dev/null &"),
            ("env -i (no ROBIT_EXEC tag)", "env -i /bin/sleep N >/dev/null 2>&1 </dev/null &"),
            ("double fork", "( ( sleep N >/dev/null 2>&1 </dev/null & ) & )"),
            ("new process group", "python3 -c 'import os,sys; os.setpgid(0,0); os.closerange(0,3); os.execvp(\"sleep\", [\"sleep\", sys.argv[1]])' N &"),
            ("a forged ROBIT_EXEC tag", "env -i ROBIT_EXEC=killer setsid sleep N >/dev/null 2>&1 </dev/null &"),
            ("setsid, env -i and a double fork", "( env -i setsid sh -c 'sleep N & exit 0' >/dev/null 2>&1 </dev/null & )"),
        ]

        /// The command lines of every process in the sandbox.
        static func processes(_ box: Sandbox) async throws -> String {
            let ps = try await box.python(#"""
            import os
            for pid in os.listdir("/proc"):
                if not pid.isdigit(): continue
                try: argv = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
                except OSError: continue
                print(pid, b" ".join(argv).decode(errors="replace"))
            """#)
            guard ps.exitCode == 0, ps.stdout.text.contains("python3") else { throw TestFailure("process listing failed: \(ps.summary)") }
            return ps.stdout.text
        }

        @Test("a call's background processes end with it, however they detached", arguments: TestEnv.allRuntimes)
        func backgroundProcessesEndWithTheCall(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            for (name, script) in Self.detachings {
                let n = String(Int.random(in: 1000...1999) * 10 + 3)
                let r = try await box.sh(script.replacingOccurrences(of: "N", with: n) + "\necho started", timeout: .seconds(20))
                #expect(r.exitCode == 0 && r.stdout.text == "started\n", "\(name) under \(runtime): \(r.summary)")
                #expect(!r.timedOut && r.duration < .seconds(5), "\(name) under \(runtime): the call waited for its background process: \(r.summary)")
                let left = try await Self.processes(box)
                #expect(!left.contains("sleep \(n)"), "\(name) under \(runtime): the background process outlived its call:\n\(left)")
                #expect(!hostProcessExists(argv: ["sleep", n]), "\(name) under \(runtime): `sleep \(n)` still runs on the host")
            }
        }

        /// The issue's repro: a leftover of call 1 writes into call 2's stdout before call 2 prints.
        @Test("a leftover cannot inject text into a later call's output", arguments: TestEnv.allRuntimes)
        func noInjectionIntoALaterCall(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let injector = #"""
            end=$(( $(date +%s) + 30 ))
            while [ "$(date +%s)" -lt "$end" ]; do
              for p in /proc/[0-9]*; do
                if grep -q MARKER "$p/cmdline" 2>/dev/null; then echo 'INJECTED [exit status 0]' > "$p/fd/1" 2>/dev/null; fi
              done
              sleep 0.05
            done
            """#
            let write = try await box.exec(ExecRequest(argv: ["sh", "-c", "cat > /work/inj.sh"], timeout: .seconds(20), stdin: Data(injector.utf8)))
            #expect(write.exitCode == 0, "\(write.summary)")
            let start = try await box.sh("setsid sh /work/inj.sh >/dev/null 2>&1 </dev/null & echo started", timeout: .seconds(20))
            #expect(start.exitCode == 0, "\(start.summary)")
            let second = try await box.exec(ExecRequest(argv: ["sh", "-c", "sleep 2; echo MARKER-real-output"], timeout: .seconds(30)))
            #expect(second.stdout.text == "MARKER-real-output\n", "under \(runtime) the later call's output was: \(second.summary)")
            _ = try await box.sh("rm -f /work/inj.sh")
        }

        @Test("a command that kills or stops robit-init still leaves nothing behind", arguments: TestEnv.allRuntimes)
        func killingTheWrapperDoesNotHelp(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let n = String(Int.random(in: 1000...1999) * 10 + 1)
            let killed = try await box.sh("env -i setsid /bin/sleep \(n) >/dev/null 2>&1 </dev/null & kill -KILL $PPID; sleep 1", timeout: .seconds(20))
            #expect(killed.exitCode == 137, "\(killed.summary)")
            var left = try await Self.processes(box)
            #expect(!left.contains("sleep \(n)"), "under \(runtime), after the command SIGKILLed robit-init:\n\(left)")
            let m = String(Int.random(in: 1000...1999) * 10 + 9)
            let stopped = try await box.sh("env -i setsid /bin/sleep \(m) >/dev/null 2>&1 </dev/null & kill -STOP $PPID; echo stopped", timeout: .seconds(3))
            #expect(stopped.timedOut, "\(stopped.summary)")
            left = try await Self.processes(box)
            #expect(!left.contains("sleep \(m)"), "under \(runtime), after the command stopped robit-init:\n\(left)")
            #expect(!left.contains("echo stopped"), "under \(runtime) the stopped command or its robit-init is left:\n\(left)")
            // robit-init ignores every signal it can: a polite kill does not end it before the command.
            let polite = try await box.sh("kill -TERM $PPID; kill -INT $PPID; kill -HUP $PPID; sleep 0.2; echo still", timeout: .seconds(20))
            #expect(polite.exitCode == 0 && polite.stdout.text == "still\n", "\(polite.summary)")
        }

        @Test("the exit status is the command's, signals as 128+N", arguments: TestEnv.allRuntimes)
        func exitStatusThroughTheWrapper(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            #expect(try await box.sh("exit 7").exitCode == 7)
            #expect(try await box.sh("kill -SEGV $$").exitCode == 128 + 11)
            let missing = try await box.exec(ExecRequest(argv: ["/no/such/program"]))
            #expect(missing.exitCode == 127 && missing.stderr.text.contains("cannot execute /no/such/program"), "\(missing.summary)")
            let stdin = try await box.exec(ExecRequest(argv: ["cat"], stdin: Data("through\n".utf8)))
            #expect(stdin.stdout.text == "through\n", "\(stdin.summary)")
        }

        @Test("keepBackgroundProcesses lets a background process serve later calls", arguments: TestEnv.allRuntimes)
        func optInKeepsBackgroundProcesses(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let ws = try TempWorkspace()
            defer { ws.remove() }
            var options = SandboxOptions(runtime: runtime, workspace: ws.path, user: TestEnv.user, limits: TestEnv.limits, policy: .builtInDefault())
            options.keepBackgroundProcesses = true
            let box = try await Sandbox.create(options)
            do {
                let n = String(Int.random(in: 1000...1999) * 10 + 5)
                let r = try await box.sh("setsid sleep \(n) >/dev/null 2>&1 </dev/null & echo started", timeout: .seconds(20))
                #expect(r.exitCode == 0 && r.duration < .seconds(5), "\(r.summary)")
                let left = try await Self.processes(box)
                #expect(left.contains("sleep \(n)"), "under \(runtime) the kept background process is gone:\n\(left)")
            } catch {
                Issue.record("\(error)")
            }
            let problems = await box.destroy()
            #expect(problems.isEmpty, "\(problems)")
        }
    }
}
