import Foundation
import Glibc
@testable import RobitExec
import Testing

/// The OOM-kill counter is read from an open cgroup file twice per command: a key that is a prefix of
/// another (`oom_kill` / `oom_kill_disable`), a missing key or a malformed value must not be misread.
@Suite struct CgroupCounterTests {
    func read(_ text: String, key: String = "oom_kill") throws -> Int? {
        let path = NSTemporaryDirectory() + "robit-counter-\(UUID().uuidString)"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let first = CgroupMounts.readCounter(fd: fd, key: key)
        #expect(CgroupMounts.readCounter(fd: fd, key: key) == first, "a second read of the open file must give the same")
        let again = open(path, O_RDONLY)
        defer { close(again) }
        #expect(CgroupMounts.readCounter(fd: again, key: key) == first, "a fresh open of the file must give the same")
        return first
    }

    @Test func keysAreMatchedWhole() throws {
        #expect(try read("oom_kill_disable 1\nunder_oom 0\noom_kill 7\n") == 7)
        #expect(try read("oom_kill_disable 1\nunder_oom 0\n") == nil)
        #expect(try read("low 0\nhigh 0\nmax 3\noom 2\noom_kill 12345678901\noom_group_kill 0\n") == 12_345_678_901)
        #expect(try read("oom_kill 3") == 3)
        #expect(try read("oom_kill x\n") == nil)
        #expect(try read("oom_kill \n") == nil)
        #expect(try read("") == nil)
        #expect(try read("oom_kill_disable 0\n", key: "oom_kill_disable") == 0)
    }
}
