import Foundation
import RobitAudit
import Glibc
@testable import RobitAgent
import RobitExec
import RobitOCI
import RobitSync
import RobitTestSupport
import Testing

/// The tools run in real sandboxes under runsc (gVisor) and crun.
@Suite(.serialized) struct ToolSandboxTests {
    static let runtimes: [RuntimeKind] = [.runsc, .crun]

    func registry(output: Int = 1 << 20, secrets: [(name: String, value: String)] = [], custom: [TaskFile.CustomTool] = []) throws -> ToolRegistry {
        try ToolRegistry(builtins: TaskFile.BuiltinTool.allCases, customTools: custom,
                         limits: ToolLimits(timeout: .seconds(30), output: output), redactor: Redactor(secrets.map { Redaction(name: $0.name, value: $0.value) }))
    }

    @Test(arguments: runtimes) func pathsCannotLeaveWork(_ kind: RuntimeKind) async throws {
        try await withToolSandbox(kind) { box, ws in
            let tools = try registry()
            try ws.put("hello.txt", "hello\n")
            try ws.put("sub/inner.txt", "inner\n")
            try ws.symlink("etc", to: "/etc")
            try ws.symlink("up", to: "..")
            try ws.symlink("abs-up", to: "/work/..")
            try ws.symlink("sub/passwd", to: "/etc/passwd")
            try ws.symlink("outside.txt", to: "../outside.txt")
            try ws.symlink("loop", to: "loop")
            try ws.symlink("inlink", to: "sub")
            try ws.symlink("dangling", to: ws.root + "/created.txt")
            try ws.symlink("tmp", to: "/tmp")
            try ws.symlink("tmpfile", to: "/tmp/file")
            _ = try await box.exec(.shell("echo keep > /tmp/file"))

            let refused: [(String, JSONValue, String)] = [
                ("read_file", ["path": "../outside.txt"], "\"..\""),
                ("read_file", ["path": "/work/../outside.txt"], "\"..\""),
                ("read_file", ["path": "/etc/passwd"], "outside /work"),
                ("read_file", ["path": "/tmp/x"], "outside /work"),
                ("read_file", ["path": "etc/passwd"], "/work/etc is a symbolic link"),
                ("read_file", ["path": "sub/passwd"], "/work/sub/passwd is a symbolic link"),
                ("read_file", ["path": "outside.txt"], "symbolic link"),
                ("read_file", ["path": "up/outside.txt"], "/work/up is a symbolic link"),
                ("read_file", ["path": "abs-up/outside.txt"], "symbolic link"),
                ("read_file", ["path": "inlink/inner.txt"], "/work/inlink is a symbolic link"),
                ("read_file", ["path": "loop"], "symbolic link"),
                ("read_file", ["path": "loop/x"], "symbolic link"),
                ("read_file", ["path": "hello.txt/x"], "not a directory"),
                ("read_file", ["path": "missing.txt"], "does not exist"),
                ("read_file", ["path": "sub"], "is a directory"),
                ("read_file", ["path": "a\u{0}b"], "NUL byte"),
                ("read_file", ["path": .string(String(repeating: "a/", count: 2500))], "at most 4096"),
                ("read_file", ["path": .string(String(repeating: "x", count: 300))], "longer than 255"),
                ("write_file", ["path": "etc/evil", "content": "x"], "symbolic link"),
                ("write_file", ["path": "up/outside.txt", "content": "pwned"], "symbolic link"),
                ("write_file", ["path": "outside.txt", "content": "pwned"], "symbolic link"),
                ("write_file", ["path": "sub/passwd", "content": "pwned"], "symbolic link"),
                ("write_file", ["path": "loop/x", "content": "x"], "symbolic link"),
                ("write_file", ["path": "up/new/x", "content": "x"], "symbolic link"),
                ("write_file", ["path": "../escape.txt", "content": "x"], "\"..\""),
                ("write_file", ["path": "dangling", "content": "x"], "symbolic link"),
                ("write_file", ["path": "tmp/escape", "content": "x"], "symbolic link"),
                ("write_file", ["path": "tmp/new/escape", "content": "x"], "symbolic link"),
                ("write_file", ["path": "tmpfile", "content": "x"], "symbolic link"),
                ("edit_file", ["path": "tmpfile", "old_string": "keep", "new_string": "x"], "symbolic link"),
                ("edit_file", ["path": "tmp/file", "old_string": "keep", "new_string": "x"], "symbolic link"),
                ("write_file", ["path": "dangling/x", "content": "x"], "symbolic link"),
                ("write_file", ["path": "sub", "content": "x"], "is a directory"),
                ("edit_file", ["path": "outside.txt", "old_string": "host", "new_string": "pwned"], "symbolic link"),
                ("edit_file", ["path": "etc/passwd", "old_string": "root", "new_string": "toor"], "symbolic link"),
                ("list_files", ["path": "etc"], "symbolic link"),
                ("list_files", ["path": "up"], "symbolic link"),
                ("list_files", ["path": ".."], "\"..\""),
                ("search", ["pattern": "root", "path": "etc"], "symbolic link"),
                ("search", ["pattern": "root", "path": "/"], "outside /work"),
                ("search", ["pattern": "(", "path": "."], "not a valid POSIX extended regular expression"),
            ]
            for (name, args, expected) in refused {
                let o = try await tools.one(name, args, in: box)
                #expect(o.isError, "\(kind) \(name) \(args.compactText.prefix(80)) should fail: \(o.content)")
                #expect(o.content.contains(expected), "\(kind) \(name) \(args.compactText.prefix(80)): \(o.content)")
            }
            #expect(ws.outsideIntact, "the host file next to the workspace was touched")
            #expect(!FileManager.default.fileExists(atPath: "/etc/evil"))
            #expect(!FileManager.default.fileExists(atPath: ws.root + "/escape.txt"))
            let tmp = try await box.exec(.shell("cat /tmp/file; test -e /tmp/escape && echo escaped; test -e /tmp/new && echo escaped"))
            #expect(tmp.stdout.text == "keep\n", "a write left /work through a symlink")

            // Listing and searching see the links but never go through them.
            let list = try await tools.one("list_files", ["recursive": true], in: box)
            #expect(!list.isError)
            #expect(list.content.contains("etc (symbolic link, not followed)"))
            #expect(list.content.contains("sub/inner.txt (6 bytes)"))
            #expect(list.content.contains("sub/passwd (symbolic link, not followed)"))
            #expect(!list.content.contains("etc/"), "\(list.content)")
            let search = try await tools.one("search", ["pattern": "root|host file|inner"], in: box)
            #expect(search.content == "sub/inner.txt:1: inner", "\(search.content)")
        }
    }

    @Test(arguments: runtimes) func writeReadEditRoundTrip(_ kind: RuntimeKind) async throws {
        try await withToolSandbox(kind) { box, ws in
            let tools = try registry()
            let content = "héllo 😀 \u{0}\u{1}\u{7f}\t\r\nsecond line\n\\ \"quoted\" $(id) `id`\nno newline at end"
            let w = try await tools.one("write_file", ["path": "new/dir/file.txt", "content": .string(content)], in: box)
            #expect(!w.isError, "\(w.content)")
            #expect(w.content == "wrote \(content.utf8.count) bytes to /work/new/dir/file.txt")
            #expect(ws.read("new/dir/file.txt") == Data(content.utf8))
            var st = stat()
            #expect(stat(ws.path + "/new/dir/file.txt", &st) == 0 && st.st_uid == TestEnv.user.uid, "written as the sandbox user")
            let r = try await tools.one("read_file", ["path": "/work/new/dir/file.txt"], in: box)
            #expect(!r.isError)
            #expect(r.content == content)
            let part = try await tools.one("read_file", ["path": "new/dir/file.txt", "offset": 2, "limit": 1], in: box)
            #expect(part.content == "second line\n[the line limit was reached; the file (\(content.utf8.count) bytes) continues at line 3: call read_file with offset=3]")

            let overwrite = try await tools.one("write_file", ["path": "new/dir/file.txt", "content": "a b a\n"], in: box)
            #expect(!overwrite.isError)
            #expect(ws.read("new/dir/file.txt") == Data("a b a\n".utf8))
            let empty = try await tools.one("write_file", ["path": "empty", "content": ""], in: box)
            #expect(!empty.isError && ws.read("empty") == Data())
            #expect(try await tools.one("read_file", ["path": "empty"], in: box).content == "(empty file)")
            let past = try await tools.one("read_file", ["path": "new/dir/file.txt", "offset": 100], in: box)
            #expect(!past.isError && past.content == "(the file has fewer than 100 lines; read it from offset 1)")

            let missing = try await tools.one("edit_file", ["path": "new/dir/file.txt", "old_string": "c", "new_string": "d"], in: box)
            #expect(missing.isError && missing.content.contains("old_string was not found in /work/new/dir/file.txt"), "\(missing.content)")
            let ambiguous = try await tools.one("edit_file", ["path": "new/dir/file.txt", "old_string": "a", "new_string": "x"], in: box)
            #expect(ambiguous.isError && ambiguous.content.contains("occurs 2 times"), "\(ambiguous.content)")
            #expect(ws.read("new/dir/file.txt") == Data("a b a\n".utf8), "a failed edit changes nothing")
            let unique = try await tools.one("edit_file", ["path": "new/dir/file.txt", "old_string": "a b", "new_string": "Ä\nb"], in: box)
            #expect(!unique.isError && unique.content == "replaced 1 occurrence in /work/new/dir/file.txt")
            #expect(ws.read("new/dir/file.txt") == Data("Ä\nb a\n".utf8))
            let all = try await tools.one("edit_file", ["path": "new/dir/file.txt", "old_string": "a", "new_string": "", "replace_all": true], in: box)
            #expect(!all.isError && all.content == "replaced 1 occurrence in /work/new/dir/file.txt")
            #expect(ws.read("new/dir/file.txt") == Data("Ä\nb \n".utf8))
        }
    }

    @Test(arguments: runtimes) func largeOutputsAreCut(_ kind: RuntimeKind) async throws {
        try await withToolSandbox(kind) { box, ws in
            let tools = try registry(output: 64 << 10)
            try ws.put("big.txt", (1...100_000).map { "line \($0)\n" }.joined())
            let r = try await tools.one("read_file", ["path": "big.txt", "limit": 100_000], in: box)
            #expect(!r.isError, "paging is not an error")
            #expect(r.truncated)
            #expect(r.content.utf8.count <= 64 << 10)
            #expect(r.content.hasPrefix("line 1\nline 2\n"))
            let next = try #require(r.content.split(separator: "offset=").last.flatMap { Int($0.dropLast()) })
            #expect(r.content.contains("the 64512-byte limit was reached") || r.content.contains("byte limit was reached"))
            let again = try await tools.one("read_file", ["path": "big.txt", "offset": .number(Double(next)), "limit": 2], in: box)
            #expect(again.content.hasPrefix("line \(next)\nline \(next + 1)\n"), "\(again.content.prefix(100))")

            let shell = try await tools.one("shell", ["command": "head -c 200000 /dev/zero | tr '\\0' x; echo err >&2"], in: box)
            #expect(shell.isError)
            #expect(shell.truncated)
            #expect(shell.stdout.count == 64 << 10)
            #expect(shell.content.contains("[output over the limit: stdout was 200000 bytes"))
            #expect(shell.content.utf8.count <= 64 << 10)
            #expect(shell.content.contains("[stderr]\nerr\n") == false, "stderr comes after the cut stdout")
            #expect(shell.content.hasSuffix("[exit status 0]\n[output over the limit: stdout was 200000 bytes and stderr 4 bytes; only the first 65536 bytes of each are kept. Redirect the output to a file in /work and read it with read_file or search]"))
        }
    }

    @Test(arguments: runtimes) func shellAndCustomToolsKeepArgumentsLiteral(_ kind: RuntimeKind) async throws {
        try await withToolSandbox(kind) { box, ws in
            let params: JSONValue = ["type": "object", "properties": ["text": ["type": "string"], "n": ["type": "integer"]],
                                     "required": ["text"], "additionalProperties": false]
            let tools = try registry(custom: [
                TaskFile.CustomTool(name: "say", description: "echo", command: ["/bin/echo", "{{text}}", "n={{n}}"], parameters: params),
                TaskFile.CustomTool(name: "say_sh", description: "via sh", command: ["/bin/sh", "-c", "printf '%s|' \"$@\"", "sh", "{{text}}", "{{n}}"],
                                    parameters: params),
            ])
            let hostile = "; rm -rf /work/*; $(touch /work/pwned1) `touch /work/pwned2` && touch /work/pwned3 | x > /work/pwned4 'q\" \\"
            try ws.put("keep.txt", "keep\n")
            let a = try await tools.one("say", ["text": .string(hostile), "n": 7], in: box)
            #expect(!a.isError)
            #expect(a.content == hostile + " n=7\n[exit status 0]", "\(a.content)")
            let b = try await tools.one("say_sh", ["text": .string(hostile)], in: box)
            #expect(b.content == hostile + "|\n[exit status 0]", "\(b.content)")
            let files = try FileManager.default.contentsOfDirectory(atPath: ws.path)
            #expect(files == ["keep.txt"], "\(files)")

            let sh = try await tools.one("shell", ["command": "id -u; pwd; echo oops >&2; exit 3"], in: box)
            #expect(!sh.isError, "a non-zero exit is a result")
            #expect(sh.exitStatus == 3)
            #expect(sh.content == "\(TestEnv.user.uid)\n/work\n[stderr]\noops\n[exit status 3]")
            let slow = try await tools.one("shell", ["command": "sleep 30", "timeout_seconds": 1], in: box)
            #expect(slow.isError && slow.content.contains("[timed out after 1 s"), "\(slow.content)")
        }
    }

    @Test(arguments: runtimes) func batchesKeepCallOrderAndRedactSecrets(_ kind: RuntimeKind) async throws {
        try await withToolSandbox(kind) { box, ws in
            let secret = "sk-test-" + UUID().uuidString
            let tools = try registry(secrets: [(name: "API_KEY", value: secret), (name: "SHORT", value: "abc")])
            for i in 0..<6 { try ws.put("f\(i).txt", "file \(i)\n") }
            try ws.put("leak.txt", "key=\(secret)\nabc\n")
            let calls: [ToolCall] = [
                ToolCall(id: "r0", name: "read_file", arguments: #"{"path":"f0.txt"}"#),
                ToolCall(id: "r1", name: "read_file", arguments: #"{"path":"f1.txt"}"#),
                ToolCall(id: "bad", name: "read_file", arguments: #"{"path":1}"#),
                ToolCall(id: "r2", name: "read_file", arguments: #"{"path":"f2.txt"}"#),
                ToolCall(id: "ls", name: "list_files", arguments: "{}"),
                ToolCall(id: "s", name: "search", arguments: #"{"pattern":"file [0-5]","glob":"f[34].txt"}"#),
                ToolCall(id: "r3", name: "read_file", arguments: #"{"path":"f3.txt"}"#),
                ToolCall(id: "w", name: "write_file", arguments: #"{"path":"f0.txt","content":"changed\n"}"#),
                ToolCall(id: "r0b", name: "read_file", arguments: #"{"path":"f0.txt"}"#),
                ToolCall(id: "unknown", name: "rm_rf", arguments: "{}"),
                ToolCall(id: "leak", name: "read_file", arguments: #"{"path":"leak.txt"}"#),
                ToolCall(id: "leak-sh", name: "shell", arguments: #"{"command":"cat leak.txt; cat leak.txt >&2"}"#),
                ToolCall(id: "r5", name: "read_file", arguments: #"{"path":"f5.txt"}"#),
            ]
            let outcomes = try await tools.run(calls, in: box)
            #expect(outcomes.map(\.callID) == calls.map(\.id))
            #expect(outcomes.map(\.name) == calls.map(\.name))
            let byID = Dictionary(uniqueKeysWithValues: outcomes.map { ($0.callID, $0) })
            #expect(byID["r0"]?.content == "file 0\n")
            #expect(byID["r1"]?.content == "file 1\n")
            #expect(byID["r2"]?.content == "file 2\n")
            #expect(byID["r3"]?.content == "file 3\n")
            #expect(byID["r5"]?.content == "file 5\n")
            #expect(byID["bad"]?.isError == true && byID["bad"]?.exitStatus == nil)
            #expect(byID["ls"]?.content.contains("f5.txt (7 bytes)") == true)
            #expect(byID["s"]?.content == "f3.txt:1: file 3\nf4.txt:1: file 4")
            #expect(byID["r0b"]?.content == "changed\n", "a read after a write sees the write")
            #expect(byID["unknown"]?.isError == true)
            let marker = "[REDACTED:API_KEY]"
            #expect(byID["leak"]?.content == "key=\(marker)\nabc\n")
            #expect(byID["leak"]?.stdout.range(of: Data(secret.utf8)) == nil)
            let sh = try #require(byID["leak-sh"])
            #expect(sh.content == "key=\(marker)\nabc\n[stderr]\nkey=\(marker)\nabc\n[exit status 0]")
            #expect(String(decoding: sh.stdout, as: UTF8.self) == "key=\(marker)\nabc\n")
            #expect(String(decoding: sh.stderr, as: UTF8.self) == "key=\(marker)\nabc\n")
            for o in outcomes { #expect(!o.content.contains(secret)) }
        }
    }

    @Test(arguments: runtimes) func symlinksSwappedInDuringCallsDoNotEscape(_ kind: RuntimeKind) async throws {
        try await withToolSandbox(kind) { box, ws in
            let tools = try registry()
            try FileManager.default.createDirectory(atPath: ws.path + "/d_dir", withIntermediateDirectories: false)
            _ = chown(ws.path + "/d_dir", TestEnv.user.uid, TestEnv.user.gid)
            // Targets the sandbox user could write: /tmp inside the sandbox (and the host's, were the link followed there).
            try ws.symlink("d_link", to: "/tmp")
            try ws.put("f_file", "plain\n")
            try ws.symlink("f_link", to: "/tmp/target.txt")
            let before = try await box.exec(.shell("echo keep > /tmp/target.txt && cat /tmp/target.txt"))
            #expect(before.stdout.text == "keep\n")
            // The host swaps a directory and a symlink out of the workspace under one name, and a file
            // and a symlink to the host file under another, while the sandbox writes through them.
            let stop = Locked(false)
            let path = ws.path
            let swapper = Thread {
                while !stop.withLock({ $0 }) {
                    // Each state holds for a moment, so calls also meet the link itself, not only the race.
                    for (a, b) in [("d_dir", "d"), ("d", "d_dir"), ("d_link", "d"), ("d", "d_link"),
                                   ("f_file", "f"), ("f", "f_file"), ("f_link", "f"), ("f", "f_link")] {
                        rename(path + "/" + a, path + "/" + b)
                        if b.count == 1 { usleep(300) }
                    }
                }
            }
            swapper.start()
            defer { stop.withLock { $0 = true } }
            var calls: [ToolCall] = []
            for i in 0..<30 {
                calls.append(ToolCall(id: "d\(i)", name: "write_file", arguments: #"{"path":"d/x","content":"pwned"}"#))
                calls.append(ToolCall(id: "f\(i)", name: "write_file", arguments: #"{"path":"f","content":"pwned"}"#))
                calls.append(ToolCall(id: "e\(i)", name: "edit_file", arguments: #"{"path":"f","old_string":"host","new_string":"pwned"}"#))
            }
            let outcomes = try await tools.run(calls, in: box)
            stop.withLock { $0 = true }
            #expect(outcomes.count == calls.count)
            for o in outcomes where o.isError {
                #expect(o.content.contains("symbolic link") || o.content.contains("does not exist") || o.content.contains("not found")
                        || o.content.contains("try again"), "\(o.content)")
            }
            try await Task.sleep(for: .milliseconds(50))
            #expect(ws.outsideIntact, "a write went through a swapped-in symlink")
            let after = try await box.exec(.shell("cat /tmp/target.txt; test -e /tmp/x && echo escaped"))
            #expect(after.stdout.text == "keep\n", "a write went through a swapped-in symlink")
        }
    }

    @Test func aLostSandboxIsNotAToolError() async throws {
        try await withToolSandbox(.runsc) { box, _ in
            let tools = try registry()
            _ = await box.destroy()
            await #expect(throws: SandboxError.self) {
                _ = try await tools.run([ToolCall(id: "1", name: "read_file", arguments: #"{"path":"x"}"#)], in: box)
            }
            await #expect(throws: SandboxError.self) {
                _ = try await tools.run([ToolCall(id: "1", name: "shell", arguments: #"{"command":"true"}"#)], in: box)
            }
            // Calls refused before running need no sandbox.
            let refused = try await tools.run([ToolCall(id: "1", name: "nope", arguments: "{}")], in: box)
            #expect(refused.first?.isError == true)
        }
    }
}
