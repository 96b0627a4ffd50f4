import Foundation
import Glibc
@testable import RobitAgent
import RobitAudit
import Testing

/// The workspace tree hash `run.start` records (and a replay will check): what it covers, that the
/// two-core walk finds every entry, and that the digest cache changes nothing but the time.
struct WorkspaceTreeTests {
    final class Tree {
        let root = NSTemporaryDirectory() + "robit-tree-" + UUID().uuidString.prefix(8)
        init() throws {
            let fm = FileManager.default
            for dir in ["a/b/c", "d", "empty", "x y", "é"] { try fm.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true) }
            for (path, text) in [("top.txt", "top\n"), ("a/one.txt", "1\n"), ("a/b/two.txt", "2\n"), ("a/b/c/three.txt", "3\n"),
                                 ("d/four.txt", "4\n"), ("x y/five.txt", "5\n"), ("é/six.txt", "6\n"), ("new\nline.txt", "7\n")] {
                try text.write(toFile: root + "/" + path, atomically: false, encoding: .utf8)
            }
            symlink("a/one.txt", root + "/link")
            chmod(root + "/d/four.txt", 0o755)
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }
        func hash(cache: String? = nil) -> String { WorkspaceTree.hash(root, cache: cache) }
    }

    @Test func theWalkFindsEveryEntry() throws {
        let tree = try Tree()
        let found = Set(WorkspaceTree.walkTree(tree.root).map(\.relative))
        let expected: Set<String> = ["a", "a/b", "a/b/c", "d", "empty", "x y", "é", "top.txt", "a/one.txt", "a/b/two.txt", "a/b/c/three.txt",
                                     "d/four.txt", "x y/five.txt", "é/six.txt", "new\nline.txt", "link"]
        #expect(found == expected)
        #expect(WorkspaceTree.walkTree(tree.root).count == expected.count, "an entry was listed twice")
    }

    /// The documented definition: SHA-256 of the sorted lines `f MODE SIZE SHA PATH`, `d MODE PATH`,
    /// `l PATH -> TARGET`, joined by newlines.
    @Test func theHashIsTheDocumentedLines() throws {
        let tree = try Tree()
        func sha(_ text: String) -> String { AuditHash.sha256Hex(Array(text.utf8)) }
        var lines = ["d 755 a", "d 755 a/b", "d 755 a/b/c", "d 755 d", "d 755 empty", "d 755 x y", "d 755 é",
                     "l link -> a/one.txt"]
        for (path, text, mode) in [("top.txt", "top\n", "644"), ("a/one.txt", "1\n", "644"), ("a/b/two.txt", "2\n", "644"),
                                   ("a/b/c/three.txt", "3\n", "644"), ("d/four.txt", "4\n", "755"), ("x y/five.txt", "5\n", "644"),
                                   ("é/six.txt", "6\n", "644"), ("new\nline.txt", "7\n", "644")] {
            lines.append("f \(mode) \(text.utf8.count) \(sha(text)) \(path)")
        }
        let umask = umask(0); _ = Glibc.umask(umask)
        guard umask == 0o022 else { return }  // the modes above assume the usual umask
        #expect(tree.hash() == sha(lines.sorted().joined(separator: "\n")))
    }

    @Test func everyKindOfChangeChangesIt() throws {
        let tree = try Tree()
        var seen = [tree.hash()]
        func changed(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let now = tree.hash()
            #expect(!seen.contains(now), "\(what) did not change the hash", sourceLocation: sourceLocation)
            seen.append(now)
        }
        try "3!\n".write(toFile: tree.root + "/a/b/c/three.txt", atomically: false, encoding: .utf8); changed("a nested file's content")
        try "top!\n".write(toFile: tree.root + "/top.txt", atomically: false, encoding: .utf8); changed("a top-level file's content")
        try "n\n".write(toFile: tree.root + "/a/b/new.txt", atomically: false, encoding: .utf8); changed("a new nested file")
        chmod(tree.root + "/a/one.txt", 0o600); changed("a mode")
        unlink(tree.root + "/link"); symlink("top.txt", tree.root + "/link"); changed("a link target")
        try FileManager.default.createDirectory(atPath: tree.root + "/empty/sub", withIntermediateDirectories: false); changed("a new directory")
        try FileManager.default.moveItem(atPath: tree.root + "/d/four.txt", toPath: tree.root + "/d/4.txt"); changed("a rename")
    }

    @Test func theDigestCacheChangesNothingButTheTime() throws {
        let tree = try Tree()
        let cache = tree.root + ".cache"
        defer { unlink(cache) }
        let plain = tree.hash()
        #expect(tree.hash(cache: cache) == plain)
        #expect(tree.hash(cache: cache) == plain)
        // A change after the cache was written is seen (same size, new content, new mtime).
        usleep(20_000)
        try "9\n".write(toFile: tree.root + "/a/b/two.txt", atomically: false, encoding: .utf8)
        #expect(tree.hash(cache: cache) == tree.hash())
        #expect(tree.hash(cache: cache) != plain)
    }
}
