import Foundation
import Glibc
import RobitExec
import RobitOCI
import Testing

/// What a test needs of the machine. A test that needs root or a runtime checks for it: without it the
/// test is skipped, except under CI=true, where a missing prerequisite is a failure.
public enum TestEnv {
    public static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"
    public static let isRoot = geteuid() == 0
    public static let allRuntimes: [RuntimeKind] = [.runsc, .crun, .runc]
    /// The user sandboxes run as: the one `robit run` uses.
    public static let user = User.sandbox
    public static let limits = SandboxLimits(memory: 256 << 20, pids: 64, cpu: 1.0, tmpSize: 8 << 20)

    /// A missing prerequisite: fails under CI=true, else skips the current test (case).
    public static func missing(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Never {
        if isCI {
            Issue.record("prerequisite missing under CI=true: \(what)", sourceLocation: sourceLocation)
            throw PrerequisiteMissing(what: what)
        }
        try Test.cancel("skipped: \(what)", sourceLocation: sourceLocation)
    }

    /// Root, the runtime `kind` and robit-init, or the test is skipped (failed under CI).
    public static func require(_ kind: RuntimeKind, sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard isRoot else { try missing("these tests create sandboxes and must run as root", sourceLocation: sourceLocation) }
        do {
            _ = try Runtime.locate(kind)
        } catch {
            try missing("\(kind.rawValue) is not installed: \(error)", sourceLocation: sourceLocation)
        }
        _ = try initBinary(sourceLocation: sourceLocation)
        if kind == .crun, CgroupMounts.current().crunHybridQuirk {
            try missing("crun refuses this host's hybrid cgroups; run: \(Doctor.hugetlbFix)", sourceLocation: sourceLocation)
        }
    }

    public static func initBinary(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        do {
            return try InitBinary.locate()
        } catch {
            try missing("robit-init is not built (swift build --product robit-init): \(error)", sourceLocation: sourceLocation)
        }
    }
}

public struct PrerequisiteMissing: Error, CustomStringConvertible {
    public var what: String
    public var description: String { "prerequisite missing: \(what)" }
}

/// The robit binary the tests run: `$ROBIT_BIN`, else the one built next to this test bundle.
public enum RobitBinary {
    public static func path(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["ROBIT_BIN"], !env.isEmpty { candidates.append(env) }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            var dir = (exe as NSString).deletingLastPathComponent
            for _ in 0..<4 where dir.count > 1 {
                candidates.append(dir + "/robit")
                dir = (dir as NSString).deletingLastPathComponent
            }
        }
        for c in candidates {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: c, isDirectory: &isDirectory), !isDirectory.boolValue, access(c, X_OK) == 0 { return c }
        }
        try TestEnv.missing("the robit binary was not found (looked in \(candidates.joined(separator: ", "))); `swift build` or set ROBIT_BIN",
                            sourceLocation: sourceLocation)
    }
}

/// The containers a runtime lists (`RUNTIME list --quiet`), asked independently of robit; nil when listing fails.
public enum RuntimeListing {
    public static func ids(_ kind: RuntimeKind) async -> [String]? {
        guard let runtime = try? Runtime.locate(kind) else { return [] }
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: runtime.path)
        p.arguments = ["list", "--quiet"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        while p.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        guard p.terminationReason == .exit, p.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
