import Foundation

/// The lock of one task name (`$XDG_STATE_HOME/robit/locks/NAME.lock`): while any robit holds it, no
/// other `robit batch` runs a task of that name. It is an flock(2) lock, so it is released when the
/// last process holding it ends, however it ends (SIGKILL included). `robit batch` takes it before
/// it queues the task and hands it to the `robit run` it starts (fd 3), so the lock lives while
/// either is alive.
final class TaskLock: Sendable {
    /// The open lock file; closing it releases this process's hold.
    let fd: Int32
    let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Releases this process's hold (a child it was handed to keeps its own until it ends).
    deinit {
        close(fd)
    }

    enum Failure: Error {
        /// Another process holds it: the pid it wrote, if readable.
        case held(path: String, pid: Int32?)
        case unusable(String)
    }

    static func directory(environment: [String: String]) -> String {
        RobitPaths.state(environment) + "/locks"
    }

    /// Takes the lock of task `name` without waiting.
    static func acquire(name: String, environment: [String: String]) throws(Failure) -> TaskLock {
        let dir = directory(environment: environment)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = dir + "/" + name + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .unusable("cannot open the task lock \(path): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            defer { close(fd) }
            guard e == EWOULDBLOCK else { throw .unusable("cannot lock \(path): \(String(cString: strerror(e)))") }
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            let pid = n > 0 ? Int32(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) : nil
            throw .held(path: path, pid: pid)
        }
        // Who holds it, for the message another robit prints.
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return TaskLock(fd: fd, path: path)
    }
}
