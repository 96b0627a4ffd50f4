import Foundation
import RobitTestSupport
import Testing
@testable import RobitAudit

enum AuditTestSupport {
    static var repositoryRoot: String { Repository.root }

    static func temporaryDirectory(_ name: String = "audit") -> String {
        let path = NSTemporaryDirectory() + "robit-\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Writes a finished log with `records` ordinary records (plus run.start, checkpoints, run.end).
    static func writeLog(in directory: String, records: Int, signer: AuditSigningKey?, blobAt: Int? = nil) throws -> AuditLog {
        let log = try AuditLog.create(directory: directory, run: "run-test", actorIdentifier: "tester@host",
                                      options: AuditOptions(signer: signer),
                                      startData: ["task_sha256": .string(String(repeating: "a", count: 64)), "robit_version": "test"])
        for i in 0..<records {
            var data: AuditValue = ["status": "ok", "i": .int(Int64(i)), "text": .string("record \(i) ü \u{1}\n")]
            if i == blobAt {
                data.set("stdout", try log.payload([UInt8](repeating: 0x41, count: AuditFormat.blobThreshold + 1)))
            }
            try log.append("tool.result", data)
        }
        _ = try log.finish(["status": "ok"])
        return log
    }

    static func lines(_ path: String) -> [String] {
        let text = try! String(contentsOfFile: path, encoding: .utf8)
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    static func write(_ lines: [String], to path: String, trailingNewline: Bool = true) {
        let text = lines.joined(separator: "\n") + (trailingNewline && !lines.isEmpty ? "\n" : "")
        try! Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// A record re-encoded with a recomputed hash, as a forger with the format doc would do it.
    static func rehash(_ line: String, _ change: (inout AuditValue) -> Void) -> String {
        guard case .object(var members) = decode(line) else { fatalError("not a record") }
        members.removeAll { $0.0 == "hash" }
        var record = AuditValue.object(members)
        change(&record)
        guard case .object(var withoutHash) = record else { fatalError() }
        withoutHash.removeAll { $0.0 == "hash" }
        let hash = AuditHash.sha256Hex(try! CanonicalJSON.encode(.object(withoutHash)))
        withoutHash.append(("hash", .string(hash)))
        return String(decoding: try! CanonicalJSON.encode(.object(withoutHash)), as: UTF8.self)
    }

    static func decode(_ line: String) -> AuditValue {
        let bytes = Array(line.utf8)
        return bytes.withUnsafeBufferPointer { buffer in
            var scanner = CanonicalScanner(buffer)
            return scanner.decodeValue()
        }
    }

    static func hash(of line: String) -> String { decode(line)["hash"]!.stringValue! }

    /// Runs docs/verify_audit.py; returns (exit status, first output line).
    static func python(_ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot + "/docs/verify_audit.py"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let first = String(decoding: data, as: UTF8.self).components(separatedBy: "\n").first ?? ""
        return (process.terminationStatus, first)
    }

    static func runPython(_ script: String, input: Data) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let inPipe = Pipe(), outPipe = Pipe()
        process.standardInput = inPipe
        process.standardOutput = outPipe
        try process.run()
        let writer = Thread { inPipe.fileHandleForWriting.write(input); try? inPipe.fileHandleForWriting.close() }
        writer.start()
        let data = outPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return data
    }
}
