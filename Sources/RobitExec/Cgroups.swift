import Foundation
import RobitSync

/// The host's cgroup mounts (v1 controllers, the v2 unified tree, or both in hybrid mode).
public struct CgroupMounts: Sendable {
    public struct Entry: Sendable, Equatable {
        public var mountPoint: String
        /// v1 controllers on this hierarchy; empty for cgroup2.
        public var controllers: [String]
        public var isV2: Bool
    }

    public var entries: [Entry]

    public static func current() -> CgroupMounts {
        guard let text = KernelFile.read("/proc/self/mountinfo") else { return CgroupMounts(entries: []) }
        var entries: [Entry] = []
        for line in text.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let left = halves[0].split(separator: " ")
            let right = halves[1].split(separator: " ")
            guard left.count >= 5, right.count >= 3 else { continue }
            let mountPoint = unescapeMountPath(String(left[4]))
            switch right[0] {
            case "cgroup2":
                entries.append(Entry(mountPoint: mountPoint, controllers: [], isV2: true))
            case "cgroup":
                let options = right[2].split(separator: ",").map(String.init)
                let known = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio", "perf_event",
                             "net_prio", "hugetlb", "pids", "rdma", "misc"]
                var controllers = options.filter { known.contains($0) }
                if let name = options.first(where: { $0.hasPrefix("name=") }) { controllers.append(name) }
                entries.append(Entry(mountPoint: mountPoint, controllers: controllers, isV2: false))
            default:
                continue
            }
        }
        return CgroupMounts(entries: entries)
    }

    /// Every directory that may hold the cgroup at `path`: one per hierarchy, and one per plain
    /// directory under /sys/fs/cgroup that nothing is mounted on (a runtime creates the path there
    /// too when a controller's usual mount point exists but is empty).
    public func directories(for path: String) -> [String] {
        var roots = entries.map(\.mountPoint)
        if !isUnifiedOnly, let names = try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup") {
            for name in names.sorted() where !roots.contains("/sys/fs/cgroup/" + name) {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/" + name, isDirectory: &isDir), isDir.boolValue {
                    roots.append("/sys/fs/cgroup/" + name)
                }
            }
        }
        return roots.map { $0 + path }
    }

    /// /sys/fs/cgroup is itself the cgroup2 tree: its subdirectories are cgroups, not mount points.
    var isUnifiedOnly: Bool { entries.contains { $0.isV2 && $0.mountPoint == "/sys/fs/cgroup" } }

    /// Directories under /sys/fs/cgroup named like a controller with nothing mounted on them.
    public var unmountedControllerDirectories: [String] {
        if isUnifiedOnly { return [] }
        let mounted = Set(entries.map(\.mountPoint))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        return names.sorted().map { "/sys/fs/cgroup/" + $0 }.filter { path in
            var isDir: ObjCBool = false
            return !mounted.contains(path) && FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
                && !entries.contains { $0.mountPoint.hasPrefix(path + "/") }
        }
    }

    /// The files that count OOM kills for the cgroup at `path`, in the order to try them.
    func oomKillFiles(for path: String) -> [String] {
        entries.filter { $0.controllers.contains("memory") }.prefix(1).map { $0.mountPoint + path + "/memory.oom_control" }
            + entries.filter(\.isV2).map { $0.mountPoint + path + "/memory.events" }
    }

    /// Host pids of the processes in the cgroup at `path`.
    func processes(in path: String) -> [Int32] {
        var files: [String] = []
        if let v1 = entries.first(where: { $0.controllers.contains("pids") || $0.controllers.contains("memory") }) {
            files.append(v1.mountPoint + path + "/cgroup.procs")
        }
        files += entries.filter(\.isV2).map { $0.mountPoint + path + "/cgroup.procs" }
        for file in files {
            if let text = KernelFile.read(file) {
                return text.split(separator: "\n").compactMap { Int32($0) }
            }
        }
        return []
    }

    /// SIGKILLs, from the host, the processes of the cgroup at `path` that belong to command `tag`
    /// (`ROBIT_EXEC=tag` in their environment) or to no running command (no tag, or one not in
    /// `keep`), so dropping the variable does not let a process outlive its command. With `tag` nil,
    /// every process but the sandbox's init. Repeats until a pass finds none. For runtimes whose
    /// processes are host processes.
    func killTagged(in path: String, tag: String?, keep: Set<String> = []) {
        let prefix = Array("ROBIT_EXEC=".utf8)
        for _ in 0..<200 {
            var found = 0
            for pid in processes(in: path) where !Self.isNamespaceInit(pid) {
                if let tag {
                    guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
                    let value = environ.split(separator: 0).first { $0.starts(with: prefix) }
                        .map { String(decoding: $0.dropFirst(prefix.count), as: UTF8.self) }
                    if let value, value != tag, keep.contains(value) { continue }
                }
                if Foundation.kill(pid, SIGKILL) == 0 { found += 1 }
            }
            if found == 0 { return }
            usleep(5_000)
        }
    }

    /// True for a process that is PID 1 of its pid namespace (the sandbox's init).
    static func isNamespaceInit(_ pid: Int32) -> Bool {
        guard let status = KernelFile.read("/proc/\(pid)/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") }) else { return false }
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last == "1"
    }

    /// The value of the `key value` line of a small cgroup file, read again from its start: a cgroup
    /// file's contents are made anew at each read from offset 0, so the file can stay open (no path
    /// lookup per read).
    static func readCounter(fd: Int32, key: String) -> Int? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { buffer -> Int? in
            let count = pread(fd, buffer.baseAddress, buffer.count, 0)
            guard count > 0 else { return nil }
            // Lines of `key value`: find the one whose key matches, bytewise.
            let bytes = UnsafeBufferPointer(rebasing: buffer[0..<count])
            let wanted = Array(key.utf8)
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
                let keyEnd = lineStart + wanted.count
                if keyEnd < lineEnd, bytes[keyEnd] == UInt8(ascii: " "), bytes[lineStart..<keyEnd].elementsEqual(wanted) {
                    var value = 0
                    var index = keyEnd + 1
                    guard index < lineEnd else { return nil }
                    while index < lineEnd {
                        let digit = Int(bytes[index]) - 48
                        guard (0...9).contains(digit) else { return nil }
                        value = value &* 10 &+ digit
                        index += 1
                    }
                    return value
                }
                lineStart = lineEnd + 1
            }
            return nil
        }
    }

    /// True in hybrid mode when the v2 tree still has controllers (hugetlb here), which crun refuses.
    public var crunHybridQuirk: Bool {
        guard entries.contains(where: { !$0.isV2 }) else { return false }
        for v2 in entries where v2.isV2 {
            let controllers = KernelFile.read(v2.mountPoint + "/cgroup.controllers") ?? ""
            if !controllers.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return true }
        }
        return false
    }

    /// Removes the cgroup directories at `path` in every hierarchy, deepest first; with
    /// `killing`, processes still in them are killed first (only for a sandbox known to be ours).
    /// Returns what is left.
    @discardableResult
    public func remove(path: String, killing: Bool = true) -> [String] {
        var left: [String] = []
        let plain = Set(unmountedControllerDirectories.map { $0 + path })
        for dir in directories(for: path) where FileManager.default.fileExists(atPath: dir) {
            // Not a cgroup at all: ordinary files a runtime wrote on the tmpfs.
            if plain.contains(dir) { try? FileManager.default.removeItem(atPath: dir) } else { removeTree(dir, killing: killing) }
            if FileManager.default.fileExists(atPath: dir) { left.append(dir) }
        }
        return left
    }

    private func removeTree(_ dir: String, killing: Bool) {
        if let children = try? FileManager.default.contentsOfDirectory(atPath: dir) {
            for child in children {
                var isDir: ObjCBool = false
                let full = dir + "/" + child
                if FileManager.default.fileExists(atPath: full, isDirectory: &isDir), isDir.boolValue { removeTree(full, killing: killing) }
            }
        }
        // A cgroup still holding processes cannot go: kill them first (it is ours, under /robit).
        for attempt in 0..<50 {
            if rmdir(dir) == 0 || errno == ENOENT || !killing { return }
            if let procs = KernelFile.read(dir + "/cgroup.procs") {
                for pid in procs.split(separator: "\n").compactMap({ Int32($0) }) { Foundation.kill(pid, SIGKILL) }
            }
            usleep(attempt < 10 ? 10_000 : 100_000)
        }
    }

    /// Sandbox ids that have a cgroup under /robit in any hierarchy.
    public func sandboxIDs() -> Set<String> {
        var ids = Set<String>()
        for dir in directories(for: "/robit") {
            for child in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where child.hasPrefix("robit-") {
                ids.insert(child)
            }
        }
        return ids
    }
}

/// Mount paths in /proc/self/mountinfo escape space, tab, newline and backslash as octal.
func unescapeMountPath(_ s: String) -> String {
    guard s.contains("\\") else { return s }
    var out: [UInt8] = []
    let bytes = Array(s.utf8)
    var i = 0
    while i < bytes.count {
        if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
           let v = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
            out.append(v)
            i += 4
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Mount points at or below `prefix`, deepest first.
package func mounts(under prefix: String) -> [String] {
    guard let text = KernelFile.read("/proc/self/mountinfo") else { return [] }
    var result: [String] = []
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count > 4 else { continue }
        let mp = unescapeMountPath(String(fields[4]))
        if mp == prefix || mp.hasPrefix(prefix + "/") { result.append(mp) }
    }
    return result.sorted { $0.count > $1.count }
}

/// A sandbox's count of OOM kills, read before and after every command. The file stays open between
/// reads; when its cgroup was made anew (a restarted sandbox), the old file fails and is opened again.
final class OOMKillCounter: Sendable {
    private let files: [String]
    private let fd = Locked<Int32>(-1)

    init(cgroups: CgroupMounts, path: String) {
        files = cgroups.oomKillFiles(for: path)
    }

    func read() -> Int? {
        fd.withLock { fd in
            if fd >= 0, let n = CgroupMounts.readCounter(fd: fd, key: "oom_kill") { return n }
            if fd >= 0 { close(fd); fd = -1 }
            for file in files {
                let candidate = open(file, O_RDONLY | O_CLOEXEC)
                guard candidate >= 0 else { continue }
                if let n = CgroupMounts.readCounter(fd: candidate, key: "oom_kill") {
                    fd = candidate
                    return n
                }
                close(candidate)
            }
            return nil
        }
    }

    deinit {
        fd.withLock { if $0 >= 0 { close($0) } }
    }
}
