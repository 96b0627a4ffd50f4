import Foundation
import Glibc
@testable import RobitExec
import RobitTestSupport
import Testing

/// `ChildProcess.hiddenDirectory`: how runsc starts with /proc/sys/net hidden (see
/// `Runtime.startCommand`). The child enters a mount namespace of its own and covers the directory
/// with an empty read-only tmpfs before exec; the host's mounts stay as they were, and a failure
/// is a spawn error naming the step, never a process started without the cover.
extension ExecIntegration {
    @Suite(.serialized)
    struct HiddenDirectorySpawnTests {
        static func hostMountsHidden() throws -> Bool {
            try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).contains("robit-hidden")
        }

        @Test("the child sees the directory empty and read-only; the host's mounts are untouched")
        func hides() throws {
            guard TestEnv.isRoot else { try TestEnv.missing("mount namespaces need root") }
            let root = "/tmp/robit-hide-" + UUID().uuidString.lowercased().prefix(8)
            let dir = root + "/d"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: root) }
            try "secret".write(toFile: dir + "/file", atomically: false, encoding: .utf8)

            let script = """
                echo "entries:$(ls -A \(dir) | wc -l)"
                touch \(dir)/new 2>/dev/null && echo writable || echo read-only
                grep -c " \(dir) .*robit-hidden" /proc/self/mountinfo
                [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ] && echo same-ns || echo own-ns
                echo "stdin:$(cat)"
                """
            let child = ChildProcess(executable: "/bin/sh", arguments: ["-c", script], stdin: Data("in".utf8), timeout: .seconds(10),
                                     interruptible: false, hiddenDirectory: dir)
            let r = try child.runBlocking()
            #expect(r.status == .exited(0), "\(r.stderr.text)")
            let lines = r.stdout.text.split(separator: "\n").map(String.init)
            #expect(lines == ["entries:0", "read-only", "1", "own-ns", "stdin:in"], "\(r.stdout.text) \(r.stderr.text)")
            // On the host the directory keeps its file, and nothing was mounted.
            #expect(try String(contentsOfFile: dir + "/file", encoding: .utf8) == "secret")
            #expect(try !Self.hostMountsHidden())
        }

        @Test("a cover that cannot be mounted is a spawn error naming the step; nothing runs")
        func failsClosed() throws {
            guard TestEnv.isRoot else { try TestEnv.missing("mount namespaces need root") }
            let missing = "/nonexistent-robit-" + UUID().uuidString.lowercased().prefix(8)
            let marker = "/tmp/robit-hide-ran-" + UUID().uuidString.lowercased().prefix(8)
            defer { unlink(marker) }
            let child = ChildProcess(executable: "/bin/sh", arguments: ["-c", "touch \(marker)"], timeout: .seconds(10),
                                     interruptible: false, hiddenDirectory: missing)
            do {
                _ = try child.runBlocking()
                Issue.record("the process started although \(missing) could not be covered")
            } catch let error as ChildProcess.SpawnError {
                #expect(error.errno == ENOENT)
                #expect(error.description.contains("mount an empty read-only tmpfs"), "\(error)")
                #expect(error.description.contains(missing), "\(error)")
            }
            #expect(!FileManager.default.fileExists(atPath: marker), "the command ran")
            // The failed child was reaped: no zombie of this process is left.
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            let children = tasks.flatMap { ((try? String(contentsOfFile: "/proc/self/task/\($0)/children", encoding: .utf8)) ?? "").split(separator: " ") }
            for pid in children {
                let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
                #expect(!stat.contains(") Z "), "zombie child \(pid)")
            }
            #expect(try !Self.hostMountsHidden())
        }
    }
}
