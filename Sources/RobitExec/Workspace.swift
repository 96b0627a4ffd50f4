import Foundation
import RobitOCI

/// The workspace directory: the only host path a sandbox can write.
///
/// The sandbox runs as the workspace's owner (uid and gid of the directory), so files it writes
/// belong to the same user as the files around them. A root-owned workspace is refused, because the
/// sandbox never runs as root: chown it, or pass another user explicitly.
public enum Workspace {
    /// Directories that can never be a workspace, nor sit inside one.
    static let system = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/proc", "/sys", "/dev", "/run",
                         "/var", "/root", "/opt", "/srv", "/snap"]

    /// The real absolute path of `path`, checked to be a directory that is safe to hand to a sandbox.
    /// `scratch` is the exact path of a scratch workspace robit itself just made (under the state root).
    public static func validate(_ path: String, scratch: String? = nil) throws(SandboxError) -> String {
        let resolved = try realDirectory(path, what: "workspace")
        if resolved == scratch { return resolved }
        if isSystem(resolved) && !resolved.hasPrefix("/var/tmp/") {
            throw SandboxError(.invalidInput, "workspace \(resolved) is or contains a system directory; give a project directory")
        }
        return resolved
    }

    static func realDirectory(_ path: String, what: String) throws(SandboxError) -> String {
        guard let real = realpath(path, nil) else {
            throw SandboxError(.invalidInput, "\(what) \(path) does not exist (create it, or pass an existing directory)")
        }
        let resolved = String(cString: real)
        free(real)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDir), isDir.boolValue else {
            throw SandboxError(.invalidInput, "\(what) \(path) is not a directory")
        }
        return resolved
    }

    /// `/`, a system directory, something inside one, or something containing one.
    static func isSystem(_ resolved: String) -> Bool {
        resolved == "/" || system.contains { $0.hasPrefix(resolved + "/") || $0 == resolved }
            || systemTrees.contains { resolved.hasPrefix($0 + "/") }
    }

    /// System directories whose every descendant is system too. Below /root, /var, /opt, /srv users keep
    /// their own projects and state (a root user's ~/project, /var/lib/ci/...).
    static let systemTrees = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/proc", "/sys", "/dev", "/run"]

    /// A prepared root filesystem: a real directory that is not the host's root or a system
    /// directory, not the workspace or robit's state, owned by root and writable by nobody else, so
    /// that what the sandbox sees as its read-only system cannot be changed under it.
    public static func validateRootfs(_ path: String, workspace: String, state: SandboxState) throws(SandboxError) -> String {
        let resolved = try realDirectory(path, what: "rootfs")
        let stateRoot = (try? realDirectory(state.root, what: "state")) ?? state.root
        func overlaps(_ a: String, _ b: String) -> Bool { a == b || a.hasPrefix(b + "/") || b.hasPrefix(a + "/") }
        if isSystem(resolved) {
            throw SandboxError(.invalidInput, "rootfs \(resolved) is the host's root or a system directory; give a prepared root filesystem directory")
        }
        if overlaps(resolved, workspace) || overlaps(resolved, stateRoot) {
            throw SandboxError(.invalidInput, "rootfs \(resolved) overlaps the workspace or robit's state directory")
        }
        if let problem = SecurePath.problem(resolved) {
            throw SandboxError(.invalidInput, "rootfs \(resolved): \(problem)")
        }
        return resolved
    }

    /// Why the sandbox cannot run as `user`, or nil. uid/gid 0 is root, and -1 (4294967295) means
    /// "unchanged" to setresuid, i.e. root again.
    public static func problem(with user: User) -> String? {
        if user.uid == 0 { return "the sandbox never runs as root (uid 0)" }
        if user.gid == 0 { return "the sandbox never runs with the root group (gid 0)" }
        if user.uid == UInt32.max || user.gid == UInt32.max { return "uid and gid 4294967295 (-1) mean \"unchanged\", i.e. root" }
        return nil
    }

    /// The uid and gid that own `path`.
    public static func owner(of path: String) throws(SandboxError) -> User {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw SandboxError(.invalidInput, "cannot stat workspace \(path): \(String(cString: strerror(errno)))")
        }
        guard st.st_uid != 0 else {
            throw SandboxError(.invalidInput, "workspace \(path) is owned by root, and the sandbox never runs as root; add --copy to work on a copy-on-write view of it as uid 65532 (the directory is not written; robit writes a patch of the changes), give a directory owned by the user the sandbox should run as (e.g. `chown -R 65532:65532 DIR`), or pass --user UID:GID")
        }
        let user = User(uid: st.st_uid, gid: st.st_gid)
        if let problem = problem(with: user) {
            throw SandboxError(.invalidInput, "workspace \(path) is owned by \(st.st_uid):\(st.st_gid): \(problem); chown it to a regular user and group, or pass --user UID:GID")
        }
        return user
    }

    /// A new empty workspace owned by `user`, for commands run without one. Remove it with `removeScratch`.
    public static func makeScratch(state: SandboxState = .default(), user: User = User.sandbox) throws(SandboxError) -> String {
        let base = state.root + "/workspaces"
        let path = base + "/" + Sandbox.newID()
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw SandboxError(.createFailed, "cannot create a scratch workspace in \(base): \(error.localizedDescription)")
        }
        guard chown(path, user.uid, user.gid) == 0 else {
            throw SandboxError(.createFailed, "cannot chown \(path): \(String(cString: strerror(errno)))")
        }
        return path
    }

    public static func removeScratch(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Checks that nobody but root can change what a path refers to.
public enum SecurePath {
    /// nil when `path` and every directory above it are owned by root and not writable by group or
    /// others (a sticky directory such as /tmp is fine: others cannot rename what root owns there);
    /// otherwise what is wrong. Symlinks are resolved first.
    public static func problem(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return "\(path) does not exist" }
        var current = String(cString: real)
        free(real)
        while true {
            var st = stat()
            guard lstat(current, &st) == 0 else { return "cannot stat \(current)" }
            if st.st_uid != 0 { return "\(current) is owned by uid \(st.st_uid), not root" }
            let writableByOthers = st.st_mode & (S_IWGRP | S_IWOTH) != 0
            if writableByOthers && st.st_mode & S_ISVTX == 0 { return "\(current) is writable by group or others" }
            if current == "/" { return nil }
            current = (current as NSString).deletingLastPathComponent
            if current.isEmpty { current = "/" }
        }
    }
}
