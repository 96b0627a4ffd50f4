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
    public static func validate(_ path: String) throws(SandboxError) -> String {
        guard let real = realpath(path, nil) else {
            throw SandboxError(.invalidInput, "workspace \(path) does not exist (create it, or pass an existing directory)")
        }
        let resolved = String(cString: real)
        free(real)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDir), isDir.boolValue else {
            throw SandboxError(.invalidInput, "workspace \(path) is not a directory")
        }
        if resolved == "/" || system.contains(where: { $0.hasPrefix(resolved + "/") || $0 == resolved || resolved.hasPrefix($0 + "/") })
            && !resolved.hasPrefix("/var/tmp/") && !resolved.hasPrefix("/run/robit/workspaces/") {
            throw SandboxError(.invalidInput, "workspace \(resolved) is or contains a system directory; give a project directory")
        }
        return resolved
    }

    /// The uid and gid that own `path`.
    public static func owner(of path: String) throws(SandboxError) -> User {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw SandboxError(.invalidInput, "cannot stat workspace \(path): \(String(cString: strerror(errno)))")
        }
        guard st.st_uid != 0 else {
            throw SandboxError(.invalidInput, "workspace \(path) is owned by root, and the sandbox never runs as root; `chown -R USER:GROUP \(path)` to the user the sandbox should run as (e.g. 65532:65532), or pass --user UID:GID")
        }
        return User(uid: st.st_uid, gid: st.st_gid)
    }

    /// A new empty workspace owned by `user`, for commands run without one. Remove it with `removeScratch`.
    public static func makeScratch(state: SandboxState = .default(), user: User = User(uid: 65532, gid: 65532)) throws(SandboxError) -> String {
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
