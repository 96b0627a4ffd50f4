import CRobitSys
import Foundation
import RobitOCI

/// A workspace the sandbox changes without touching the user's directory, prepared in time that does
/// not depend on its size: an overlay mount whose read-only lower layer is the user's directory
/// (through an idmapped bind mount, so that the owner's files appear owned by the sandbox user) and
/// whose upper layer lives on an ext4 filesystem of the disk limit's size in a sparse image file, so
/// a full disk is ENOSPC for the command. The patch is computed from the upper layer alone.
///
///     ROOT/disk.img   the upper layer's filesystem (kept for a resume until the run is done)
///     ROOT/layer      disk.img mounted: upper/ and the overlay's work directory
///     ROOT/lower      the user's directory, bind-mounted (idmapped) read-only as the lower layer
///     ROOT/work       the overlay: what the sandbox sees at /work
///
/// A robit killed while the mounts exist leaves them registered in `STATE/layers/`, and the next
/// robit's sweep (or `robit doctor --fix`) unmounts them.
public struct LayeredWorkspace: Sendable {
    public let root: String
    /// The user's directory, resolved.
    public let source: String
    public let user: User
    let state: SandboxState
    public var merged: String { root + "/work" }
    var lower: String { root + "/lower" }
    var layer: String { root + "/layer" }
    var upper: String { layer + "/upper" }
    var overlayWork: String { layer + "/.overlay-work" }
    var image: String { root + "/disk.img" }
    /// Where the lower layer is: `lower`, or a copy on the layer filesystem where idmapped mounts are
    /// not supported by the source's filesystem.
    let lowerLayer: String

    /// ext4 keeps about 1/64 of a filesystem for its inode tables and bitmaps; the image is made that
    /// much larger, so that the sandbox can write `disk` bytes.
    static func imageSize(disk: UInt64) -> UInt64 { disk + disk / 32 + (4 << 20) }

    /// Mounts a fresh workspace over `source` at `root` (created, must not exist or be empty) with
    /// `disk` bytes for what the sandbox writes.
    public static func create(source: String, root: String, disk: UInt64, user: User,
                              state: SandboxState = .default()) throws(SandboxError) -> LayeredWorkspace {
        let resolved = try Workspace.validate(source)
        try checkRoot(root)
        guard geteuid() == 0 else {
            throw SandboxError(.hostNotReady, "robit prepares a run's workspace as root (a loop device, an overlay and an idmapped mount); run it with sudo")
        }
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        } catch {
            throw SandboxError(.createFailed, "cannot create the run's workspace \(root): \(error.localizedDescription)")
        }
        let fd = open(root + "/disk.img", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SandboxError(.createFailed, "cannot create \(root)/disk.img: \(String(cString: strerror(errno)))") }
        let sized = ftruncate(fd, off_t(imageSize(disk: disk))) == 0
        close(fd)
        guard sized else { throw SandboxError(.createFailed, "cannot size \(root)/disk.img: \(String(cString: strerror(errno)))") }
        let mkfs = try? HostCommand.run("/sbin/mkfs.ext4", [
            "-q", "-F", "-m", "0", "-O", "^has_journal,^resize_inode", "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
            "-L", "robit-work", root + "/disk.img",
        ], environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"])
        guard let mkfs, mkfs.status == .exited(0) else {
            throw SandboxError(.hostNotReady, "cannot make the workspace's filesystem with mkfs.ext4 (install e2fsprogs, or run ./scripts/setup): \(mkfs.map { String(decoding: $0.stderr, as: UTF8.self).prefix(300) } ?? "not found")")
        }
        return try mount(source: resolved, root: root, user: user, state: state, fresh: true)
    }

    /// Mounts the workspace of an earlier run again (a resume): its image holds what that run changed.
    public static func reopen(source: String, root: String, user: User, state: SandboxState = .default()) throws(SandboxError) -> LayeredWorkspace {
        let resolved = try Workspace.validate(source)
        try checkRoot(root)
        guard FileManager.default.fileExists(atPath: root + "/disk.img") else {
            throw SandboxError(.invalidInput, "\(root)/disk.img is gone: the run's changes are not there any more")
        }
        return try mount(source: resolved, root: root, user: user, state: state, fresh: false)
    }

    /// overlayfs separates its options with commas and layers with colons: robit's own paths must not hold them.
    static func checkRoot(_ root: String) throws(SandboxError) {
        guard root.hasPrefix("/"), !root.contains(where: { ",:\\\n".contains($0) }) else {
            throw SandboxError(.invalidInput, "the run's workspace directory \(root) must be an absolute path without commas, colons, backslashes or newlines (set XDG_STATE_HOME to such a path)")
        }
    }

    private static func mount(source: String, root: String, user: User, state: SandboxState, fresh: Bool) throws(SandboxError) -> LayeredWorkspace {
        let registry = LayerRegistry(state: state)
        try registry.register(root: root)
        var mounted: [String] = []
        func fail(_ message: String, _ code: SandboxError.Code = .createFailed) -> SandboxError {
            for target in mounted.reversed() { umount2(target, Int32(MNT_DETACH)) }
            registry.remove(root: root)
            return SandboxError(code, message)
        }
        for dir in ["layer", "lower", "work"] { mkdir(root + "/" + dir, 0o700) }
        var step: UnsafePointer<CChar>?
        let layer = root + "/layer"
        var rc = robit_loop_mount(root + "/disk.img", layer, "ext4", UInt(MS_NOSUID | MS_NODEV), &step)
        guard rc == 0 else {
            throw fail("cannot mount the workspace's filesystem (\(step.map { String(cString: $0) } ?? "loop"): \(String(cString: strerror(rc)))); robit needs loop devices (`modprobe loop`) and ext4", .hostNotReady)
        }
        mounted.append(layer)
        var st = stat()
        let owner = stat(source, &st) == 0 ? User(uid: st.st_uid, gid: st.st_gid) : user
        let upper = layer + "/upper", work = layer + "/.overlay-work"
        if fresh {
            mkdir(upper, 0o755)
            chown(upper, user.uid, user.gid)
            // The overlay's root is the upper directory: it gets the mode of the user's directory.
            chmod(upper, (st.st_mode & 0o7777) | 0o700)
            mkdir(work, 0o700)
        }
        var lowerLayer = root + "/lower"
        let idmap = owner.uid != user.uid || owner.gid != user.gid
        rc = robit_bind_mount(source, lowerLayer, owner.uid, owner.gid, user.uid, user.gid, idmap ? 1 : 0, &step)
        if rc == 0 {
            // Read-only: the sandbox's writes go to the upper layer, and nothing robit does writes the user's files.
            Foundation.mount("none", lowerLayer, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV), nil)
            mounted.append(lowerLayer)
        } else if idmap && [EINVAL, ENOTSUP, EPERM, ENOSYS].contains(rc) {
            // The source's filesystem has no idmapped mounts: the lower layer is a copy, on the layer
            // filesystem, owned by the sandbox user (it counts against the disk limit).
            lowerLayer = layer + "/lower-copy"
            if fresh {
                mkdir(lowerLayer, 0o755)
                for (tool, args) in [("/bin/cp", ["-a", "--no-preserve=ownership", "--", source + "/.", lowerLayer + "/"]),
                                     ("/bin/chown", ["-R", "-h", "\(user.uid):\(user.gid)", "--", lowerLayer])] {
                    let result = try? HostCommand.run(tool, args)
                    guard let result, result.status == .exited(0) else {
                        throw fail("cannot copy the workspace \(source) (its filesystem has no idmapped mounts) into the run's filesystem: \(result.map { String(decoding: $0.stderr, as: UTF8.self).prefix(300) } ?? "\(tool) not found"); a larger limits.disk may be needed")
                    }
                }
            }
        } else {
            throw fail("cannot mount the workspace \(source) as the lower layer (\(step.map { String(cString: $0) } ?? "bind"): \(String(cString: strerror(rc))))")
        }
        let options = "lowerdir=\(lowerLayer),upperdir=\(upper),workdir=\(work),redirect_dir=off,metacopy=off,index=off,xino=off"
        guard Foundation.mount("overlay", root + "/work", "overlay", UInt(MS_NOSUID | MS_NODEV), options) == 0 else {
            let e = errno
            throw fail("cannot mount the workspace overlay on \(root)/work: \(String(cString: strerror(e))); robit needs overlayfs (`modprobe overlay`)", .hostNotReady)
        }
        return LayeredWorkspace(root: root, source: source, user: user, state: state, lowerLayer: lowerLayer)
    }

    /// Unmounts the overlay and its layers (the image stays). Safe to call twice.
    public func unmount() {
        for target in [merged, lower, layer] { umount2(target, Int32(MNT_DETACH)) }
        LayerRegistry(state: state).remove(root: root)
    }

    /// Unmounts and deletes everything but `keeping` (file names in ROOT, e.g. the patch); removes ROOT if nothing is kept.
    public func remove(keeping: Set<String> = []) {
        unmount()
        let fm = FileManager.default
        for name in ["disk.img", "layer", "lower", "work", "patch-stage"] where !keeping.contains(name) {
            if name == "disk.img" { unlink(root + "/disk.img") } else { rmdir(root + "/" + name) }
        }
        if ((try? fm.contentsOfDirectory(atPath: root)) ?? ["?"]).isEmpty { rmdir(root) }
    }

    // MARK: - The patch

    /// The run's changes as a git patch (`git apply`-able, binary files included), paths relative to
    /// the workspace, `.git/` left out. Only what the upper layer holds is looked at and copied.
    public func patch() throws(SandboxError) -> String {
        let stage = root + "/patch-stage"
        let fm = FileManager.default
        try? fm.removeItem(atPath: stage)
        defer { try? fm.removeItem(atPath: stage) }
        for dir in [stage, stage + "/a", stage + "/b"] { mkdir(dir, 0o700) }
        do {
            try collect(relative: "", into: stage)
        } catch {
            throw SandboxError(.createFailed, "cannot collect the run's changes: \(error.message)")
        }
        // git runs outside any repository, with no user or system config, so nothing the sandbox
        // wrote can configure it.
        let environment = ["PATH=/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=/nonexistent",
                           "GIT_CEILING_DIRECTORIES=\(stage)", "LC_ALL=C"]
        let result: HostCommand.Result
        do {
            result = try HostCommand.run("/usr/bin/env", ["git", "-C", stage, "-c", "core.quotepath=off", "diff", "--no-index", "--binary",
                                                          "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames", "--", "a", "b"],
                                         environment: environment)
        } catch {
            throw SandboxError(.hostNotReady, "git is needed for the patch: \(error)")
        }
        // git diff --no-index: 0 no changes, 1 changes; env: 127 when git is not installed.
        guard case .exited(let code) = result.status, code <= 1 else {
            throw SandboxError(result.status == .exited(127) ? .hostNotReady : .createFailed,
                               result.status == .exited(127) ? "git is needed for the patch: it is not installed"
                                                             : "git diff failed (\(result.status)): \(String(decoding: result.stderr, as: UTF8.self).prefix(500))")
        }
        return PatchPaths.relativize(String(decoding: result.stdout, as: UTF8.self))
    }

    /// Copies what changed below `relative` into stage/a (the lower layer's version) and stage/b (the
    /// upper layer's), so that git compares only those.
    private func collect(relative: String, into stage: String) throws(SandboxError) {
        let upperDir = relative.isEmpty ? upper : upper + "/" + relative
        for name in try TreeCopy.names(upperDir) {
            let rel = relative.isEmpty ? name : relative + "/" + name
            if relative.isEmpty && name == ".git" { continue }
            let u = upper + "/" + rel, l = lowerLayer + "/" + rel
            var us = stat(), ls = stat()
            guard lstat(u, &us) == 0 else { continue }
            let lowerExists = lstat(l, &ls) == 0
            let a = stage + "/a/" + rel, b = stage + "/b/" + rel
            switch us.st_mode & S_IFMT {
            case S_IFCHR where us.st_rdev == 0:
                // A whiteout: deleted.
                if lowerExists { try TreeCopy.copy(l, to: a, parentsFrom: stage + "/a") }
            case S_IFDIR:
                if lowerExists && ls.st_mode & S_IFMT == S_IFDIR && !Self.isOpaque(u) {
                    try collect(relative: rel, into: stage)
                } else {
                    if lowerExists { try TreeCopy.copy(l, to: a, parentsFrom: stage + "/a") }
                    try TreeCopy.copy(u, to: b, parentsFrom: stage + "/b")
                }
            default:
                if lowerExists && ls.st_mode & S_IFMT == S_IFREG && us.st_mode & S_IFMT == S_IFREG && ls.st_mode == us.st_mode
                    && TreeCopy.sameContents(l, u, size: us.st_size) { continue }
                if lowerExists { try TreeCopy.copy(l, to: a, parentsFrom: stage + "/a") }
                try TreeCopy.copy(u, to: b, parentsFrom: stage + "/b")
            }
        }
    }

    static func isOpaque(_ path: String) -> Bool { robit_overlay_opaque(path) == 1 }
}

/// The registry of mounted workspaces, so that the mounts of a robit that was killed are found.
struct LayerRegistry {
    var state: SandboxState
    var directory: String { state.root + "/layers" }

    struct Entry: Codable {
        var pid: Int32
        var startTime: UInt64
        var root: String
    }

    func file(for root: String) -> String {
        directory + "/" + StableName.hex(root) + ".json"
    }

    func register(root: String) throws(SandboxError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let me = getpid()
            let entry = Entry(pid: me, startTime: SandboxState.startTime(of: me) ?? 0, root: root)
            try OCIBundle.write(JSONEncoder().encode(entry), to: file(for: root), mode: 0o600)
        } catch {
            throw SandboxError(.createFailed, "cannot register the run's workspace mounts in \(directory): \(error.localizedDescription)")
        }
    }

    func remove(root: String) { unlink(file(for: root)) }

    /// Entries whose robit is gone.
    func orphaned() -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { name in
            guard let data = FileManager.default.contents(atPath: directory + "/" + name),
                  let entry = try? JSONDecoder().decode(Entry.self, from: data) else { return nil }
            return SandboxState.startTime(of: entry.pid) == entry.startTime ? nil : entry
        }
    }

    /// Unmounts what dead robits left mounted.
    func sweep(remove: Bool) -> [Leftover] {
        orphaned().map { entry in
            var item = Leftover(id: (entry.root as NSString).lastPathComponent, runtime: nil, kind: "workspace mounts of a robit that is gone",
                                removed: false, detail: "not removed")
            if remove {
                for name in ["work", "lower", "layer"] { umount2(entry.root + "/" + name, Int32(MNT_DETACH)) }
                let still = Set(mounts(under: entry.root))
                item.removed = still.isEmpty
                item.detail = still.isEmpty ? "" : "still mounted: \(still.sorted().joined(separator: ", "))"
                if still.isEmpty { self.remove(root: entry.root) }
            }
            return item
        }
    }
}

/// A short, stable file name for a path (FNV-1a; only root writes the directory it names files in).
enum StableName {
    static func hex(_ text: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }
}

/// The paths of a `git diff --no-index -- a b` made workspace-relative.
public enum PatchPaths {
    /// `diff --git a/a/x b/b/x` → `diff --git a/x b/x` (also when git names both sides by one
    /// directory, as it does for added and deleted files), `--- a/a/x` → `--- a/x`, `+++ b/b/x` →
    /// `+++ b/x`; quoted names alike.
    public static func relativize(_ diff: String) -> String {
        var out: [String] = []
        for line in diff.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("diff --git ") {
                let rest = line.dropFirst("diff --git ".count)
                // Both names have the same length: the same path below a/D/ and b/D/.
                let half = (rest.count - 1) / 2
                if rest.count % 2 == 1, rest.count >= 11 {
                    let first = rest.prefix(half), second = rest.suffix(half)
                    out.append("diff --git " + strip(first, side: "a") + " " + strip(second, side: "b"))
                    continue
                }
            } else if line.hasPrefix("--- ") && line != "--- /dev/null" {
                out.append("--- " + strip(line.dropFirst(4), side: "a"))
                continue
            } else if line.hasPrefix("+++ ") && line != "+++ /dev/null" {
                out.append("+++ " + strip(line.dropFirst(4), side: "b"))
                continue
            }
            out.append(String(line))
        }
        return out.joined(separator: "\n")
    }

    /// `a/D/path` → `a/path`, `"a/D/path"` → `"a/path"`, where D is a or b; anything else unchanged.
    static func strip(_ name: Substring, side: String) -> String {
        let quoted = name.hasPrefix("\"")
        let body = quoted ? name.dropFirst() : name
        for d in ["a", "b"] where body.hasPrefix(side + "/" + d + "/") {
            return (quoted ? "\"" : "") + side + "/" + body.dropFirst(4)
        }
        return String(name)
    }
}

/// Copies for the patch: regular files, symlinks and directories, modes kept, nothing followed.
enum TreeCopy {
    static func names(_ dir: String) throws(SandboxError) -> [String] {
        guard let d = opendir(dir) else { throw SandboxError(.createFailed, "cannot read \(dir): \(String(cString: strerror(errno)))") }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Copies `source` to `target`, creating the directories between `base` and it.
    static func copy(_ source: String, to target: String, parentsFrom base: String) throws(SandboxError) {
        var missing: [String] = []
        var dir = (target as NSString).deletingLastPathComponent
        while dir.count > base.count && access(dir, F_OK) != 0 {
            missing.append(dir)
            dir = (dir as NSString).deletingLastPathComponent
        }
        for d in missing.reversed() { mkdir(d, 0o755) }
        try copyTree(source, to: target)
    }

    private static func copyTree(_ source: String, to target: String) throws(SandboxError) {
        var st = stat()
        guard lstat(source, &st) == 0 else { return }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            mkdir(target, 0o755)
            for name in try names(source) { try copyTree(source + "/" + name, to: target + "/" + name) }
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: 4097)
            let n = readlink(source, &buffer, 4096)
            guard n >= 0 else { return }
            buffer[n] = 0
            symlink(buffer, target)
        case S_IFREG:
            let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard input >= 0 else { throw SandboxError(.createFailed, "cannot read \(source): \(String(cString: strerror(errno)))") }
            defer { close(input) }
            let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0o777)
            guard output >= 0 else { throw SandboxError(.createFailed, "cannot write \(target): \(String(cString: strerror(errno)))") }
            defer { close(output) }
            fchmod(output, st.st_mode & 0o777)
            var remaining = Int(st.st_size)
            while remaining > 0 {
                let n = sendfile(output, input, nil, min(remaining, 1 << 30))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw SandboxError(.createFailed, "cannot copy \(source): \(String(cString: strerror(errno)))") }
                remaining -= n
            }
        default:
            break  // devices, fifos and sockets are not part of a patch
        }
    }

    static func sameContents(_ a: String, _ b: String, size: off_t) -> Bool {
        var sa = stat()
        guard lstat(a, &sa) == 0, sa.st_size == size else { return false }
        guard let x = FileHandle(forReadingAtPath: a), let y = FileHandle(forReadingAtPath: b) else { return false }
        defer { try? x.close(); try? y.close() }
        while true {
            let p = x.readData(ofLength: 1 << 20), q = y.readData(ofLength: 1 << 20)
            if p != q { return false }
            if p.isEmpty { return true }
        }
    }
}

/// One entry of a run's upper layer: what the run changed at `relative`.
public struct LayerChange: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Deleted, with everything below it (a whiteout).
        case removed
        /// The upper layer's entry at `path` replaces the lower's and everything below it.
        case replaced
        /// A directory of both layers: its own entry is the upper's, what is below it is merged.
        case merged
    }
    public var relative: String
    public var kind: Kind
    /// The upper layer's entry (host path).
    public var path: String
}

extension LayeredWorkspace {
    /// Everything the upper layer holds, parents before children: the run's changes to the tree.
    public func changes() throws(SandboxError) -> [LayerChange] {
        var out: [LayerChange] = []
        try changes(relative: "", replacing: false, into: &out)
        return out
    }

    private func changes(relative: String, replacing: Bool, into out: inout [LayerChange]) throws(SandboxError) {
        let upperDir = relative.isEmpty ? upper : upper + "/" + relative
        for name in try TreeCopy.names(upperDir) {
            let rel = relative.isEmpty ? name : relative + "/" + name
            let u = upper + "/" + rel, l = lowerLayer + "/" + rel
            var us = stat(), ls = stat()
            guard lstat(u, &us) == 0 else { continue }
            let lowerExists = !replacing && lstat(l, &ls) == 0
            switch us.st_mode & S_IFMT {
            case S_IFCHR where us.st_rdev == 0:
                out.append(LayerChange(relative: rel, kind: .removed, path: u))
            case S_IFDIR:
                let merge = lowerExists && ls.st_mode & S_IFMT == S_IFDIR && !Self.isOpaque(u)
                out.append(LayerChange(relative: rel, kind: merge ? .merged : .replaced, path: u))
                try changes(relative: rel, replacing: !merge, into: &out)
            default:
                out.append(LayerChange(relative: rel, kind: .replaced, path: u))
            }
        }
    }
}
