import Foundation
import Glibc
@testable import RobitAgent
import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

// Support of the tool tests that run in real sandboxes (root and the runtimes needed). Without them
// the tests are skipped, except under CI=true where a missing prerequisite is a failure.

/// A root-owned directory under /tmp holding the workspace `ws` (owned by the sandbox user) and
/// `outside.txt`, a host file next to the workspace that no tool may touch.
final class ToolWorkspace: @unchecked Sendable {
    let root: String
    let path: String
    static let outsideContent = "host file: must never change\n"

    init() throws {
        root = "/tmp/robit-tooltests-" + UUID().uuidString.lowercased().prefix(13)
        path = root + "/ws"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        guard chown(path, TestEnv.user.uid, TestEnv.user.gid) == 0 else { throw ToolWorkspace.Failure("chown \(path)") }
        try Self.outsideContent.write(toFile: root + "/outside.txt", atomically: false, encoding: .utf8)
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Writes a file inside the workspace from the host, owned by the sandbox user.
    func put(_ relative: String, _ data: Data) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: full))
        _ = chown(full, TestEnv.user.uid, TestEnv.user.gid)
    }

    func put(_ relative: String, _ text: String) throws { try put(relative, Data(text.utf8)) }

    func symlink(_ relative: String, to target: String) throws {
        try FileManager.default.createSymbolicLink(atPath: path + "/" + relative, withDestinationPath: target)
    }

    func read(_ relative: String) -> Data? { FileManager.default.contents(atPath: path + "/" + relative) }

    var outsideIntact: Bool {
        (try? String(contentsOfFile: root + "/outside.txt", encoding: .utf8)) == Self.outsideContent
            && (try? FileManager.default.contentsOfDirectory(atPath: root))?.sorted() == ["outside.txt", "ws"]
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }
}

/// Runs `body` with a fresh sandbox of `kind` over a fresh workspace, and destroys it after.
func withToolSandbox(_ kind: RuntimeKind, _ body: (Sandbox, ToolWorkspace) async throws -> Void) async throws {
    try TestEnv.require(kind)
    let ws = try ToolWorkspace()
    let box = try await Sandbox.create(SandboxOptions(runtime: kind, workspace: ws.path, user: TestEnv.user, limits: TestEnv.limits))
    do {
        try await body(box, ws)
    } catch {
        _ = await box.destroy()
        throw error
    }
    let left = await box.destroy()
    #expect(left.isEmpty, "sandbox teardown left: \(left)")
}

extension ToolRegistry {
    /// Runs one call, checking that exactly one outcome for it comes back.
    func one(_ name: String, _ arguments: JSONValue, in box: Sandbox) async throws -> ToolOutcome {
        let outcomes = try await run([ToolCall(id: "c1", name: name, arguments: arguments.compactText)], in: box)
        try #require(outcomes.count == 1)
        #expect(outcomes[0].callID == "c1")
        #expect(outcomes[0].name == name)
        return outcomes[0]
    }
}
