import Foundation
import RobitOCI

/// One finding of `robit doctor`.
public struct Finding: Sendable {
    public enum Level: String, Sendable { case ok, warn, fail }
    public var level: Level
    public var subject: String
    public var message: String
    /// The command that fixes it, when something needs fixing.
    public var fix: String?

    public init(level: Level, subject: String, message: String, fix: String? = nil) {
        self.level = level
        self.subject = subject
        self.message = message
        self.fix = fix
    }
}

/// Host checks: runtimes, cgroups, nft, user namespaces, seccomp, robit-init, leftovers.
public enum Doctor {
    public static let hugetlbFix = "mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb"

    public static func run(fix: Bool, state: SandboxState = .default()) async -> [Finding] {
        var findings: [Finding] = []
        func add(_ level: Finding.Level, _ subject: String, _ message: String, fix: String? = nil) {
            findings.append(Finding(level: level, subject: subject, message: message, fix: fix))
        }

        if geteuid() == 0 {
            add(.ok, "user", "running as root")
        } else {
            add(.fail, "user", "robit creates sandboxes as root (cgroups, mounts, network namespaces)", fix: "sudo robit ...")
        }

        for kind in RuntimeKind.allCases {
            if let runtime = try? Runtime.locate(kind) {
                let version = await runtime.version() ?? "version unknown"
                add(.ok, kind.rawValue, "\(runtime.path): \(version)")
            } else {
                add(kind == .runsc ? .fail : .warn, kind.rawValue, "not installed", fix: "apt-get install -y \(kind.rawValue)")
            }
        }

        var cgroups = CgroupMounts.current()
        let v1 = cgroups.entries.filter { !$0.isV2 }
        let v2 = cgroups.entries.filter { $0.isV2 }
        let mode = v1.isEmpty ? (v2.isEmpty ? "none" : "v2 (unified)") : (v2.isEmpty ? "v1" : "hybrid (v1 + v2)")
        if cgroups.entries.isEmpty {
            add(.fail, "cgroups", "no cgroup filesystem is mounted", fix: "mount -t cgroup2 none /sys/fs/cgroup")
        } else {
            let controllers = Set(v1.flatMap(\.controllers))
            let v2Controllers = Set(v2.flatMap { e in
                (KernelFile.read(e.mountPoint + "/cgroup.controllers") ?? "").split(separator: " ").map {
                    $0.trimmingCharacters(in: .whitespacesAndNewlines)
                }
            })
            let missing = ["memory", "pids", "cpu"].filter { !controllers.contains($0) && !v2Controllers.contains($0) }
            if missing.isEmpty {
                add(.ok, "cgroups", "\(mode); memory, pids and cpu controllers available")
            } else {
                add(.fail, "cgroups", "\(mode); missing controllers: \(missing.joined(separator: ", ")) (limits cannot be enforced)")
            }
        }
        if cgroups.crunHybridQuirk {
            if fix {
                let ok = mountHugetlb()
                cgroups = CgroupMounts.current()
                add(ok && !cgroups.crunHybridQuirk ? .ok : .fail, "crun cgroups",
                    ok ? "moved hugetlb to a v1 hierarchy: crun can run in hybrid mode" : "could not mount hugetlb as a v1 hierarchy", fix: hugetlbFix)
            } else {
                add(.warn, "crun cgroups", "hybrid mode with hugetlb on the cgroup2 tree: crun fails with \"cgroups in hybrid mode not supported\"",
                    fix: "robit doctor --fix  (or: \(hugetlbFix))")
            }
        } else if !v1.isEmpty {
            add(.ok, "crun cgroups", "no controllers left on the cgroup2 tree; crun works in hybrid mode")
        }

        for dir in cgroups.unmountedControllerDirectories {
            if fix, dir == "/sys/fs/cgroup/hugetlb", mountHugetlb() {
                cgroups = CgroupMounts.current()
                add(.ok, "cgroups", "mounted the hugetlb hierarchy on \(dir)")
                continue
            }
            add(.warn, "cgroups", "\(dir) exists but no cgroup hierarchy is mounted on it; runtimes still create cgroup directories there",
                fix: dir.hasSuffix("/hugetlb") ? "mount -t cgroup -o hugetlb cgroup \(dir)" : "rmdir \(dir) (when empty)")
        }

        // Egress allowlists: namespaces and veths over rtnetlink, the nft table through libnftables.
        do {
            _ = try KernelNetwork.nft("list tables")
            add(.ok, "libnftables", "loaded")
        } catch where error.libraryMissing {
            add(.warn, "libnftables", "\(error.message) (needed for network egress allowlists)", fix: "apt-get install -y nftables")
        } catch {
            add(.ok, "libnftables", "loaded (\(error.message))")
        }

        let maxUserNS = KernelFile.read("/proc/sys/user/max_user_namespaces")?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
        add(maxUserNS == "0" ? .warn : .ok, "user namespaces", "max_user_namespaces = \(maxUserNS)",
            fix: maxUserNS == "0" ? "sysctl -w user.max_user_namespaces=15000" : nil)

        let status = KernelFile.read("/proc/self/status") ?? ""
        if status.contains("Seccomp:") {
            do {
                let size = try SyscallTable.compileBPF(SandboxPolicy.builtInDefault().seccomp).count
                add(.ok, "seccomp", "kernel supports seccomp; libseccomp \(SyscallTable.libseccompVersion) compiles the default policy to \(size) bytes of BPF")
            } catch {
                add(.fail, "seccomp", "the default policy does not compile: \(error)")
            }
        } else {
            add(.fail, "seccomp", "the kernel does not report seccomp support")
        }

        do {
            let path = try InitBinary.locate()
            add(.ok, "robit-init", path)
        } catch {
            add(.fail, "robit-init", error.message, fix: "swift build -c release")
        }

        do {
            try FileManager.default.createDirectory(atPath: state.sandboxesDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            add(.ok, "state", "\(state.root) is writable")
        } catch {
            add(.fail, "state", "cannot create \(state.sandboxesDirectory): \(error.localizedDescription)")
        }

        do {
            let pool = try AddressPool.configured()
            try pool.checkHostRoutes()
            add(.ok, "egress pool", "\(pool.range) (\(pool.slots) sandbox links) overlaps no route of this host (\(AddressPool.environmentVariable) to change it)")
        } catch {
            add(.fail, "egress pool", error.message, fix: "export \(AddressPool.environmentVariable)=100.64.0.0/16   # a range this host does not route")
        }

        if geteuid() == 0 {
            // A run's workspace: a loop-mounted ext4 image, an idmapped bind of a root-owned directory, an overlay.
            let base = NSTemporaryDirectory() + "robit-doctor-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            do {
                try FileManager.default.createDirectory(atPath: base + "/source", withIntermediateDirectories: true)
                let ws = try LayeredWorkspace.create(source: base + "/source", root: base + "/root", disk: 8 << 20,
                                                     user: User.sandbox, state: state)
                var st = stat()
                let mapped = stat(ws.merged, &st) == 0 && st.st_uid == User.sandbox.uid
                ws.remove()
                add(mapped ? .ok : .fail, "workspace", mapped ? "loop devices, ext4, overlayfs and idmapped mounts work (robit run's workspace)"
                                                           : "the workspace overlay does not show the sandbox user as owner")
            } catch let error as SandboxError {
                add(.fail, "workspace", "robit run cannot prepare a workspace: \(error.message)", fix: "modprobe loop overlay; apt-get install -y e2fsprogs")
            } catch {
                add(.fail, "workspace", "cannot create \(base): \(error.localizedDescription)")
            }
            try? FileManager.default.removeItem(atPath: base)
        }

        let leftovers = await Janitor.sweep(state: state, remove: fix, includeRuntimeLists: true)
        if leftovers.isEmpty {
            add(.ok, "leftovers", "no sandbox, container or cgroup left behind")
        } else {
            for item in leftovers {
                if fix {
                    add(item.removed ? .ok : .fail, "leftovers", item.description)
                } else {
                    add(.warn, "leftovers", item.description, fix: "robit doctor --fix")
                }
            }
        }
        // After the sweep: networks of robits that are gone no longer count.
        findings.append(HostForwarding().report(fix: fix))
        findings.append(RCUGracePeriods.report())
        return findings
    }

    /// Mounts hugetlb as its own v1 hierarchy, which takes it off the cgroup2 tree (the crun quirk).
    static func mountHugetlb() -> Bool {
        let dir = "/sys/fs/cgroup/hugetlb"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if CgroupMounts.current().entries.contains(where: { $0.controllers.contains("hugetlb") }) { return true }
        return mount("cgroup", dir, "cgroup", 0, "hugetlb") == 0
    }
}
