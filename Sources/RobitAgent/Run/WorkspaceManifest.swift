import Foundation
import RobitAudit
import RobitExec

/// A workspace tree as its lines (`WorkspaceTree.line`), by path: the tree hash is the SHA-256 of the
/// lines sorted and joined by newlines. `run.start` keeps the text, so that a replay can name the paths
/// in which its starting workspace differs.
struct WorkspaceManifest: Sendable, Equatable {
    /// path → line
    var lines: [String: String]

    var text: String { lines.values.sorted().joined(separator: "\n") }
    var hash: String { AuditHash.sha256Hex(text) }

    init(lines: [String: String]) { self.lines = lines }

    /// Parses the text `text` gives (a path holding " -> " in a symlink's line is cut at the first one).
    init(text: String) {
        var lines: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if let path = Self.path(of: Substring(line)) { lines[path] = String(line) }
        }
        self.lines = lines
    }

    static func path(of line: Substring) -> String? {
        let fields = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false)
        guard let kind = fields.first else { return nil }
        switch kind {
        case "f": return fields.count == 5 ? String(fields[4]) : nil
        case "d", "o":
            let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            return parts.count == 3 ? String(parts[2]) : nil
        case "l":
            let rest = line.dropFirst(2)
            return rest.range(of: " -> ").map { String(rest[..<$0.lowerBound]) } ?? String(rest)
        default: return nil
        }
    }

    /// How `other` differs from this tree, by path, sorted: `added`, `removed` or `changed` (with both lines).
    func differences(to other: WorkspaceManifest) -> [PathDifference] {
        var out: [PathDifference] = []
        for (path, line) in lines {
            if let theirs = other.lines[path] {
                if theirs != line { out.append(PathDifference(path: path, change: "changed", recorded: line, actual: theirs)) }
            } else {
                out.append(PathDifference(path: path, change: "removed", recorded: line, actual: nil))
            }
        }
        for (path, line) in other.lines where lines[path] == nil {
            out.append(PathDifference(path: path, change: "added", recorded: nil, actual: line))
        }
        return out.sorted { $0.path < $1.path }
    }

    /// The tree after a run's changes (its upper layer): only what changed is read and hashed.
    func applying(_ changes: [LayerChange]) -> WorkspaceManifest {
        var result = lines
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        // Only a directory has entries below it: a file's or a new path's removal is one lookup.
        func removeSubtree(_ path: String) {
            guard let old = result.removeValue(forKey: path), old.hasPrefix("d ") else { return }
            let prefix = path + "/"
            for key in result.keys.filter({ $0.hasPrefix(prefix) }) { result[key] = nil }
        }
        for change in changes {
            switch change.kind {
            case .removed:
                removeSubtree(change.relative)
            case .replaced, .merged:
                if change.kind == .replaced { removeSubtree(change.relative) }
                guard let entry = WorkspaceTree.entry(at: change.path, relative: change.relative) else { continue }
                let digest = entry.kind == "f" ? WorkspaceTree.fileDigest(change.path, buffer: buffer) : nil
                result[change.relative] = WorkspaceTree.line(entry, digest: digest)
            }
        }
        return WorkspaceManifest(lines: result)
    }
}

/// One path in which two workspace trees differ.
struct PathDifference: Sendable, Equatable {
    var path: String
    /// `added`, `removed` or `changed` (from the recorded tree to the actual one).
    var change: String
    var recorded: String?
    var actual: String?
}
