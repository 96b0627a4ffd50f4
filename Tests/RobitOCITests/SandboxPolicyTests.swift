import Foundation
import Testing
@testable import RobitExec
@testable import RobitOCI

@Suite struct SandboxPolicyTests {
    @Test func builtInDefaultIsTheShippedFile() throws {
        let file = try SandboxPolicy.load(path: TestPaths.defaultPolicy)
        let builtIn = SandboxPolicy.builtInDefault()
        #expect(file.seccomp == builtIn.seccomp)
        #expect(file.capabilities == builtIn.capabilities)
        #expect(builtIn.capabilities.isEmpty)
    }

    @Test(arguments: ["mount", "umount2", "unshare", "setns", "ptrace", "bpf", "keyctl", "add_key", "request_key", "userfaultfd",
                      "perf_event_open", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
                      "clock_settime", "clock_adjtime", "settimeofday", "adjtimex", "pivot_root", "chroot", "process_vm_readv",
                      "io_uring_setup", "open_by_handle_at"])
    func defaultPolicyDeniesDangerousSyscalls(name: String) {
        let seccomp = SandboxPolicy.builtInDefault().seccomp
        #expect(seccomp.defaultAction == .errno)
        let allowing = (seccomp.syscalls ?? []).filter { $0.action == .allow && $0.names.contains(name) }
        #expect(allowing.isEmpty, "\(name) is allowed by \(allowing)")
    }

    /// At least as strict as Docker's default: everything the default policy allows, Docker's
    /// profile (converted for no capabilities) allows too, with the same argument conditions.
    @Test func defaultPolicyIsAtLeastAsStrictAsDockersDefault() throws {
        let (status, output) = try TestPaths.run(["python3", TestPaths.reference + "/seccomp/docker-to-oci-seccomp.py", "--arch", "amd64"])
        try #require(status == 0, "cannot convert Docker's profile: \(output)")
        let docker = try JSONDecoder().decode(Seccomp.self, from: Data(output.utf8))
        struct Rule: Hashable { var name: String; var args: [Seccomp.Arg] }
        func allowed(_ s: Seccomp) -> Set<Rule> {
            Set((s.syscalls ?? []).filter { $0.action == .allow }.flatMap { r in r.names.map { Rule(name: $0, args: r.args ?? []) } })
        }
        let ours = allowed(SandboxPolicy.builtInDefault().seccomp)
        let theirs = allowed(docker)
        #expect(ours.subtracting(theirs).isEmpty, "allowed by robit but not by Docker: \(ours.subtracting(theirs))")
        #expect(ours.count > 300)
        #expect(SandboxPolicy.builtInDefault().seccomp.defaultAction == docker.defaultAction)
    }

    @Test func misspelledSyscallIsRefusedWithFileKeyAndName() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/bad.json"
        let text = try String(contentsOfFile: TestPaths.defaultPolicy, encoding: .utf8).replacingOccurrences(of: "\"mkdir\"", with: "\"mkdri\"")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try SandboxPolicy.load(path: path)
            Issue.record("a policy with a misspelled syscall loaded")
        } catch {
            #expect(error.file == path)
            #expect(error.message.contains("\"mkdri\""))
            #expect(error.keyPath.hasPrefix("seccomp.syscalls[") && error.keyPath.contains("names["))
            let line = try #require(error.line)
            #expect(text.split(separator: "\n", omittingEmptySubsequences: false)[line - 1].contains("mkdri"))
            #expect(error.description.hasPrefix("\(path):\(line): seccomp.syscalls["))
        }
    }

    @Test(arguments: [
        (#"{"capabilities": [], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}, "extra": 1}"#, "extra", "unknown key"),
        (#"{"capabilities": ["CAP_NET_RAWW"], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}"#, "capabilities[0]", "CAP_NET_RAWW"),
        (#"{"capabilities": ["7"], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}"#, "capabilities[0]", "unknown capability"),
        (#"{"capabilities": [], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALOW"}]}}"#,
         "seccomp.syscalls[0].action", "SCMP_ACT_ALOW"),
        (#"{"capabilities": [], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "nmaes": []}]}}"#,
         "seccomp.syscalls[0].nmaes", "unknown key"),
        (#"{"capabilities": [], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}}"#,
         "seccomp.architectures[0]", "unknown architecture"),
        (#"{"capabilities": [], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}}"#,
         "seccomp.syscalls[0].names", "at least one"),
        (#"{"capabilities": [], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read; rm -rf /"], "action": "SCMP_ACT_ALLOW"}]}}"#,
         "seccomp.syscalls[0].names[0]", "unknown syscall"),
        (#"{"capabilities": [], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}}"#,
         "seccomp.syscalls[0].args[0].index", "out of range"),
        (#"{"capabilities": []}"#, "seccomp", "missing"),
        (#"[1, 2]"#, "", "JSON object"),
        (#"{"capabilities": "#, "", "not valid JSON"),
        (#"{"capabilities": {}, "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}"#, "capabilities", "wrong type"),
    ])
    func hostilePoliciesAreRefusedWithTheKeyPath(json: String, keyPath: String, message: String) {
        do {
            _ = try SandboxPolicy.parse(Data(json.utf8), source: "p.json")
            Issue.record("accepted: \(json)")
        } catch {
            #expect(error.file == "p.json")
            #expect(error.keyPath == keyPath, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test func capabilityNamesAreCanonicalised() throws {
        let p = try SandboxPolicy.parse(Data(#"{"capabilities": ["cap_net_bind_service", "CHOWN"], "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}"#.utf8), source: "x")
        #expect(p.capabilities == ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"])
    }

    @Test func defaultPolicyCompilesWithLibseccomp() throws {
        let bpf = try SyscallTable.compileBPF(SandboxPolicy.builtInDefault().seccomp)
        #expect(bpf.count > 1000 && bpf.count % 8 == 0)
        #expect(SyscallTable.isKnown("read", architectures: ["SCMP_ARCH_X86_64"]))
        #expect(!SyscallTable.isKnown("mkdri", architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]))
        #expect(!SyscallTable.isKnown("", architectures: ["SCMP_ARCH_X86_64"]))
    }

    @Test func generatorIsReproducible() throws {
        // policies/default.json and its embedded copy are what scripts/gen-default-policy writes.
        let embedded = SandboxPolicy.defaultPolicyJSON + "\n"
        let file = try String(contentsOfFile: TestPaths.defaultPolicy, encoding: .utf8)
        #expect(embedded == file)
    }
}
