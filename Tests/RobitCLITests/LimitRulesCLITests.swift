import ArgumentParser
import Foundation
@testable import RobitCLI
@testable import RobitAgent
import RobitOCI
import Testing

/// `sandbox.limits` in a task and `robit sandbox run`'s flags accept the same bounds and refuse with
/// the same message (RobitOCI `LimitRules`).
struct LimitRulesCLITests {
    /// The message a task file gets for `limits: { KEY: VALUE }`, nil when it is accepted.
    func taskMessage(_ key: String, _ value: String) -> String? {
        let yaml = """
            version: 1
            model: { provider: replay, script: s.jsonl }
            prompt: go
            workspace: { path: ws }
            sandbox: { limits: { \(key): \(value) } }
            """
        do {
            _ = try TaskFile.parse(yaml, file: "task.yaml", baseDirectory: "/base")
            return nil
        } catch {
            return error.message
        }
    }

    /// The message `robit sandbox run --FLAG VALUE` gets, without the `--FLAG: ` prefix; nil when accepted.
    func flagMessage(_ flag: String, _ value: String) async -> String? {
        do {
            let extra = flag == "disk" ? ["--copy", "--workspace", "/tmp"] : []
            let command = try SandboxRun.parse(extra + ["--\(flag)", value, "--", "true"])
            if ["memory", "pids", "cpu", "tmp-size"].contains(flag) {
                _ = try command.sandbox.options()
            } else {
                _ = try command.checkedLimits()
            }
            return nil
        } catch let error as ValidationError {
            let text = error.message
            let prefix = "--\(flag): "
            return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : "unprefixed: " + text
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: [
        ("memory", "memory", "1MiB"), ("memory", "memory", "16MiB"), ("memory", "memory", "2PiB"), ("memory", "memory", "lots"),
        ("memory", "memory", "1048576"),
        ("pids", "pids", "1"), ("pids", "pids", "7"), ("pids", "pids", "8"), ("pids", "pids", "4194305"),
        ("cpu", "cpu", "0.001"), ("cpu", "cpu", "0.5"), ("cpu", "cpu", "2000"),
        ("timeout", "timeout", "0s"), ("timeout", "timeout", "30s"), ("timeout", "timeout", "8d"), ("timeout", "timeout", "30"),
        ("output", "output", "10"), ("output", "output", "1KiB"), ("output", "output", "2GiB"),
        ("disk", "disk", "1KiB"), ("disk", "disk", "64MiB"), ("disk", "disk", "2TiB"),
    ])
    func taskAndFlagsAgree(_ key: String, _ flag: String, _ value: String) async throws {
        let task = taskMessage(key, value)
        let cli = await flagMessage(flag, value)
        #expect(task == cli, "limits.\(key): \(value): task says \(task ?? "ok"), --\(flag) says \(cli ?? "ok")")
    }

    @Test func tmpSizeUsesTheSameSizeRules() async {
        #expect(await flagMessage("tmp-size", "0") == "0 is too small; the minimum is 1MiB")
        #expect(await flagMessage("tmp-size", "64MiB") == nil)
    }
}
