import Foundation
import RobitAudit
import RobitExec

/// `robit runs prune`: what robit keeps of old runs, and removing it. A run is old when it ended (or,
/// never having ended, started) before the cut-off. Removed: its run store rows, its audit directory
/// (only when that directory's log is this run's), robit's own run directory and a resumable run's
/// workspace. Kept: a run still running, and every file outside robit's state that is not the run's
/// audit log (a patch written to `output.patch`, for one).
public enum RunPrune {
    public struct Entry: Sendable {
        public var run: String
        public var taskName: String
        public var status: String
        /// When it ended (or started), seconds since 1970.
        public var at: Int64
        public var paths: [String]
        public var bytes: Int64
        /// Why it is kept, when it is.
        public var kept: String?
        /// What went wrong removing it.
        public var error: String?
    }

    /// What pruning runs older than `age` would remove.
    public static func plan(olderThan age: Duration, now: Date = Date(),
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(RunStoreError) -> [Entry] {
        let store = try RunStore(path: RunStore.defaultPath(environment: environment))
        let cutoff = Int64(now.timeIntervalSince1970) - age.components.seconds
        let state = RobitPaths.state(environment)
        return try store.runs(before: cutoff).map { record in
            var entry = Entry(run: record.id, taskName: record.taskName, status: record.status, at: record.endedAt ?? record.startedAt,
                              paths: [], bytes: 0)
            if record.status == "running", isRobit(record.pid) {
                entry.kept = "still running (pid \(record.pid))"
                return entry
            }
            var paths: [String] = []
            let auditDirectory = (record.auditPath as NSString).deletingLastPathComponent
            if FileManager.default.fileExists(atPath: auditDirectory) {
                guard holdsLog(of: record.id, auditDirectory) else {
                    entry.kept = "its audit directory \(auditDirectory) does not hold this run's log; remove it yourself"
                    return entry
                }
                paths.append(auditDirectory)
            }
            for own in [state + "/runs/" + record.id, record.runWorkspace]
            where own.hasPrefix(state + "/") && !paths.contains(own) && FileManager.default.fileExists(atPath: own) {
                if !mounts(under: own).isEmpty {
                    entry.kept = "its workspace \(own) is mounted; run `robit doctor --fix`"
                    return entry
                }
                paths.append(own)
            }
            entry.paths = paths
            entry.bytes = paths.reduce(0) { $0 + size(of: $1) }
            return entry
        }
    }

    /// Removes what `plan` listed (entries it keeps are left alone); returns the entries with their errors.
    public static func apply(_ plan: [Entry], environment: [String: String] = ProcessInfo.processInfo.environment) throws(RunStoreError) -> [Entry] {
        let store = try RunStore(path: RunStore.defaultPath(environment: environment))
        return plan.map { entry in
            guard entry.kept == nil else { return entry }
            var entry = entry
            // Still not running: the plan may be old by now.
            if let record = try? store.get(entry.run), record.status == "running", isRobit(record.pid) {
                entry.kept = "still running (pid \(record.pid))"
                return entry
            }
            for path in entry.paths {
                do { try FileManager.default.removeItem(atPath: path) } catch {
                    entry.error = "cannot remove \(path): \(error.localizedDescription)"
                    return entry
                }
            }
            do { try store.delete(run: entry.run) } catch { entry.error = "\(error)" }
            return entry
        }
    }

    /// Logs of `robit batch` runs (`batches/*`) last written before the cut-off.
    public static func oldBatchLogs(olderThan age: Duration, now: Date = Date(),
                                    environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        let root = RobitPaths.state(environment) + "/batches"
        let cutoff = now.addingTimeInterval(-Double(age.components.seconds))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.sorted().map { root + "/" + $0 }.filter { path in
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date else { return false }
            return modified < cutoff
        }
    }

    /// Whether `pid` is a live robit process (a pid of a run long gone may belong to something else now).
    static func isRobit(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return true }
        return String(decoding: cmdline, as: UTF8.self).contains("robit")
    }

    /// Whether the directory's audit log is the log of run `id` (its first record names the run).
    static func holdsLog(of id: String, _ directory: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: directory + "/" + AuditFormat.logFileName) else {
            // No log (a run that failed before its log was created): only robit's own run directory qualifies.
            return (directory as NSString).lastPathComponent == id
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 1 << 20)) ?? Data()
        guard let line = head.split(separator: UInt8(ascii: "\n"), maxSplits: 1, omittingEmptySubsequences: false).first,
              let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { return false }
        return object["run"] as? String == id
    }

    /// Bytes in a file or directory tree (links not followed).
    static func size(of path: String) -> Int64 {
        var total: Int64 = 0
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        total += Int64(info.st_blocks) * 512
        if (info.st_mode & S_IFMT) == S_IFDIR, let names = try? FileManager.default.contentsOfDirectory(atPath: path) {
            for name in names { total += size(of: path + "/" + name) }
        }
        return total
    }
}
