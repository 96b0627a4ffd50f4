import Foundation
import Testing
@testable import RobitAudit

@Suite struct AuditLogTests {
    @Test func signedLogVerifiesWithBothVerifiers() throws {
        let dir = AuditTestSupport.temporaryDirectory()
        let key = AuditSigningKey()
        let log = try AuditTestSupport.writeLog(in: dir, records: 600, signer: key, blobAt: 10)
        let verdict = AuditVerifier.verify(directory: dir, options: AuditVerifyOptions(key: key.publicKey, anchor: log.head))
        #expect(verdict.ok, "\(String(describing: verdict.failure))")
        #expect(verdict.pinned && verdict.finished && verdict.blobs == 1)
        #expect(verdict.checkpoints == 3) // two interval checkpoints and the final one
        let lines = AuditTestSupport.lines(log.path)
        #expect(lines.count == 600 + 2 + 3) // run.start, run.end, three checkpoints
        #expect(AuditTestSupport.decode(lines[255])["type"]?.stringValue == "checkpoint")
        #expect(AuditTestSupport.decode(lines[lines.count - 2])["type"]?.stringValue == "run.end")
        let pub = dir + "/key.pub"
        try key.publicKey.fileContents.write(toFile: pub, atomically: false, encoding: .utf8)
        let (status, output) = try AuditTestSupport.python([dir, "--key", pub, "--anchor", log.head])
        #expect(status == 0, "\(output)")
    }

    @Test func runStartNamesTheKeyAndUnsignedLogsSaySo() throws {
        let dir = AuditTestSupport.temporaryDirectory()
        let key = AuditSigningKey()
        let log = try AuditTestSupport.writeLog(in: dir, records: 1, signer: key)
        let start = AuditTestSupport.decode(AuditTestSupport.lines(log.path)[0])["data"]!
        #expect(start["pubkey"]?.stringValue == key.publicKey.base64)
        #expect(start["key_id"]?.stringValue == key.publicKey.keyID)
        #expect(key.publicKey.keyID.count == 16)

        let unsigned = AuditTestSupport.temporaryDirectory()
        _ = try AuditTestSupport.writeLog(in: unsigned, records: 1, signer: nil)
        let verdict = AuditVerifier.verify(directory: unsigned)
        #expect(verdict.ok && !verdict.signed)
        #expect(verdict.warnings.contains { $0.contains("unsigned") })
        let pinned = AuditVerifier.verify(directory: unsigned, options: AuditVerifyOptions(key: key.publicKey))
        #expect(pinned.failure?.problem == .badSignature)
    }

    @Test func secondWriterIsRefused() throws {
        let dir = AuditTestSupport.temporaryDirectory()
        let first = try AuditLog.create(directory: dir, run: "r", startData: ["task_sha256": "x", "robit_version": "t"])
        #expect(throws: AuditError.self) { _ = try AuditLog.create(directory: dir, run: "r", startData: [:]) }
        do {
            _ = try AuditLog.reopen(directory: dir)
            Issue.record("a second writer opened a locked log")
        } catch {
            #expect(error.kind == .locked)
        }
        _ = try first.finish(["status": "ok"])
    }

    @Test func tornLastLineIsRepairedWithARecoveredRecord() throws {
        let dir = AuditTestSupport.temporaryDirectory()
        var log: AuditLog? = try AuditLog.create(directory: dir, run: "r", startData: ["task_sha256": "x", "robit_version": "t"])
        try log!.append("tool.call", ["status": "ok"])
        let path = log!.path
        log = nil
        let handle = FileHandle(forWritingAtPath: path)!
        handle.seekToEndOfFile()
        handle.write(Data(#"{"actor":"sha256:ab","data":{"sta"#.utf8))
        try handle.close()
        let torn = AuditVerifier.verify(directory: dir)
        #expect(torn.failure?.problem == .truncated)
        #expect(torn.failure?.line == 3)
        let resumed = try AuditLog.reopen(directory: dir, recordType: "resumed")
        _ = try resumed.finish(["status": "ok"])
        let lines = AuditTestSupport.lines(path)
        #expect(lines.map { AuditTestSupport.decode($0)["type"]!.stringValue! } == ["run.start", "tool.call", "recovered", "resumed", "run.end", "checkpoint"])
        #expect(AuditTestSupport.decode(lines[2])["data"]?["truncated_bytes"]?.intValue == 33)
        #expect(AuditVerifier.verify(directory: dir).ok)
    }

    @Test func reopenRefusesAnotherKey() throws {
        let dir = AuditTestSupport.temporaryDirectory()
        _ = try AuditTestSupport.writeLog(in: dir, records: 1, signer: AuditSigningKey())
        #expect(throws: AuditError.self) { _ = try AuditLog.reopen(directory: dir, options: AuditOptions(signer: AuditSigningKey())) }
    }

    @Test func largeAndBinaryPayloadsBecomeBlobs() throws {
        let dir = AuditTestSupport.temporaryDirectory()
        let log = try AuditLog.create(directory: dir, run: "r", startData: ["task_sha256": "x", "robit_version": "t"])
        let small = try log.payload("hello")
        #expect(small == "hello")
        let exact = try log.payload([UInt8](repeating: 0x61, count: AuditFormat.blobThreshold))
        #expect(exact.stringValue?.utf8.count == AuditFormat.blobThreshold)
        let big = [UInt8](repeating: 0x62, count: AuditFormat.blobThreshold + 1)
        let ref = try log.payload(big)
        let hex = AuditHash.sha256Hex(big)
        #expect(ref["blob"]?.stringValue == "sha256:" + hex)
        #expect(ref["size"]?.intValue == Int64(big.count))
        #expect(FileManager.default.contents(atPath: dir + "/blobs/" + hex) == Data(big))
        let binary = try log.payload([0xFF, 0xFE, 0x00])
        #expect(binary["blob"] != nil)
        try log.append("tool.result", ["status": "ok", "stdout": ref, "stderr": binary])
        _ = try log.finish(["status": "ok"])
        #expect(AuditVerifier.verify(directory: dir).ok)
    }

    @Test func secretsAreRedactedBeforeTheRecordIsBuilt() throws {
        let dir = AuditTestSupport.temporaryDirectory()
        let secret = "sk-live-1234567890abcdef"
        let log = try AuditLog.create(directory: dir, run: "r", options: AuditOptions(redactions: [Redaction(name: "OPENAI_API_KEY", value: secret)]),
                                      startData: ["task_sha256": "x", "robit_version": "t"])
        try log.append("tool.result", ["status": "ok", "stdout": .string("key=\(secret)!"), "nested": [.string("a\(secret)b")], secret: 1])
        let blob = try log.payload(Array(String(repeating: "x", count: 70_000).utf8) + Array(secret.utf8))
        try log.append("tool.result", ["status": "ok", "stdout": blob])
        _ = try log.finish(["status": "ok", "note": .string(secret)])
        var all = try String(contentsOfFile: log.path, encoding: .utf8)
        for file in try FileManager.default.contentsOfDirectory(atPath: dir + "/blobs") {
            all += try String(contentsOfFile: dir + "/blobs/" + file, encoding: .utf8)
        }
        #expect(!all.contains(secret))
        #expect(all.contains("[REDACTED:OPENAI_API_KEY]"))
        #expect(AuditVerifier.verify(directory: dir).ok)
    }

    @Test func fsyncEveryRecordStillVerifies() throws {
        let dir = AuditTestSupport.temporaryDirectory()
        let log = try AuditLog.create(directory: dir, run: "r", options: AuditOptions(signer: AuditSigningKey(), fsync: .every),
                                      startData: ["task_sha256": "x", "robit_version": "t"])
        for i in 0..<10 { try log.append("x", ["i": .int(Int64(i))]) }
        _ = try log.finish(["status": "ok"])
        #expect(AuditVerifier.verify(directory: dir).ok)
    }

    @Test func timestampsHaveNineFractionDigits() {
        #expect(AuditClock.format(seconds: 0, nanoseconds: 5) == "1970-01-01T00:00:00.000000005Z")
        #expect(AuditClock.format(seconds: 1_795_000_000, nanoseconds: 123_456_789) == "2026-11-18T11:06:40.123456789Z")
        #expect(AuditClock.format(seconds: 951_782_400, nanoseconds: 0) == "2000-02-29T00:00:00.000000000Z")
        let now = AuditClock.now()
        #expect(Array(now.utf8).withUnsafeBufferPointer { AuditClock.isWellFormed($0) })
    }

    @Test func keysOnDisk() throws {
        let dir = AuditTestSupport.temporaryDirectory() + "/keys"
        let (priv, pub, key) = try AuditKeyLocation.generate(into: dir)
        var st = stat()
        stat(priv, &st)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(try AuditSigningKey.load(path: priv).publicKey == key)
        #expect(try AuditPublicKey.load(pub) == key)
        #expect(try AuditPublicKey.load(key.base64) == key)
        #expect(throws: AuditError.self) { _ = try AuditKeyLocation.generate(into: dir) }
        chmod(priv, 0o644)
        #expect(throws: AuditError.self) { _ = try AuditSigningKey.load(path: priv) }
        #expect(throws: AuditError.self) { _ = try AuditSigningKey.load(path: pub) }
        #expect(throws: AuditError.self) { _ = try AuditPublicKey.load("not a key") }
    }
}
