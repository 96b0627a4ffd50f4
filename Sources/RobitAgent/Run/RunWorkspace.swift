import Foundation
import RobitAudit
import RobitExec
import RobitOCI

/// The run's own view of the task's workspace: `work/` is mounted at /work, an overlay over the
/// user's directory whose changes go to a filesystem of `limits.disk` bytes (`LayeredWorkspace`).
/// The user's directory is never written.
public struct RunWorkspace: Sendable {
    public let root: String
    public var work: String { root + "/work" }
    public static var sandboxUser: User { User.sandbox }
    let layers: LayeredWorkspace?

    /// A workspace that is not mounted (yet).
    init(root: String) {
        self.root = root
        layers = nil
    }

    private init(layers: LayeredWorkspace) {
        root = layers.root
        self.layers = layers
    }

    /// `$XDG_STATE_HOME/robit/workspaces/<run>`.
    public static func defaultRoot(run: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        RobitPaths.state(environment) + "/workspaces/" + run
    }

    /// Mounts a new run's workspace over `source`, with `disk` bytes for what the run writes.
    public static func prepare(from source: String, at root: String, disk: UInt64) throws(SandboxError) -> RunWorkspace {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SandboxError(.invalidInput, "workspace \(source) is not a directory")
        }
        return RunWorkspace(layers: try LayeredWorkspace.create(source: source, root: root, disk: disk, user: sandboxUser))
    }

    /// Mounts an interrupted run's workspace again, with what it changed.
    func reopen(source: String) throws(SandboxError) -> RunWorkspace {
        RunWorkspace(layers: try LayeredWorkspace.reopen(source: source, root: root, user: Self.sandboxUser))
    }

    /// The changes the run made, as a git patch (`git apply`-able, binary files included), paths
    /// relative to the workspace, `.git/` left out.
    public func patch() throws(SandboxError) -> String {
        guard let layers else { throw SandboxError(.invalidInput, "the run's workspace \(root) is not mounted") }
        return try layers.patch()
    }

    /// The workspace's tree now, from the tree it started as (`start`) and what the run changed: only the
    /// changes are read. nil when the workspace is not mounted or its changes cannot be read.
    func tree(from start: WorkspaceManifest) -> WorkspaceManifest? {
        guard let layers, let changes = try? layers.changes() else { return nil }
        return start.applying(changes)
    }

    /// Unmounts the workspace. `done`: the run finished, so its changes (the image) go too; only
    /// what else is in the run's directory (the default patch) stays, and the directory goes when
    /// nothing does. Otherwise the image stays for `robit resume`.
    public func finish(done: Bool) {
        guard let layers else { return }
        if done { layers.remove() } else { layers.unmount() }
    }
}

/// A SHA-256 over a directory tree (paths, types, modes, sizes, contents, link targets; nothing followed),
/// so a replay can prove it starts from the same workspace. File contents are hashed once: the digest of
/// each file is cached by path, inode, size, mtime and ctime as git's index does (`cache`), and a file
/// changed less than two seconds before the cache was written is hashed again next time.
enum WorkspaceTree {
    static func hash(_ root: String, cache: String? = nil) -> String { manifest(root, cache: cache).hash }

    /// The tree's lines (one per entry) and their hash.
    static func manifest(_ root: String, cache: String? = nil) -> WorkspaceManifest {
        let entries = walkTree(root)
        let previous = cache.map(Cache.load) ?? [:]
        var digests = [String?](repeating: nil, count: entries.count)
        var toHash: [Int] = []
        for (i, e) in entries.enumerated() where e.kind == "f" {
            if let hit = previous[e.relative], hit.matches(e.stat) { digests[i] = hit.sha } else { toHash.append(i) }
        }
        // Both cores: reading and hashing a large tree is most of a first run's preparation.
        let computed = UnsafeMutableBufferPointer<String?>.allocate(capacity: toHash.count)
        computed.initialize(repeating: nil)
        defer { computed.deallocate() }
        nonisolated(unsafe) let out = computed
        let paths = toHash.map { root + "/" + entries[$0].relative }
        // One buffer per worker: a fresh 1 MiB buffer per file is an mmap, page faults and a TLB
        // shootdown each time, which cost more than the hashing.
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, paths.count))
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            for j in stride(from: w, to: paths.count, by: workers) { out[j] = fileDigest(paths[j], buffer: buffer) }
        }
        for (j, i) in toHash.enumerated() { digests[i] = computed[j] }
        var lines: [String: String] = [:]
        lines.reserveCapacity(entries.count)
        for (i, e) in entries.enumerated() {
            lines[e.relative] = line(e, digest: digests[i])
        }
        let files = entries.reduce(0) { $0 + ($1.kind == "f" ? 1 : 0) }
        if let cache, !toHash.isEmpty || previous.count != files {
            Cache.save(cache, entries: entries.indices.compactMap { i in
                entries[i].kind == "f" ? digests[i].map { (entries[i], $0) } : nil
            })
        }
        return WorkspaceManifest(lines: lines)
    }

    /// An entry's line: `f MODE SIZE SHA256 PATH`, `d MODE PATH`, `l PATH -> TARGET`, `o MODE PATH`.
    static func line(_ e: Entry, digest: String?) -> String {
        switch e.kind {
        case "f": return "f \(e.mode) \(e.stat.st_size) \(digest ?? AuditHash.sha256Hex([])) \(e.relative)"
        case "d": return "d \(e.mode) \(e.relative)"
        case "l": return "l \(e.relative) -> \(e.target)"
        default: return "o \(e.mode) \(e.relative)"
        }
    }

    /// The entry of one path (`at` is its host path, `relative` its name in the tree), nil if it is gone.
    static func entry(at path: String, relative: String) -> Entry? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        let mode = String(st.st_mode & 0o7777, radix: 8)
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return Entry(relative: relative, kind: "d", mode: mode, stat: st)
        case S_IFREG: return Entry(relative: relative, kind: "f", mode: mode, stat: st)
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: 4097)
            let n = readlink(path, &buffer, 4096)
            let target = n >= 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
            return Entry(relative: relative, kind: "l", mode: mode, stat: st, target: target)
        default: return Entry(relative: relative, kind: "o", mode: mode, stat: st)
        }
    }

    struct Entry {
        var relative: String
        var kind: String
        var mode: String
        var stat: stat
        var target = ""
    }

    /// Every entry below `root`: its top level read here, the directories in it walked on both cores
    /// (a next run's cost is mostly this walk: one fstatat per file).
    static func walkTree(_ root: String) -> [Entry] {
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard rootFD >= 0 else { return [] }
        defer { close(rootFD) }
        var top: [Entry] = []
        let listing = dup(rootFD)
        guard listing >= 0 else { return [] }
        walk(fd: listing, relative: "", into: &top, recurse: false)
        let directories = top.filter { $0.kind == "d" }.map(\.relative)
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, directories.count))
        let found = UnsafeMutableBufferPointer<[Entry]>.allocate(capacity: workers)
        found.initialize(repeating: [])
        defer { found.deinitialize(); found.deallocate() }
        nonisolated(unsafe) let out = found
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var mine: [Entry] = []
            for j in stride(from: w, to: directories.count, by: workers) {
                // By descriptor, as the walk below does: the name is opened in the root it was read from.
                let sub = openat(rootFD, directories[j], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
                if sub >= 0 { walk(fd: sub, relative: directories[j], into: &mine) }
            }
            out[w] = mine
        }
        return top + found.flatMap { $0 }
    }

    /// Walks by directory descriptor (fstatat, openat): no path is looked up twice. Takes ownership of
    /// `fd`; with `recurse` false, lists one level only.
    private static func walk(fd: Int32, relative: String, into entries: inout [Entry], recurse: Bool = true) {
        guard let dir = fdopendir(fd) else {
            close(fd)
            return
        }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let rel = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let mode = String(st.st_mode & 0o7777, radix: 8)
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                entries.append(Entry(relative: rel, kind: "d", mode: mode, stat: st))
                guard recurse else { continue }
                let sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
                if sub >= 0 { walk(fd: sub, relative: rel, into: &entries) }
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: 4097)
                let n = readlinkat(fd, name, &buffer, 4096)
                let target = n >= 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
                entries.append(Entry(relative: rel, kind: "l", mode: mode, stat: st, target: target))
            case S_IFREG:
                entries.append(Entry(relative: rel, kind: "f", mode: mode, stat: st))
            default:
                entries.append(Entry(relative: rel, kind: "o", mode: mode, stat: st))
            }
        }
    }

    /// The SHA-256 of a file's contents, read in `buffer`-sized pieces (nil if it cannot be read).
    static func fileDigest(_ path: String, buffer: UnsafeMutableRawBufferPointer) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var stream = AuditHash.Stream()
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            stream.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return stream.hex()
    }

    /// `path inode size mtime ctime sha`, one file per line (the path last, `\` and newlines escaped).
    enum Cache {
        struct Hit {
            var inode: UInt64, size: Int64, mtime: Int64, ctime: Int64, sha: String
            func matches(_ st: stat) -> Bool {
                inode == UInt64(st.st_ino) && size == Int64(st.st_size) && mtime == nanoseconds(st.st_mtim) && ctime == nanoseconds(st.st_ctim)
            }
        }

        static func nanoseconds(_ t: timespec) -> Int64 { Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) }

        static func load(_ path: String) -> [String: Hit] {
            guard let data = FileManager.default.contents(atPath: path) else { return [:] }
            var hits: [String: Hit] = [:]
            let bytes = [UInt8](data)
            hits.reserveCapacity(bytes.count / 120)
            var i = 0
            // Five space-separated fields, then the path to the end of the line (bytes, parsed by hand:
            // String splitting made a 20,000-file cache cost a fifth of a second).
            func number(_ i: inout Int) -> Int64? {
                var value: Int64 = 0, digits = 0
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39, digits < 19 {
                    value = value * 10 + Int64(bytes[i] - 0x30)
                    i += 1
                    digits += 1
                }
                guard digits > 0, i < bytes.count, bytes[i] == 0x20 else { return nil }
                i += 1
                return value
            }
            while i < bytes.count {
                let lineEnd = bytes[i...].firstIndex(of: 0x0A) ?? bytes.count
                defer { i = lineEnd + 1 }
                var j = i
                guard let inode = number(&j), let size = number(&j), let mtime = number(&j), let ctime = number(&j),
                      j + 65 <= lineEnd, bytes[j + 64] == 0x20 else { continue }
                let sha = String(decoding: bytes[j..<(j + 64)], as: UTF8.self)
                var rel = String(decoding: bytes[(j + 65)..<lineEnd], as: UTF8.self)
                if bytes[(j + 65)..<lineEnd].contains(0x5C) {
                    rel = rel.replacingOccurrences(of: "\\n", with: "\n").replacingOccurrences(of: "\\\\", with: "\\")
                }
                hits[rel] = Hit(inode: UInt64(inode), size: size, mtime: mtime, ctime: ctime, sha: sha)
            }
            return hits
        }

        static func save(_ path: String, entries: [(Entry, String)]) {
            // "Racy" entries (changed within 2 s of now) could change again within the timestamps'
            // granularity without the cache noticing: they are not kept.
            let now = Int64(Date().timeIntervalSince1970 * 1e9) - 2_000_000_000
            var out: [UInt8] = []
            out.reserveCapacity(entries.count * 140)
            for (e, sha) in entries {
                let mtime = nanoseconds(e.stat.st_mtim), ctime = nanoseconds(e.stat.st_ctim)
                guard mtime < now && ctime < now else { continue }
                var rel = e.relative
                if rel.utf8.contains(0x5C) || rel.utf8.contains(0x0A) {
                    rel = rel.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
                }
                out += "\(e.stat.st_ino) \(e.stat.st_size) \(mtime) \(ctime) ".utf8
                out += sha.utf8
                out.append(0x20)
                out += rel.utf8
                out.append(0x0A)
            }
            try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                     attributes: [.posixPermissions: 0o700])
            let temporary = path + ".\(getpid()).tmp"
            if FileManager.default.createFile(atPath: temporary, contents: Data(out), attributes: [.posixPermissions: 0o600]) {
                rename(temporary, path)
            }
        }
    }

    /// Where the cache of a workspace directory lives: `$XDG_STATE_HOME/robit/tree-cache/<hash of its path>`.
    static func cachePath(for directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        RobitPaths.state(environment) + "/tree-cache/" + String(AuditHash.sha256Hex(directory).prefix(32))
    }
}
