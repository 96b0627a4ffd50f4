import Crypto
import Foundation

/// One decoded record, for display (`robit audit show`) and for replay. Reading does not verify: use
/// `AuditVerifier` for that.
public struct AuditRecord: Sendable {
    public var seq: Int64
    public var ts: String
    public var run: String
    public var type: String
    public var data: AuditValue
    public var hash: String
    /// The line as it is on disk, without the newline.
    public var line: String
}

/// Reads a log line by line with bounded memory.
public struct AuditReader: Sequence, IteratorProtocol {
    private let handle: FileHandle?
    private var pending: [UInt8] = []
    private var start = 0
    private var atEOF = false
    /// Lines that are not records (torn, or not canonical JSON) are skipped and counted here.
    public private(set) var skipped = 0

    public init(path: String) throws(AuditError) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw AuditError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        self.handle = handle
    }

    public mutating func next() -> AuditRecord? {
        while true {
            if let nl = pending[start...].firstIndex(of: 0x0A) {
                let lineBytes = Array(pending[start ..< nl])
                start = nl + 1
                if let record = Self.decode(lineBytes) { return record }
                skipped += 1
                continue
            }
            if atEOF {
                if start < pending.count { skipped += 1; start = pending.count }
                try? handle?.close()
                return nil
            }
            pending.removeFirst(start)
            start = 0
            if let chunk = try? handle?.read(upToCount: 1 << 20), !chunk.isEmpty {
                pending.append(contentsOf: chunk)
            } else {
                atEOF = true
            }
        }
    }

    /// Decodes one canonical line; nil when it is not a canonical record.
    public static func decode(_ line: [UInt8]) -> AuditRecord? {
        line.withUnsafeBufferPointer { buffer -> AuditRecord? in
            var scanner = CanonicalScanner(buffer)
            guard buffer.first == 0x7B, (try? scanner.skipValue()) != nil, scanner.position == buffer.count else { return nil }
            scanner.position = 0
            let value = scanner.decodeValue()
            guard let seq = value["seq"]?.intValue, let ts = value["ts"]?.stringValue, let run = value["run"]?.stringValue,
                  let type = value["type"]?.stringValue, let data = value["data"], let hash = value["hash"]?.stringValue else { return nil }
            return AuditRecord(seq: seq, ts: ts, run: run, type: type, data: data, hash: hash,
                               line: String(decoding: line, as: UTF8.self))
        }
    }
}

/// SHA-256 helpers for callers that record hashes of files they produced (config.json, seccomp, nft rules).
public enum AuditHash {
    public static func sha256Hex(_ bytes: [UInt8]) -> String { Digest.sha256Hex(bytes) }
    /// The 32 bytes of the digest (for a Content-Security-Policy hash, which is base64).
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
    public static func sha256Hex(_ text: String) -> String {
        var text = text
        return text.withUTF8 { Digest.sha256Hex(UnsafeRawBufferPointer($0)) }
    }

    /// SHA-256 fed piece by piece; a copy carries the state so far (to hash a long prefix once and
    /// several different endings after it).
    public struct Stream {
        private var hasher = SHA256()

        public init() {}

        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            hasher.update(bufferPointer: bytes)
        }

        public mutating func update(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { update($0) }
        }

        public func hex() -> String {
            Digest.hex(hasher.finalize())
        }
    }
}
