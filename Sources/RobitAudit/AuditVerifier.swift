import Crypto
import Foundation

public struct AuditVerifyOptions: Sendable {
    /// Pinned public key; nil = trust the key `run.start` names (reported as "unpinned key").
    public var key: AuditPublicKey?
    /// Expected head hash (the `hash` of the last record).
    public var anchor: String?
    /// Accept a log that has not ended yet (no final `run.end` + checkpoint, or a torn last line).
    public var allowIncomplete: Bool

    public init(key: AuditPublicKey? = nil, anchor: String? = nil, allowIncomplete: Bool = false) {
        self.key = key
        self.anchor = anchor
        self.allowIncomplete = allowIncomplete
    }
}

/// Why a log fails verification. The raw values are the words `robit audit verify` and the reference Python
/// verifier print.
public enum AuditProblem: String, Sendable, CaseIterable {
    case modified
    case inserted
    case deleted
    case reordered
    case truncated
    case badSignature = "bad signature"
    case missingBlob = "missing blob"
    case alteredBlob = "altered blob"
    case anchorMismatch = "anchor mismatch"
    case unreadable
}

public struct AuditFailure: Sendable, CustomStringConvertible {
    /// 1-based line number in audit.jsonl (0 when the file itself is the problem).
    public var line: Int
    public var problem: AuditProblem
    public var detail: String

    public var description: String { "line \(line): \(problem.rawValue): \(detail)" }
}

public struct AuditVerdict: Sendable {
    public init() {}
    public var failure: AuditFailure?
    public var ok: Bool { failure == nil }
    /// Complete records read (up to the failure, if any).
    public var records = 0
    public var run: String?
    /// `hash` of the last complete record.
    public var head: String?
    /// The key id `run.start` names; nil for an unsigned log.
    public var keyID: String?
    public var signed: Bool { keyID != nil }
    /// A key was given with `--key` and matched.
    public var pinned = false
    public var checkpoints = 0
    /// Seq covered by the last valid checkpoint (-1 = none).
    public var lastCheckpointUpto: Int64 = -1
    /// The log ends with `run.end` and a checkpoint covering it.
    public var finished = false
    public var warnings: [String] = []
    public var blobs = 0
    public var bytes = 0
    /// Bytes of complete lines, and bytes of a torn last line after them.
    public var completeBytes = 0
    public var tornBytes = 0
}

/// Verifies a log in one streaming pass with memory bounded by the longest line.
public enum AuditVerifier {
    /// The longest line accepted (inline payloads are at most 64 KiB before escaping).
    public static let maxLineLength = 4 << 20

    public static func verify(directory: String, options: AuditVerifyOptions = AuditVerifyOptions()) -> AuditVerdict {
        verify(path: directory + "/" + AuditFormat.logFileName, options: options)
    }

    /// `path` is the audit.jsonl file (its blobs are in `blobs/` next to it).
    public static func verify(path: String, options: AuditVerifyOptions = AuditVerifyOptions()) -> AuditVerdict {
        var state = VerifyState(path: path, options: options)
        state.run()
        return state.verdict
    }
}

private struct VerifyState {
    let path: String
    let blobDirectory: String
    let options: AuditVerifyOptions
    var verdict = AuditVerdict()

    var lineNumber = 0
    var previousHash = [UInt8](repeating: 0x30, count: 64)
    var hashBeforePrevious = [UInt8](repeating: 0x30, count: 64)
    var runBytes: [UInt8] = []
    var key: AuditPublicKey?
    var lastType: [UInt8] = []
    var typeBeforeLast: [UInt8] = []
    var checkedBlobs = Set<String>()

    init(path: String, options: AuditVerifyOptions) {
        self.path = path
        self.options = options
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        self.blobDirectory = (dir.isEmpty ? "." : dir) + "/" + AuditFormat.blobDirectoryName
    }

    mutating func fail(_ line: Int, _ problem: AuditProblem, _ detail: String) {
        if verdict.failure == nil { verdict.failure = AuditFailure(line: line, problem: problem, detail: detail) }
    }

    mutating func run() {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            fail(0, .unreadable, "cannot open \(path): \(String(cString: strerror(errno)))")
            return
        }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 8 << 20)
        var filled = 0
        var atEOF = false
        while verdict.failure == nil {
            if !atEOF && filled < buffer.count {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
                if n < 0 {
                    if errno == EINTR { continue }
                    fail(lineNumber + 1, .unreadable, "read error: \(String(cString: strerror(errno)))")
                    return
                }
                if n == 0 { atEOF = true } else { filled += n; verdict.bytes += n }
            }
            // Process every complete line in the buffer.
            var consumed = 0
            buffer.withUnsafeBufferPointer { all in
                while verdict.failure == nil {
                    let rest = UnsafeBufferPointer(rebasing: all[consumed ..< filled])
                    guard let relative = rest.firstIndex(of: 0x0A) else { break }
                    let nl = consumed + relative
                    lineNumber += 1
                    processLine(UnsafeBufferPointer(rebasing: all[consumed ..< nl]))
                    if verdict.failure == nil { verdict.completeBytes += nl + 1 - consumed }
                    consumed = nl + 1
                }
            }
            if consumed > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    let base = raw.baseAddress!
                    memmove(base, base + consumed, filled - consumed)
                }
                filled -= consumed
                continue
            }
            if atEOF {
                if filled > 0 && verdict.failure == nil {
                    verdict.tornBytes = filled
                    if options.allowIncomplete {
                        verdict.warnings.append("line \(lineNumber + 1) is torn (\(filled) bytes without a newline: a crash or a write in progress); ignored")
                    } else {
                        fail(lineNumber + 1, .truncated, "the last line is cut mid-record (\(filled) bytes without a newline): the log was truncated or robit crashed mid-write")
                    }
                }
                break
            }
            if filled == buffer.count {
                guard buffer.count < AuditVerifier.maxLineLength else {
                    fail(lineNumber + 1, .modified, "line is longer than \(AuditVerifier.maxLineLength) bytes")
                    return
                }
                buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
            }
        }
        guard verdict.failure == nil else {
            classifyChainBreak()
            return
        }
        finish()
    }

    // MARK: - One line

    static let keys: [StaticString] = ["actor", "data", "hash", "prev", "run", "seq", "ts", "type", "v"]

    mutating func processLine(_ line: UnsafeBufferPointer<UInt8>) {
        let n = lineNumber
        var scanner = CanonicalScanner(line)
        var ranges = [Range<Int>](repeating: 0..<0, count: 9)
        var hashMember = 0..<0
        do throws(CanonicalScanner.Failure) {
            guard line.count > 0, line[0] == 0x7B else { throw CanonicalScanner.Failure(offset: 0, reason: "not a JSON object") }
            scanner.position = 1
            for (i, key) in Self.keys.enumerated() {
                let keyStart = scanner.position
                guard scanner.position < line.count, line[scanner.position] == 0x22 else {
                    throw CanonicalScanner.Failure(offset: scanner.position, reason: "expected key \"\(key)\"")
                }
                let escaped = try scanner.skipString()
                guard !escaped, CanonicalScanner.equals(line, keyStart + 1 ..< scanner.position - 1, key) else {
                    throw CanonicalScanner.Failure(offset: keyStart, reason: "expected key \"\(key)\" (a record has exactly the keys \(Self.keys.map { "\($0)" }.joined(separator: ", ")))")
                }
                guard scanner.position < line.count, line[scanner.position] == 0x3A else {
                    throw CanonicalScanner.Failure(offset: scanner.position, reason: "expected :")
                }
                scanner.position += 1
                let valueStart = scanner.position
                try scanner.skipValue(depth: 1)
                ranges[i] = valueStart ..< scanner.position
                guard scanner.position < line.count else { throw CanonicalScanner.Failure(offset: scanner.position, reason: "unterminated record") }
                let sep = line[scanner.position]
                scanner.position += 1
                if i == 2 { hashMember = keyStart ..< scanner.position }
                if i < 8 {
                    guard sep == 0x2C else { throw CanonicalScanner.Failure(offset: scanner.position - 1, reason: "expected , after \"\(key)\"") }
                } else {
                    guard sep == 0x7D, scanner.position == line.count else {
                        throw CanonicalScanner.Failure(offset: scanner.position - 1, reason: "extra content after the record")
                    }
                }
            }
        } catch {
            fail(n, .modified, "not canonical: \(error.reason) at byte \(error.offset)")
            return
        }

        // Field shapes.
        func isHex64(_ r: Range<Int>) -> Bool {
            r.count == 66 && line[r.lowerBound] == 0x22 && line[r.upperBound - 1] == 0x22 &&
                line[r.lowerBound + 1 ..< r.upperBound - 1].allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
        }
        let vRange = ranges[8], seqRange = ranges[5], hashRange = ranges[2], prevRange = ranges[3]
        guard vRange.count == 1, line[vRange.lowerBound] == 0x31 else { return fail(n, .modified, "v is not 1") }
        guard isHex64(hashRange), isHex64(prevRange) else { return fail(n, .modified, "hash and prev must be 64 lowercase hex digits") }
        guard line[ranges[1].lowerBound] == 0x7B else { return fail(n, .modified, "data is not an object") }
        let actor = ranges[0]
        guard actor.count == 73, CanonicalScanner.equals(line, actor.lowerBound + 1 ..< actor.lowerBound + 8, "sha256:"),
              line[actor.lowerBound + 8 ..< actor.upperBound - 1].allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            return fail(n, .modified, "actor is not sha256:<64 hex>")
        }
        let ts = ranges[6]
        guard ts.count == 32, AuditClock.isWellFormed(UnsafeBufferPointer(rebasing: line[ts.lowerBound + 1 ..< ts.upperBound - 1])) else {
            return fail(n, .modified, "ts is not YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ")
        }
        guard line[ranges[4].lowerBound] == 0x22, line[ranges[7].lowerBound] == 0x22 else {
            return fail(n, .modified, "run and type must be strings")
        }
        var seqScanner = CanonicalScanner(line)
        seqScanner.position = seqRange.lowerBound
        guard line[seqRange.lowerBound] != 0x2D, let seq = try? seqScanner.skipInteger() else { return fail(n, .modified, "seq is not a non-negative integer") }

        // The record's own hash: SHA-256 of the line without its "hash" member.
        var hasher = SHA256()
        hasher.update(bufferPointer: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: line[0 ..< hashMember.lowerBound])))
        hasher.update(bufferPointer: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: line[hashMember.upperBound ..< line.count])))
        let digest = hasher.finalize()
        let stored = line[hashRange.lowerBound + 1 ..< hashRange.upperBound - 1]
        if !Self.hexEquals(digest, stored) {
            return fail(n, .modified, "its hash does not match its content")
        }

        // The chain.
        let expected = Int64(n - 1)
        let prev = line[prevRange.lowerBound + 1 ..< prevRange.upperBound - 1]
        if seq != expected || !prev.elementsEqual(previousHash) {
            chainBreak = ChainBreak(line: n, seq: seq, prevMatchesBeforePrevious: prev.elementsEqual(hashBeforePrevious),
                                    prevMatches: prev.elementsEqual(previousHash))
            return fail(n, .modified, "chain broken")  // refined by classifyChainBreak()
        }
        let runValue = Array(line[ranges[4]])
        if n == 1 { runBytes = runValue } else if runValue != runBytes {
            return fail(n, .modified, "run id differs from line 1's")
        }
        let type = Array(line[ranges[7]])
        let data = UnsafeBufferPointer(rebasing: line[ranges[1]])

        if n == 1 {
            guard type == Array(#""run.start""#.utf8) else { return fail(n, .modified, "the first record is not run.start") }
            checkRunStart(data)
            if verdict.failure != nil { return }
        }
        if type == Array(#""checkpoint""#.utf8) {
            checkCheckpoint(data, seq: seq, head: Array(prev))
            if verdict.failure != nil { return }
        }
        for blob in scanner.blobs {
            checkBlob(blob)
            if verdict.failure != nil { return }
        }
        hashBeforePrevious = previousHash
        previousHash = Array(stored)
        typeBeforeLast = lastType
        lastType = type
        verdict.records = n
    }

    static func hexEquals(_ digest: SHA256.Digest, _ hex: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var i = hex.startIndex
        for b in digest {
            if hex[i] != digits[Int(b >> 4)] || hex[i + 1] != digits[Int(b & 0xF)] { return false }
            i += 2
        }
        return true
    }

    // MARK: - Records with meaning

    mutating func checkRunStart(_ data: UnsafeBufferPointer<UInt8>) {
        var scanner = CanonicalScanner(data)
        let value = scanner.decodeValue()
        for field in ["task_sha256", "robit_version"] where value[field] == nil {
            return fail(1, .modified, "run.start has no data.\(field)")
        }
        guard let pubkey = value["pubkey"], let keyID = value["key_id"] else {
            return fail(1, .modified, "run.start has no data.pubkey / data.key_id")
        }
        if pubkey.isNull {
            guard keyID.isNull else { return fail(1, .modified, "run.start has a key_id but no pubkey") }
            if options.key != nil {
                return fail(1, .badSignature, "the log is unsigned, but --key pins a key")
            }
            verdict.warnings.append("the log is unsigned: it is chained but no checkpoint is signed")
            return
        }
        guard let b64 = pubkey.stringValue, let raw = Data(base64Encoded: b64), let recorded = try? AuditPublicKey(raw: Array(raw)) else {
            return fail(1, .modified, "run.start's pubkey is not the base64 of a 32-byte Ed25519 key")
        }
        guard keyID.stringValue == recorded.keyID else {
            return fail(1, .modified, "run.start's key_id does not match its pubkey")
        }
        verdict.keyID = recorded.keyID
        if let pinned = options.key {
            guard pinned == recorded else {
                return fail(1, .badSignature, "run.start names key \(recorded.keyID), but --key pins \(pinned.keyID)")
            }
            verdict.pinned = true
        } else {
            verdict.warnings.append("unpinned key: signatures are checked against the key run.start names (\(recorded.keyID)); pass --key to pin it")
        }
        key = recorded
    }

    mutating func checkCheckpoint(_ data: UnsafeBufferPointer<UInt8>, seq: Int64, head: [UInt8]) {
        let n = lineNumber
        var scanner = CanonicalScanner(data)
        let value = scanner.decodeValue()
        guard case .object(let members) = value, members.count == 4,
              let upto = value["upto"]?.intValue, let headValue = value["head"]?.stringValue,
              let keyID = value["key_id"], let sig = value["sig"] else {
            return fail(n, .modified, "a checkpoint's data is exactly {upto, head, key_id, sig}")
        }
        guard upto == seq - 1, Array(headValue.utf8) == head else {
            return fail(n, .badSignature, "checkpoint covers seq \(upto) but stands at seq \(seq): a signature replayed from another position")
        }
        if let key {
            guard keyID.stringValue == key.keyID else {
                return fail(n, .badSignature, "checkpoint names key \(keyID.stringValue ?? "null"), the log's key is \(key.keyID)")
            }
            guard let sigText = sig.stringValue, let sigBytes = Data(base64Encoded: sigText), sigBytes.count == 64 else {
                return fail(n, .badSignature, "checkpoint signature is missing or not 64 bytes of base64")
            }
            let runValue = String(decoding: runBytes.dropFirst().dropLast(), as: UTF8.self)
            let message = Array("\(AuditFormat.signaturePrefix)\n\(runValue)\n\(upto)\n\(headValue)".utf8)
            guard key.isValid(signature: Array(sigBytes), for: message) else {
                return fail(n, .badSignature, "checkpoint signature does not verify with key \(key.keyID)")
            }
        } else {
            guard keyID.isNull, sig.isNull else {
                return fail(n, .badSignature, "a signed checkpoint in a log whose run.start is unsigned")
            }
        }
        verdict.checkpoints += 1
        verdict.lastCheckpointUpto = upto
    }

    mutating func checkBlob(_ blob: CanonicalScanner.BlobReference) {
        let n = lineNumber
        let hex = blob.hex
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            return fail(n, .modified, "blob reference \(hex) is not a SHA-256")
        }
        verdict.blobs += 1
        if checkedBlobs.contains(hex) { return }
        let path = blobDirectory + "/" + hex
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return fail(n, .missingBlob, "blobs/\(hex) is missing") }
        defer { close(fd) }
        var hasher = SHA256()
        var size: Int64 = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if got < 0 { if errno == EINTR { continue }; return fail(n, .missingBlob, "blobs/\(hex) cannot be read") }
            if got == 0 { break }
            size += Int64(got)
            chunk.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0 ..< got])) }
        }
        guard Digest.hex(hasher.finalize()) == hex else { return fail(n, .alteredBlob, "blobs/\(hex) does not hash to its name") }
        guard size == blob.size else { return fail(n, .alteredBlob, "blobs/\(hex) is \(size) bytes; the record says \(blob.size)") }
        checkedBlobs.insert(hex)
    }

    // MARK: - End of log

    mutating func finish() {
        verdict.run = runBytes.count >= 2 ? String(decoding: runBytes.dropFirst().dropLast(), as: UTF8.self) : nil
        verdict.head = verdict.records > 0 ? String(decoding: previousHash, as: UTF8.self) : nil
        let endsWithCheckpoint = lastType == Array(#""checkpoint""#.utf8)
        verdict.finished = endsWithCheckpoint && typeBeforeLast == Array(#""run.end""#.utf8)
        if verdict.records == 0 {
            if !options.allowIncomplete { fail(1, .truncated, "the log holds no complete record") }
            return
        }
        if !verdict.finished {
            if options.allowIncomplete {
                verdict.warnings.append("the log has not ended (no run.end followed by a checkpoint); \(Int64(verdict.records - 1) - verdict.lastCheckpointUpto) record(s) after the last checkpoint are not covered by a signature")
            } else {
                fail(verdict.records, .truncated, "the log does not end with run.end and a checkpoint: it was cut short (use --allow-incomplete for a run in progress)")
                return
            }
        }
        if let anchor = options.anchor, anchor.lowercased() != verdict.head {
            fail(verdict.records, .anchorMismatch, "head is \(verdict.head ?? "none"), --anchor is \(anchor)")
        }
    }

    // MARK: - Naming a broken chain

    struct ChainBreak {
        var line: Int
        var seq: Int64
        var prevMatchesBeforePrevious: Bool
        var prevMatches: Bool
    }

    var chainBreak: ChainBreak?

    /// Names what happened at a `seq`/`prev` mismatch: a line deleted, inserted, reordered, or modified.
    mutating func classifyChainBreak() {
        guard let b = chainBreak, let failure = verdict.failure, failure.line == b.line else { return }
        let expected = Int64(b.line - 1)
        var problem = AuditProblem.modified
        var line = b.line
        var detail: String
        if b.seq == expected {
            line = b.line - 1
            detail = "line \(b.line)'s prev does not match this line's hash: this line was changed and its hash recomputed"
        } else if b.seq == expected - 1 && b.prevMatchesBeforePrevious {
            problem = .inserted
            line = b.line - 1
            detail = "line \(b.line) continues the chain from line \(b.line - 2): this line was inserted"
        } else if b.seq > expected {
            if let found = findLine(withSeq: expected, after: b.line) {
                problem = .reordered
                detail = "expected seq \(expected), found seq \(b.seq); seq \(expected) is at line \(found)"
            } else {
                problem = .deleted
                detail = "expected seq \(expected), found seq \(b.seq): \(b.seq - expected) record(s) before this line were deleted"
            }
        } else {
            if findLine(withSeq: b.seq, after: 0, before: b.line) != nil && !b.prevMatches {
                problem = b.seq < expected - 1 ? .reordered : .inserted
            } else {
                problem = .inserted
            }
            detail = "expected seq \(expected), found seq \(b.seq) again"
        }
        verdict.failure = AuditFailure(line: line, problem: problem, detail: detail)
    }

    /// Line number of the first record with `seq` (by a light scan of each line's "seq" field).
    func findLine(withSeq wanted: Int64, after: Int, before: Int = Int.max) -> Int? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        var number = 0
        var pending: [UInt8] = []
        let marker = Array(#","seq":"#.utf8)
        while let chunk = try? handle.read(upToCount: 4 << 20), !chunk.isEmpty {
            pending.append(contentsOf: chunk)
            var start = 0
            while let nl = pending[start...].firstIndex(of: 0x0A) {
                number += 1
                if number > after && number < before {
                    let line = pending[start ..< nl]
                    if let seq = Self.lastSeq(in: line, marker: marker), seq == wanted { return number }
                }
                start = nl + 1
            }
            pending.removeFirst(start)
        }
        return nil
    }

    static func lastSeq(in line: ArraySlice<UInt8>, marker: [UInt8]) -> Int64? {
        // The top-level seq member is the last `,"seq":` before `,"ts":`.
        var found: Int64? = nil
        var i = line.startIndex
        while i + marker.count < line.endIndex {
            if line[i] == 0x2C && line[i ..< i + marker.count].elementsEqual(marker) {
                var j = i + marker.count
                var v: Int64 = 0
                var digits = 0
                while j < line.endIndex, line[j] >= 0x30, line[j] <= 0x39, digits < 17 {
                    v = v * 10 + Int64(line[j] - 0x30); j += 1; digits += 1
                }
                if digits > 0 { found = v }
                i = j
            } else {
                i += 1
            }
        }
        return found
    }
}
