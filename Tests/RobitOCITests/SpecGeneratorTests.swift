import Foundation
import Testing
@testable import RobitExec
@testable import RobitOCI

@Suite struct SpecGeneratorTests {
    static func configuration(rootfs: SandboxConfiguration.Rootfs = .host, pids: SandboxConfiguration.PidsEnforcement = .cgroup,
                              filter: String? = nil, layout: HostLayout = .scan()) -> SandboxConfiguration {
        SandboxConfiguration(id: "robit-0123456789ab", rootfs: rootfs, workspace: "/home/me/project", user: User(uid: 1000, gid: 1000),
                             limits: SandboxLimits(memory: 256 << 20, pids: 100, cpu: 0.5, tmpSize: 64 << 20),
                             policy: .builtInDefault(), pidsEnforcement: pids, memoryOverhead: pids == .rlimit ? 128 << 20 : 0,
                             initBinary: "/opt/robit/robit-init", execSeccompFilter: filter, hostLayout: layout)
    }

    static let mergedUsr = HostLayout(entries: ["bin": .symlink("usr/bin"), "sbin": .symlink("usr/sbin"), "lib": .symlink("usr/lib"),
                                                "lib64": .symlink("usr/lib64")],
                                      etcBinds: ["/etc/ssl/certs", "/etc/alternatives"])
    static let splitUsr = HostLayout(entries: ["bin": .directory, "sbin": .directory, "lib": .directory], etcBinds: [])

    @Test(arguments: [
        (SandboxConfiguration.Rootfs.host, SandboxConfiguration.PidsEnforcement.cgroup, nil as String?, mergedUsr),
        (.host, .rlimit, "/run/robit/sandboxes/x/seccomp.bpf", mergedUsr),
        (.host, .cgroup, nil, splitUsr),
        (.path("/srv/rootfs"), .cgroup, nil, mergedUsr),
    ])
    func everyGeneratedConfigValidatesAgainstTheSchema(rootfs: SandboxConfiguration.Rootfs, pids: SandboxConfiguration.PidsEnforcement,
                                                       filter: String?, layout: HostLayout) throws {
        let spec = SpecGenerator.spec(for: Self.configuration(rootfs: rootfs, pids: pids, filter: filter, layout: layout), rootfsPath: "rootfs")
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try OCIBundle.encode(spec).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let (status, output) = try TestPaths.run(["python3", TestPaths.validator, dir + "/config.json"])
        #expect(status == 0, "config.json does not validate against the OCI schema: \(output)")
    }

    @Test func theValidatorRejectsABrokenConfig() throws {
        // Proves the schema check above can fail.
        var spec = SpecGenerator.spec(for: Self.configuration(), rootfsPath: "rootfs")
        spec.ociVersion = ""
        spec.mounts?[0].destination = ""
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var data = try OCIBundle.encode(spec)
        data = Data(String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\"uid\" : 65534", with: "\"uid\" : -5").utf8)
        try data.write(to: URL(fileURLWithPath: dir + "/config.json"))
        #expect(String(decoding: data, as: UTF8.self).contains("\"uid\" : -5"))
        let (status, _) = try TestPaths.run(["python3", TestPaths.validator, dir + "/config.json"])
        #expect(status == 1)
    }

    @Test func specRoundTripsThroughJSON() throws {
        let spec = SpecGenerator.spec(for: Self.configuration(filter: "/x/seccomp.bpf"), rootfsPath: "/b/rootfs")
        let data = try OCIBundle.encode(spec)
        let decoded = try JSONDecoder().decode(Spec.self, from: data)
        #expect(decoded == spec)
        #expect(try OCIBundle.encode(decoded) == data)
        // Deterministic: same input, same bytes.
        #expect(try OCIBundle.encode(SpecGenerator.spec(for: Self.configuration(filter: "/x/seccomp.bpf"), rootfsPath: "/b/rootfs")) == data)
    }

    @Test func securityInvariantsAreInTheSpec() throws {
        let c = Self.configuration()
        let spec = SpecGenerator.spec(for: c, rootfsPath: "rootfs")
        let process = try #require(spec.process)
        #expect(spec.root?.readonly == true)
        #expect(process.noNewPrivileges == true)
        // init runs as a user of its own; commands as the workspace's owner.
        #expect(process.user.uid == 65534 && process.user.gid == 65534)
        let exec = SpecGenerator.execProcess(c, tag: "t", argv: ["true"])
        #expect(exec.user.uid == 1000 && exec.user.gid == 1000)
        #expect(exec.capabilities == Capabilities([]) && exec.noNewPrivileges == true)
        let killer = SpecGenerator.killerProcess(c, tag: "t", keep: ["u"])
        #expect(killer.capabilities == Capabilities(["CAP_KILL"]))
        #expect(killer.args == ["/.robit/init", "exec", "--tag", "killer", "--", "/.robit/init", "kill", "t", "killer", "u"])
        #expect(process.capabilities == Capabilities([]))
        #expect(process.capabilities?.bounding.isEmpty == true && process.capabilities?.ambient.isEmpty == true)
        #expect(process.env?.contains(where: { $0.hasPrefix("ROBIT_") || $0.contains("KEY") || $0.contains("TOKEN") }) == false)
        let linux = try #require(spec.linux)
        #expect(linux.seccomp == SandboxPolicy.builtInDefault().seccomp)
        #expect(Set(linux.namespaces?.map(\.type) ?? []) == ["pid", "ipc", "uts", "mount", "network"])
        #expect(linux.namespaces?.first(where: { $0.type == "network" })?.path == nil)
        #expect(linux.resources?.memory?.limit == 256 << 20)
        #expect(linux.resources?.memory?.swap == 256 << 20)
        #expect(linux.resources?.pids?.limit == 100)
        #expect(linux.resources?.cpu?.quota == 50_000 && linux.resources?.cpu?.period == 100_000)
        #expect(linux.cgroupsPath == "/robit/robit-0123456789ab")
        #expect(linux.maskedPaths?.contains("/proc/kcore") == true)
        #expect(linux.readonlyPaths?.contains("/proc/sys") == true)

        // Only /work and /tmp (and /dev's tmpfs pieces) are writable; every bind but /work is read-only.
        let mounts = try #require(spec.mounts)
        for m in mounts where m.type == "bind" {
            if m.destination == "/work" {
                #expect(m.options?.contains("rw") == true && m.source == "/home/me/project")
            } else {
                #expect(m.options?.contains("ro") == true, "bind \(m.destination) is not read-only")
            }
            #expect(m.options?.contains("nosuid") == true)
        }
        let tmp = try #require(mounts.first { $0.destination == "/tmp" })
        #expect(tmp.type == "tmpfs" && tmp.options?.contains("size=\(64 << 20)") == true)
        #expect(mounts.first { $0.destination == "/sys" }?.options?.contains("ro") == true)
        // Nothing of the host's /etc but certificates and alternatives.
        let hostSources = mounts.filter { $0.type == "bind" }.compactMap(\.source)
        #expect(hostSources.filter { $0.hasPrefix("/etc") }.allSatisfy { ["/etc/ssl/certs", "/etc/alternatives", "/etc/ca-certificates"].contains($0) })
    }

    @Test func gvisorGetsThePidsLimitAsRlimitAndTheFilterThroughInit() throws {
        let c = Self.configuration(pids: .rlimit, filter: "/state/seccomp.bpf")
        let spec = SpecGenerator.spec(for: c, rootfsPath: "rootfs")
        #expect(spec.linux?.resources?.pids == nil)
        #expect(spec.process?.rlimits?.contains(Rlimit(type: "RLIMIT_NPROC", hard: 100, soft: 100)) == true)
        #expect(spec.linux?.resources?.memory?.limit == (256 << 20) + (128 << 20))
        #expect(spec.mounts?.contains { $0.destination == "/.robit/seccomp.bpf" && $0.source == "/state/seccomp.bpf" } == true)
        let exec = SpecGenerator.execProcess(c, tag: "abc", argv: ["echo", "hi"])
        #expect(exec.args == ["/.robit/init", "exec", "--tag", "abc", "--seccomp", "/.robit/seccomp.bpf", "--", "echo", "hi"])
        #expect(exec.env?.last == "ROBIT_EXEC=abc")
        #expect(exec.cwd == "/work")
        #expect(exec.noNewPrivileges == true)
        let plain = SpecGenerator.execProcess(Self.configuration(), tag: "t", argv: ["echo", "hi"])
        // Every command runs under robit-init, which kills what it leaves behind unless the task keeps it.
        #expect(plain.args == ["/.robit/init", "exec", "--tag", "t", "--", "echo", "hi"])
        var keeping = Self.configuration()
        keeping.keepBackgroundProcesses = true
        #expect(SpecGenerator.execProcess(keeping, tag: "t", argv: ["echo"]).args == ["/.robit/init", "exec", "--tag", "t", "--keep-background", "--", "echo"])
    }

    @Test func bundleOnDiskHasACuratedEtcAndNothingElseOfTheHost() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (bundle, spec) = try OCIBundle.create(at: dir + "/b", configuration: Self.configuration(filter: dir + "/b/seccomp.bpf", layout: Self.mergedUsr))
        #expect(try bundle.loadSpec() == spec)
        let etc = try FileManager.default.contentsOfDirectory(atPath: bundle.rootfsPath + "/etc").sorted()
        #expect(etc == ["alternatives", "group", "hostname", "hosts", "nsswitch.conf", "passwd", "resolv.conf", "ssl"])
        let passwd = try String(contentsOfFile: bundle.rootfsPath + "/etc/passwd", encoding: .utf8)
        #expect(passwd.contains("robit:x:1000:1000:"))
        #expect(!passwd.contains("root:x:0:0:root:/root:/bin/bash"))
        let resolv = try String(contentsOfFile: bundle.rootfsPath + "/etc/resolv.conf", encoding: .utf8)
        #expect(!resolv.contains("nameserver"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: bundle.rootfsPath + "/bin") == "usr/bin")
        let bpf = try #require(FileManager.default.contents(atPath: dir + "/b/seccomp.bpf"))
        #expect(bpf.count > 0 && bpf.count % 8 == 0)
        let attrs = try FileManager.default.attributesOfItem(atPath: bundle.rootfsPath + "/tmp")
        #expect((attrs[.posixPermissions] as? Int) == 0o1777)
    }

    @Test func aPreparedRootfsWithAnAllowlistGetsRobitsHostsAndResolvConfMountedOverItsOwn() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = Self.configuration(rootfs: .path("/srv/rootfs"))
        c.networkNamespace = "/run/netns/robit-0123456789ab"
        c.hosts = [PinnedHost(address: "198.18.0.2", name: "api.example.test")]
        c.etcOverlay = EtcOverlay(directory: dir + "/b/etc", files: ["hosts", "resolv.conf"])
        let (_, spec) = try OCIBundle.create(at: dir + "/b", configuration: c)
        let binds = (spec.mounts ?? []).filter { $0.destination.hasPrefix("/etc/") }
        #expect(binds.map(\.destination) == ["/etc/hosts", "/etc/resolv.conf"])
        for m in binds {
            #expect(m.source == dir + "/b" + m.destination)
            #expect(m.options?.contains("ro") == true && m.options?.contains("bind") == true)
        }
        let hosts = try String(contentsOfFile: dir + "/b/etc/hosts", encoding: .utf8)
        #expect(hosts.contains("198.18.0.2\tapi.example.test\n"))
        #expect(hosts.contains("127.0.0.1\tlocalhost"))
        #expect(!(try String(contentsOfFile: dir + "/b/etc/resolv.conf", encoding: .utf8)).contains("nameserver"))
        // The rest of the prepared rootfs's /etc is its own; without an overlay nothing of /etc is mounted.
        #expect(!FileManager.default.fileExists(atPath: dir + "/b/etc/passwd"))
        let plain = SpecGenerator.spec(for: Self.configuration(rootfs: .path("/srv/rootfs")), rootfsPath: "/srv/rootfs")
        #expect(!(plain.mounts ?? []).contains { $0.destination.hasPrefix("/etc") })
    }
}
