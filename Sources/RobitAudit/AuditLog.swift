import Crypto
import Foundation
import RobitSync

/// How often the log is forced to disk. Checkpoints and the end of a run are always synced.
public enum AuditFsync: String, Sendable, CaseIterable {
    case checkpoint
    case every
}

public struct AuditOptions: Sendable {
    /// nil = unsigned: the log is still chained, `run.start` says so, and `verify` reports it.
    public var signer: AuditSigningKey?
    public var fsync: AuditFsync
    public var redactions: [Redaction]
    public var checkpointInterval: Int

    public init(signer: AuditSigningKey? = nil, fsync: AuditFsync = .checkpoint, redactions: [Redaction] = [],
                checkpointInterval: Int = AuditFormat.checkpointInterval) {
        self.signer = signer
        self.fsync = fsync
        self.redactions = redactions
        self.checkpointInterval = max(2, checkpointInterval)
    }
}

/// The position of an appended record.
public struct AuditEntry: Sendable, Equatable {
    public var seq: Int64
    public var hash: String
}

/// The single writer of one run's audit log (`audit.jsonl` + `blobs/`), held under an exclusive lock.
public final class AuditLog: Sendable {
    public let directory: String
    public let run: String
    public var path: String { directory + "/" + AuditFormat.logFileName }

    private struct State {
        var fd: Int32
        var seq: Int64
        /// Hash of the last record (the log's head).
        var hash: String
        var sinceCheckpoint: Int
        var finished: Bool
        var unsyncedBlobs: [String]
        /// Reused line buffers.
        var head: [UInt8] = []
        var tail: [UInt8] = []
        /// Complete records not yet written to the file (in order); see `flush()`.
        var pending: [UInt8] = []
        /// Bytes this process added to the log and its blobs.
        var written: Int64 = 0
    }

    /// Records are written in batches of about this many bytes, and at every `flush()`, checkpoint and the end.
    public static let flushThreshold = 64 * 1024

    private let state: Locked<State>
    private let actor: String
    private let options: AuditOptions
    private let redactor: Redactor
    private let keyID: String?

    private init(directory: String, run: String, actor: String, options: AuditOptions, fd: Int32, seq: Int64, head: String) {
        self.directory = directory
        self.run = run
        self.actor = actor
        self.options = options
        self.redactor = Redactor(options.redactions)
        self.keyID = options.signer?.publicKey.keyID
        self.state = Locked(State(fd: fd, seq: seq, hash: head, sinceCheckpoint: 0, finished: false, unsyncedBlobs: []))
    }

    deinit {
        // A queued sync holds a reference to the log, so none is pending here.
        state.withLock { s in
            if !s.pending.isEmpty { _ = s.pending.withUnsafeBytes { writeAll(s.fd, $0) } }
            if s.fd >= 0 { close(s.fd) }
        }
    }

    /// Writes the records appended so far to the file (one writev, in order). Call it before anything that
    /// may block for long or crash (a model call, running tools), so those records survive a SIGKILL.
    public func flush() throws(AuditError) {
        try state.withLock { (s: inout State) throws(AuditError) in try flush(&s) }
    }

    private func flush(_ s: inout State) throws(AuditError) {
        guard !s.pending.isEmpty else { return }
        guard s.pending.withUnsafeBytes({ writeAll(s.fd, $0) }) else {
            throw AuditError(.io, "cannot append to \(path): \(String(cString: strerror(errno)))")
        }
        s.pending.removeAll(keepingCapacity: true)
    }

    /// Checkpoint fsyncs run here, off the writer's path (group commit): appends go on while the disk
    /// catches up, and the end of the log waits for them.
    private let syncQueue = DispatchQueue(label: "robit.audit.fsync")
    private let syncState = Locked<SyncState>(SyncState())

    private struct SyncState {
        var queued = false
        var blobs: [String] = []
        var error: String?
    }

    private func syncBlobs(_ blobs: [String]) {
        guard !blobs.isEmpty else { return }
        for blob in blobs {
            let fd = open(blob, O_RDONLY | O_CLOEXEC)
            if fd >= 0 { fsync(fd); close(fd) }
        }
        syncDirectory(directory + "/" + AuditFormat.blobDirectoryName)
    }

    /// `sha256:<hex>` of a user identifier: the actor field never holds the user in clear.
    public static func actor(for identifier: String) -> String {
        "sha256:" + Digest.sha256Hex(Array(identifier.utf8))
    }

    /// The current user as `name@host` (uid when the name is unknown).
    public static func currentUserIdentifier() -> String {
        let uid = getuid()
        var name = "uid\(uid)"
        if let pw = getpwuid(uid), let n = pw.pointee.pw_name { name = String(cString: n) }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        return name + "@" + String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Starts a new log in `directory` (created 0700) and writes `run.start` with `startData` plus the key fields.
    public static func create(directory: String, run: String, actorIdentifier: String = currentUserIdentifier(),
                              options: AuditOptions = AuditOptions(), startData: AuditValue) throws(AuditError) -> AuditLog {
        guard !run.isEmpty, run.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw AuditError(.invalidValue, "run id must be printable ASCII without spaces")
        }
        try makeDirectory(directory)
        try makeDirectory(directory + "/" + AuditFormat.blobDirectoryName)
        let path = directory + "/" + AuditFormat.logFileName
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 {
            let err = errno
            if err == EEXIST {
                let probe = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                defer { if probe >= 0 { close(probe) } }
                if probe >= 0, flock(probe, LOCK_EX | LOCK_NB) != 0 {
                    throw AuditError(.locked, "\(path) is being written by another robit process; one log has one writer")
                }
                throw AuditError(.io, "\(path) already holds a log; choose another --audit-dir (or `robit resume` the run)")
            }
            throw AuditError(.io, "cannot create \(path): \(String(cString: strerror(err)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw AuditError(.locked, "\(path) is being written by another robit process; one log has one writer")
        }
        let log = AuditLog(directory: directory, run: run, actor: actor(for: actorIdentifier), options: options,
                           fd: fd, seq: -1, head: AuditFormat.zeroHash)
        var data = startData
        if case .object = data {} else { data = [:] }
        if let key = options.signer?.publicKey {
            data.set("pubkey", .string(key.base64))
            data.set("key_id", .string(key.keyID))
            data.set("signed", true)
        } else {
            data.set("pubkey", nil)
            data.set("key_id", nil)
            data.set("signed", false)
        }
        try log.append("run.start", data)
        syncDirectory(directory)
        return log
    }

    /// Opens an existing log to continue it (`robit resume`): checks the chain, repairs a torn last line by
    /// truncating to the last complete record (then appends `recovered`), and appends `recordType` with `data`.
    public static func reopen(directory: String, actorIdentifier: String = currentUserIdentifier(),
                              options: AuditOptions = AuditOptions(), recordType: String = "resumed",
                              data: AuditValue = [:]) throws(AuditError) -> AuditLog {
        let path = directory + "/" + AuditFormat.logFileName
        let fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw AuditError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw AuditError(.locked, "\(path) is being written by another robit process; one log has one writer")
        }
        let verdict = AuditVerifier.verify(directory: directory, options: AuditVerifyOptions(allowIncomplete: true))
        guard verdict.ok, let run = verdict.run, let head = verdict.head else {
            close(fd)
            throw AuditError(.corrupt, "cannot continue \(path): \(verdict.failure?.description ?? "it holds no record")")
        }
        if verdict.keyID != options.signer?.publicKey.keyID {
            close(fd)
            throw AuditError(.key, "\(path) was \(verdict.keyID.map { "signed with key \($0)" } ?? "unsigned"); continue it with the same key")
        }
        let log = AuditLog(directory: directory, run: run, actor: actor(for: actorIdentifier), options: options,
                           fd: fd, seq: Int64(verdict.records - 1), head: head)
        if verdict.tornBytes > 0 {
            guard ftruncate(fd, off_t(verdict.completeBytes)) == 0 else {
                throw AuditError(.io, "cannot truncate the torn last line of \(path): \(String(cString: strerror(errno)))")
            }
            try log.append("recovered", ["status": "ok", "truncated_bytes": .int(Int64(verdict.tornBytes))])
        }
        try log.append(recordType, data)
        return log
    }

    private static func makeDirectory(_ path: String) throws(AuditError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw AuditError(.io, "cannot create the audit directory \(path): \(error.localizedDescription)")
        }
    }

    public var head: String { state.withLock { $0.hash } }
    public var lastSeq: Int64 { state.withLock { $0.seq } }

    /// Appends one record. `data` is redacted before it is encoded.
    @discardableResult
    public func append(_ type: String, _ data: AuditValue) throws(AuditError) -> AuditEntry {
        let clean = redactor.redact(data)
        return try state.withLock { (s: inout State) throws(AuditError) -> AuditEntry in
            guard !s.finished else { throw AuditError(.io, "the audit log of run \(run) is already finished") }
            let entry = try write(type, clean, into: &s)
            if type != "checkpoint" {
                s.sinceCheckpoint += 1
                if s.sinceCheckpoint >= options.checkpointInterval - 1 { try checkpoint(&s) }
            }
            return entry
        }
    }

    /// Ends the log: `run.end` with `data`, a signed checkpoint, fsync. Returns the head hash.
    public func finish(_ data: AuditValue) throws(AuditError) -> String {
        let clean = redactor.redact(data)
        return try state.withLock { (s: inout State) throws(AuditError) -> String in
            guard !s.finished else { return s.hash }
            _ = try write("run.end", clean, into: &s)
            try checkpoint(&s, final: true)
            s.finished = true
            return s.hash
        }
    }

    public var isFinished: Bool { state.withLock { $0.finished } }

    /// Bytes this process has added to the log file and its blobs (a blob already there adds none).
    public var bytesWritten: Int64 { state.withLock { $0.written } }

    /// A payload for a record: the text inline when it is valid UTF-8 of at most 64 KiB, otherwise a
    /// `{"blob": "sha256:<hex>", "size": N}` reference to `blobs/<hex>`. Secrets are redacted first.
    public func payload(_ bytes: [UInt8]) throws(AuditError) -> AuditValue {
        let clean = redactor.redact(bytes)
        if clean.count <= AuditFormat.blobThreshold, let text = String(validating: clean, as: UTF8.self) {
            return .string(text)
        }
        let (reference, path) = try Self.writeBlob(clean, in: directory, sync: options.fsync == .every)
        if let path {
            state.withLock {
                $0.written += Int64(clean.count)
                if options.fsync != .every { $0.unsyncedBlobs.append(path) }
            }
        }
        return reference
    }

    public func payload(_ text: String) throws(AuditError) -> AuditValue { try payload(Array(text.utf8)) }

    /// Stores `bytes` as a blob of the log in `directory` whatever their size (synced at once) and returns the
    /// reference; for content that must be a blob, like the task file `run.start` points to. Not redacted.
    public static func storeBlob(_ bytes: [UInt8], in directory: String) throws(AuditError) -> AuditValue {
        try makeDirectory(directory)
        try makeDirectory(directory + "/" + AuditFormat.blobDirectoryName)
        let (reference, path) = try writeBlob(bytes, in: directory, sync: true)
        if path != nil { syncDirectory(directory + "/" + AuditFormat.blobDirectoryName) }
        return reference
    }

    /// Writes `blobs/<sha256>` (through a temporary file and a rename) unless it is already there, and returns
    /// the reference to it and the path when it was written now.
    private static func writeBlob(_ bytes: [UInt8], in directory: String, sync: Bool) throws(AuditError) -> (AuditValue, String?) {
        let hex = Digest.sha256Hex(bytes)
        let reference: AuditValue = ["blob": .string("sha256:" + hex), "size": .int(Int64(bytes.count))]
        let path = directory + "/" + AuditFormat.blobDirectoryName + "/" + hex
        guard access(path, F_OK) != 0 else { return (reference, nil) }
        let temp = path + ".tmp.\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw AuditError(.io, "cannot write blob \(temp): \(String(cString: strerror(errno)))") }
        var ok = bytes.withUnsafeBytes { writeAll(fd, $0) }
        if ok && sync { ok = fsync(fd) == 0 }
        close(fd)
        guard ok, rename(temp, path) == 0 else {
            unlink(temp)
            throw AuditError(.io, "cannot write blob \(path): \(String(cString: strerror(errno)))")
        }
        return (reference, path)
    }

    // MARK: - Writing

    private func write(_ type: String, _ data: AuditValue, into s: inout State) throws(AuditError) -> AuditEntry {
        let seq = s.seq + 1
        // Keys in code-point order: actor, data, hash, prev, run, seq, ts, type, v. The line is written as
        // three pieces (before "hash", the hash member, after it) with one writev; the hash covers the
        // first and the last piece, i.e. the record without its hash.
        s.head.removeAll(keepingCapacity: true)
        s.head.append(contentsOf: #"{"actor":"#.utf8)
        CanonicalJSON.appendString(actor, to: &s.head)
        s.head.append(contentsOf: #","data":"#.utf8)
        try CanonicalJSON.append(data, to: &s.head)
        s.head.append(0x2C)
        s.tail.removeAll(keepingCapacity: true)
        s.tail.append(contentsOf: #""prev":""#.utf8)
        s.tail.append(contentsOf: s.hash.utf8)
        s.tail.append(contentsOf: #"","run":"#.utf8)
        CanonicalJSON.appendString(run, to: &s.tail)
        s.tail.append(contentsOf: #","seq":"#.utf8)
        CanonicalJSON.appendInteger(seq, to: &s.tail)
        s.tail.append(contentsOf: #","ts":""#.utf8)
        AuditClock.appendNow(to: &s.tail)
        s.tail.append(contentsOf: #"","type":"#.utf8)
        CanonicalJSON.appendString(type, to: &s.tail)
        s.tail.append(contentsOf: #","v":1}"#.utf8)
        var hasher = SHA256()
        hasher.update(data: s.head)
        hasher.update(data: s.tail)
        let hash = Digest.hex(hasher.finalize())
        s.tail.append(0x0A)
        var member = Array(#""hash":""#.utf8)
        member.append(contentsOf: hash.utf8)
        member.append(contentsOf: #"","#.utf8)
        s.pending.append(contentsOf: s.head)
        s.pending.append(contentsOf: member)
        s.pending.append(contentsOf: s.tail)
        s.written += Int64(s.head.count + member.count + s.tail.count)
        if options.fsync == .every || s.pending.count >= Self.flushThreshold { try flush(&s) }
        if options.fsync == .every { fsync(s.fd) }
        s.seq = seq
        s.hash = hash
        return AuditEntry(seq: seq, hash: hash)
    }

    private func checkpoint(_ s: inout State, final: Bool = false) throws(AuditError) {
        var data: AuditValue = ["upto": .int(s.seq), "head": .string(s.hash)]
        if let signer = options.signer, let keyID {
            let message = Array("\(AuditFormat.signaturePrefix)\n\(run)\n\(s.seq)\n\(s.hash)".utf8)
            data.set("key_id", .string(keyID))
            data.set("sig", .string(Data(signer.sign(message)).base64EncodedString()))
        } else {
            data.set("key_id", nil)
            data.set("sig", nil)
        }
        _ = try write("checkpoint", data, into: &s)
        try flush(&s)
        s.sinceCheckpoint = 0
        let blobs = s.unsyncedBlobs
        s.unsyncedBlobs.removeAll()
        let fd = s.fd
        if final {
            // The end: wait for any sync in flight, then sync everything now.
            syncQueue.sync {}
            let pending = syncState.withLock { st -> [String] in defer { st.blobs = [] }; return st.blobs }
            syncBlobs(pending + blobs)
            guard fsync(fd) == 0 else { throw AuditError(.io, "cannot sync \(path): \(String(cString: strerror(errno)))") }
            if let error = syncState.withLock({ $0.error }) { throw AuditError(.io, error) }
            return
        }
        let schedule = syncState.withLock { st -> Bool in
            st.blobs.append(contentsOf: blobs)
            if st.queued { return false }
            st.queued = true
            return true
        }
        guard schedule else { return }
        let path = self.path
        syncQueue.async { [self] in
            let pending = syncState.withLock { st -> [String] in
                st.queued = false
                defer { st.blobs = [] }
                return st.blobs
            }
            syncBlobs(pending)
            if fsync(fd) != 0 {
                let message = "cannot sync \(path): \(String(cString: strerror(errno)))"
                syncState.withLock { $0.error = message }
            }
        }
    }
}

private func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
    writeAll(fd, [buffer])
}

/// Writes the pieces with writev (one append on a regular file opened O_APPEND), finishing a short write.
private func writeAll(_ fd: Int32, _ pieces: [UnsafeRawBufferPointer]) -> Bool {
    var vectors = pieces.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
    var index = 0
    while index < vectors.count {
        let n = vectors.withUnsafeMutableBufferPointer { v in writev(fd, v.baseAddress! + index, Int32(v.count - index)) }
        if n < 0 { if errno == EINTR { continue }; return false }
        if n == 0 { return false }
        var left = n
        while index < vectors.count && left >= vectors[index].iov_len { left -= vectors[index].iov_len; index += 1 }
        if index < vectors.count && left > 0 {
            vectors[index].iov_base = vectors[index].iov_base.map { $0 + left }
            vectors[index].iov_len -= left
        }
    }
    return true
}

/// Makes a directory entry (a new file, a rename) durable.
func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    fsync(fd)
    close(fd)
}
