import Foundation
import Glibc
import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

/// Attacks found in review: each one must stay closed.
extension ExecIntegration {
    @Suite(.serialized, .sandboxPool("review"))
    struct SandboxReviewRegressionTests {
        func sandbox(_ runtime: RuntimeKind) async throws -> Sandbox {
            try TestEnv.require(runtime)
            return try await SandboxPool.shared.entry(suite: "review", runtime: runtime).box
        }

        @Test("commands cannot reach init's file descriptors or signal it", arguments: TestEnv.allRuntimes)
        func initIsOutOfReach(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let log = box.bundle.path + "/runtime.log"
            let before = (try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? 0
            let write = try await box.sh("head -c 1048576 /dev/zero > /proc/1/fd/2 && echo WROTE; head -c 1048576 /dev/zero > /proc/1/fd/1 && echo WROTE")
            // gVisor lets the write happen, but init's stdio is /dev/null: nothing reaches the host.
            if runtime != .runsc {
                #expect(!write.stdout.text.contains("WROTE"), "a command wrote through init's fds under \(runtime): \(write.summary)")
            }
            let after = (try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? 0
            #expect(after - before < 4096, "runtime.log on the host grew by \(after - before) bytes under \(runtime)")
            let term = try await box.sh("kill -TERM 1 && echo SIGNALLED; kill -KILL 1 && echo SIGNALLED; sleep 0.5")
            #expect(!term.stdout.text.contains("SIGNALLED"), "a command signalled init under \(runtime): \(term.summary)")
            let alive = try await box.sh("echo alive")
            #expect(alive.stdout.text == "alive\n" && !alive.sandboxRestarted, "\(alive.summary)")
            #expect(await box.isRunning())
        }

        @Test("a process that drops ROBIT_EXEC still dies with its timed-out command", arguments: TestEnv.allRuntimes)
        func droppingTheTagDoesNotEscape(runtime: RuntimeKind) async throws {
            let box = try await sandbox(runtime)
            let n = Int.random(in: 1000...1999) * 10 + 3
            let r = try await box.sh("env -u ROBIT_EXEC sleep \(n) >/dev/null 2>&1 & sleep 100", timeout: .seconds(2))
            #expect(r.timedOut, "\(r.summary)")
            let ps = try await box.python(#"""
            import os
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try: print(open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode())
                    except OSError: pass
            """#)
            #expect(ps.stdout.text.contains("python3"), "\(ps.summary)")
            #expect(!ps.stdout.text.contains("sleep \(n)"), "an untagged process outlived its command under \(runtime): \(ps.stdout.text)")
        }

        @Test("a policy errno out of range is refused, not a crash")
        func errnoOutOfRange() {
            let json = #"{"capabilities": [], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}}"#
            #expect(throws: PolicyError.self) { try SandboxPolicy.parse(Data(json.utf8), source: "p.json") }
            let json2 = #"{"capabilities": [], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 65536}}"#
            #expect(throws: PolicyError.self) { try SandboxPolicy.parse(Data(json2.utf8), source: "p.json") }
        }

        @Test("unsafe users, rootfs paths and state directories are refused")
        func unsafeInputs() throws {
            for user in [User(uid: 0, gid: 1000), User(uid: 1000, gid: 0), User(uid: UInt32.max, gid: 1000), User(uid: 1000, gid: UInt32.max)] {
                #expect(Workspace.problem(with: user) != nil, "\(user) accepted")
            }
            #expect(Workspace.problem(with: User(uid: 1000, gid: 1000)) == nil)
            let ws = try TempWorkspace()
            defer { ws.remove() }
            for rootfs in ["/", "/usr", "/etc", ws.path, "/run/robit"] {
                #expect(throws: SandboxError.self, "rootfs \(rootfs) accepted") {
                    try Workspace.validateRootfs(rootfs, workspace: ws.path, state: .default())
                }
            }
            // A directory another user can write is no root filesystem and no place for robit to write.
            let open = NSTemporaryDirectory() + "robit-open-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: open) }
            chmod(open, 0o777)
            #expect(SecurePath.problem(open) != nil)
            #expect(throws: SandboxError.self) { try Workspace.validateRootfs(open, workspace: ws.path, state: .default()) }
            chmod(open, 0o755)
            #expect(SecurePath.problem(open) == nil)
            #expect(SecurePath.problem("/tmp") == nil)  // sticky
        }

        @Test("a reader that goes away does not crash robit or leak the sandbox", arguments: TestEnv.cliRuntimes)
        func closedStdout(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let before = Set(SandboxState.default().sandboxIDs())
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "'\(try RobitBinary.path())' sandbox run --runtime \(runtime.rawValue) -- head -c 300000 /dev/zero | head -c 10 >/dev/null"]
            let err = Pipe()
            p.standardError = err
            p.standardOutput = Pipe()
            try p.run()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(!stderr.contains("Fatal error") && !stderr.contains("crashed"), "\(stderr)")
            try await Task.sleep(for: .milliseconds(200))
            let after = Set(SandboxState.default().sandboxIDs())
            #expect(after.subtracting(before).isEmpty, "sandboxes left: \(after.subtracting(before))")
        }
    }
}
