import Foundation
import Glibc
@testable import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

// robit's CLI is a child subreaper: the processes a runtime leaves running (runsc's sandbox and gofer,
// crun's and runc's init) become its children, are reaped the moment they end, and are killed and
// reaped before the runtime's delete. Without that, `runsc delete` waits for PID 1 to reap the
// sandbox process (1-2 s on this machine kind), and a subreaper that does not reap makes it fail.

extension ExecIntegration {
    @Suite("the runtime's processes are robit's children and are reaped")
    struct SubreaperTests {
        @Test("robit sandbox run adopts the runtime's process, kills and reaps it before the runtime's delete, and leaves nothing",
              arguments: TestEnv.cliRuntimes)
        func cliAdoptsAndReaps(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let ws = try TempWorkspace()
            let r = try await RobitProcess.run(["sandbox", "run", "--runtime", runtime.rawValue, "--workspace", ws.path, "--", "true"],
                                               environment: ["ROBIT_TRACE": "1"])
            #expect(r.code == 0, "exit \(r.code) under \(runtime): \(r.stderr)")
            let lines = r.stderr.split(separator: "\n").map(String.init)
            guard let reaped = lines.firstIndex(where: { $0.contains("killed and reaped \(runtime.rawValue)'s processes") }) else {
                Issue.record("robit did not kill and reap \(runtime)'s processes itself (not a subreaper, or no pid file); stderr: \(r.stderr)")
                return
            }
            #expect(!lines[reaped].contains("still there"), "\(lines[reaped])")
            // runsc's sandbox and gofer processes; crun's and runc's init.
            #expect(Self.pids(in: lines[reaped]).count == (runtime == .runsc ? 2 : 1), "\(lines[reaped])")
            let id = HostTraces.tracedIDs(lines.first { $0.contains(" run --detach ") } ?? "").first ?? "none"
            let delete = lines.firstIndex { $0.contains(" delete --force \(id)") }
            #expect(delete.map { $0 > reaped } == true, "the runtime's delete ran before robit reaped its processes: \(r.stderr)")
            // Every process robit reaped is gone, not a zombie waiting for PID 1.
            for pid in Self.pids(in: lines[reaped]) {
                #expect(!FileManager.default.fileExists(atPath: "/proc/\(pid)"), "pid \(pid) of \(runtime) is still there: \(Self.stat(of: pid))")
            }
            let left = await HostTraces.leftovers(of: id)
            #expect(left.isEmpty, "left after the run under \(runtime): \(left)")
        }

        @Test("in a subreaper, a sandbox process that dies is reaped at once, and destroy() still removes everything",
              arguments: [RuntimeKind.runsc, .crun])
        func apiReapsDeadSandboxProcess(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            // In a child process of its own: the test runner must not become a subreaper (the
            // robit processes other tests kill would leave their orphans to it).
            unlink("/tmp/robit-subreaper-test-\(runtime.rawValue).txt")
            let result = await #expect(processExitsWith: .success) { [runtime] in
                func fail(_ message: String) -> Never {
                    try? Data(message.utf8).write(to: URL(fileURLWithPath: "/tmp/robit-subreaper-test-\(runtime.rawValue).txt"))
                    exit(1)
                }
                guard Subreaper.enable() else { fail("prctl(PR_SET_CHILD_SUBREAPER) refused") }
                let ws = try TempWorkspace()
                let box = try await Sandbox.create(SandboxOptions(runtime: runtime, workspace: ws.path, user: TestEnv.user, limits: TestEnv.limits))
                // Never adopted (nor killed at teardown): a process that is not this process's child, and a
                // child that does not name the sandbox; a child that names it is.
                guard AdoptedProcess(pid: 1, sandbox: box.id) == nil, AdoptedProcess(pid: getppid(), sandbox: box.id) == nil else {
                    fail("adopted a process that is not a child")
                }
                // Started with posix_spawn: nothing else waits for them (an adopted child is reaped by robit).
                let other = try SubreaperTests.spawnSleeper(naming: "robit-000000000000")
                let named = try SubreaperTests.spawnSleeper(naming: box.id)
                let adoptedOther = AdoptedProcess(pid: other, sandbox: box.id)
                let adoptedNamed = AdoptedProcess(pid: named, sandbox: box.id)
                kill(other, SIGKILL)
                kill(named, SIGKILL)
                var status: Int32 = 0
                waitpid(other, &status, 0)
                if let adoptedNamed { _ = AdoptedProcess.waitUntilGone([adoptedNamed], timeout: .seconds(5)) }
                guard adoptedOther == nil else { fail("adopted a child that does not name \(box.id)") }
                guard adoptedNamed != nil else { fail("did not adopt a child that names \(box.id)") }
                let pidText = (try? String(contentsOfFile: Runtime.pidFile(bundle: box.bundle.path), encoding: .utf8)) ?? ""
                guard let pid = pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) else { fail("no pid file: \(pidText)") }
                guard AdoptedProcess.parent(of: pid) == getpid() else {
                    fail("\(runtime)'s process \(pid) is not this process's child: \(SubreaperTests.stat(of: pid))")
                }
                let ok = try await box.exec(ExecRequest(argv: ["/bin/true"]))
                guard ok.status == .exited(0) else { fail("exec: \(ok.status)") }
                // The sandbox's process dies under robit (as when gVisor's kernel is OOM-killed).
                kill(pid, SIGKILL)
                let deadline = ContinuousClock.now + .seconds(10)
                while FileManager.default.fileExists(atPath: "/proc/\(pid)"), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
                guard !FileManager.default.fileExists(atPath: "/proc/\(pid)") else {
                    fail("\(runtime)'s dead process \(pid) was not reaped: \(SubreaperTests.stat(of: pid))")
                }
                let left = await box.destroy()
                guard left.isEmpty else { fail("destroy() left: \(left)") }
                let traces = await HostTraces.leftovers(of: box.id)
                guard traces.isEmpty else { fail("left on the host: \(traces)") }
                // A sandbox that ends normally: its processes are reaped by destroy().
                let second = try await Sandbox.create(SandboxOptions(runtime: runtime, workspace: ws.path, user: TestEnv.user, limits: TestEnv.limits))
                let secondText = (try? String(contentsOfFile: Runtime.pidFile(bundle: second.bundle.path), encoding: .utf8)) ?? ""
                let secondPID = pid_t(secondText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                let secondLeft = await second.destroy()
                guard secondLeft.isEmpty else { fail("second destroy() left: \(secondLeft)") }
                guard secondPID > 0, !FileManager.default.fileExists(atPath: "/proc/\(secondPID)") else {
                    fail("after destroy(), \(runtime)'s process \(secondPID) is still there: \(SubreaperTests.stat(of: secondPID))")
                }
                // Nothing the runtime left (gVisor's ptrace stubs, crun's intermediate process) stays a zombie.
                let zombies = Subreaper.children().filter { SubreaperTests.state(of: $0) == "Z" }
                guard zombies.isEmpty else { fail("zombie children left: \(zombies.map { SubreaperTests.stat(of: $0) })") }
            }
            if result == nil {
                let file = "/tmp/robit-subreaper-test-\(runtime.rawValue).txt"
                Issue.record("under \(runtime): \((try? String(contentsOfFile: file, encoding: .utf8)) ?? "no message")")
            }
        }

        static func pids(in line: String) -> [pid_t] {
            guard let range = line.range(of: "processes ") else { return [] }
            return line[range.upperBound...].split(whereSeparator: { $0 == "," || $0 == " " }).compactMap { pid_t($0) }
        }

        /// A child that sleeps 30 s with `name` in its command line, once it shows there.
        static func spawnSleeper(naming name: String) throws -> pid_t {
            let args = ["/usr/bin/python3", "-c", "import time; time.sleep(30)", name]
            var cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
            defer { for p in cArgs { free(p) } }
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, args[0], nil, nil, &cArgs, environ)
            guard rc == 0 else { throw TestFailure("posix_spawn python3: \(rc)") }
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                if let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), data.range(of: Data(name.utf8)) != nil { return pid }
                usleep(2000)
            }
            throw TestFailure("\(name) never showed in the command line of \(pid)")
        }

        /// The state letter in /proc/PID/stat (R, S, Z, ...), or nil when the process is gone.
        static func state(of pid: pid_t) -> String? {
            let text = stat(of: pid)
            guard let close = text.lastIndex(of: ")") else { return nil }
            return text[text.index(after: close)...].split(separator: " ").first.map(String.init)
        }

        static func stat(of pid: pid_t) -> String {
            (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "gone"
        }
    }
}
