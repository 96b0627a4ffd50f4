import CRobitSys
import Foundation
import RobitSync

/// How a process ended. A non-zero exit is a result, not an error.
public enum TerminationStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signaled(let sig): return "signal \(sig)"
        }
    }
}

/// Output of one stream, capped: at most `limit` bytes are kept, the rest is read and counted.
public struct CapturedOutput: Sendable, Equatable {
    public var data: Data
    /// Every byte the process wrote, kept or not.
    public var totalBytes: Int
    public var truncated: Bool { totalBytes > data.count }

    public init(data: Data = Data(), totalBytes: Int = 0) {
        self.data = data
        self.totalBytes = totalBytes
    }

    public var text: String { String(decoding: data, as: UTF8.self) }
}

/// A host process run to completion with stdout and stderr drained concurrently (no pipe deadlock),
/// a deadline, and the process-wide interrupt (SIGINT/SIGTERM) watched while it runs.
package struct ChildProcess {
    package enum Stdio {
        case capture
        case null
        case file(String)
    }

    package struct Result {
        package var status: TerminationStatus
        package var stdout: CapturedOutput
        package var stderr: CapturedOutput
        package var duration: Duration
        package var timedOut: Bool
        package var interrupted: Bool
    }

    struct SpawnError: Error, CustomStringConvertible {
        var executable: String
        var errno: Int32
        /// What the child could not do before exec (nil: the spawn itself failed).
        var step: String? = nil
        var description: String {
            "cannot start \(executable)\(step.map { ": \($0)" } ?? ""): \(String(cString: strerror(errno)))"
        }
    }

    /// The environment of every runtime robit starts: nothing of robit's own (API keys stay out).
    static let cleanEnvironment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]

    var executable: String
    var arguments: [String]
    var environment: [String] = cleanEnvironment
    var stdout: Stdio = .capture
    var stderr: Stdio = .capture
    /// Bytes written to the process's stdin, which is then closed (empty: stdin is /dev/null).
    var stdin = Data()
    /// Bytes kept per captured stream.
    var outputLimit: Int = 1 << 20
    var timeout: Duration?
    /// Called once when the deadline passes or robit is interrupted, before the process is killed:
    /// the place to stop what the process started elsewhere (an exec'd command inside a sandbox).
    var onStop: (@Sendable () -> Void)?
    /// Called when the process has exited but something it started still holds its output open.
    var onLingering: (@Sendable () -> Void)?
    /// Whether an interrupt of robit stops this process (teardown commands must run to the end).
    var interruptible = true
    /// The process starts in a mount namespace of its own where this directory is covered by an
    /// empty read-only tmpfs (see `Runtime.startCommand`). If that cannot be set up, it never starts.
    var hiddenDirectory: String?
    /// An fd the process gets as its fd 3 (robit batch hands a task's lock to the `robit run` it starts).
    var passFD: Int32 = -1
    /// Called with the pid once the process has started.
    var onStart: (@Sendable (pid_t) -> Void)?

    /// The processes started here and not reaped yet (their pids cannot be reused): the subreaper's
    /// sweep (`Subreaper.reapOrphans`) and adoption leave them alone.
    static let unreaped = Locked<Set<pid_t>>([])

    /// ROBIT_TRACE=1 prints every runtime command robit runs, with its status and duration, on stderr.
    static let trace = ProcessInfo.processInfo.environment["ROBIT_TRACE"] == "1"

    static func writeTrace(_ what: String, duration: Duration) {
        let ms = Double(duration.nanoseconds) / 1e6
        FileHandle.standardError.write(Data("robit: trace: \(what) in \(String(format: "%.1f", ms)) ms\n".utf8))
    }

    /// Runs the process from a blocking thread (`BlockingThreads`) and returns when it has ended and
    /// its output is drained.
    package func run() async throws -> Result {
        try await BlockingThreads.run { try self.runBlocking() }
    }

    func runBlocking() throws -> Result {
        let clock = ContinuousClock()
        let start = clock.now
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        var fileFDs: [Int32] = []
        defer { for fd in fileFDs { close(fd) } }

        func fd(for stdio: Stdio, pipe: inout [Int32]) throws -> Int32 {
            switch stdio {
            case .null: return -1
            case .capture:
                guard robit_pipe2(&pipe, Int32(O_CLOEXEC)) == 0 else { throw SpawnError(executable: executable, errno: errno) }
                return pipe[1]
            case .file(let path):
                let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                guard f >= 0 else { throw SpawnError(executable: path, errno: errno) }
                fileFDs.append(f)
                return f
            }
        }
        let outFD = try fd(for: stdout, pipe: &outPipe)
        let errFD = try fd(for: stderr, pipe: &errPipe)
        var inPipe: [Int32] = [-1, -1]
        if !stdin.isEmpty {
            guard robit_pipe2(&inPipe, Int32(O_CLOEXEC)) == 0 else { throw SpawnError(executable: executable, errno: errno) }
            _ = fcntl(inPipe[1], F_SETFL, fcntl(inPipe[1], F_GETFL) | O_NONBLOCK)
        }

        var pid: pid_t = 0
        var step: UnsafePointer<CChar>?
        let argv = [executable] + arguments
        // Spawned and registered under one lock: the subreaper's sweep never sees it unregistered.
        let rc = Self.unreaped.withLock { unreaped -> Int32 in
            let rc = withCStrings(argv) { cArgv in
                withCStrings(environment) { cEnv in
                    passFD >= 0 ? robit_spawn_passing(executable, cArgv, cEnv, inPipe[0], outFD, errFD, passFD, &pid)
                                : robit_spawn_hiding(executable, cArgv, cEnv, inPipe[0], outFD, errFD, hiddenDirectory, &pid, &step)
                }
            }
            if rc == 0 { unreaped.insert(pid) }
            return rc
        }
        if outPipe[1] >= 0 { close(outPipe[1]) }
        if errPipe[1] >= 0 { close(errPipe[1]) }
        if inPipe[0] >= 0 { close(inPipe[0]) }
        var inFD = inPipe[1]
        var inOffset = 0
        defer { if inFD >= 0 { close(inFD) } }
        guard rc == 0 else {
            if outPipe[0] >= 0 { close(outPipe[0]) }
            if errPipe[0] >= 0 { close(errPipe[0]) }
            throw SpawnError(executable: executable, errno: rc, step: step.map { String(cString: $0) + (hiddenDirectory.map { " (\($0))" } ?? "") })
        }
        onStart?(pid)
        let pidFD = robit_pidfd_open(pid)
        defer { if pidFD >= 0 { close(pidFD) } }

        var out = CapturedOutput()
        var err = CapturedOutput()
        var openFDs: [Int32: Bool] = [:]  // fd -> isStdout
        if outPipe[0] >= 0 { openFDs[outPipe[0]] = true }
        if errPipe[0] >= 0 { openFDs[errPipe[0]] = false }
        defer { for fd in openFDs.keys { close(fd) } }

        var status: TerminationStatus?
        var timedOut = false
        var interrupted = false
        var stopped = false
        var stoppedAt: ContinuousClock.Instant?
        var exitedAt: ContinuousClock.Instant?
        var lingeringHandled = false
        let deadline = timeout.map { start + $0 }
        // Not zeroed: read(2) fills what is used, and an untouched page is never made resident.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }

        func reap(block: Bool) {
            guard status == nil else { return }
            var raw: Int32 = 0
            let r = waitpid(pid, &raw, block ? 0 : WNOHANG)
            if r == pid {
                status = decodeWaitStatus(raw)
                exitedAt = clock.now
                _ = Self.unreaped.withLock { $0.remove(pid) }
            }
        }

        func stop(interrupt: Bool) {
            guard !stopped else { return }
            stopped = true
            stoppedAt = clock.now
            if interrupt { interrupted = true } else { timedOut = true }
            onStop?()
            if onStop == nil { kill(-pid, SIGKILL) }
        }

        while true {
            if status == nil && pidFD < 0 { reap(block: false) }
            if status != nil && openFDs.isEmpty { break }
            let now = clock.now
            if !stopped, let deadline, now >= deadline { stop(interrupt: false) }
            if !stopped, interruptible, Interrupts.pending { stop(interrupt: true) }
            // A stopped process gets 3 s to go before the runtime process itself is killed.
            if stopped, status == nil, let stoppedAt, now - stoppedAt > .seconds(3) { kill(-pid, SIGKILL) }
            if let exitedAt, !openFDs.isEmpty {
                // The process is gone but something it started keeps its output open.
                if !lingeringHandled, now - exitedAt > .milliseconds(250) {
                    lingeringHandled = true
                    onLingering?()
                }
                if now - exitedAt > .seconds(3) { break }
            }

            var fds: [pollfd] = openFDs.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if status == nil && pidFD >= 0 { fds.append(pollfd(fd: pidFD, events: Int16(POLLIN), revents: 0)) }
            if inFD >= 0 && !stopped { fds.append(pollfd(fd: inFD, events: Int16(POLLOUT), revents: 0)) }
            if interruptible && !stopped && Interrupts.fd >= 0 { fds.append(pollfd(fd: Interrupts.fd, events: Int16(POLLIN), revents: 0)) }
            var wait: Int32 = 1000
            if let deadline, !stopped { wait = min(wait, Int32(clamping: max(0, (deadline - now).milliseconds + 1))) }
            if stopped || exitedAt != nil { wait = min(wait, 50) }
            if status == nil && pidFD < 0 { wait = min(wait, 20) }
            let n = poll(&fds, nfds_t(fds.count), wait)
            if n < 0 && errno != EINTR { break }
            for p in fds where p.revents != 0 {
                if p.fd == pidFD { reap(block: true); continue }
                if p.fd == Interrupts.fd { continue }
                if p.fd == inFD {
                    let w = stdin.withUnsafeBytes { raw in
                        robit_write_nosigpipe(inFD, raw.baseAddress! + inOffset, min(raw.count - inOffset, 1 << 16))
                    }
                    if w > 0 { inOffset += w }
                    if inOffset == stdin.count || (w < 0 && errno != EINTR && errno != EAGAIN) {
                        close(inFD)
                        inFD = -1
                    }
                    continue
                }
                guard let isOut = openFDs[p.fd] else { continue }
                let r = read(p.fd, buffer.baseAddress, buffer.count)
                if r > 0 {
                    let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<r])
                    if isOut { out.append(chunk, limit: outputLimit) } else { err.append(chunk, limit: outputLimit) }
                } else if r == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(p.fd)
                    openFDs[p.fd] = nil
                }
            }
        }
        reap(block: true)
        if status == nil { _ = Self.unreaped.withLock { $0.remove(pid) } }  // gone without a status (waitpid failed)
        if Self.trace {
            Self.writeTrace("\(([executable] + arguments).joined(separator: " ")): \(status.map { "\($0)" } ?? "killed")", duration: clock.now - start)
        }
        return Result(status: status ?? .signaled(SIGKILL), stdout: out, stderr: err, duration: clock.now - start,
                      timedOut: timedOut, interrupted: interrupted)
    }
}

extension CapturedOutput {
    mutating func append(_ bytes: UnsafeRawBufferPointer, limit: Int) {
        totalBytes += bytes.count
        let room = limit - data.count
        if room > 0 { data.append(contentsOf: bytes[0..<min(room, bytes.count)]) }
    }
}

func decodeWaitStatus(_ raw: Int32) -> TerminationStatus {
    let sig = raw & 0x7f
    if sig == 0 { return .exited((raw >> 8) & 0xff) }
    return .signaled(sig)
}

func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

extension Duration {
    var milliseconds: Int64 {
        let (s, a) = components
        return s * 1000 + a / 1_000_000_000_000_000
    }
    package var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}

/// SIGINT, SIGTERM and SIGHUP, observed by every running child process and by the CLI.
public enum Interrupts {
    nonisolated(unsafe) private static var pipeFDs: [Int32] = [-1, -1]
    private static let installed: Bool = {
        var fds: [Int32] = [-1, -1]
        guard robit_pipe2(&fds, Int32(O_CLOEXEC | O_NONBLOCK)) == 0 else { return false }
        pipeFDs = fds
        return robit_install_interrupt_handlers(fds[1]) == 0
    }()

    /// Starts catching the signals; until then they have their default effect.
    public static func install() { _ = installed }

    /// Readable once a signal has arrived (never drained, so every poller sees it); -1 until `install()`.
    static var fd: Int32 { pipeFDs[0] }

    /// The signal that interrupted robit, if any.
    public static var signal: Int32? {
        let s = robit_interrupt_signal()
        return s == 0 ? nil : s
    }

    public static var pending: Bool { signal != nil }
}

extension ChildProcess {
    /// Another robit process (robit batch's tasks): it gets `environment` (`NAME=value` lines),
    /// its stderr goes to `stderr`, and an interrupt of this robit does not stop it (the caller
    /// forwards it, so that the child tears its sandbox down and finalizes its log).
    package init(executable: String, arguments: [String], environment: [String], stderr: Stdio, passFD: Int32,
                 onStart: @escaping @Sendable (pid_t) -> Void) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.stderr = stderr
        self.passFD = passFD
        self.onStart = onStart
        self.interruptible = false
        self.outputLimit = 1 << 20
    }

    /// A host tool robit runs for the user (git, for output.pr): `environment` as given, both outputs
    /// captured, a deadline.
    package init(executable: String, arguments: [String], environment: [String], timeout: Duration) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.timeout = timeout
    }

    /// For robit-bench, which spawns the bare runtime with the same code robit does.
    package init(executable: String, arguments: [String], stdout: Stdio = .capture, stderr: Stdio = .capture,
                 outputLimit: Int = 1 << 20, interruptible: Bool = true) {
        self.executable = executable
        self.arguments = arguments
        self.stdout = stdout
        self.stderr = stderr
        self.outputLimit = outputLimit
        self.interruptible = interruptible
    }
}
