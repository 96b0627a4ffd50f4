import Foundation

/// The code path of the `canonical` fuzz target (Sources/robit-fuzz, `scripts/fuzz canonical`), shared with
/// Tests/RobitAuditTests/FuzzCorpusTests.swift so that every seed and every crash found is replayed by the
/// normal test suite through exactly the code the fuzzer ran.
///
/// Hostile bytes are fed as one audit line (the canonical scanner, `AuditReader.decode`) and as a whole
/// audit.jsonl (`AuditVerifier.verify`, what `robit audit verify` runs, and `AuditReader`). A second pass
/// repairs every line's `prev` and `hash` first, so that mutated logs get past the hash check and reach the
/// chain, run.start, checkpoint and blob checks. A broken invariant traps (`preconditionFailure`):
/// - a line the scanner accepts must re-encode (`CanonicalJSON.encode`) to exactly its bytes;
/// - a log the verifier accepts must read back through `AuditReader` with no skipped line, one record per
///   line in seq order, and must verify again with its own head as `--anchor`;
/// - a log that verifies must also verify with `allowIncomplete`.
package enum AuditFuzzing {
    /// The one blob in the scratch directory's `blobs/`, so that references to it are found and hashed.
    package static let blobContent: [UInt8] = Array("robit fuzz blob\n".utf8)
    package static var blobName: String { Digest.sha256Hex(blobContent) }

    /// A fresh scratch directory (with `blobs/<blobName>`) that `canonical` writes its audit.jsonl into.
    package static func makeDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "robit-fuzz-audit-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path + "/" + AuditFormat.blobDirectoryName, withIntermediateDirectories: true)
        try Data(blobContent).write(to: URL(fileURLWithPath: path + "/" + AuditFormat.blobDirectoryName + "/" + blobName))
        return path
    }

    /// Feeds `bytes` as one line and as a log written to `directory` (made by `makeDirectory`).
    ///
    /// Each verification costs about as much as all the rest (the verifier zero-fills an 8 MiB buffer), so
    /// a log is verified with `allowIncomplete` only where the result can differ (a truncated or a valid log).
    package static func canonical(_ bytes: [UInt8], directory: String) {
        line(bytes)
        var log = bytes
        let torn = log.last != 0x0A
        if torn { log.append(0x0A) }
        checkLog(log, directory: directory, read: !torn)
        if torn && bytes.contains(0x0A) {
            // As written, the last line is torn: the verifier's and the reader's end-of-log handling (for one
            // line alone that is trivial, and each verification is dear).
            writeLog(bytes, directory: directory)
            let verdict = AuditVerifier.verify(directory: directory, options: AuditVerifyOptions(allowIncomplete: true))
            _ = verdict.failure?.description
            readAll(directory: directory)
        }
        let repaired = repairChain(log)
        if repaired != log { checkLog(repaired, directory: directory, read: false) }
    }

    // MARK: - One line

    static func line(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = CanonicalScanner(buffer)
            guard (try? scanner.skipValue()) != nil, scanner.position == buffer.count else { return }
            scanner.position = 0
            let value = scanner.decodeValue()
            guard scanner.position == buffer.count else {
                preconditionFailure("canonical: decodeValue stopped at byte \(scanner.position) of \(buffer.count) of a line the scanner accepted")
            }
            let encoded: [UInt8]
            do {
                encoded = try CanonicalJSON.encode(value)
            } catch {
                preconditionFailure("canonical: a line the scanner accepted does not re-encode: \(error)")
            }
            guard encoded == bytes else {
                preconditionFailure("canonical: a line the scanner accepted re-encodes differently: \(String(decoding: encoded.prefix(200), as: UTF8.self))")
            }
        }
        if let record = AuditReader.decode(bytes) {
            guard Array(record.line.utf8) == bytes else { preconditionFailure("canonical: AuditRecord.line differs from the line") }
        }
    }

    // MARK: - A whole log

    /// Replaces the scratch directory's audit.jsonl with `bytes` (without the fsync of `Data.write`).
    package static func writeLog(_ bytes: [UInt8], directory: String) {
        let path = directory + "/" + AuditFormat.logFileName
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { preconditionFailure("canonical (harness): cannot open \(path)") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            guard n > 0 else { preconditionFailure("canonical (harness): cannot write \(path)") }
            done += n
        }
    }

    /// Reads every record with `AuditReader`; returns them and the number of skipped lines.
    @discardableResult
    static func readAll(directory: String) -> (records: [AuditRecord], skipped: Int) {
        guard var reader = try? AuditReader(path: directory + "/" + AuditFormat.logFileName) else {
            preconditionFailure("canonical (harness): cannot open the log it wrote")
        }
        var records: [AuditRecord] = []
        while let record = reader.next() { records.append(record) }
        return (records, reader.skipped)
    }

    static func checkLog(_ log: [UInt8], directory: String, read: Bool) {
        writeLog(log, directory: directory)
        let strict = AuditVerifier.verify(directory: directory)
        _ = strict.failure?.description
        if !strict.ok && strict.failure?.problem == .truncated {
            _ = AuditVerifier.verify(directory: directory, options: AuditVerifyOptions(allowIncomplete: true)).failure?.description
        }
        if read || strict.ok {
            let (records, skipped) = readAll(directory: directory)
            guard strict.ok else { return }
            guard skipped == 0, records.count == strict.records else {
                preconditionFailure("canonical: the log verifies (\(strict.records) records), but AuditReader reads \(records.count) and skips \(skipped)")
            }
            for (i, record) in records.enumerated() where record.seq != Int64(i) {
                preconditionFailure("canonical: the log verifies, but record \(i) has seq \(record.seq)")
            }
            guard let head = strict.head, head == records.last?.hash else {
                preconditionFailure("canonical: the log verifies, but its head \(strict.head ?? "nil") is not the last record's hash")
            }
            let lenient = AuditVerifier.verify(directory: directory, options: AuditVerifyOptions(allowIncomplete: true))
            guard lenient.ok else {
                preconditionFailure("canonical: the log verifies, but not with allowIncomplete: \(lenient.failure!)")
            }
            let anchored = AuditVerifier.verify(directory: directory, options: AuditVerifyOptions(anchor: head))
            guard anchored.ok else {
                preconditionFailure("canonical: the log verifies, but not with its own head as anchor: \(anchored.failure!)")
            }
        }
    }

    // MARK: - Repairing the chain

    /// The members of the object that starts at `start` in `line`: key contents and value ranges, and the
    /// byte after each value. Nil when it is not a canonical object.
    static func members(of line: UnsafeBufferPointer<UInt8>, at start: Int) -> [(key: Range<Int>, value: Range<Int>)]? {
        guard start < line.count, line[start] == 0x7B else { return nil }
        var scanner = CanonicalScanner(line)
        scanner.position = start + 1
        var out: [(key: Range<Int>, value: Range<Int>)] = []
        if scanner.position < line.count, line[scanner.position] == 0x7D { return out }
        while true {
            guard scanner.position < line.count, line[scanner.position] == 0x22 else { return nil }
            let keyStart = scanner.position
            guard (try? scanner.skipString()) != nil else { return nil }
            let key = keyStart + 1 ..< scanner.position - 1
            guard scanner.position < line.count, line[scanner.position] == 0x3A else { return nil }
            scanner.position += 1
            let valueStart = scanner.position
            guard (try? scanner.skipValue(depth: 1)) != nil else { return nil }
            out.append((key, valueStart ..< scanner.position))
            guard scanner.position < line.count else { return nil }
            if line[scanner.position] == 0x2C { scanner.position += 1; continue }
            if line[scanner.position] == 0x7D { return out }
            return nil
        }
    }

    /// `log` with each line's `prev` set to the previous line's `hash` (zeros for the first), a checkpoint's
    /// `data.head` set to its `prev`, and each `hash` recomputed, where those members are 64-character strings.
    package static func repairChain(_ log: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(log.count)
        var previous = [UInt8](repeating: 0x30, count: 64)
        for var line in log.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init) {
            previous = repair(&line, previous: previous) ?? previous
            out.append(contentsOf: line)
            out.append(0x0A)
        }
        out.removeLast()  // split yields one more piece than there are newlines
        return out
    }

    /// Repairs one line in place; returns its (new) hash.
    static func repair(_ line: inout [UInt8], previous: [UInt8]) -> [UInt8]? {
        func isHexString(_ r: Range<Int>) -> Bool { r.count == 66 && line[r.lowerBound] == 0x22 && line[r.upperBound - 1] == 0x22 }
        func find(_ members: [(key: Range<Int>, value: Range<Int>)], _ name: String) -> Range<Int>? {
            members.first { Array(line[$0.key]) == Array(name.utf8) }?.value
        }
        guard let top = line.withUnsafeBufferPointer({ members(of: $0, at: 0) }) else { return nil }
        if let prev = find(top, "prev"), isHexString(prev) {
            line.replaceSubrange(prev.lowerBound + 1 ..< prev.upperBound - 1, with: previous)
            if let type = find(top, "type"), Array(line[type]) == Array(#""checkpoint""#.utf8), let data = find(top, "data"),
               let inner = line.withUnsafeBufferPointer({ members(of: $0, at: data.lowerBound) }),
               let head = find(inner, "head"), isHexString(head) {
                line.replaceSubrange(head.lowerBound + 1 ..< head.upperBound - 1, with: previous)
            }
        }
        guard let index = top.firstIndex(where: { Array(line[$0.key]) == Array("hash".utf8) }) else { return nil }
        let hash = top[index].value
        guard isHexString(hash), hash.upperBound < line.count, line[hash.upperBound] == 0x2C else {
            return isHexString(hash) ? Array(line[hash.lowerBound + 1 ..< hash.upperBound - 1]) : nil
        }
        let memberStart = top[index].key.lowerBound - 1
        let digest = Array(Digest.sha256Hex(Array(line[..<memberStart]) + Array(line[(hash.upperBound + 1)...])).utf8)
        line.replaceSubrange(hash.lowerBound + 1 ..< hash.upperBound - 1, with: digest)
        return digest
    }
}
