import Foundation
import RobitAudit
import RobitExec
import RobitOCI

/// The run's own copy of the task's workspace: `work/` is mounted at /work (owned by the sandbox user),
/// `base/` is the untouched snapshot the patch is computed against. The user's directory is never written.
public struct RunWorkspace: Sendable {
    public let root: String
    public var work: String { root + "/work" }
    public var base: String { root + "/base" }
    public static let sandboxUser = User(uid: 65532, gid: 65532)

    public init(root: String) { self.root = root }

    /// `$XDG_STATE_HOME/robit/workspaces/<run>`.
    public static func defaultRoot(run: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        RobitPaths.state(environment) + "/workspaces/" + run
    }

    /// Copies `source` twice (symlinks as symlinks, nothing followed) and hands `work/` to the sandbox user.
    public static func prepare(from source: String, at root: String) throws(SandboxError) -> RunWorkspace {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SandboxError(.invalidInput, "workspace \(source) is not a directory")
        }
        let ws = RunWorkspace(root: root)
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        } catch {
            throw SandboxError(.createFailed, "cannot create the run's workspace \(root): \(error.localizedDescription)")
        }
        for target in [ws.base, ws.work] {
            try run("/bin/cp", ["-a", "--no-preserve=ownership", "--", source + "/.", target + "/"], creating: target)
        }
        try run("/bin/chown", ["-R", "-h", "\(sandboxUser.uid):\(sandboxUser.gid)", "--", ws.work], creating: nil)
        chmod(ws.base, 0o700)
        return ws
    }

    private static func run(_ tool: String, _ arguments: [String], creating directory: String?) throws(SandboxError) {
        if let directory {
            mkdir(directory, 0o755)
        }
        let result: HostCommand.Result
        do { result = try HostCommand.run(tool, arguments) } catch {
            throw SandboxError(.createFailed, "cannot run \(tool): \(error)")
        }
        guard result.status == .exited(0) else {
            throw SandboxError(.createFailed, "copying the workspace failed: \(tool) \(arguments.joined(separator: " ")) (\(result.status)): \(String(decoding: result.stderr, as: UTF8.self).prefix(500))")
        }
    }

    /// The changes the run made, as a git patch (`git apply`-able, binary files included), paths relative to
    /// the workspace. `.git/` is left out. git runs outside any repository, with no user or system config, so
    /// nothing the sandbox wrote can configure it.
    public func patch() throws(SandboxError) -> String {
        // `-C root`: git runs in the run's directory, so the paths it prints start with base/ and work/.
        let environment = ["PATH=/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=/nonexistent",
                           "GIT_CEILING_DIRECTORIES=\(root)", "LC_ALL=C"]
        let result: HostCommand.Result
        do {
            result = try HostCommand.run("/usr/bin/env", ["git", "-C", root, "-c", "core.quotepath=off", "diff", "--no-index", "--binary",
                                                          "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames", "--", "base", "work"],
                                         environment: environment)
        } catch {
            throw SandboxError(.hostNotReady, "git is needed for output.patch: \(error)")
        }
        // git diff --no-index: 0 no changes, 1 changes; env: 127 when git is not installed.
        guard case .exited(let code) = result.status, code <= 1 else {
            throw SandboxError(result.status == .exited(127) ? .hostNotReady : .createFailed,
                               result.status == .exited(127) ? "git is needed for output.patch: it is not installed"
                                                             : "git diff failed (\(result.status)): \(String(decoding: result.stderr, as: UTF8.self).prefix(500))")
        }
        return Self.relativize(String(decoding: result.stdout, as: UTF8.self))
    }

    /// Rewrites `a/base/x` and `b/work/x` to `a/x` and `b/x`, and drops changes under `.git/`.
    static func relativize(_ diff: String) -> String {
        var out: [Substring] = []
        var skipping = false
        for line in diff.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("diff --git ") {
                skipping = line.contains(" a/base/.git/") || line.contains(" b/work/.git/")
            }
            if skipping { continue }
            var l = String(line)
            if l.hasPrefix("diff --git ") || l.hasPrefix("--- a/") || l.hasPrefix("+++ b/") {
                l = l.replacingOccurrences(of: " a/base/", with: " a/").replacingOccurrences(of: " b/work/", with: " b/")
                if l.hasPrefix("--- a/base/") { l = "--- a/" + l.dropFirst("--- a/base/".count) }
                if l.hasPrefix("+++ b/work/") { l = "+++ b/" + l.dropFirst("+++ b/work/".count) }
            }
            out.append(Substring(l))
        }
        return out.joined(separator: "\n")
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// A SHA-256 over a directory tree (paths, types, modes, sizes, contents, link targets; nothing followed),
/// so a replay can prove it starts from the same workspace.
public enum WorkspaceTree {
    public static func hash(_ root: String) -> String {
        var lines: [String] = []
        walk(root, relative: "", into: &lines)
        return AuditHash.sha256Hex(lines.sorted().joined(separator: "\n"))
    }

    private static func walk(_ path: String, relative: String, into lines: inout [String]) {
        guard let dir = opendir(path) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let full = path + "/" + name
            let rel = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard lstat(full, &st) == 0 else { continue }
            let mode = String(st.st_mode & 0o7777, radix: 8)
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                lines.append("d \(mode) \(rel)")
                walk(full, relative: rel, into: &lines)
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: 4097)
                let n = readlink(full, &buffer, 4096)
                let target = n >= 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
                lines.append("l \(rel) -> \(target)")
            case S_IFREG:
                let content = FileManager.default.contents(atPath: full) ?? Data()
                lines.append("f \(mode) \(st.st_size) \(AuditHash.sha256Hex([UInt8](content))) \(rel)")
            default:
                lines.append("o \(mode) \(rel)")
            }
        }
    }
}
