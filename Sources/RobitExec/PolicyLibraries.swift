import CCap
import CSeccomp
import Foundation
import RobitOCI
import RobitSync

/// The host's libcap and libseccomp: what a policy's names are checked against.
public struct HostPolicyNames: PolicyNames {
    public init() {}
    public func canonicalCapability(_ name: String) -> String? { Capability.canonicalName(name) }
    public func knowsArchitecture(_ oci: String) -> Bool { SyscallTable.architectureToken(oci) != nil }
    public func knowsSyscall(_ name: String, architectures: [String]) -> Bool { SyscallTable.isKnown(name, architectures: architectures) }
    public var nativeArchitecture: String { SyscallTable.nativeArchitecture }
    public var version: String { "libseccomp \(SyscallTable.libseccompVersion)" }
}

extension SandboxPolicy {
    /// robit's default: no capabilities, Docker's default seccomp profile minus mount, namespaces,
    /// ptrace, bpf, keyctl, userfaultfd, perf_event_open, io_uring, kexec, modules and clocks.
    public static func builtInDefault() -> SandboxPolicy { parsedDefault }

    private static let parsedDefault: SandboxPolicy = {
        do {
            return try parse(Data(defaultPolicyJSON.utf8), source: "built-in default", names: HostPolicyNames())
        } catch {
            fatalError("the built-in default policy is invalid: \(error)")
        }
    }()

    public static func load(path: String) throws(PolicyError) -> SandboxPolicy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PolicyError(file: path, keyPath: "", message: "cannot read the policy file (check the path and its permissions)")
        }
        guard data.count <= 4 << 20 else {
            throw PolicyError(file: path, keyPath: "", message: "policy file is larger than 4 MiB")
        }
        return try parse(data, source: path, names: HostPolicyNames())
    }

    public static func parse(_ data: Data, source: String) throws(PolicyError) -> SandboxPolicy {
        try parse(data, source: source, names: HostPolicyNames())
    }
}

/// Capability names, checked with libcap.
public enum Capability {
    /// "CAP_NET_RAW" for "cap_net_raw", "CAP_NET_RAW" or "NET_RAW"; nil when libcap does not know it.
    public static func canonicalName(_ name: String) -> String? {
        var lower = name.lowercased()
        if !lower.hasPrefix("cap_") { lower = "cap_" + lower }
        guard lower.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else { return nil }
        var value: cap_value_t = 0
        guard cap_from_name(lower, &value) == 0 else { return nil }
        // cap_from_name also accepts plain numbers; a policy must use names.
        guard lower.dropFirst(4).contains(where: { $0.isLetter }) else { return nil }
        return lower.uppercased()
    }
}

/// Syscall names per architecture, from libseccomp.
public enum SyscallTable {
    public static var libseccompVersion: String {
        guard let v = seccomp_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.micro)"
    }

    public static var nativeArchitecture: String {
        #if arch(x86_64)
        return "SCMP_ARCH_X86_64"
        #elseif arch(arm64)
        return "SCMP_ARCH_AARCH64"
        #else
        return "SCMP_ARCH_NATIVE"
        #endif
    }

    /// The libseccomp token for an OCI architecture name such as SCMP_ARCH_X86_64.
    public static func architectureToken(_ oci: String) -> UInt32? {
        guard oci.hasPrefix("SCMP_ARCH_") else { return nil }
        let name = oci.dropFirst("SCMP_ARCH_".count).lowercased()
        if name == "native" { return seccomp_arch_native() }
        let token = seccomp_arch_resolve_name(name)
        return token == 0 ? nil : token
    }

    /// True when `name` is a syscall on at least one of the architectures.
    public static func isKnown(_ name: String, architectures: [String]) -> Bool {
        guard !name.isEmpty, name.utf8.count < 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            return false
        }
        for arch in architectures {
            guard let token = architectureToken(arch) else { continue }
            if seccomp_syscall_resolve_name_arch(token, name) != __NR_SCMP_ERROR { return true }
        }
        return false
    }

    /// Compiles a profile for the native architecture with libseccomp into a BPF program, as the
    /// kernel's seccomp(2) takes it.
    public static func compileBPF(_ seccomp: Seccomp) throws(PolicyError) -> [UInt8] {
        if let cached = bpfCache.withLock({ $0.first { $0.0 == seccomp }?.1 }) { return cached }
        let program = try compileUncached(seccomp)
        bpfCache.withLock { cache in
            cache.append((seccomp, program))
            if cache.count > 8 { cache.removeFirst() }
        }
        return program
    }

    private static let bpfCache = Locked<[(Seccomp, [UInt8])]>([])

    private static func compileUncached(_ seccomp: Seccomp) throws(PolicyError) -> [UInt8] {
        func fail(_ m: String) -> PolicyError { PolicyError(file: "seccomp", keyPath: "", message: m) }
        func action(_ a: Seccomp.Action, _ errno: UInt32?) -> UInt32 {
            switch a {
            case .kill, .killThread: return SCMP_ACT_KILL_THREAD
            case .killProcess: return SCMP_ACT_KILL_PROCESS
            case .trap: return SCMP_ACT_TRAP
            case .errno: return robit_scmp_act_errno(UInt16(errno ?? 1))
            case .trace: return 0x7ff0_0000 | 1
            case .allow: return SCMP_ACT_ALLOW
            case .log: return SCMP_ACT_LOG
            case .notify: return SCMP_ACT_NOTIFY
            }
        }
        guard let ctx = seccomp_init(action(seccomp.defaultAction, seccomp.defaultErrnoRet)) else {
            throw fail("seccomp_init failed")
        }
        defer { seccomp_release(ctx) }
        for rule in seccomp.syscalls ?? [] {
            let act = action(rule.action, rule.errnoRet)
            let args = (rule.args ?? []).map { arg -> scmp_arg_cmp in
                let op: scmp_compare
                switch arg.op {
                case .notEqual: op = SCMP_CMP_NE
                case .lessThan: op = SCMP_CMP_LT
                case .lessEqual: op = SCMP_CMP_LE
                case .equal: op = SCMP_CMP_EQ
                case .greaterEqual: op = SCMP_CMP_GE
                case .greaterThan: op = SCMP_CMP_GT
                case .maskedEqual: op = SCMP_CMP_MASKED_EQ
                }
                return scmp_arg_cmp(arg: arg.index, op: op, datum_a: arg.value, datum_b: arg.valueTwo ?? 0)
            }
            for name in rule.names {
                let nr = seccomp_syscall_resolve_name(name)
                if nr == __NR_SCMP_ERROR { continue }  // not a syscall on this architecture
                if act == action(seccomp.defaultAction, seccomp.defaultErrnoRet) { continue }
                let rc = args.withUnsafeBufferPointer { seccomp_rule_add_array(ctx, act, nr, UInt32($0.count), $0.baseAddress) }
                if rc != 0 && rc != -EEXIST { throw fail("libseccomp refused the rule for \(name): \(String(cString: strerror(-rc)))") }
            }
        }
        // Exported through an unlinked temporary file: a pipe could fill up and block.
        var template = Array("/tmp/robit-bpf-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw fail("mkstemp: \(String(cString: strerror(errno)))") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        defer { close(fd) }
        let rc = seccomp_export_bpf(ctx, fd)
        guard rc == 0 else { throw fail("seccomp_export_bpf: \(String(cString: strerror(-rc)))") }
        var program: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        lseek(fd, 0, SEEK_SET)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            program += buffer[0..<n]
        }
        return program
    }
}
