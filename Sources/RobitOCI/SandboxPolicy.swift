import CCap
import CSeccomp
import Foundation
import RobitSync

/// What a sandboxed process may do: its capabilities and its seccomp profile.
///
/// A policy file is JSON with exactly the keys `capabilities` (names such as `CAP_NET_BIND_SERVICE`),
/// `seccomp` (an OCI `linux.seccomp` object) and an optional `description`. Every syscall name is
/// checked with libseccomp for the profile's architectures and every capability with libcap, so a
/// misspelled name fails at load instead of silently weakening or breaking the sandbox.
public struct SandboxPolicy: Sendable, Equatable {
    public var capabilities: [String]
    public var seccomp: Seccomp
    public var description: String?
    /// Where the policy came from: a path, or "built-in default".
    public var source: String

    /// robit's default: no capabilities, Docker's default seccomp profile minus mount, namespaces,
    /// ptrace, bpf, keyctl, userfaultfd, perf_event_open, io_uring, kexec, modules and clocks.
    public static func builtInDefault() -> SandboxPolicy { parsedDefault }

    private static let parsedDefault: SandboxPolicy = {
        do {
            return try parse(Data(defaultPolicyJSON.utf8), source: "built-in default")
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
        return try parse(data, source: path)
    }

    public static func parse(_ data: Data, source: String) throws(PolicyError) -> SandboxPolicy {
        let text = String(decoding: data, as: UTF8.self)
        func fail(_ keyPath: String, _ message: String, near needle: String? = nil) -> PolicyError {
            PolicyError(file: source, line: needle.flatMap { lineOf($0, in: text) }, keyPath: keyPath, message: message)
        }
        let top: Any
        do {
            top = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw fail("", "not valid JSON: \((error as NSError).userInfo["NSDebugDescription"] ?? error)")
        }
        guard let object = top as? [String: Any] else { throw fail("", "a policy must be a JSON object") }
        try checkKeys(object, allowed: ["capabilities", "seccomp", "description"], required: ["capabilities", "seccomp"], path: "", fail)
        guard let seccompObject = object["seccomp"] as? [String: Any] else { throw fail("seccomp", "must be an object") }
        try checkKeys(seccompObject, allowed: ["defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls"],
                      required: ["defaultAction"], path: "seccomp", fail)
        if let rules = seccompObject["syscalls"] as? [Any] {
            for (i, rule) in rules.enumerated() {
                guard let rule = rule as? [String: Any] else { throw fail("seccomp.syscalls[\(i)]", "must be an object") }
                try checkKeys(rule, allowed: ["names", "action", "errnoRet", "args"], required: ["names", "action"],
                              path: "seccomp.syscalls[\(i)]", fail)
                for (j, arg) in (rule["args"] as? [Any] ?? []).enumerated() {
                    guard let arg = arg as? [String: Any] else { throw fail("seccomp.syscalls[\(i)].args[\(j)]", "must be an object") }
                    try checkKeys(arg, allowed: ["index", "value", "valueTwo", "op"], required: ["index", "value", "op"],
                                  path: "seccomp.syscalls[\(i)].args[\(j)]", fail)
                }
            }
        }

        struct File: Decodable {
            var capabilities: [String]
            var seccomp: Seccomp
            var description: String?
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch let DecodingError.dataCorrupted(context) {
            throw fail(context.codingPath.dottedPath, context.debugDescription)
        } catch let DecodingError.typeMismatch(_, context) {
            throw fail(context.codingPath.dottedPath, "wrong type: \(context.debugDescription)")
        } catch let DecodingError.valueNotFound(_, context) {
            throw fail(context.codingPath.dottedPath, "missing value")
        } catch let DecodingError.keyNotFound(key, context) {
            throw fail((context.codingPath + [key]).dottedPath, "missing key")
        } catch {
            throw fail("", "\(error)")
        }

        var capabilities: [String] = []
        for (i, name) in file.capabilities.enumerated() {
            guard let canonical = Capability.canonicalName(name) else {
                throw fail("capabilities[\(i)]", "unknown capability \"\(name)\" (names look like CAP_NET_BIND_SERVICE; see capabilities(7))",
                           near: "\"\(name)\"")
            }
            capabilities.append(canonical)
        }

        let architectures = file.seccomp.architectures ?? [SyscallTable.nativeArchitecture]
        for (i, arch) in architectures.enumerated() where SyscallTable.architectureToken(arch) == nil {
            throw fail("seccomp.architectures[\(i)]", "unknown architecture \"\(arch)\" (e.g. SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64)", near: "\"\(arch)\"")
        }
        if let e = file.seccomp.defaultErrnoRet, e > 4095 {
            throw fail("seccomp.defaultErrnoRet", "errno \(e) is out of range 0...4095", near: "\"defaultErrnoRet\"")
        }
        for (i, rule) in (file.seccomp.syscalls ?? []).enumerated() {
            if let e = rule.errnoRet, e > 4095 {
                throw fail("seccomp.syscalls[\(i)].errnoRet", "errno \(e) is out of range 0...4095")
            }
            if rule.names.isEmpty { throw fail("seccomp.syscalls[\(i)].names", "must name at least one syscall") }
            for (j, name) in rule.names.enumerated() where !SyscallTable.isKnown(name, architectures: architectures) {
                throw fail("seccomp.syscalls[\(i)].names[\(j)]",
                           "unknown syscall \"\(name)\" for \(architectures.joined(separator: ", ")) (check the spelling; libseccomp \(SyscallTable.libseccompVersion) does not know it)",
                           near: "\"\(name)\"")
            }
            for (j, arg) in (rule.args ?? []).enumerated() where arg.index > 5 {
                throw fail("seccomp.syscalls[\(i)].args[\(j)].index", "syscall argument index \(arg.index) is out of range 0...5")
            }
        }
        return SandboxPolicy(capabilities: capabilities, seccomp: file.seccomp, description: file.description, source: source)
    }

    private static func checkKeys(_ object: [String: Any], allowed: Set<String>, required: Set<String>, path: String,
                                  _ fail: (String, String, String?) -> PolicyError) throws(PolicyError) {
        for key in object.keys.sorted() where !allowed.contains(key) {
            let full = path.isEmpty ? key : "\(path).\(key)"
            throw fail(full, "unknown key \"\(key)\" (allowed: \(allowed.sorted().joined(separator: ", ")))", "\"\(key)\"")
        }
        for key in required.sorted() where object[key] == nil {
            throw fail(path.isEmpty ? key : "\(path).\(key)", "missing required key", nil)
        }
    }
}

private func lineOf(_ needle: String, in text: String) -> Int? {
    var line = 1
    var rest = Substring(text)
    guard let range = rest.range(of: needle) else { return nil }
    rest = rest[..<range.lowerBound]
    for c in rest.utf8 where c == UInt8(ascii: "\n") { line += 1 }
    return line
}

extension [any CodingKey] {
    fileprivate var dottedPath: String {
        var out = ""
        for key in self {
            if let i = key.intValue { out += "[\(i)]" } else { out += out.isEmpty ? key.stringValue : ".\(key.stringValue)" }
        }
        return out
    }
}

public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var keyPath: String
    public var message: String

    public init(file: String, line: Int? = nil, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return keyPath.isEmpty ? "\(location): \(message)" : "\(location): \(keyPath): \(message)"
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
