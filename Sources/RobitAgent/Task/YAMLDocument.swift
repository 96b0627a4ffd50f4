import Foundation
import RobitOCI
import Yams

/// Turning task-file text into a Yams node tree, safely.
///
/// - Text over 1 MiB is refused before parsing.
/// - YAML aliases (`*name`) are refused *before* the real parse: Yams resolves an alias to the node it
///   names and hashes mapping keys structurally, so an alias bomb used as a mapping key would take
///   exponential time inside `compose`. To find aliases without that risk, the text is first composed
///   with every `*` that could start an alias replaced by a private-use character that is not in the
///   text. That copy cannot contain aliases; its tokens are the same as the original's (a `*` inside a
///   scalar, comment or quoted string is an ordinary character either way), so the original has an alias
///   exactly where the copy has a plain scalar that starts with the replacement.
/// - libyaml's own nesting limit (1000 levels) bounds recursion.
/// - Parser errors, duplicate keys, tabs and control characters become `TaskFileError`s with a line.
enum YAMLDocument {
    /// Parses `text`; nil when it holds no document (empty, or only comments).
    static func compose(_ original: String, file: String) throws(TaskFileError) -> Node? {
        // A leading byte order mark (Windows editors write one) is not content; libyaml would read it as text.
        var text = original
        if text.unicodeScalars.first == "\u{FEFF}" { text = String(text.unicodeScalars.dropFirst()) }
        let size = text.utf8.count
        guard size <= TaskFile.maxFileSize else {
            throw TaskFileError(
                file: file, line: nil, keyPath: "",
                message: "is \(size) bytes; task files are limited to 1 MiB (keep large inputs in the workspace and refer to them from the prompt)")
        }
        let candidates = aliasCandidates(in: text)
        if !candidates.isEmpty {
            let markers = unusedPrivateUseScalars(in: text, count: 1)
            guard let marker = markers.first else {
                throw TaskFileError(file: file, line: nil, keyPath: "",
                                    message: "uses every private-use character; remove them (they have no place in a task file)")
            }
            var scalars = Array(text.unicodeScalars)
            for index in candidates { scalars[index] = marker }
            var probe = String.UnicodeScalarView()
            probe.append(contentsOf: scalars)
            let probeText = String(probe)
            let probeRoot = try composeAliasFree(probeText, file: file)
            if let (node, path) = firstPlainScalar(startingWith: marker, in: probeRoot) {
                let written = node.scalar.map { Substring($0.string).unicodeScalars.dropFirst().prefix(40) }
                let shown = "*" + (written.map { String(Substring($0)) } ?? "")
                throw TaskFileError(
                    file: file, line: node.mark?.line, keyPath: path,
                    message: "YAML aliases such as \(quoted(shown)) are not supported in task files; write the value out in full (or quote the text if you meant a literal \"*\")")
            }
        }
        return try composeAliasFree(text, file: file)
    }

    /// Composes text known to contain no alias token, converting every Yams error.
    private static func composeAliasFree(_ text: String, file: String) throws(TaskFileError) -> Node? {
        do {
            return try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            throw convert(error, text: text, file: file)
        } catch {
            throw TaskFileError(file: file, line: nil, keyPath: "", message: "cannot be parsed as YAML: \(error)")
        }
    }

    /// Offsets (in unicode scalars) of each `*` followed by a character that can start an anchor name.
    private static func aliasCandidates(in text: String) -> [Int] {
        var result: [Int] = []
        var previousWasStar = false
        var index = 0
        for scalar in text.unicodeScalars {
            if previousWasStar, isAnchorCharacter(scalar) { result.append(index - 1) }
            previousWasStar = scalar == "*"
            index += 1
        }
        return result
    }

    /// libyaml's anchor-name characters.
    private static func isAnchorCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "0"..."9", "a"..."z", "A"..."Z", "_", "-": return true
        default: return false
        }
    }

    /// `count` characters of the Private Use Area that do not occur in `text`.
    static func unusedPrivateUseScalars(in text: String, count: Int) -> [Unicode.Scalar] {
        var used = Set<UInt32>()
        for scalar in text.unicodeScalars where (0xE000...0xF8FF).contains(scalar.value) { used.insert(scalar.value) }
        var result: [Unicode.Scalar] = []
        for value in UInt32(0xE000)...0xF8FF where !used.contains(value) {
            if let scalar = Unicode.Scalar(value) { result.append(scalar) }
            if result.count == count { break }
        }
        return result
    }

    /// The first plain scalar (in document order) whose text starts with `marker`, and its key path.
    private static func firstPlainScalar(startingWith marker: Unicode.Scalar, in root: Node?) -> (Node, String)? {
        guard let root else { return nil }
        var found: (Node, String)?
        walk(root, path: "") { node, path in
            guard found == nil else { return false }
            if case .scalar(let scalar) = node, scalar.style == .plain, scalar.string.unicodeScalars.first == marker {
                found = (node, path)
                return false
            }
            return true
        }
        return found
    }

    /// Visits nodes depth first in document order (keys before their values) with their key paths.
    /// `visit` returns false to skip a node's children. Only used on alias-free trees.
    static func walk(_ node: Node, path: String, _ visit: (Node, String) -> Bool) {
        guard visit(node, path) else { return }
        switch node {
        case .mapping(let mapping):
            for (key, value) in mapping {
                let keyText = key.scalar?.string ?? "?"
                walk(key, path: path, visit)  // a key belongs to its mapping's path
                walk(value, path: KeyPath.child(path, keyText), visit)
            }
        case .sequence(let sequence):
            for (index, item) in sequence.enumerated() {
                walk(item, path: KeyPath.index(path, index), visit)
            }
        case .scalar, .alias:
            break
        }
    }

    // MARK: - Errors

    private static func convert(_ error: YamlError, text: String, file: String) -> TaskFileError {
        func fail(_ line: Int?, _ message: String) -> TaskFileError {
            TaskFileError(file: file, line: line, keyPath: "", message: message)
        }
        switch error {
        case .reader(let problem, let offset, let value, _):
            let line = offset.map { lineNumber(ofCharacterOffset: $0, in: text) }
            let character = value >= 0 ? String(format: "U+%04X", value) : "a character"
            return fail(line, "\(problem): \(character) cannot appear in a task file; remove it (task files are plain UTF-8 text)")
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            if lineHasTabIndentation(mark.line, in: text) || problem.contains("tab character") {
                return fail(mark.line, "tab character used for indentation; YAML indents with spaces only (replace the tabs with spaces)")
            }
            if problem.contains("found undefined alias") {
                return fail(mark.line, "YAML aliases (*name) are not supported in task files; write the value out in full")
            }
            if problem.contains("but found another document") {
                return fail(mark.line, "a task file holds one YAML document; remove the second \"---\" and what follows it")
            }
            if problem.contains("Maximum nesting level") {
                return fail(mark.line, "nested too deeply; a task file needs only a few levels of nesting")
            }
            var message = "invalid YAML: \(problem)"
            if let context {
                let contextText = context.text.hasPrefix("while ") ? String(context.text.dropFirst(6)) : context.text
                message += " (while \(contextText) that starts at line \(context.mark.line))"
            }
            return fail(mark.line, message + "; check the indentation, the quoting and the brackets around this line")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return duplicateKeyError(text: text, file: file, firstMark: context.mark, names: duplicates)
        case .memory:
            return fail(nil, "is too large or complex to parse; simplify it")
        default:
            return fail(nil, "cannot be parsed as YAML: \(error)")
        }
    }

    /// The 1-based line of the character at `offset` (in Characters, as Yams reports reader errors).
    private static func lineNumber(ofCharacterOffset offset: Int, in text: String) -> Int {
        var line = 1
        for character in text.prefix(offset) where character.isNewline { line += 1 }
        return line
    }

    /// Lines as libyaml counts them: \r\n, \r, \n, NEL, LS and PS each end a line.
    static func lines(of text: String) -> [[Unicode.Scalar]] {
        var lines: [[Unicode.Scalar]] = [[]]
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            defer { previousWasCR = scalar == "\r" }
            if scalar == "\n" && previousWasCR { continue }
            switch scalar {
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}": lines.append([])
            default: lines[lines.count - 1].append(scalar)
            }
        }
        return lines
    }

    private static func lineHasTabIndentation(_ line: Int, in text: String) -> Bool {
        let all = lines(of: text)
        guard line >= 1, line <= all.count else { return false }
        for scalar in all[line - 1] {
            if scalar == "\t" { return true }
            if scalar != " " && scalar != "-" { return false }
        }
        return false
    }

    /// Yams reports only the first occurrence of a duplicated key. To name its key path and the line of the
    /// other occurrence, rename that occurrence in a copy of the text (prefixing private-use characters),
    /// parse the copy again, and look for the renamed key and its twin.
    private static func duplicateKeyError(text: String, file: String, firstMark: Mark, names: [String]) -> TaskFileError {
        let name = names.sorted().first ?? "?"
        let fallback = TaskFileError(
            file: file, line: firstMark.line, keyPath: "",
            message: "duplicate key \(quoted(name)); each key may appear only once in a mapping (remove or merge the repeats)")
        let maxRounds = 16
        let markers = unusedPrivateUseScalars(in: text, count: maxRounds + 1)
        guard markers.count == maxRounds + 1 else { return fallback }
        let tag = markers[0]
        var copy = lines(of: text)
        var mark = firstMark
        for round in 1...maxRounds {
            guard mark.line >= 1, mark.line <= copy.count else { return fallback }
            var column = mark.column - 1
            guard column >= 0, column < copy[mark.line - 1].count else { return fallback }
            let opener = copy[mark.line - 1][column]
            if opener == "\"" || opener == "'" { column += 1 }
            copy[mark.line - 1].insert(contentsOf: [tag, markers[round]], at: column)
            var view = String.UnicodeScalarView()
            for (index, line) in copy.enumerated() {
                if index > 0 { view.append("\n") }
                view.append(contentsOf: line)
            }
            do {
                guard let root = try Yams.compose(yaml: String(view), .basic) else { return fallback }
                return locateRenamedKey(in: root, tag: tag, first: markers[1], name: name, file: file, firstLine: firstMark.line) ?? fallback
            } catch YamlError.duplicatedKeysInMapping(_, let context) {
                mark = context.mark
            } catch {
                return fallback
            }
        }
        return fallback
    }

    private static func locateRenamedKey(in root: Node, tag: Unicode.Scalar, first: Unicode.Scalar, name: String, file: String,
                                         firstLine: Int) -> TaskFileError? {
        func clean(_ key: String) -> String {
            // Drop the renaming prefixes (two private-use characters per renamed key).
            var scalars = Array(key.unicodeScalars)
            while scalars.first == tag && scalars.count >= 2 { scalars.removeFirst(2) }
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            return String(view)
        }
        var result: TaskFileError?
        walkCleaned(root, path: "", clean: clean) { mapping, path in
            guard result == nil else { return }
            let keys = mapping.map { $0.key }
            guard let renamed = keys.first(where: { ($0.scalar?.string.unicodeScalars.prefix(2)).map(Array.init) == [tag, first] }) else { return }
            let twin = keys.first { $0 != renamed && clean($0.scalar?.string ?? "") == name }
            let line = twin?.mark?.line ?? renamed.mark?.line ?? firstLine
            let firstAt = renamed.mark?.line ?? firstLine
            result = TaskFileError(
                file: file, line: max(line, firstAt), keyPath: KeyPath.child(path, name),
                message: "duplicate key \(quoted(name)) (also at line \(min(line, firstAt))); each key may appear only once, remove or merge the repeats")
        }
        return result
    }

    /// Visits every mapping with its key path, building paths from cleaned key texts.
    private static func walkCleaned(_ node: Node, path: String, clean: (String) -> String, _ visit: (Node.Mapping, String) -> Void) {
        switch node {
        case .mapping(let mapping):
            visit(mapping, path)
            for (key, value) in mapping {
                walkCleaned(value, path: KeyPath.child(path, clean(key.scalar?.string ?? "?")), clean: clean, visit)
            }
        case .sequence(let sequence):
            for (index, item) in sequence.enumerated() {
                walkCleaned(item, path: KeyPath.index(path, index), clean: clean, visit)
            }
        case .scalar, .alias:
            break
        }
    }
}

/// Dotted key paths: `sandbox.limits.memory`, `custom_tools[0].name`.
enum KeyPath {
    static func child(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : path + "." + key
    }

    static func index(_ path: String, _ index: Int) -> String {
        path + "[\(index)]"
    }
}
