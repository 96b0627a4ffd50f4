import Foundation
@testable import RobitAgent
import RobitExec
import RobitTestSupport
import Testing

/// The contract between robit-init's file helper (Sources/robit-init/fs.c) and its reader
/// (ToolInvocation.render), as docs/tools.md "The file helper's protocol" states it: the real helper,
/// in a real sandbox, prints exactly the documented bytes.
@Suite(.serialized) struct FileProtocolTests {
    func fs(_ box: Sandbox, _ args: [String], stdin: Data = Data()) async throws -> ExecResult {
        try await box.exec(ToolInvocation.fs(args, stdin: stdin, limits: ToolLimits()))
    }

    @Test func theHelperPrintsTheDocumentedRecords() async throws {
        try await withToolSandbox(.crun) { box, ws in
            try ws.put("a.txt", Data("one\ntwo\nthree\n".utf8))
            try ws.put("d/b.txt", Data("x".utf8))

            let read = try await fs(box, ["read", "a.txt", "1", "2", "4096"])
            #expect(read.status == .exited(0))
            #expect(read.stdout.text == "size=14 first=1 next=3 more=1 cut=0\none\ntwo\n")
            let byBytes = try await fs(box, ["read", "a.txt", "1", "100", "5"])
            let header = byBytes.stdout.text.split(separator: "\n").first.map(String.init) ?? ""
            #expect(ToolInvocation.fields(header)["cut"] == "1" && ToolInvocation.fields(header)["more"] == "1", "\(byBytes.stdout.text)")

            let write = try await fs(box, ["write", "new.txt"], stdin: Data("hello".utf8))
            #expect(write.status == .exited(0) && write.stdout.text == "wrote=5\n")
            let edit = try await fs(box, ["edit", "new.txt", "one"], stdin: Data("3 3\nhelHEL".utf8))
            #expect(edit.status == .exited(0) && edit.stdout.text == "replaced=1\n")
            #expect(try String(contentsOfFile: ws.path + "/new.txt", encoding: .utf8) == "HELlo")

            let list = try await fs(box, ["list", "", "2", "100"])
            let records = list.stdout.text.split(separator: "\0").map(String.init).sorted()
            #expect(records.filter { !$0.hasPrefix("d\t") } == ["f\t1\td/b.txt", "f\t14\ta.txt", "f\t5\tnew.txt"], "\(records)")
            #expect(records.filter { $0.hasPrefix("d\t") }.map { $0.split(separator: "\t").last } == ["d"], "\(records)")
            let cut = try await fs(box, ["list", "", "2", "1"])
            #expect(cut.stdout.text.hasSuffix("!\ttruncated\t\0"), "\(cut.stdout.text)")

            let search = try await fs(box, ["search", "", "literal", "two", "", "10"])
            #expect(search.stdout.text == "a.txt\u{0}2\u{0}two\u{0}")
            let over = try await fs(box, ["search", "", "regex", "o", "", "1"])
            #expect(over.stdout.text.hasSuffix("!\0"), "\(over.stdout.text)")

            // Refused: exit 3 and one line on stderr, which the model sees.
            let refused = try await fs(box, ["read", "../etc/passwd", "1", "10", "4096"])
            #expect(refused.status == .exited(3))
            #expect(refused.stderr.text.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(refused.stderr.text)")
            #expect(refused.stdout.text.isEmpty)
        }
    }

    @Test func theReaderIgnoresUnknownHeaderKeys() {
        #expect(ToolInvocation.fields("size=3 first=1 next=2 more=0 cut=0 later=9") ==
                ["size": "3", "first": "1", "next": "2", "more": "0", "cut": "0", "later": "9"])
        #expect(ToolInvocation.fields("wrote=5") == ["wrote": "5"])
    }
}
