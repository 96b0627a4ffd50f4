import Foundation
import RobitOCI

/// Writing OCI bundles to disk: config.json, the skeleton root filesystem for rootfs `host`, robit's
/// curated /etc, the compiled seccomp filter. (RobitOCI builds what goes in them; this writes it.)
extension OCIBundle {
    /// Writes the bundle for `configuration` into `path` (created if missing, mode 0700). With
    /// `relativeRoot`, config.json names its root `rootfs` (a link, for a prepared rootfs), so the
    /// bundle can be moved and run by hand. `readable` indents config.json for people; without it
    /// the JSON is compact, which is what a sandbox about to start wants.
    @discardableResult
    public static func create(at path: String, configuration c: SandboxConfiguration, relativeRoot: Bool = false,
                              readable: Bool = true) throws -> (bundle: OCIBundle, spec: Spec) {
        let bundle = OCIBundle(path: path)
        let fm = FileManager.default
        try fm.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let rootPath: String
        switch c.rootfs {
        case .host:
            try writeHostRootfs(at: bundle.rootfsPath, configuration: c)
            rootPath = relativeRoot ? "rootfs" : bundle.rootfsPath
        case .path(let dir):
            if relativeRoot { try fm.createSymbolicLink(atPath: bundle.rootfsPath, withDestinationPath: dir) }
            rootPath = relativeRoot ? "rootfs" : dir
            if let overlay = c.etcOverlay { try writeEtcOverlay(overlay, configuration: c) }
        }
        if let filter = c.execSeccompFilter {
            try write(Data(try SyscallTable.compileBPF(c.policy.seccomp)), to: filter, mode: 0o644)
        }
        let spec = SpecGenerator.spec(for: c, rootfsPath: rootPath)
        try write(readable ? encode(spec) : encodeCompact(spec), to: bundle.configPath, mode: 0o600)
        return (bundle, spec)
    }

    public func loadSpec() throws -> Spec {
        try JSONDecoder().decode(Spec.self, from: Data(contentsOf: URL(fileURLWithPath: configPath)))
    }

    static func writeHostRootfs(at root: String, configuration c: SandboxConfiguration) throws {
        // Plain syscalls: this runs on every sandbox start, and Foundation's file APIs cost
        // several times more (stat, atomic temporary files, attribute round trips).
        try makeDirectory(root, mode: 0o755)
        for dir in ["usr", "etc", "proc", "dev", "sys", "tmp", "work", ".robit", "run", "var", "var/tmp", "root", "home", "opt", "mnt"] {
            try makeDirectory("\(root)/\(dir)", mode: 0o755)
        }
        // runc gives a tmpfs the mode of the directory it is mounted on.
        for dir in ["tmp", "var/tmp"] { chmod("\(root)/\(dir)", 0o1777) }
        for name in HostLayout.candidates {
            switch c.hostLayout.entries[name] {
            case .symlink(let target):
                guard symlink(target, "\(root)/\(name)") == 0 else { throw posixError("symlink \(root)/\(name)") }
            case .directory: try makeDirectory("\(root)/\(name)", mode: 0o755)
            case nil: break
            }
        }
        for dir in c.hostLayout.etcBinds {
            var path = root
            for part in dir.split(separator: "/") {
                path += "/" + part
                try makeDirectory(path, mode: 0o755)
            }
        }
        try write(Data(), to: "\(root)/.robit/init", mode: 0o755)
        try write(Data(), to: "\(root)/.robit/seccomp.bpf", mode: 0o644)
        for (name, text) in curatedEtc(user: c.user, hostname: c.hostname, hosts: c.hosts.map { ($0.address, $0.name) }) {
            try write(Data(text.utf8), to: "\(root)/etc/\(name)", mode: 0o644)
        }
    }

    /// The files of robit's /etc that are mounted over a prepared rootfs's own.
    static func writeEtcOverlay(_ overlay: EtcOverlay, configuration c: SandboxConfiguration) throws {
        try makeDirectory(overlay.directory, mode: 0o755)
        let etc = Dictionary(curatedEtc(user: c.user, hostname: c.hostname, hosts: c.hosts.map { ($0.address, $0.name) }),
                             uniquingKeysWith: { a, _ in a })
        for name in overlay.files {
            guard let text = etc[name] else { throw posixError("robit writes no /etc/\(name)") }
            try write(Data(text.utf8), to: "\(overlay.directory)/\(name)", mode: 0o644)
        }
    }

    static func makeDirectory(_ path: String, mode: mode_t) throws {
        if mkdir(path, mode) != 0 && errno != EEXIST { throw posixError("mkdir \(path)") }
        chmod(path, mode)
    }

    static func posixError(_ what: String) -> CocoaError {
        CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(what): \(String(cString: strerror(errno)))"])
    }
    /// Writes `data` to `path` (created or truncated, never through a symlink) with `mode`.
    public static func write(_ data: Data, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw posixError("open \(path)") }
        defer { close(fd) }
        fchmod(fd, mode)
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; throw posixError("write \(path)") }
                offset += n
            }
        }
    }
}

extension HostLayout {
    /// Reads which of /bin, /sbin, /lib* are symlinks (merged /usr) or real directories.
    public static func scan(root: String = "/") -> HostLayout {
        let fm = FileManager.default
        var entries: [String: Entry] = [:]
        for name in candidates {
            let path = root + name
            if let target = try? fm.destinationOfSymbolicLink(atPath: path) {
                entries[name] = .symlink(target)
            } else {
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { entries[name] = .directory }
            }
        }
        let etc = etcCandidates.filter { dir in
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: root == "/" ? dir : root + dir.dropFirst(), isDirectory: &isDir) && isDir.boolValue
        }
        return HostLayout(entries: entries, etcBinds: etc)
    }
}
