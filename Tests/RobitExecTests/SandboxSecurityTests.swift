import Foundation
import Glibc
import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

/// Security invariant 2 (and 3, 4, 7 as they apply to one sandbox), for each runtime.
extension ExecIntegration {
    @Suite(.serialized, .sandboxPool("security"))
    struct SandboxSecurityTests {
        func sandbox(_ runtime: RuntimeKind) async throws -> SandboxPool.Entry {
            try TestEnv.require(runtime)
            return try await SandboxPool.shared.entry(suite: "security", runtime: runtime)
        }

        // 1. Read-only root; only the workspace is writable, and files there belong to the sandbox user.
        @Test("root and /usr are read-only; /work is the host workspace", arguments: TestEnv.allRuntimes)
        func readOnlyRootWritableWorkspace(runtime: RuntimeKind) async throws {
            let (box, ws) = try await sandbox(runtime).pair
            let name = "robit-probe-" + UUID().uuidString.prefix(8)

            let root = try await box.sh("echo x > /\(name)")
            #expect(root.exitCode != 0, "writing to / succeeded under \(runtime): \(root.summary)")
            // / is root-owned, so a permission error may come first; /var/tmp in the root filesystem is
            // world-writable (mode 1777), so only a read-only root stops this write.
            let varTmp = try await box.sh("echo x > /var/tmp/\(name)")
            #expect(varTmp.exitCode != 0, "writing to the rootfs's world-writable /var/tmp succeeded under \(runtime): the root is not read-only")
            #expect(varTmp.stderr.text.localizedCaseInsensitiveContains("read-only"), "\(varTmp.summary)")
            let mounts = try await box.sh("cat /proc/self/mounts")
            let rootMount = mounts.stdout.text.split(separator: "\n").last { $0.split(separator: " ").dropFirst().first == "/" }
            #expect(rootMount?.split(separator: " ").dropFirst(3).first?.split(separator: ",").contains("ro") == true,
                    "/ is not mounted read-only under \(runtime): \(rootMount.map(String.init) ?? mounts.summary)")

            let usr = try await box.sh("echo x > /usr/\(name)")
            #expect(usr.exitCode != 0, "writing to /usr succeeded under \(runtime): \(usr.summary)")
            #expect(!FileManager.default.fileExists(atPath: "/usr/\(name)"), "a file appeared in the host's /usr")
            unlink("/usr/\(name)")

            let etc = try await box.sh("echo x > /etc/\(name)")
            #expect(etc.exitCode != 0, "writing to /etc succeeded under \(runtime): \(etc.summary)")

            let work = try await box.sh("echo hello-from-\(runtime.rawValue) > /work/\(name) && echo ok")
            #expect(work.exitCode == 0, "\(work.summary)")
            let hostFile = ws.path + "/" + name
            let content = try? String(contentsOfFile: hostFile, encoding: .utf8)
            #expect(content == "hello-from-\(runtime.rawValue)\n", "host file \(hostFile): \(content ?? "missing")")
            var st = stat()
            #expect(stat(hostFile, &st) == 0)
            #expect(st.st_uid == User.sandbox.uid && st.st_gid == 65532, "owner of \(hostFile) is \(st.st_uid):\(st.st_gid), expected 65532:65532")
        }

        // 2. Symlinks in the workspace cannot be followed out of it, for reading or writing.
        @Test("workspace symlinks do not reach host files", arguments: TestEnv.allRuntimes)
        func symlinksStayInside(runtime: RuntimeKind) async throws {
            let (box, ws) = try await sandbox(runtime).pair
            let fm = FileManager.default
            let tag = UUID().uuidString.lowercased().prefix(8)
            // Host files outside the workspace: in its parent, which only root can see into as a whole.
            let markerName = "marker-\(tag)"
            let marker = ws.root + "/" + markerName
            let markerContent = "robit-host-marker-" + UUID().uuidString
            try markerContent.write(toFile: marker, atomically: false, encoding: .utf8)
            chmod(marker, 0o666)  // even a world-writable host file must not be writable from inside
            let victimName = "victim-\(tag)"
            let victim = ws.root + "/" + victimName
            try "unchanged".write(toFile: victim, atomically: false, encoding: .utf8)
            chmod(victim, 0o666)
            chmod(ws.root, 0o777)

            let dir = "links-\(tag)"
            try fm.createDirectory(atPath: ws.path + "/" + dir, withIntermediateDirectories: true)
            chown(ws.path + "/" + dir, User.sandbox.uid, User.sandbox.gid)
            let links: [(String, String)] = [
                ("shadow", "/etc/shadow"),
                ("up", ".."),
                ("up3", "../../.."),
                ("upup", "../.."),
                ("abs-marker", marker),
                ("rel-marker", "../../\(markerName)"),
                ("abs-victim", victim),
                ("rel-victim", "../../\(victimName)"),
                ("abs-parent", ws.root),
            ]
            for (name, target) in links {
                try fm.createSymbolicLink(atPath: "\(ws.path)/\(dir)/\(name)", withDestinationPath: target)
            }

            let reads = try await box.sh("""
                cd /work/\(dir)
                for p in shadow up/shadow up/etc/shadow up3/etc/shadow \
                         up/\(markerName) upup/\(markerName) up3\(marker) up3/tmp/\(ws.root.split(separator: "/").last!)/\(markerName) \
                         abs-marker rel-marker abs-parent/\(markerName) up/../\(markerName) /work/../\(markerName); do
                  echo "== $p"; cat "$p" 2>&1
                done
                python3 -c 'import sys
                for p in sys.argv[1:]:
                    try: print(open(p).read())
                    except Exception as e: print(p, type(e).__name__)' shadow abs-marker rel-marker up3/etc/shadow
                true
                """)
            #expect(reads.exitCode == 0, "\(reads.summary)")
            #expect(!reads.stdout.text.contains(markerContent), "the host marker was read through a workspace symlink under \(runtime): \(reads.summary)")
            if let shadow = try? String(contentsOfFile: "/etc/shadow", encoding: .utf8) {
                for line in shadow.split(separator: "\n") where line.count > 8 {
                    #expect(!reads.stdout.text.contains(line), "host /etc/shadow content appeared inside under \(runtime): \(line.prefix(12))…")
                }
            }

            let writes = try await box.sh("""
                cd /work/\(dir)
                for p in abs-victim rel-victim up/\(victimName) upup/\(victimName) abs-parent/\(victimName) abs-marker rel-marker; do
                  echo pwned > "$p" 2>/dev/null && echo "wrote $p"
                done
                echo pwned > up3/etc/shadow 2>/dev/null && echo "wrote shadow"
                echo pwned > abs-parent/new-\(tag) 2>/dev/null && echo "created new"
                true
                """)
            #expect(writes.exitCode == 0, "\(writes.summary)")
            #expect((try? String(contentsOfFile: victim, encoding: .utf8)) == "unchanged", "the host file outside the workspace was changed under \(runtime): \(writes.summary)")
            #expect((try? String(contentsOfFile: marker, encoding: .utf8)) == markerContent, "the host marker was changed under \(runtime)")
            #expect(!fm.fileExists(atPath: ws.root + "/new-\(tag)"), "a file was created outside the workspace under \(runtime)")
            let shadowAfter = try? String(contentsOfFile: "/etc/shadow", encoding: .utf8)
            #expect(shadowAfter?.contains("pwned") != true, "host /etc/shadow changed!")
        }

        // 4. Non-root, no capabilities, no_new_privs, seccomp filter mode.
        @Test("uid is not 0, no capabilities, no_new_privs, seccomp filter", arguments: TestEnv.allRuntimes)
        func privileges(runtime: RuntimeKind) async throws {
            let (box, _) = try await sandbox(runtime).pair
            let p = try await box.probe()
            #expect(p["uid"] != nil && p["uid"] != "0", "uid under \(runtime): \(p)")
            #expect(p["uid"] == "65532" && p["gid"] == "65532", "user under \(runtime): \(p)")
            #expect(p["CapEff"].flatMap { UInt64($0, radix: 16) } == 0, "CapEff under \(runtime): \(p["CapEff"] ?? "missing")")
            #expect(p["CapPrm"].flatMap { UInt64($0, radix: 16) } == 0, "CapPrm under \(runtime): \(p["CapPrm"] ?? "missing")")
            #expect(p["no_new_privs"] == "1", "no_new_privs under \(runtime): \(p)")
            #expect(p["seccomp"] == "2", "seccomp mode under \(runtime): \(p)")
            // Also for a process started by the shell (a child of the exec'd command).
            let r = try await box.sh("/.robit/init probe")
            #expect(r.stdout.text.contains("no_new_privs=1") && r.stdout.text.contains("seccomp=2"), "grandchild under \(runtime): \(r.summary)")
        }

        @Test("the capability bounding set is empty", arguments: TestEnv.allRuntimes)
        func boundingSetEmpty(runtime: RuntimeKind) async throws {
            let (box, _) = try await sandbox(runtime).pair
            let p = try await box.probe()
            #expect(p["CapBnd"].flatMap { UInt64($0, radix: 16) } == 0, "CapBnd under \(runtime): \(p["CapBnd"] ?? "missing")")
        }

        // 5. mount, unshare, ptrace and keyctl are denied.
        @Test("mount, unshare, ptrace and keyctl are denied", arguments: TestEnv.allRuntimes)
        func dangerousSyscallsDenied(runtime: RuntimeKind) async throws {
            let (box, _) = try await sandbox(runtime).pair
            let script = #"""
            import ctypes, os, platform
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            NR = {"x86_64": dict(mount=165, unshare=272, ptrace=101, keyctl=250, setns=308),
                  "aarch64": dict(mount=40, unshare=97, ptrace=117, keyctl=219, setns=268)}[platform.machine()]
            def call(name, *args):
                ctypes.set_errno(0)
                r = libc.syscall(NR[name], *args)
                return r, ctypes.get_errno()
            def in_child(f):
                # Run f in a child so a call that succeeds changes nothing here; report its result.
                rd, wr = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(rd)
                    r, e = f()
                    os.write(wr, ("%d %d" % (r, e)).encode())
                    os._exit(0)
                os.close(wr)
                out = os.read(rd, 100).decode()
                os.waitpid(pid, 0)
                r, e = out.split()
                return int(r), int(e)
            os.makedirs("/tmp/mnt-target", exist_ok=True)
            c = ctypes.c_char_p
            results = {
              "mount_tmpfs": call("mount", c(b"none"), c(b"/tmp/mnt-target"), c(b"tmpfs"), ctypes.c_ulong(0), None),
              "mount_bind": call("mount", c(b"/work"), c(b"/tmp/mnt-target"), None, ctypes.c_ulong(4096), None),
              "unshare_user": in_child(lambda: call("unshare", ctypes.c_ulong(0x10000000))),
              "unshare_mnt": in_child(lambda: call("unshare", ctypes.c_ulong(0x00020000))),
              "unshare_net": in_child(lambda: call("unshare", ctypes.c_ulong(0x40000000))),
              "ptrace_traceme": in_child(lambda: call("ptrace", ctypes.c_long(0), ctypes.c_long(0), None, None)),
              "ptrace_attach_1": in_child(lambda: call("ptrace", ctypes.c_long(16), ctypes.c_long(1), None, None)),
              "keyctl_session": in_child(lambda: call("keyctl", ctypes.c_long(0), ctypes.c_long(-3), ctypes.c_long(1))),
              "keyctl_join": in_child(lambda: call("keyctl", ctypes.c_long(1), c(b"robit-test"))),
            }
            for k, (r, e) in results.items():
                print("%s r=%d errno=%d" % (k, r, e))
            """#
            let r = try await box.python(script)
            #expect(r.exitCode == 0, "the probe script failed under \(runtime): \(r.summary)")
            let lines = r.stdout.text.split(separator: "\n")
            let names = ["mount_tmpfs", "mount_bind", "unshare_user", "unshare_mnt", "unshare_net", "ptrace_traceme", "ptrace_attach_1",
                         "keyctl_session", "keyctl_join"]
            for name in names {
                guard let line = lines.first(where: { $0.hasPrefix(name + " ") }) else {
                    Issue.record("no result for \(name) under \(runtime): \(r.summary)")
                    continue
                }
                let fields = Dictionary(uniqueKeysWithValues: line.split(separator: " ").dropFirst().compactMap { kv -> (String, Int)? in
                    let p = kv.split(separator: "=")
                    guard p.count == 2, let v = Int(p[1]) else { return nil }
                    return (String(p[0]), v)
                })
                #expect(fields["r"] == -1, "\(name) succeeded under \(runtime): \(line)")
                // EPERM, EACCES or ENOSYS: refused, not an argument error that would hide a success.
                #expect([Int(EPERM), Int(EACCES), Int(ENOSYS)].contains(fields["errno"] ?? 0), "\(name) under \(runtime): \(line)")
            }
            // The unshare and mount binaries agree.
            let tools = try await box.sh("unshare -U true; echo unshare=$?; unshare -r true; echo unshare_r=$?; mount -t tmpfs none /tmp/mnt-target; echo mount=$?")
            #expect(!tools.stdout.text.contains("unshare=0"), "unshare -U succeeded under \(runtime): \(tools.summary)")
            #expect(!tools.stdout.text.contains("unshare_r=0"), "unshare -r succeeded under \(runtime): \(tools.summary)")
            #expect(!tools.stdout.text.contains("mount=0"), "mount succeeded under \(runtime): \(tools.summary)")
        }

        // 6. No raw or packet sockets, only loopback, and the host's loopback is out of reach.
        @Test("raw and packet sockets fail; only lo; host loopback unreachable", arguments: TestEnv.allRuntimes)
        func network(runtime: RuntimeKind) async throws {
            let (box, _) = try await sandbox(runtime).pair
            let listener = try HostListener()
            // Sanity: the listener does see a connection from the host, so the check below can fail.
            try connectFromHost(port: listener.port)
            try await Task.sleep(for: .milliseconds(100))
            #expect(listener.acceptedAnything(), "the host listener did not see a host connection")
            let sockets = try await box.python(#"""
            import socket, errno
            def attempt(name, *args):
                try:
                    s = socket.socket(*args)
                    s.close()
                    print(name, "OPENED")
                except OSError as e:
                    print(name, "denied", errno.errorcode.get(e.errno, e.errno))
            attempt("raw_icmp", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            attempt("raw_tcp", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
            attempt("raw_icmp6", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            attempt("packet_raw", socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
            attempt("packet_dgram", socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))
            print("ifaces", ",".join(sorted(n for _, n in socket.if_nameindex())))
            devs = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
            print("procnetdev", ",".join(sorted(devs)))
            """#)
            #expect(sockets.exitCode == 0, "\(sockets.summary)")
            for name in ["raw_icmp", "raw_tcp", "raw_icmp6", "packet_raw", "packet_dgram"] {
                let line = sockets.stdout.text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
                #expect(line?.contains(" denied ") == true, "\(name) under \(runtime): \(line.map(String.init) ?? "missing") — \(sockets.summary)")
            }
            let ifaces = sockets.stdout.text.split(separator: "\n").first { $0.hasPrefix("ifaces ") }
            #expect(ifaces == "ifaces lo", "interfaces under \(runtime): \(sockets.summary)")
            let devs = sockets.stdout.text.split(separator: "\n").first { $0.hasPrefix("procnetdev ") }
            #expect(devs == "procnetdev lo" || devs == "procnetdev ", "/proc/net/dev under \(runtime): \(sockets.summary)")

            let connect = try await box.python(#"""
            import socket, sys, errno
            port = int(sys.argv[1])
            for host in ["127.0.0.1", "localhost", "127.0.1.1"]:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(3)
                try:
                    s.connect((host, port))
                    print(host, "CONNECTED")
                except OSError as e:
                    print(host, "failed", errno.errorcode.get(e.errno, e.errno) if e.errno else type(e).__name__)
                finally:
                    s.close()
            """#, [String(listener.port)])
            #expect(connect.exitCode == 0, "\(connect.summary)")
            #expect(!connect.stdout.text.contains("CONNECTED"), "the host's 127.0.0.1:\(listener.port) was reachable under \(runtime): \(connect.summary)")
            #expect(connect.stdout.text.contains("127.0.0.1 failed"), "\(connect.summary)")
            #expect(!listener.acceptedAnything(), "the host listener accepted a connection from the sandbox under \(runtime)")
        }

        // 11. robit's environment (a secret) is visible nowhere inside.
        @Test("a secret in robit's environment is not visible inside", arguments: TestEnv.allRuntimes)
        func secretStaysOutside(runtime: RuntimeKind) async throws {
            let secret = TestEnv.secret
            #expect(ProcessInfo.processInfo.environment["ROBIT_TEST_SECRET"] == secret)
            let (box, ws) = try await sandbox(runtime).pair
            // The script never holds the whole secret: any match in its output is a leak.
            let half = secret.count / 2
            let a = String(secret.prefix(half)), b = String(secret.dropFirst(half))
            let r = try await box.sh("""
                A='\(a)'; B='\(b)'
                echo "== environ"; for f in /proc/[0-9]*/environ; do cat "$f" 2>/dev/null | tr '\\0' '\\n'; done
                echo "== env"; env
                echo "== set"; ( set ) | grep -v '^[AB]='
                echo "== grep"; grep -rlsF "$A$B" /etc /work /tmp /.robit 2>/dev/null
                echo "== named"; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c ROBIT_TEST_SECRET
                true
                """)
            #expect(r.exitCode == 0, "\(r.summary)")
            #expect(r.stdout.text.contains("== environ") && r.stdout.text.contains("PATH="), "\(r.summary)")
            #expect(!r.stdout.text.contains(secret), "the secret is visible inside under \(runtime): \(r.summary)")
            #expect(!r.stdout.text.contains("ROBIT_TEST_SECRET"), "the variable's name is visible inside under \(runtime): \(r.summary)")
            // The process environment inside, checked in full.
            let env = try await box.exec(ExecRequest(argv: ["/usr/bin/env"]))
            #expect(!env.stdout.text.contains(secret) && !env.stdout.text.contains("ROBIT_TEST_SECRET"), "\(env.summary)")
            #expect(!ws.path.isEmpty)

            // config.json: no such entry in process.env, nor anywhere else.
            let configText = try String(contentsOfFile: box.bundle.configPath, encoding: .utf8)
            #expect(!configText.contains(secret), "config.json holds the secret under \(runtime)")
            let spec = try box.bundle.loadSpec()
            let penv = spec.process?.env ?? []
            #expect(!penv.isEmpty)
            #expect(!penv.contains { $0.hasPrefix("ROBIT_TEST_SECRET=") || $0.contains(secret) }, "config.json process.env: \(penv)")
            #expect(Set(penv.map { String($0.split(separator: "=").first ?? "") })
                        .isSubset(of: Set(SandboxConfiguration.defaultEnvironment.map { String($0.split(separator: "=").first!) })),
                    "config.json process.env has more than robit's fixed environment: \(penv)")
        }
    }
}

extension SandboxPool.Entry {
    var pair: (Sandbox, TempWorkspace) { (box, workspace) }
}
