import Foundation
import RobitTestSupport
import Glibc
import RobitExec
import RobitOCI
import Testing

// Shared helpers of the RobitExec integration tests: they start real sandboxes under runsc, crun
// and runc, so they need root and the runtimes. Without them the tests are skipped (cancelled),
// except when CI=true: then a missing prerequisite is a failure.

/// Every integration suite nests inside this one, so that none of them runs in parallel with
/// another (sandboxes compete for 2 cores, and the output test measures this process's memory).
@Suite(.serialized) struct ExecIntegration {}

extension TestEnv {
    /// The runtimes the CLI lifecycle tests drive.
    static let cliRuntimes: [RuntimeKind] = [.runsc, .crun, .runc]

    /// The unique secret placed in this process's environment before any sandbox is created.
    static let secret: String = {
        let value = "robit-secret-" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        setenv("ROBIT_TEST_SECRET", value, 1)
        return value
    }()
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Temporary directories and workspaces

/// A fresh directory under /tmp holding a workspace `ws` owned by 65532:65532. The directory
/// itself (the workspace's parent) is root-owned: the place for host files the sandbox must not reach.
final class TempWorkspace: @unchecked Sendable {
    let root: String
    let path: String

    init(user: User = TestEnv.user) throws {
        root = "/tmp/robit-exectests-" + UUID().uuidString.lowercased().prefix(13)
        path = root + "/ws"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        guard chown(path, user.uid, user.gid) == 0 else { throw TestFailure("chown \(path): \(String(cString: strerror(errno)))") }
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
    deinit { remove() }
}

// MARK: - One sandbox per runtime per suite

/// Sandboxes shared by the tests of one suite, created on first use and destroyed when the suite ends.
actor SandboxPool {
    static let shared = SandboxPool()

    struct Entry {
        var box: Sandbox
        var workspace: TempWorkspace
    }

    private var entries: [String: Entry] = [:]

    func entry(suite: String, runtime: RuntimeKind, limits: SandboxLimits = TestEnv.limits) async throws -> Entry {
        let key = "\(suite)/\(runtime.rawValue)"
        if let e = entries[key] {
            // A sandbox an earlier test broke (and reported) is replaced, so every test stands alone.
            if let r = try? await e.box.exec(ExecRequest(argv: ["/bin/true"], timeout: .seconds(20))), r.status == .exited(0) { return e }
            _ = await e.box.destroy()
            e.workspace.remove()
            entries[key] = nil
        }
        _ = TestEnv.secret
        let ws = try TempWorkspace()
        let box = try await Sandbox.create(SandboxOptions(runtime: runtime, workspace: ws.path, user: TestEnv.user, limits: limits,
                                                          policy: .builtInDefault()))
        let e = Entry(box: box, workspace: ws)
        entries[key] = e
        return e
    }

    /// Destroys the suite's sandboxes; returns leftovers per sandbox id.
    func destroyAll(suite: String) async -> [String: [String]] {
        var problems: [String: [String]] = [:]
        for (key, e) in entries where key.hasPrefix(suite + "/") {
            let left = await e.box.destroy()
            if !left.isEmpty { problems[e.box.id] = left }
            e.workspace.remove()
            entries[key] = nil
        }
        return problems
    }
}

/// Destroys a suite's pooled sandboxes when the suite ends; leftovers are a failure.
struct SandboxPoolScope: SuiteTrait, TestScoping {
    var suite: String

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard test.isSuite else { return try await function() }
        do {
            try await function()
        } catch {
            let left = await SandboxPool.shared.destroyAll(suite: suite)
            if !left.isEmpty { Issue.record("sandbox teardown left: \(left)") }
            throw error
        }
        let left = await SandboxPool.shared.destroyAll(suite: suite)
        if !left.isEmpty { Issue.record("sandbox teardown left: \(left)") }
    }
}

extension Trait where Self == SandboxPoolScope {
    static func sandboxPool(_ suite: String) -> Self { SandboxPoolScope(suite: suite) }
}

// MARK: - Running things in a sandbox

extension Sandbox {
    /// `sh -c SCRIPT` inside.
    func sh(_ script: String, timeout: Duration = .seconds(60), outputLimit: Int = 1 << 20) async throws -> ExecResult {
        try await exec(.shell(script, timeout: timeout, outputLimit: outputLimit))
    }

    /// `python3 -c SCRIPT ARGS...` inside.
    func python(_ script: String, _ args: [String] = [], timeout: Duration = .seconds(60)) async throws -> ExecResult {
        try await exec(ExecRequest(argv: ["/usr/bin/python3", "-c", script] + args, timeout: timeout))
    }

    /// `/.robit/init probe`, as key → value.
    func probe() async throws -> [String: String] {
        let r = try await exec(ExecRequest(argv: [SandboxConfiguration.initPath, "probe"], timeout: .seconds(30)))
        guard r.status == .exited(0) else { throw TestFailure("probe failed: \(r.status) \(r.stderr.text)") }
        var out: [String: String] = [:]
        for line in r.stdout.text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq]).trimmingCharacters(in: .whitespaces)] = String(line[line.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
        }
        return out
    }
}

extension ExecResult {
    /// For failure messages.
    var summary: String {
        "status=\(status) timedOut=\(timedOut) oom=\(outOfMemory) restarted=\(sandboxRestarted) duration=\(duration)\n"
            + "stdout(\(stdout.totalBytes)): \(stdout.text.prefix(1500))\nstderr(\(stderr.totalBytes)): \(stderr.text.prefix(1500))"
    }
}

/// A line of /proc/self/status in KiB (VmRSS, VmHWM).
func procStatusKiB(_ key: String) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
        let digits = line.dropFirst(key.count + 1).filter(\.isNumber)
        return Int(digits) ?? -1
    }
    return -1
}

// MARK: - A TCP listener on the host's loopback

final class HostListener: @unchecked Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw TestFailure("bind/listen: \(String(cString: strerror(e)))")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.fd = fd
        port = UInt16(bigEndian: addr.sin_port)
    }

    /// Accepts whatever is pending; true if anything connected.
    func acceptedAnything() -> Bool {
        var any = false
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { break }
            any = true
            close(c)
        }
        return any
    }

    deinit { close(fd) }
}

// MARK: - The robit CLI as a subprocess

/// A robit process started by a test, its stdout and stderr going to files.
final class RobitProcess: @unchecked Sendable {
    let process = Foundation.Process()
    let outPath: String
    let errPath: String

    init(_ arguments: [String], environment extra: [String: String] = [:]) throws {
        let binary = try RobitBinary.path()
        let base = NSTemporaryDirectory() + "robit-exectests-cli-" + UUID().uuidString
        outPath = base + ".out"
        errPath = base + ".err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        process.environment = env
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    /// Waits for the exit; returns the exit code (128 + N when killed by signal N), nil on timeout.
    func wait(timeout: Duration = .seconds(120)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        unlink(outPath)
        unlink(errPath)
    }

    /// Runs robit to the end.
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(180)) async throws
        -> (code: Int32, stdout: String, stderr: String)
    {
        let p = try RobitProcess(arguments, environment: environment)
        guard let code = await p.wait(timeout: timeout) else {
            p.signal(SIGKILL)
            _ = await p.wait(timeout: .seconds(10))
            throw TestFailure("robit \(arguments.joined(separator: " ")) did not finish within \(timeout); stderr: \(p.stderr)")
        }
        return (code, p.stdout, p.stderr)
    }
}

// MARK: - What a sandbox may leave behind on the host

enum HostTraces {
    static let stateRoot = ProcessInfo.processInfo.environment["ROBIT_STATE_DIR"] ?? "/run/robit"
    static var sandboxesDir: String { stateRoot + "/sandboxes" }

    /// Ids a runtime lists (`RUNTIME list --quiet`), run independently of robit; nil when listing fails.
    static func containerIDs(_ kind: RuntimeKind) async -> [String]? { await RuntimeListing.ids(kind) }

    /// Everything of sandbox `id` still on the host: containers, cgroup dirs, mounts, the state dir.
    static func leftovers(of id: String) async -> [String] {
        var left: [String] = []
        for kind in TestEnv.allRuntimes {
            guard let ids = await containerIDs(kind) else {
                left.append("`\(kind.rawValue) list --quiet` failed: cannot tell whether \(id) is gone")
                continue
            }
            if ids.contains(id) { left.append("\(kind.rawValue) still lists container \(id)") }
        }
        var cgroupDirs = Set(CgroupMounts.current().directories(for: "/robit/\(id)"))
        for controller in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] {
            cgroupDirs.insert("/sys/fs/cgroup/\(controller)/robit/\(id)")
        }
        for dir in cgroupDirs.sorted() where FileManager.default.fileExists(atPath: dir) { left.append("cgroup dir \(dir)") }
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in mountinfo.split(separator: "\n") where line.contains(sandboxesDir + "/" + id) {
            left.append("mount: \(line)")
        }
        let dir = sandboxesDir + "/" + id
        if FileManager.default.fileExists(atPath: dir) { left.append("state dir \(dir)") }
        return left
    }

    /// The id of the sandbox created by robit process `pid` (from owner.json), polling until it shows up.
    static func sandboxID(ownedBy pid: Int32, timeout: Duration = .seconds(30)) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for id in (try? FileManager.default.contentsOfDirectory(atPath: sandboxesDir)) ?? [] where id.hasPrefix("robit-") {
                guard let data = FileManager.default.contents(atPath: "\(sandboxesDir)/\(id)/owner.json"),
                      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      (object["pid"] as? NSNumber)?.int32Value == pid else { continue }
                return id
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Waits until sandbox `id` is running a command (an exec process file exists in its bundle).
    static func waitForExec(id: String, timeout: Duration = .seconds(60)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: sandboxesDir + "/" + id)) ?? []
            if files.contains(where: { $0.hasPrefix("exec-") && $0.hasSuffix(".json") }) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Sandbox ids in a ROBIT_TRACE=1 stderr.
    static func tracedIDs(_ stderr: String) -> [String] {
        var ids: [String] = []
        let regex = try! NSRegularExpression(pattern: "robit-[0-9a-f]{12}")
        let ns = stderr as NSString
        for m in regex.matches(in: stderr, range: NSRange(location: 0, length: ns.length)) {
            let id = ns.substring(with: m.range)
            if !ids.contains(id) { ids.append(id) }
        }
        return ids
    }
}

/// Opens and closes a TCP connection to 127.0.0.1:port from the host.
func connectFromHost(port: UInt16) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw TestFailure("connect 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
}
