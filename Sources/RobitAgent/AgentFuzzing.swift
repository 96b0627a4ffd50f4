import Foundation
import RobitAudit
import RobitOCI

/// The code paths of the `taskfile`, `json`, `sse` and `schema` fuzz targets (Sources/robit-fuzz,
/// `scripts/fuzz`), shared with Tests/RobitAgentTests/FuzzCorpusTests.swift so that every seed and every
/// crash found is replayed by the normal test suite through exactly the code the fuzzer ran.
///
/// Errors thrown by the parsers are expected; a trap, an out-of-bounds access or a hang is a bug, and so is
/// a broken invariant (checked with `preconditionFailure`, which the fuzzer reports as a crash).
package enum AgentFuzzing {
    package static let targets: [String: @Sendable ([UInt8]) -> Void] = [
        "taskfile": taskfile, "json": json, "sse": sse, "schema": schema, "report": report,
    ]

    // MARK: - report

    /// What `robit audit report` and `robit audit replay` do with a log's records: each line decoded as an
    /// audit record, the HTML page built from them, the replay comparison of the records against
    /// themselves reversed, and the bytes read as a workspace tree listing (`run.start.workspace_tree`).
    ///
    /// Invariants: nothing from the log becomes markup: the page has exactly its own one `<style>` and one
    /// `<script>`, and no other element that could load or run anything; the records compared with
    /// themselves do not diverge.
    package static func report(_ bytes: [UInt8]) {
        let records = bytes.split(separator: 0x0A, omittingEmptySubsequences: true).compactMap { AuditReader.decode(Array($0)) }
        var verdict = AuditVerdict()
        verdict.records = records.count
        var page = AuditHTMLReport.Page(directory: "/nonexistent-robit-fuzz")
        _ = page.build(path: "audit.jsonl", records: records, skipped: 0, verdict: verdict, verdictLine: "fuzz", verdictClass: "ok")
        let lower = page.out.lowercased()
        for (tag, count) in [("<script", 1), ("<style", 1), ("<img", 0), ("<iframe", 0), ("<object", 0), ("<embed", 0), ("<link", 0), ("<base", 0), ("<svg", 0), ("<form", 0)] {
            let found = lower.components(separatedBy: tag).count - 1
            guard found == count else { preconditionFailure("report: \(found) \(tag) in the page (its own: \(count))") }
        }
        let same = ReplayComparison(recorded: records, recordedDirectory: "/nonexistent-robit-fuzz", replayed: records,
                                    replayDirectory: "/nonexistent-robit-fuzz").compare()
        guard same.divergences.isEmpty else { preconditionFailure("report: records diverge from themselves: \(same.divergences)") }
        _ = ReplayComparison(recorded: records, recordedDirectory: "/nonexistent-robit-fuzz", replayed: records.reversed(),
                             replayDirectory: "/nonexistent-robit-fuzz").compare()
        let manifest = WorkspaceManifest(text: String(decoding: bytes, as: UTF8.self))
        _ = manifest.differences(to: WorkspaceManifest(lines: [:]))
    }

    // MARK: - taskfile

    /// The task-file loader after its read: the UTF-8 check, then YAML and the schema walk (the same steps
    /// as `TaskFile.load`, without the filesystem). Bytes that are not UTF-8 are also parsed as repaired
    /// text (U+FFFD), so the YAML layer sees them too.
    ///
    /// Invariant: an error's line is within the file (1 to its line count + 1).
    package static func taskfile(_ bytes: [UInt8]) {
        let file = "task.yaml"
        let text: String
        do {
            text = try TaskFileReader.decodeUTF8(Data(bytes), file: file)
        } catch {
            _ = error.description
            parseTask(String(decoding: bytes, as: UTF8.self), file: file)
            return
        }
        parseTask(text, file: file)
    }

    private static func parseTask(_ text: String, file: String) {
        do {
            let task = try TaskFile.parse(text, file: file, baseDirectory: "/robit-fuzz/base")
            _ = task.name
        } catch {
            _ = error.description
            if let line = error.line {
                let lines = YAMLDocument.lines(of: text).count
                guard line >= 1, line <= lines + 1 else {
                    preconditionFailure("taskfile: error at line \(line) of a \(lines)-line file: \(error)")
                }
            }
        }
    }

    // MARK: - json

    /// `JSONValue.parse` (text in), and the parser's byte entry `JSONParser(bytes:)` with the raw bytes
    /// (which may not be UTF-8).
    ///
    /// Invariants: for UTF-8 input both entries give the same value or the same error; a parsed value's
    /// `compactText` parses back to an equal value.
    package static func json(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let fromText = Result { () throws(JSONParseError) -> JSONValue in try JSONValue.parse(text) }
        var parser = JSONParser(bytes: bytes, maxDepth: JSONValue.defaultMaxDepth)
        let fromBytes = Result { () throws(JSONParseError) -> JSONValue in try parser.document() }
        if text.utf8.elementsEqual(bytes), fromText != fromBytes {
            preconditionFailure("json: JSONValue.parse and JSONParser(bytes:) disagree: \(fromText) vs \(fromBytes)")
        }
        for result in [fromText, fromBytes] {
            switch result {
            case .success(let value):
                let written = value.compactText
                let again = Result { () throws(JSONParseError) -> JSONValue in try JSONValue.parse(written) }
                guard again == .success(value) else {
                    preconditionFailure("json: compactText does not parse back to the same value: \(again) from \(written.prefix(300))")
                }
            case .failure(let error):
                _ = error.description
            }
        }
        // The limits: a shallow depth and a small size.
        _ = try? JSONValue.parse(text, maxDepth: 2, maxBytes: 64)
    }

    // MARK: - sse

    /// `SSEParser.feed` with chunk boundaries taken from the first byte, against a second parser fed the
    /// rest in one go (through the `String` entry when it is UTF-8).
    ///
    /// The first byte `b`: below 0x80, the rest is split once at `b` modulo its length + 1; otherwise into
    /// chunks of `b & 7 + 1` bytes (1 to 8). Invariant: both parsers give the same events, at `feed` and at
    /// `finish`.
    package static func sse(_ bytes: [UInt8]) {
        guard let first = bytes.first else {
            var parser = SSEParser()
            _ = parser.feed("")
            _ = parser.finish()
            return
        }
        let body = Array(bytes.dropFirst())
        var chunked = SSEParser()
        var chunkedEvents: [SSEEvent] = []
        for range in sseChunks(first: first, count: body.count) {
            body.withUnsafeBytes { all in
                chunkedEvents += chunked.feed(UnsafeRawBufferPointer(rebasing: all[range]))
            }
        }
        chunkedEvents += chunked.finish()

        var whole = SSEParser()
        var wholeEvents: [SSEEvent]
        let text = String(decoding: body, as: UTF8.self)
        if text.utf8.elementsEqual(body) {
            wholeEvents = whole.feed(text)
        } else {
            wholeEvents = body.withUnsafeBytes { whole.feed($0) }
        }
        wholeEvents += whole.finish()
        guard chunkedEvents == wholeEvents else {
            preconditionFailure("sse: chunks \(sseChunks(first: first, count: body.count)) give \(chunkedEvents), one feed gives \(wholeEvents)")
        }
    }

    /// The chunk ranges of `count` bytes chosen by `first` (see `sse`).
    package static func sseChunks(first: UInt8, count: Int) -> [Range<Int>] {
        if first < 0x80 {
            let split = Int(first) % (count + 1)
            return [0 ..< split, split ..< count]
        }
        let size = Int(first & 7) + 1
        return stride(from: 0, to: count, by: size).map { $0 ..< min($0 + size, count) }
    }

    // MARK: - schema

    /// `JSONSchema`: the bytes up to the first NUL (or, without one, the first line feed) are the schema
    /// document, the rest the instance (without either, the document is its own instance). Both are parsed
    /// with `JSONValue.parse`; a schema robit refuses is fine.
    ///
    /// Invariant: validating twice gives the same violations.
    package static func schema(_ bytes: [UInt8]) {
        let split = bytes.firstIndex(of: 0) ?? bytes.firstIndex(of: 0x0A)
        let schemaText = String(decoding: bytes[..<(split ?? bytes.endIndex)], as: UTF8.self)
        let instanceText = split.map { String(decoding: bytes[($0 + 1)...], as: UTF8.self) } ?? schemaText
        guard let document = try? JSONValue.parse(schemaText) else { return }
        let schema: JSONSchema
        do {
            schema = try JSONSchema(document)
        } catch {
            _ = error.description
            return
        }
        guard let instance = try? JSONValue.parse(instanceText) else { return }
        let violations = schema.validate(instance)
        _ = violations.map(\.description)
        guard schema.validate(instance) == violations else {
            preconditionFailure("schema: validating twice gives different violations")
        }
    }
}
