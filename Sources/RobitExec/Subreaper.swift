import CRobitSys
import Foundation
import RobitSync

/// robit as the parent of the processes a runtime leaves running.
///
/// `runsc run --detach` starts the sandbox and gofer processes, `crun`/`runc` the container's init,
/// and exit: those processes are orphaned, and their parent becomes PID 1 (or the nearest child
/// subreaper). `runsc delete` waits for the sandbox and gofer processes to be reaped, polling every
/// 100 ms for 5 s, and an init that reaps late makes it wait that long: PID 1 of this machine kind
/// reaps orphans 1-2 s after they end, which was 1.5 s of every runsc run's teardown. A process that
/// calls `enable()` adopts them instead: each sandbox watches its runtime's processes
/// (`AdoptedProcess`), reaps them the moment they end, and at teardown kills and reaps them before
/// the runtime's delete, which then has nothing to wait for. Other orphans (gVisor's ptrace stubs,
/// crun's intermediate process) are reaped by `reapOrphans()` when a sandbox starts and stops.
///
/// A subreaper must reap what it adopts, or `runsc delete` fails on the zombies. So only a process
/// that starts its children through `ChildProcess` (or not while sandboxes start and stop: the sweep
/// reaps every ended child that ChildProcess did not start) may call `enable()`: robit's CLI does.
/// The test runner must not: the robit processes it SIGKILLs would leave their sandboxes to it.
public enum Subreaper {
    /// Makes this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER). Returns false if the
    /// kernel refused; sandboxes then work as before, their runtime's processes reaped by PID 1.
    @discardableResult
    public static func enable() -> Bool {
        robit_set_child_subreaper() == 0
    }

    /// True when this process is a child subreaper (set by `enable()`; the flag is not inherited
    /// by children).
    static var isEnabled: Bool { robit_is_child_subreaper() == 1 }

    /// Reaps every child of this process that has ended and that `ChildProcess` did not start (their
    /// pids cannot be reused until reaped, and ChildProcess's are registered as they are spawned).
    static func reapOrphans() {
        guard isEnabled else { return }
        ChildProcess.unreaped.withLock { unreaped in
            for pid in children() where !unreaped.contains(pid) {
                _ = robit_reap_if_ended(pid)
            }
        }
    }

    /// This process's children, from /proc/self/task/*/children (empty without CONFIG_PROC_CHILDREN).
    static func children() -> [pid_t] {
        var pids: [pid_t] = []
        for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? [] {
            guard let text = KernelFile.read("/proc/self/task/\(task)/children") else { continue }
            pids += text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return pids
    }
}

/// A process a runtime left running for sandbox `id` that became this process's child (see
/// `Subreaper`). A thread of its own waits for it and reaps it when it ends; `kill()` and
/// `waitUntilGone` go through a pidfd, so a reused pid is never signalled.
package final class AdoptedProcess: Sendable {
    let pid: pid_t
    private let fd: Int32

    /// Adopts `pid` if this process is a subreaper and `pid` is its child, was not started by
    /// `ChildProcess`, and names sandbox `id` in its command line or cgroup (a stale pid that was
    /// reused by another process does not); nil otherwise.
    init?(pid: pid_t, sandbox id: String) {
        guard pid > 1, Subreaper.isEnabled, !ChildProcess.unreaped.withLock({ $0.contains(pid) }) else { return nil }
        let fd = robit_pidfd_open(pid)
        guard fd >= 0 else { return nil }
        // This process's child, still unreaped (ECHILD: someone else's, or gone), and sandbox id's: the
        // pidfd pins the process, and the second check says the pid still named it when /proc was read.
        var found: pid_t = 0
        guard robit_pidfd_wait(fd, WEXITED | WNOHANG | WNOWAIT, &found) == 0, Self.belongs(pid, to: id),
              robit_pidfd_wait(fd, WEXITED | WNOHANG | WNOWAIT, &found) == 0 else {
            close(fd)
            return nil
        }
        let reaperFD = robit_dup_cloexec(fd)
        guard reaperFD >= 0 else {
            close(fd)
            return nil
        }
        self.pid = pid
        self.fd = fd
        let thread = Thread {
            var reaped: pid_t = 0
            _ = robit_pidfd_wait(reaperFD, WEXITED, &reaped)
            close(reaperFD)
        }
        thread.name = "robit-reaper"
        thread.stackSize = 64 << 10
        thread.start()
    }

    deinit { close(fd) }

    /// Whether process `pid` names sandbox `id` in its command line (runsc's sandbox and gofer, crun's
    /// and runc's own processes) or its cgroups (the container's init under crun and runc).
    static func belongs(_ pid: pid_t, to id: String) -> Bool {
        let needle = Data(id.utf8)
        for file in ["cmdline", "cgroup"] {
            if let data = FileManager.default.contents(atPath: "/proc/\(pid)/\(file)"), data.range(of: needle) != nil { return true }
        }
        return false
    }

    /// The processes `RUNTIME run --detach` left for sandbox `id`: the pid it wrote to `pidFile`, and
    /// `more` (runsc's gofer), adopted; [] if the file is missing or not a pid. crun's init is the
    /// grandchild of the `crun` robit started: it becomes robit's child only when the process between
    /// them exits, which can be after `crun` itself has (seconds later on a loaded machine). Until then
    /// robit waits for that process (adopted, when it can be) or polls, at most `timeout` in all.
    /// Blocks: call it from a blocking thread.
    static func adopt(pidFile: String, more: [pid_t] = [], sandbox id: String, timeout: Duration = .seconds(5)) -> [AdoptedProcess] {
        defer { Subreaper.reapOrphans() }
        guard Subreaper.isEnabled else { return [] }
        var adopted: [AdoptedProcess] = []
        if let text = KernelFile.read(pidFile), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            while true {
                if let process = AdoptedProcess(pid: pid, sandbox: id) {
                    adopted.append(process)
                    break
                }
                // Gone already, or not becoming robit's child in time: nothing to adopt.
                guard let parent = parent(of: pid), clock.now < deadline else { break }
                // The process between, while it lasts: wait for it (adopted, so that it is reaped) when
                // it is robit's child and names the sandbox, else look again shortly. A parent that is
                // robit means the init has just become robit's child: try again at once.
                if parent == getpid() { usleep(500); continue }
                if let middle = AdoptedProcess(pid: parent, sandbox: id) {
                    _ = waitUntilGone([middle], timeout: deadline - clock.now)
                } else {
                    usleep(2_000)
                }
            }
        }
        adopted += more.compactMap { AdoptedProcess(pid: $0, sandbox: id) }
        return adopted
    }

    /// The parent pid in /proc/PID/stat (the field after the parenthesized name), or nil.
    static func parent(of pid: pid_t) -> pid_t? {
        guard let text = KernelFile.read("/proc/\(pid)/stat"),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }

    /// SIGKILL, through the pidfd.
    func kill() {
        _ = robit_pidfd_send_signal(fd, SIGKILL)
    }

    /// Waits until every process has ended and is reaped (by its reaper thread, or here), at most
    /// `timeout` in all. Returns, for each, whether it is gone. Blocks.
    static func waitUntilGone(_ processes: [AdoptedProcess], timeout: Duration) -> [Bool] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var ended = Array(repeating: false, count: processes.count)
        while ended.contains(false) {
            let left = deadline - clock.now
            guard left > .zero else { break }
            var fds = processes.indices.filter { !ended[$0] }.map { pollfd(fd: processes[$0].fd, events: Int16(POLLIN), revents: 0) }
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let r = poll(&fds, nfds_t(fds.count), ms)
            if r < 0 && errno != EINTR { break }
            for p in fds where p.revents != 0 {
                if let i = processes.firstIndex(where: { $0.fd == p.fd }) { ended[i] = true }
            }
        }
        return processes.indices.map { i in
            guard ended[i] else { return false }
            // Ended: reap it unless its reaper thread already has (then ECHILD).
            var reaped: pid_t = 0
            let e = robit_pidfd_wait(processes[i].fd, WEXITED | WNOHANG, &reaped)
            return e == 0 || e == ECHILD
        }
    }
}
