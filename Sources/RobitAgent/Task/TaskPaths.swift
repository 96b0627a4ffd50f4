import Foundation

/// Lexical path handling for task files: no file-system access, no symlink resolution.
enum TaskPaths {
    /// `path` made absolute against the current directory (unchanged when already absolute).
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// `path` resolved against `base` when relative, then normalized.
    static func resolve(_ path: String, against base: String) -> String {
        normalize(path.hasPrefix("/") ? path : base + "/" + path)
    }

    /// Collapses `//`, `.` and `..` (never above `/`) and drops a trailing slash.
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(component)
            }
        }
        let joined = parts.joined(separator: "/")
        return path.hasPrefix("/") ? "/" + joined : (joined.isEmpty ? "." : joined)
    }
}

/// Checks of the small string formats a task file uses.
enum TaskSyntax {
    /// An environment variable name: `^[A-Za-z_][A-Za-z0-9_]*$`.
    static func isEnvironmentVariableName(_ text: String) -> Bool {
        guard let first = text.utf8.first, isLetter(first) || first == UInt8(ascii: "_"), text.utf8.count <= 255 else { return false }
        return text.utf8.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    /// A custom tool name: `^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$`.
    static func isToolName(_ text: String) -> Bool {
        guard let first = text.utf8.first, isLetter(first) || first == UInt8(ascii: "_"), text.utf8.count <= 64 else { return false }
        return text.utf8.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// A task name: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$` (it ends up in run ids, file and branch names).
    static func isTaskName(_ text: String) -> Bool {
        guard let first = text.utf8.first, isLetter(first) || isDigit(first), text.utf8.count <= 128 else { return false }
        return text.utf8.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// The default task name: the file name without `.yaml`/`.yml`, other characters turned into `-`.
    static func defaultTaskName(forFile file: String) -> String {
        var stem = (file as NSString).lastPathComponent
        for suffix in [".yaml", ".yml"] where stem.hasSuffix(suffix) {
            stem.removeLast(suffix.count)
        }
        var name = String(stem.unicodeScalars.map { scalar -> Character in
            let byte = scalar.isASCII ? UInt8(scalar.value) : 0
            return isLetter(byte) || isDigit(byte) || scalar == "." || scalar == "_" || scalar == "-" ? Character(scalar) : "-"
        })
        while let first = name.utf8.first, !(isLetter(first) || isDigit(first)) { name.removeFirst() }
        name = String(name.prefix(128))
        return name.isEmpty ? "task" : name
    }

    /// `owner/name` of a GitHub-style repository.
    static func isRepository(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.utf8.count <= 100 && part != "." && part != ".."
                && part.utf8.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
        }
    }

    /// A git branch name robit can push safely (the rules of `git check-ref-format --branch`, ASCII only).
    static func isBranchName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 200, !text.hasPrefix("-"), !text.hasPrefix("/"), !text.hasSuffix("/"),
              !text.hasSuffix("."), !text.hasSuffix(".lock"), !text.contains(".."), !text.contains("//"),
              !text.contains("@{"), text != "@"
        else { return false }
        let forbidden = Set(" ~^:?*[\\".utf8)
        guard text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !forbidden.contains($0) }) else { return false }
        return !text.split(separator: "/").contains { $0.hasPrefix(".") || $0.hasSuffix(".lock") }
    }

    /// Why `text` is not an http(s) URL robit will talk to; nil when it is one.
    static func urlProblem(_ text: String) -> String? {
        guard let components = URLComponents(string: text) else { return "is not a URL" }
        let scheme = components.scheme?.lowercased()
        guard text.contains("://"), scheme == "http" || scheme == "https" else { return "must start with https:// or http://" }
        guard let host = components.host, !host.isEmpty else { return "has no host name" }
        guard components.user == nil, components.password == nil else {
            return "must not contain credentials; name the environment variable holding them instead"
        }
        guard components.fragment == nil else { return "must not have a #fragment" }
        guard !text.contains(where: { $0.isWhitespace }) else { return "must not contain spaces" }
        return nil
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= 0x30 && byte <= 0x39
    }

    /// Edit distance, for "did you mean" suggestions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased().unicodeScalars), b = Array(b.lowercased().unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        guard word.count <= 64 else { return nil }
        let scored = candidates.map { ($0, editDistance(word, $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(1, min(3, best.count / 3)) else { return nil }
        return best
    }
}
