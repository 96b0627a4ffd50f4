import Foundation
import Testing
@testable import RobitAudit

/// Every tampering of a signed log is caught by `AuditVerifier` and by the independent Python verifier
/// in docs/, each naming the same line and reason.
@Suite struct TamperTests {
    struct Fixture {
        let dir: String
        let path: String
        let lines: [String]
        let key: AuditSigningKey
        let pub: String
        let head: String
    }

    static func fixture() throws -> Fixture {
        let dir = AuditTestSupport.temporaryDirectory("tamper")
        let key = AuditSigningKey()
        let log = try AuditTestSupport.writeLog(in: dir, records: 300, signer: key, blobAt: 20)
        let pub = dir + "/key.pub"
        try key.publicKey.fileContents.write(toFile: pub, atomically: false, encoding: .utf8)
        return Fixture(dir: dir, path: log.path, lines: AuditTestSupport.lines(log.path), key: key, pub: pub, head: log.head)
    }

    /// Checks both verifiers; `line` is 1-based.
    func expectFailure(_ f: Fixture, _ problem: AuditProblem, line: Int?, pinned: Bool = true, anchor: String? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let verdict = AuditVerifier.verify(path: f.path, options: AuditVerifyOptions(key: pinned ? f.key.publicKey : nil, anchor: anchor))
        #expect(verdict.failure?.problem == problem, "robit: \(String(describing: verdict.failure))", sourceLocation: sourceLocation)
        if let line { #expect(verdict.failure?.line == line, "robit: \(String(describing: verdict.failure))", sourceLocation: sourceLocation) }
        var args = [f.path]
        if pinned { args += ["--key", f.pub] }
        if let anchor { args += ["--anchor", anchor] }
        let (status, output) = try AuditTestSupport.python(args)
        #expect(status == 6, "python: \(output)", sourceLocation: sourceLocation)
        let expected = line.map { "FAIL line \($0): \(problem.rawValue):" } ?? "FAIL line"
        #expect(output.hasPrefix(expected) && output.contains(": \(problem.rawValue):"), "python: \(output), expected \(expected)", sourceLocation: sourceLocation)
    }

    @Test func untouchedLogPasses() throws {
        let f = try Self.fixture()
        #expect(AuditVerifier.verify(path: f.path, options: AuditVerifyOptions(key: f.key.publicKey, anchor: f.head)).ok)
        #expect(try AuditTestSupport.python([f.path, "--key", f.pub, "--anchor", f.head]).0 == 0)
    }

    @Test func oneByteChangedInAnyField() throws {
        for field in ["actor", "data", "hash", "prev", "run", "seq", "ts", "type", "v"] {
            let f = try Self.fixture()
            var lines = f.lines
            let i = 40
            var bytes = Array(lines[i].utf8)
            let marker = Array("\"\(field)\":".utf8)
            guard let at = (0 ..< bytes.count - marker.count).first(where: { bytes[$0 ..< $0 + marker.count].elementsEqual(marker) }) else {
                Issue.record("no field \(field)"); continue
            }
            var pos = at + marker.count
            while bytes[pos] == 0x22 || bytes[pos] == 0x7B || bytes[pos] == 0x3A { pos += 1 }
            if field == "data" { pos = at + marker.count + 3 }
            // Change a byte into another of the same class so the line stays plausible.
            let b = bytes[pos]
            bytes[pos] = (b >= 0x30 && b <= 0x38) ? b + 1 : (b == 0x39 ? 0x30 : (b == 0x7A ? 0x79 : b + 1))
            lines[i] = String(decoding: bytes, as: UTF8.self)
            AuditTestSupport.write(lines, to: f.path)
            try expectFailure(f, .modified, line: i + 1)
        }
    }

    @Test func deletedLine() throws {
        let f = try Self.fixture()
        var lines = f.lines
        lines.remove(at: 50)
        AuditTestSupport.write(lines, to: f.path)
        try expectFailure(f, .deleted, line: 51)
    }

    @Test func insertedForgedLineWithRecomputedHash() throws {
        let f = try Self.fixture()
        var lines = f.lines
        // A forged record that continues the chain from line 60 (seq 59): seq 60, prev = hash(line 60).
        let forged = AuditTestSupport.rehash(lines[60]) { r in
            r.set("prev", .string(AuditTestSupport.hash(of: lines[59])))
            r.set("data", ["status": "ok", "forged": true])
        }
        lines.insert(forged, at: 60)
        AuditTestSupport.write(lines, to: f.path)
        try expectFailure(f, .inserted, line: 61)
    }

    @Test func swappedLines() throws {
        let f = try Self.fixture()
        var lines = f.lines
        lines.swapAt(70, 71)
        AuditTestSupport.write(lines, to: f.path)
        try expectFailure(f, .reordered, line: 71)
    }

    @Test func modifiedRecordWithRecomputedHash() throws {
        let f = try Self.fixture()
        var lines = f.lines
        lines[80] = AuditTestSupport.rehash(lines[80]) { r in r.set("data", ["status": "ok", "i": 999]) }
        AuditTestSupport.write(lines, to: f.path)
        try expectFailure(f, .modified, line: 81)
    }

    @Test func truncatedAtTheEndAndMidLine() throws {
        let f = try Self.fixture()
        AuditTestSupport.write(Array(f.lines.dropLast(2)), to: f.path)
        try expectFailure(f, .truncated, line: nil)
        let cut = f.lines.joined(separator: "\n") + "\n"
        try Data(cut.utf8.prefix(cut.utf8.count - 40)).write(to: URL(fileURLWithPath: f.path))
        try expectFailure(f, .truncated, line: f.lines.count)
        // --allow-incomplete accepts a log in progress (complete lines only).
        AuditTestSupport.write(Array(f.lines.dropLast(2)), to: f.path)
        #expect(AuditVerifier.verify(path: f.path, options: AuditVerifyOptions(key: f.key.publicKey, allowIncomplete: true)).ok)
        #expect(try AuditTestSupport.python([f.path, "--key", f.pub, "--allow-incomplete"]).0 == 0)
    }

    @Test func replacedAndMissingBlob() throws {
        let f = try Self.fixture()
        let blobs = try FileManager.default.contentsOfDirectory(atPath: f.dir + "/blobs")
        #expect(blobs.count == 1)
        let blob = f.dir + "/blobs/" + blobs[0]
        var content = try Data(contentsOf: URL(fileURLWithPath: blob))
        content[100] ^= 1
        try content.write(to: URL(fileURLWithPath: blob))
        try expectFailure(f, .alteredBlob, line: 22)
        try FileManager.default.removeItem(atPath: blob)
        try expectFailure(f, .missingBlob, line: 22)
    }

    /// The attacker rewrites the log, recomputes every hash and re-signs every checkpoint with a key of their own.
    @Test func resignedWithAnotherKey() throws {
        let f = try Self.fixture()
        let attacker = AuditSigningKey()
        var lines = f.lines
        var prev = AuditFormat.zeroHash
        for i in lines.indices {
            lines[i] = AuditTestSupport.rehash(lines[i]) { r in
                r.set("prev", .string(prev))
                if i == 5 { r.set("data", ["status": "ok", "rewritten": true]) }
                if i == 0 {
                    var data = r["data"]!
                    data.set("pubkey", .string(attacker.publicKey.base64))
                    data.set("key_id", .string(attacker.publicKey.keyID))
                    r.set("data", data)
                }
                if r["type"]?.stringValue == "checkpoint" {
                    let upto = r["seq"]!.intValue! - 1
                    let message = Array("robit-audit-v1\nrun-test\n\(upto)\n\(prev)".utf8)
                    r.set("data", ["upto": .int(upto), "head": .string(prev), "key_id": .string(attacker.publicKey.keyID),
                                   "sig": .string(Data(attacker.sign(message)).base64EncodedString())])
                }
            }
            prev = AuditTestSupport.hash(of: lines[i])
        }
        AuditTestSupport.write(lines, to: f.path)
        // Pinned to the real key: caught at run.start.
        try expectFailure(f, .badSignature, line: 1)
        // Without a pinned key the forgery is self-consistent: robit says so ("unpinned key"), and the
        // anchor kept outside the log catches it.
        let unpinned = AuditVerifier.verify(path: f.path)
        #expect(unpinned.ok && !unpinned.pinned && unpinned.warnings.contains { $0.contains("unpinned") })
        try expectFailure(f, .anchorMismatch, line: f.lines.count, pinned: false, anchor: f.head)
    }

    @Test func checkpointsResignedButRunStartKept() throws {
        let f = try Self.fixture()
        let attacker = AuditSigningKey()
        var lines = f.lines
        let i = 255 // the first interval checkpoint
        #expect(AuditTestSupport.decode(lines[i])["type"]?.stringValue == "checkpoint")
        lines[i] = AuditTestSupport.rehash(lines[i]) { r in
            var data = r["data"]!
            let message = Array("robit-audit-v1\nrun-test\n\(data["upto"]!.intValue!)\n\(data["head"]!.stringValue!)".utf8)
            data.set("sig", .string(Data(attacker.sign(message)).base64EncodedString()))
            r.set("data", data)
        }
        // Keep the chain intact after it.
        for j in (i + 1) ..< lines.count {
            lines[j] = AuditTestSupport.rehash(lines[j]) { r in r.set("prev", .string(AuditTestSupport.hash(of: lines[j - 1]))) }
            if AuditTestSupport.decode(lines[j])["type"]?.stringValue == "checkpoint" { break }
        }
        AuditTestSupport.write(Array(lines.prefix(i + 1)), to: f.path)
        try expectFailure(f, .badSignature, line: i + 1, pinned: true)
    }

    /// A valid signature from an earlier checkpoint, replayed as the final checkpoint of a log cut short.
    @Test func checkpointReplayedLater() throws {
        let f = try Self.fixture()
        var lines = Array(f.lines.prefix(270))
        let early = AuditTestSupport.decode(f.lines[255])["data"]!
        lines.append(AuditTestSupport.rehash(f.lines[f.lines.count - 2]) { r in
            r.set("seq", 270); r.set("prev", .string(AuditTestSupport.hash(of: lines[269])))
        })
        lines.append(AuditTestSupport.rehash(f.lines[f.lines.count - 1]) { r in
            r.set("seq", 271); r.set("prev", .string(AuditTestSupport.hash(of: lines[270]))); r.set("data", early)
        })
        AuditTestSupport.write(lines, to: f.path)
        try expectFailure(f, .badSignature, line: 272)
    }

    @Test func anchorMismatch() throws {
        let f = try Self.fixture()
        let earlier = AuditTestSupport.hash(of: f.lines[10])
        try expectFailure(f, .anchorMismatch, line: f.lines.count, anchor: earlier)
    }

    @Test func garbageAndEmptyFiles() throws {
        let f = try Self.fixture()
        try Data().write(to: URL(fileURLWithPath: f.path))
        #expect(AuditVerifier.verify(path: f.path).failure?.problem == .truncated)
        try Data("not json\n".utf8).write(to: URL(fileURLWithPath: f.path))
        try expectFailure(f, .modified, line: 1)
        var lines = f.lines
        lines[3] = lines[3].replacingOccurrences(of: "\",\"", with: "\", \"")
        AuditTestSupport.write(lines, to: f.path)
        try expectFailure(f, .modified, line: 4)
        #expect(AuditVerifier.verify(path: f.dir + "/nope.jsonl").failure?.problem == .unreadable)
    }
}
