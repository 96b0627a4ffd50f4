import Foundation
import RobitAudit

/// The record layouts docs/audit-format.md promises ("Record types"): each type's keys that are always
/// there, and those that may be. Tests check every record a run writes against them.
public struct DocumentedRecords: Sendable {
    public struct Layout: Sendable, Equatable {
        public var keys: Set<String>
        public var optional: Set<String>
    }

    /// By type, or by "type (status S)" for a type documented once per status.
    public let layouts: [String: Layout]

    public static func load(_ path: String = Repository.root + "/docs/audit-format.md") throws -> DocumentedRecords {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let section = text.range(of: "## Record types") else { throw Failure("\(path) has no \"## Record types\" section") }
        var layouts: [String: Layout] = [:]
        for line in text[section.upperBound...].split(separator: "\n") {
            if line.hasPrefix("## ") { break }
            guard line.hasPrefix("| `") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 5 else { continue }
            let names = Self.quoted(cells[1])
            guard let type = names.first else { continue }
            var key = type
            if let open = cells[1].range(of: "(status "), let close = cells[1][open.upperBound...].firstIndex(of: ")") {
                key += " (status \(cells[1][open.upperBound..<close]))"
            }
            layouts[key] = Layout(keys: Set(Self.quoted(cells[2])), optional: Set(Self.quoted(cells[3])))
        }
        guard !layouts.isEmpty else { throw Failure("\(path) documents no record types") }
        return DocumentedRecords(layouts: layouts)
    }

    /// What is wrong with `record`'s data against the documented layout; empty when it matches.
    public func problems(_ record: AuditRecord) -> [String] {
        let status = record.data["status"]?.stringValue ?? ""
        guard let layout = layouts["\(record.type) (status \(status))"] ?? layouts[record.type] else {
            return ["line \(record.seq + 1): record type \(record.type) is not documented in docs/audit-format.md"]
        }
        guard case .object(let members) = record.data else { return ["line \(record.seq + 1): \(record.type) data is not an object"] }
        let present = Set(members.map(\.0))
        var out: [String] = []
        let missing = layout.keys.subtracting(present)
        let extra = present.subtracting(layout.keys).subtracting(layout.optional)
        if !missing.isEmpty { out.append("line \(record.seq + 1): \(record.type) lacks documented keys \(missing.sorted())") }
        if !extra.isEmpty { out.append("line \(record.seq + 1): \(record.type) has undocumented keys \(extra.sorted())") }
        return out
    }

    public func problems(_ records: [AuditRecord]) -> [String] { records.flatMap { problems($0) } }

    /// The `name`s written as `` `name` `` in a table cell.
    static func quoted(_ cell: String) -> [String] {
        var out: [String] = []
        var rest = cell[...]
        while let open = rest.firstIndex(of: "`") {
            let after = rest.index(after: open)
            guard let close = rest[after...].firstIndex(of: "`") else { break }
            out.append(String(rest[after..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return out
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }
}
