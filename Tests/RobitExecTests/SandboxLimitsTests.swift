import Foundation
import Glibc
import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

/// Limits (security invariant 2): /tmp size, pids, memory, wall clock and output, for each runtime.
/// Each limit is hit in the suite's one sandbox per runtime, which must still answer afterwards.
extension ExecIntegration {
    @Suite(.serialized, .sandboxPool("limits"))
    struct SandboxLimitsTests {
        func sandbox(_ runtime: RuntimeKind) async throws -> Sandbox {
            try TestEnv.require(runtime)
            return try await SandboxPool.shared.entry(suite: "limits", runtime: runtime).box
        }

        func expectAlive(_ box: Sandbox, _ runtime: RuntimeKind, after what: String, sourceLocation: SourceLocation = #_sourceLocation) async {
            do {
                let r = try await box.sh("echo alive", timeout: .seconds(60))
                #expect(r.status == .exited(0) && r.stdout.text == "alive\n", "the sandbox does not answer after \(what) under \(runtime): \(r.summary)",
                        sourceLocation: sourceLocation)
            } catch {
                Issue.record("the sandbox does not answer after \(what) under \(runtime): \(error)", sourceLocation: sourceLocation)
            }
        }

        // 3. /tmp is writable and size-limited (8 MiB).
        @Test("/tmp is writable and its size limit holds", arguments: TestEnv.allRuntimes)
        func tmpSizeLimit(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let small = try await box.sh("head -c 1048576 /dev/zero > /tmp/small && wc -c < /tmp/small && rm /tmp/small")
            #expect(small.exitCode == 0 && small.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines) == "1048576",
                    "/tmp is not writable under \(runtime): \(small.summary)")
            let big = try await box.sh("head -c 16777216 /dev/zero > /tmp/big; s=$?; echo size=$(wc -c < /tmp/big); rm -f /tmp/big; exit $s")
            #expect(big.exitCode != 0, "writing 16 MiB to an 8 MiB /tmp succeeded under \(runtime): \(big.summary)")
            #expect(big.stderr.text.contains("No space left"), "expected ENOSPC under \(runtime): \(big.summary)")
            let size = Int(big.stdout.text.split(separator: "=").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
            #expect(size >= 0 && size <= 8 << 20, "\(size) bytes landed in /tmp under \(runtime)")
            // The space is given back.
            let again = try await box.sh("head -c 1048576 /dev/zero > /tmp/again && rm /tmp/again && echo ok")
            #expect(again.stdout.text == "ok\n", "\(again.summary)")
        }

        // 9. A timeout kills the command with everything it started.
        @Test("a timeout kills the command and its background children", arguments: TestEnv.allRuntimes)
        func timeoutKillsTree(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let n = Int.random(in: 1000...1999) * 10 + 7
            let r = try await box.sh("sleep \(n) & sleep 100", timeout: .seconds(2))
            #expect(r.timedOut, "\(r.summary)")
            #expect(r.duration < .seconds(10), "the timed-out call took \(r.duration) under \(runtime)")
            #expect(r.exitCode != 0)
            let ps = try await box.python(#"""
            import os, sys
            for pid in os.listdir("/proc"):
                if not pid.isdigit(): continue
                try: argv = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
                except OSError: continue
                print(pid, b" ".join(argv).decode(errors="replace"))
            """#)
            #expect(ps.exitCode == 0, "\(ps.summary)")
            #expect(ps.stdout.text.contains("python3"), "process listing looks wrong: \(ps.summary)")
            #expect(!ps.stdout.text.contains("sleep \(n)"), "the background child survived the timeout under \(runtime): \(ps.stdout.text)")
            #expect(!ps.stdout.text.contains("sleep 100"), "the timed-out command survived under \(runtime): \(ps.stdout.text)")
            // Under crun and runc the sandbox's processes are host processes too.
            #expect(!hostProcessExists(argv: ["sleep", String(n)]), "a `sleep \(n)` is still running on the host under \(runtime)")
            await expectAlive(box, runtime, after: "a timeout")
        }

        // 7. A fork loop hits the pids limit (64), and the sandbox still answers.
        @Test("a fork loop hits the pids limit; the sandbox still answers", arguments: TestEnv.allRuntimes)
        func forkLoopHitsPidsLimit(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let r = try await box.python(#"""
            import os, errno, time
            n = 0; err = None
            for i in range(1000):
                try:
                    pid = os.fork()
                except OSError as e:
                    err = e.errno
                    break
                if pid == 0:
                    time.sleep(300)
                    os._exit(0)
                n += 1
            print("forked", n, "err", errno.errorcode.get(err, err), flush=True)
            time.sleep(300)
            """#, timeout: .seconds(8))
            #expect(r.timedOut, "\(r.summary)")
            let line = r.stdout.text.split(separator: "\n").first { $0.hasPrefix("forked ") }
            let parts = line?.split(separator: " ") ?? []
            let forked = parts.count >= 2 ? Int(parts[1]) ?? -1 : -1
            #expect(forked >= 0 && forked < 64, "forked \(forked) processes with pids=64 under \(runtime): \(r.summary)")
            #expect(line?.hasSuffix("err EAGAIN") == true, "fork should fail with EAGAIN under \(runtime): \(r.summary)")
            await expectAlive(box, runtime, after: "a fork loop")
        }

        @Test("a shell fork bomb is contained; the sandbox still answers", arguments: TestEnv.allRuntimes)
        func shellForkBomb(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let r = try await box.sh("f(){ f|f & }; f; sleep 100", timeout: .seconds(5), outputLimit: 64 << 10)
            #expect(r.timedOut || r.exitCode != 0, "\(r.summary)")
            #expect(r.duration < .seconds(30), "the fork bomb call took \(r.duration) under \(runtime)")
            await expectAlive(box, runtime, after: "a fork bomb")
            let count = try await box.python(#"""
            import os
            print(sum(1 for p in os.listdir("/proc") if p.isdigit()))
            """#)
            let n = Int(count.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect(n >= 1 && n < 10, "\(n) processes left after the fork bomb under \(runtime): \(count.summary)")
        }

        @Test("a fork bomb a command leaves behind when it ends is killed with it", arguments: TestEnv.allRuntimes)
        func leftBehindForkBomb(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let r = try await box.sh("f(){ f|f & }; f; exit 3", timeout: .seconds(20), outputLimit: 64 << 10)
            #expect(!r.timedOut && r.exitCode == 3, "\(r.summary)")
            await expectAlive(box, runtime, after: "a fork bomb left behind")
            let count = try await box.python(#"""
            import os
            print(sum(1 for p in os.listdir("/proc") if p.isdigit()))
            """#)
            let n = Int(count.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect(n >= 1 && n < 10, "\(n) processes left after the fork bomb under \(runtime): \(count.summary)")
        }

        // 8. Over the memory limit: OOM-killed and reported; the sandbox answers afterwards.
        @Test("a memory hog is OOM-killed and reported; the sandbox still answers", arguments: TestEnv.allRuntimes)
        func memoryHog(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let r = try await box.python(#"""
            import sys
            b = b"\x01" * (1 << 30)
            print("allocated", len(b), flush=True)
            """#, timeout: .seconds(120))
            #expect(!r.stdout.text.contains("allocated"), "1 GiB was allocated with a 256 MiB limit under \(runtime): \(r.summary)")
            #expect(r.outOfMemory, "outOfMemory is false under \(runtime): \(r.summary)")
            #expect(r.exitCode != 0, "\(r.summary)")
            #expect(!r.timedOut, "\(r.summary)")
            await expectAlive(box, runtime, after: "an OOM kill (sandboxRestarted=\(r.sandboxRestarted))")
        }

        // 10. A flood of output is capped, and robit does not buffer it.
        @Test("a 1 GB output flood is capped at 1 MiB without robit's memory growing", arguments: TestEnv.allRuntimes)
        func outputFlood(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let rssBefore = procStatusKiB("VmRSS"), hwmBefore = procStatusKiB("VmHWM")
            let r = try await box.exec(ExecRequest(argv: ["head", "-c", "1000000000", "/dev/zero"], timeout: .seconds(300), outputLimit: 1 << 20))
            let rssAfter = procStatusKiB("VmRSS"), hwmAfter = procStatusKiB("VmHWM")
            #expect(r.status == .exited(0), "\(r.summary.prefix(300))")
            #expect(!r.timedOut)
            #expect(r.stdout.data.count == 1 << 20, "kept \(r.stdout.data.count) bytes under \(runtime)")
            #expect(r.stdout.totalBytes == 1_000_000_000, "counted \(r.stdout.totalBytes) bytes under \(runtime)")
            #expect(r.stdout.truncated && r.truncated)
            #expect(r.stdout.data.allSatisfy { $0 == 0 })
            #expect(rssBefore > 0 && rssAfter > 0 && hwmAfter > 0)
            #expect(rssAfter - rssBefore < 64 << 10, "VmRSS grew from \(rssBefore) KiB to \(rssAfter) KiB under \(runtime)")
            #expect(hwmAfter - hwmBefore < 64 << 10, "VmHWM grew from \(hwmBefore) KiB to \(hwmAfter) KiB under \(runtime)")
            await expectAlive(box, runtime, after: "an output flood")
        }
    }
}

/// True if a host process has exactly this argv.
func hostProcessExists(argv: [String]) -> Bool {
    let wanted = Data(argv.joined(separator: "\0").utf8) + Data([0])
    for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where pid.allSatisfy(\.isNumber) {
        if FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") == wanted { return true }
    }
    return false
}
