import Foundation

/// What a sandboxed process may do: its capabilities and its seccomp profile.
///
/// A policy file is JSON with exactly the keys `capabilities` (names such as `CAP_NET_BIND_SERVICE`),
/// `seccomp` (an OCI `linux.seccomp` object) and an optional `description`. Every syscall name is
/// checked for the profile's architectures and every capability name, against `PolicyNames` (the
/// host's libseccomp and libcap: RobitExec `HostPolicyNames`), so a misspelled name fails at load
/// instead of silently weakening or breaking the sandbox.
public struct SandboxPolicy: Sendable, Equatable {
    public var capabilities: [String]
    public var seccomp: Seccomp
    public var description: String?
    /// Where the policy came from: a path, or "built-in default".
    public var source: String

    public static func parse(_ data: Data, source: String, names: any PolicyNames) throws(PolicyError) -> SandboxPolicy {
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
            guard let canonical = names.canonicalCapability(name) else {
                throw fail("capabilities[\(i)]", "unknown capability \"\(name)\" (names look like CAP_NET_BIND_SERVICE; see capabilities(7))",
                           near: "\"\(name)\"")
            }
            capabilities.append(canonical)
        }

        let architectures = file.seccomp.architectures ?? [names.nativeArchitecture]
        for (i, arch) in architectures.enumerated() where !names.knowsArchitecture(arch) {
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
            for (j, name) in rule.names.enumerated() where !names.knowsSyscall(name, architectures: architectures) {
                throw fail("seccomp.syscalls[\(i)].names[\(j)]",
                           "unknown syscall \"\(name)\" for \(architectures.joined(separator: ", ")) (check the spelling; \(names.version) does not know it)",
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

/// A problem with a file robit reads (a task file, a policy file): which file, which line, which key,
/// and what to do about it. `description` reads like a compiler diagnostic:
/// `task.yaml:14: sandbox.limits.memory: "512MB!" is not a size (use e.g. 512MiB, 1GiB)`.
public struct ConfigFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as the user named it (or the label given to the parser).
    public var file: String
    /// 1-based line, when the problem has a place in the file.
    public var line: Int?
    /// Dotted key path such as `sandbox.limits.memory` or `custom_tools[0].name`; empty for the whole file.
    public var keyPath: String
    /// What is wrong and how to fix it.
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

public typealias PolicyError = ConfigFileError

/// The names a policy may use: capabilities, seccomp architectures and syscalls. RobitExec's
/// `HostPolicyNames` asks the host's libcap and libseccomp.
public protocol PolicyNames: Sendable {
    /// "CAP_NET_RAW" for "cap_net_raw", "CAP_NET_RAW" or "NET_RAW"; nil for an unknown name.
    func canonicalCapability(_ name: String) -> String?
    func knowsArchitecture(_ oci: String) -> Bool
    /// True when `name` is a syscall on at least one of the architectures.
    func knowsSyscall(_ name: String, architectures: [String]) -> Bool
    /// The architecture a profile without `architectures` is for, e.g. SCMP_ARCH_X86_64.
    var nativeArchitecture: String { get }
    /// What the names come from, for messages ("libseccomp 2.5.4").
    var version: String { get }
}
