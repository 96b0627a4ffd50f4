/// A short line diff for a report: what was recorded (`-`) against what happened (`+`), with the line
/// number where they start to differ, cut to a few lines.
enum LineDiff {
    static func short(_ recorded: String, _ actual: String, maxLines: Int = 12, maxLineBytes: Int = 200) -> String {
        let a = recorded.split(separator: "\n", omittingEmptySubsequences: false)
        let b = actual.split(separator: "\n", omittingEmptySubsequences: false)
        var prefix = 0
        while prefix < a.count && prefix < b.count && a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix && suffix < b.count - prefix && a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        let middleA = Array(a[prefix ..< (a.count - suffix)]), middleB = Array(b[prefix ..< (b.count - suffix)])
        var lines: [String] = []
        for (sign, line) in edits(middleA, middleB) {
            lines.append(sign + cut(line, maxLineBytes))
        }
        if lines.isEmpty { return "" }
        var out = "@@ line \(prefix + 1) @@\n"
        out += lines.prefix(maxLines).joined(separator: "\n")
        if lines.count > maxLines { out += "\n… \(lines.count - maxLines) more changed line(s)" }
        return out
    }

    /// `-`/`+` lines turning `a` into `b`: a longest common subsequence where it is small enough to
    /// compute, otherwise all of `a` removed and all of `b` added.
    static func edits(_ a: [Substring], _ b: [Substring]) -> [(String, Substring)] {
        guard !a.isEmpty, !b.isEmpty, a.count * b.count <= 250_000 else {
            return a.map { ("-", $0) } + b.map { ("+", $0) }
        }
        var table = [[Int32]](repeating: [Int32](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                table[i][j] = a[i] == b[j] ? table[i + 1][j + 1] + 1 : max(table[i + 1][j], table[i][j + 1])
            }
        }
        var out: [(String, Substring)] = []
        var i = 0, j = 0
        while i < a.count || j < b.count {
            if i < a.count && j < b.count && a[i] == b[j] {
                i += 1; j += 1
            } else if i < a.count && (j == b.count || table[i + 1][j] >= table[i][j + 1]) {
                out.append(("-", a[i])); i += 1
            } else {
                out.append(("+", b[j])); j += 1
            }
        }
        return out
    }

    /// The line cut to `max` bytes (at a character boundary), control characters but tab shown as `\u{2400}`-style symbols.
    static func cut(_ line: Substring, _ max: Int) -> String {
        var bytes = Array(line.utf8.prefix(max))
        while !bytes.isEmpty && String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }
        var out = String(decoding: bytes, as: UTF8.self)
        if out.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || (0x7F...0x9F).contains($0.value) }) {
            out = String(String.UnicodeScalarView(out.unicodeScalars.map { s in
                s.value < 0x20 && s != "\t" ? Unicode.Scalar(0x2400 + s.value)! : s.value == 0x7F ? Unicode.Scalar(0x2421)! : (0x80...0x9F).contains(s.value) ? "\u{FFFD}" : s
            }))
        }
        return line.utf8.count > max ? out + "…" : out
    }
}
