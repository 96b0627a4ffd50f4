import RobitOCI
import Yams

/// Strict readers of Yams nodes: each checks the node's shape and value and reports problems as
/// `TaskFileError`s with the node's line and key path.
struct YAMLReader {
    let file: String

    func fail(_ node: Node?, _ path: String, _ message: String) -> TaskFileError {
        TaskFileError(file: file, line: node?.mark?.line, keyPath: path, message: message)
    }

    // MARK: - Mappings

    /// The entries of a mapping whose keys have all been checked against an allowed set.
    struct Fields {
        let node: Node
        let path: String
        fileprivate var entries: [String: (key: Node, value: Node)] = [:]

        /// The value under `key`, or nil when the key is absent or its value is null (`~`, `null`, nothing).
        func value(_ key: String) -> Node? {
            guard let entry = entries[key], !entry.value.isNull else { return nil }
            return entry.value
        }

        /// The key node, when the key is present.
        func keyNode(_ key: String) -> Node? {
            entries[key]?.key
        }

        func path(_ key: String) -> String {
            KeyPath.child(path, key)
        }
    }

    /// Reads a mapping, rejecting unknown keys (with a "did you mean" when one is close).
    func mapping(_ node: Node, _ path: String, allowed: [String]) throws(TaskFileError) -> Fields {
        try checkTag(node, path)
        guard case .mapping(let mapping) = node else {
            let label = path.isEmpty ? "the task file" : "this"
            throw fail(node, path, "expected a mapping with keys \(allowed.joined(separator: ", ")), found \(node.kindDescription); \(label) takes `key: value` lines")
        }
        var fields = Fields(node: node, path: path)
        for (key, value) in mapping {
            guard case .scalar(let keyScalar) = key else {
                throw fail(key, path, "keys must be plain names, found \(key.kindDescription) used as a key; write `name: value`")
            }
            let name = keyScalar.string
            guard allowed.contains(name) else {
                var message = "unknown key \(quoted(name))"
                if let guess = TaskSyntax.suggestion(for: name, among: allowed) { message += "; did you mean \(quoted(guess))?" }
                message += " (valid keys here: \(allowed.joined(separator: ", ")))"
                throw fail(key, KeyPath.child(path, name), message)
            }
            try checkTag(value, KeyPath.child(path, name))
            fields.entries[name] = (key, value)
        }
        return fields
    }

    /// The value of a required key.
    func required(_ fields: Fields, _ key: String, hint: String) throws(TaskFileError) -> Node {
        if let value = fields.value(key) { return value }
        if let keyNode = fields.keyNode(key) {
            throw fail(keyNode, fields.path(key), "needs a value; \(hint)")
        }
        throw fail(fields.node, fields.path(key), "missing required key; \(hint)")
    }

    /// Explicit YAML tags (`!!int`, `!custom`) are refused: values are typed by the schema, not by the file.
    func checkTag(_ node: Node, _ path: String) throws(TaskFileError) {
        if let tag = node.explicitTag {
            throw fail(node, path, "YAML tag \(quoted(tag)) is not supported here; remove the tag and write the plain value")
        }
    }

    // MARK: - Lists

    /// The items of a list; each item's tag is checked.
    func list(_ node: Node, _ path: String, of what: String) throws(TaskFileError) -> [Node] {
        guard case .sequence(let sequence) = node else {
            throw fail(node, path, "expected a list of \(what), found \(node.kindDescription); write [a, b] or one `- item` per line")
        }
        var items: [Node] = []
        for (index, item) in sequence.enumerated() {
            try checkTag(item, KeyPath.index(path, index))
            items.append(item)
        }
        return items
    }

    // MARK: - Scalars

    private func scalar(_ node: Node, _ path: String, expected: String) throws(TaskFileError) -> Node.Scalar {
        guard case .scalar(let scalar) = node, !node.isNull else {
            throw fail(node, path, "expected \(expected), found \(node.kindDescription)")
        }
        return scalar
    }

    /// Text; any scalar style. NUL characters are refused.
    func string(_ node: Node, _ path: String, what: String = "text") throws(TaskFileError) -> String {
        let text = try scalar(node, path, expected: what).string
        guard !text.unicodeScalars.contains("\0") else {
            throw fail(node, path, "contains a NUL character; remove it")
        }
        return text
    }

    /// Text that is not empty or only whitespace.
    func nonEmptyString(_ node: Node, _ path: String, what: String = "text", hint: String) throws(TaskFileError) -> String {
        let text = try string(node, path, what: what)
        guard !text.allSatisfy(\.isWhitespace) else { throw fail(node, path, "is empty; \(hint)") }
        return text
    }

    /// `true` or `false`, unquoted (YAML 1.1's yes/no/on/off are refused: they are too easy to misread).
    func boolean(_ node: Node, _ path: String) throws(TaskFileError) -> Bool {
        let scalar = try scalar(node, path, expected: "true or false")
        guard scalar.style == .plain, scalar.string == "true" || scalar.string == "false" else {
            throw fail(node, path, "\(quoted(scalar.string)) is not a boolean; write true or false, without quotes")
        }
        return scalar.string == "true"
    }

    /// A whole number written as a plain (unquoted) YAML number.
    func integer(_ node: Node, _ path: String, in range: ClosedRange<Int>, example: String) throws(TaskFileError) -> Int {
        let scalar = try scalar(node, path, expected: "a whole number such as \(example)")
        let text = scalar.string
        guard scalar.style == .plain else {
            throw fail(node, path, "\(quoted(text)) is quoted text, not a number; write it without quotes, e.g. \(example)")
        }
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw fail(node, path, "\(quoted(text)) is \(describeNonNumber(text)); write a whole number such as \(example)")
        }
        guard let value = Int(text), range.contains(value) else {
            throw fail(node, path, "\(text) is out of range; use a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A plain decimal number `DIGITS[.DIGITS]`, returned as written (for exact conversion by the caller).
    func decimalText(_ node: Node, _ path: String, example: String) throws(TaskFileError) -> String {
        let scalar = try scalar(node, path, expected: "a number such as \(example)")
        let text = scalar.string
        guard scalar.style == .plain else {
            throw fail(node, path, "\(quoted(text)) is quoted text, not a number; write it without quotes, e.g. \(example)")
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count),
              parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } })
        else {
            throw fail(node, path, "\(quoted(text)) is \(describeNonNumber(text)); write a plain number such as \(example)")
        }
        return text
    }

    /// A size such as `512MiB`, within bounds.
    /// A size within `range`, refused with `LimitRules`' messages (the same as `robit sandbox run`'s flags).
    func size(_ node: Node, _ path: String, in range: ClosedRange<UInt64>) throws(TaskFileError) -> ByteCount {
        let text = try scalar(node, path, expected: "a size such as 512MiB").string
        switch LimitRules.size(text, in: range) {
        case .success(let bytes): return ByteCount(bytes)
        case .failure(let error): throw fail(node, path, error.message)
        }
    }

    func duration(_ node: Node, _ path: String, in range: ClosedRange<Duration>) throws(TaskFileError) -> Duration {
        let text = try scalar(node, path, expected: "a duration such as 30s").string
        switch LimitRules.duration(text, in: range) {
        case .success(let value): return value
        case .failure(let error): throw fail(node, path, error.message)
        }
    }

    /// One of a fixed set of words.
    func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ path: String, of type: T.Type) throws(TaskFileError) -> T
    where T.RawValue == String {
        let names = T.allCases.map(\.rawValue)
        let text = try scalar(node, path, expected: "one of \(names.joined(separator: ", "))").string
        guard let value = T(rawValue: text) else {
            var message = "\(quoted(text)) is not one of \(names.joined(separator: ", "))"
            if let guess = TaskSyntax.suggestion(for: text, among: names) { message += "; did you mean \(quoted(guess))?" }
            throw fail(node, path, message)
        }
        return value
    }

    /// The name of an environment variable. The value is never echoed: people paste secrets here by mistake.
    func environmentVariableName(_ node: Node, _ path: String, example: String) throws(TaskFileError) -> String {
        let text = try scalar(node, path, expected: "the name of an environment variable such as \(example)").string
        guard TaskSyntax.isEnvironmentVariableName(text) else {
            throw fail(node, path, "must be the NAME of an environment variable (letters, digits and _, not starting with a digit), e.g. \(example); put the variable's name here, never the secret itself (the value is not shown)")
        }
        return text
    }

    /// An http(s) URL.
    func url(_ node: Node, _ path: String, example: String) throws(TaskFileError) -> String {
        let text = try string(node, path, what: "a URL such as \(example)")
        if let problem = TaskSyntax.urlProblem(text) {
            throw fail(node, path, "\(quoted(text)) \(problem); write e.g. \(example)")
        }
        return text
    }

    /// A path, resolved against `base` and normalized.
    func path(_ node: Node, _ path: String, base: String) throws(TaskFileError) -> String {
        let text = try string(node, path, what: "a path")
        guard !text.isEmpty else { throw fail(node, path, "is empty; write a path such as ./dir") }
        if text.hasPrefix("~") {
            throw fail(node, path, "\(quoted(text)): \"~\" is not expanded; use an absolute path or one relative to the task file")
        }
        return TaskPaths.resolve(text, against: base)
    }

    private func describeNonNumber(_ text: String) -> String {
        switch text.lowercased() {
        case "yes", "no", "y", "n", "on", "off", "true", "false": return "a yes/no word, not a number"
        default: return text.hasPrefix("-") ? "negative" : "not a plain number"
        }
    }
}

extension Node {
    /// A plain scalar that YAML reads as null: nothing, `~` or `null`.
    var isNull: Bool {
        guard case .scalar(let scalar) = self, scalar.style == .plain, scalar.tag.rawValue.isEmpty else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// How the node reads in an error message: `a list`, `a mapping`, `"runsc"`, `nothing (null)`.
    var kindDescription: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if isNull { return "nothing (null)" }
            return (scalar.style == .plain ? "" : "quoted text ") + quoted(scalar.string)
        }
    }

    /// The tag written in the file (`!!int`, `!foo`), or nil. Quoted and block scalars carry an implicit
    /// `!!str` tag from the parser, which is not an explicit tag.
    var explicitTag: String? {
        let raw: String
        switch self {
        case .scalar(let scalar):
            if scalar.style != .plain && scalar.tag.rawValue == Tag.Name.str.rawValue { return nil }
            raw = scalar.tag.rawValue
        case .mapping(let mapping): raw = mapping.tag.rawValue
        case .sequence(let sequence): raw = sequence.tag.rawValue
        case .alias: return nil
        }
        guard !raw.isEmpty else { return nil }
        let prefix = "tag:yaml.org,2002:"
        return raw.hasPrefix(prefix) ? "!!" + raw.dropFirst(prefix.count) : raw
    }
}
