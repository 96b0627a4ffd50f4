import CRobitSys
import Foundation

/// robit as the parent of the processes a runtime leaves running.
///
/// `runsc run --detach` starts the sandbox and gofer processes, `crun`/`runc` the container's init,
/// and exit: those processes are orphaned, and their parent becomes PID 1 (or the nearest child
/// subreaper). `runsc delete` waits for the sandbox process to be reaped, polling every 100 ms, and an
/// init that reaps late makes it wait that long: PID 1 of this machine kind reaps orphans 1-2 s after
/// they die, which was 1.5 s of every runsc run's teardown. A process that calls `enable()` adopts
/// them instead; each sandbox then watches its runtime's processes (`AdoptedProcess`), reaps them
/// the moment they die, and at teardown kills and reaps the sandbox process before the runtime's
/// delete, which then has nothing to wait for.
///
/// Only a process that reaps what it adopts may call `enable()`: robit's CLI does, and reaps exactly
/// the runtime processes it knows (other orphans, if any, stay zombies until robit exits). A process
/// that starts robit and kills it (a test) must not be a subreaper, or robit's orphans come to it.
public enum Subreaper {
    /// Makes this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER). Returns false if the
    /// kernel refused; sandboxes then work as before, their runtime's processes reaped by PID 1.
    @discardableResult
    public static func enable() -> Bool {
        robit_set_child_subreaper() == 0
    }

    /// True when this process is a child subreaper (set by `enable()` or by whoever started it).
    static var isEnabled: Bool { robit_is_child_subreaper() == 1 }
}

/// A process a runtime left running that became robit's child (see `Subreaper`). A thread of its own
/// waits for it and reaps it when it ends; `kill()` and `waitUntilGone` use a pidfd, so a reused pid
/// can never be signalled.
final class AdoptedProcess: Sendable {
    let pid: pid_t
    private let fd: Int32

    /// Adopts `pid` if it is this process's child now; nil otherwise (not a subreaper, a pidfd that
    /// cannot be opened, a process that is someone else's child or gone).
    init?(pid: pid_t) {
        guard pid > 1, Subreaper.isEnabled else { return nil }
        let fd = robit_pidfd_open(pid)
        guard fd >= 0 else { return nil }
        var found: pid_t = 0
        // Not this process's child (ECHILD): then another process reaps it, and robit must not wait.
        guard robit_pidfd_wait(fd, WEXITED | WNOHANG | WNOWAIT, &found) == 0 else {
            close(fd)
            return nil
        }
        let reaperFD = dup(fd)
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

    /// The pid a runtime wrote with `--pid-file`, adopted, or [] if the file is missing or not a pid.
    /// crun's init is the grandchild of the `crun` robit started: it becomes robit's child only when
    /// the process between them exits, which can be after `crun` itself has. That process is adopted
    /// first and waited for (at most `timeout`).
    static func adopt(pidFile path: String, timeout: Duration = .seconds(2)) -> [AdoptedProcess] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return [] }
        if let process = AdoptedProcess(pid: pid) { return [process] }
        guard let parent = parent(of: pid), let middle = AdoptedProcess(pid: parent) else { return [] }
        _ = middle.waitUntilGone(timeout: timeout)
        return AdoptedProcess(pid: pid).map { [$0] } ?? []
    }

    /// The parent pid in /proc/PID/stat (the field after the parenthesized name), or nil.
    static func parent(of pid: pid_t) -> pid_t? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }

    /// SIGKILL, through the pidfd.
    func kill() {
        _ = robit_pidfd_send_signal(fd, SIGKILL)
    }

    /// Waits until the process has ended and is reaped (by its reaper thread, or here), at most
    /// `timeout`. True when it is gone.
    func waitUntilGone(timeout: Duration) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        var r: Int32
        repeat { r = poll(&p, 1, ms) } while r < 0 && errno == EINTR
        guard r == 1 else { return false }
        // Ended: reap it unless the reaper thread already has (then ECHILD).
        var reaped: pid_t = 0
        let e = robit_pidfd_wait(fd, WEXITED | WNOHANG, &reaped)
        return e == 0 || e == ECHILD
    }
}
