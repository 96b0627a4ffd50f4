import Foundation
import Testing
@testable import RobitOCI

/// `Process.compactJSON` (robit's hand-written encoder for `runtime exec --process`) must mean exactly
/// what JSONEncoder's output means: the runtime reads one or the other.
@Suite struct ProcessJSONTests {
    static let hostile = ["", "plain", "quote \" backslash \\ slash /", "\u{0}\u{1}\u{1F}\u{7F}", "line\nbreak\r\ttab",
                          "ünïcödé ✓ 🚀 \u{2028}\u{2029}", String(repeating: "x", count: 5000), "{\"json\": [1, 2]}", "\u{FEFF}bom"]

    static func processes() -> [RobitOCI.Process] {
        let c = SpecGeneratorTests.configuration(pids: .rlimit, filter: "/run/robit/sandboxes/x/seccomp.bpf")
        var list = [
            SpecGenerator.execProcess(c, tag: "0123456789abcdef", argv: ["true", "1"]),
            SpecGenerator.execProcess(c, tag: "t", argv: hostile, cwd: "/work/sub dir", env: hostile.map { "K=\($0)" }),
            SpecGenerator.killerProcess(c, tag: "t", keep: ["a", "b"]),
            SpecGenerator.killerProcess(SpecGeneratorTests.configuration(), tag: nil),
        ]
        var bare = RobitOCI.Process(terminal: nil, user: User(uid: 0, gid: 0), args: ["sh"], env: nil, cwd: "/", capabilities: nil, rlimits: nil,
                           noNewPrivileges: nil, oomScoreAdj: nil)
        list.append(bare)
        bare.user = User(uid: UInt32.max, gid: 7, umask: 0o077, additionalGids: [1, 2, UInt32.max])
        bare.rlimits = [Rlimit(type: "RLIMIT_NOFILE", hard: UInt64.max, soft: 0)]
        bare.oomScoreAdj = -1000
        bare.terminal = true
        bare.noNewPrivileges = false
        bare.capabilities = Capabilities(["CAP_KILL", "CAP_NET_RAW"])
        list.append(bare)
        return list
    }

    @Test func decodesToTheSameProcessAsJSONEncoderOutput() throws {
        for process in Self.processes() {
            let text = process.compactJSON
            let decoded = try JSONDecoder().decode(RobitOCI.Process.self, from: Data(text))
            #expect(decoded == process)
            // Same JSON value as the Codable encoding (key order aside).
            let ours = try JSONSerialization.jsonObject(with: Data(text)) as? NSDictionary
            let theirs = try JSONSerialization.jsonObject(with: JSONEncoder().encode(process)) as? NSDictionary
            #expect(ours == theirs)
        }
    }

    /// Control characters never appear raw: JSON forbids them in strings.
    @Test func controlCharactersAreEscaped() throws {
        let text = SpecGenerator.execProcess(SpecGeneratorTests.configuration(), tag: "t", argv: Self.hostile).compactJSON
        #expect(!text.contains { $0 < 0x20 })
        #expect(String(decoding: text, as: UTF8.self).contains(#""\u0000\u0001\u001f"# + "\u{7F}\""))
    }
}
