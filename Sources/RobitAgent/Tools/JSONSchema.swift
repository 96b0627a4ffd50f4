import Foundation

/// One way a value breaks its schema, at a JSON pointer (`""` is the whole value).
struct SchemaViolation: Sendable, Equatable, CustomStringConvertible {
    var path: String
    var message: String

    init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    var description: String { "\(path.isEmpty ? "/" : path): \(message)" }
}

/// A schema robit cannot apply: a keyword it does not implement or a keyword with a wrong value.
struct JSONSchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// JSON pointer into the schema.
    var path: String
    var message: String

    init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    var description: String { "schema \(path.isEmpty ? "/" : path): \(message)" }
}

/// A JSON Schema (the draft 2020-12 subset tool parameters use), checked when it is built.
///
/// Implemented: `type` (a name or a list; `integer` is a number without a fraction), `nullable: true`
/// (OpenAPI style: null is also accepted), `properties`, `required`, `additionalProperties` (boolean or
/// schema), `minProperties`, `maxProperties`, `items` (one schema), `minItems`, `maxItems`, `uniqueItems`,
/// `enum`, `const`, `minLength`, `maxLength` (in Unicode code points), `pattern` (ICU regular
/// expression, unanchored, as in ECMA-262), `minimum`, `maximum`, `exclusiveMinimum`,
/// `exclusiveMaximum` (numbers, 2020-12 style), `multipleOf`, `anyOf`, `oneOf`, `allOf`, `not`.
///
/// Annotations are accepted and ignored: `description`, `title`, `default`, `examples`, `$schema`,
/// `$id`, `$comment`, `deprecated`, `readOnly`, `writeOnly`, `format`.
///
/// Any other keyword (`$ref`, `$defs`, `if`/`then`, `prefixItems`, `patternProperties`...) is refused
/// when the schema is built: a constraint robit silently skipped would let arguments through that
/// the task's author meant to reject.
struct JSONSchema: Sendable, Equatable {
    let value: JSONValue

    static let annotations: Set<String> = [
        "description", "title", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "format",
    ]
    static let keywords: Set<String> = [
        "type", "nullable", "properties", "required", "additionalProperties", "minProperties", "maxProperties", "items",
        "minItems", "maxItems", "uniqueItems", "enum", "const", "minLength", "maxLength", "pattern", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "anyOf", "oneOf", "allOf", "not",
    ]
    static let typeNames: Set<String> = ["null", "boolean", "object", "array", "number", "string", "integer"]

    init(_ value: JSONValue) throws(JSONSchemaError) {
        try Self.check(value, path: "", depth: 0)
        self.value = value
    }

    /// Every violation of the schema by `instance`; empty when it is valid.
    /// A count keyword's value as text: an integer where it is one, never a trap (1e19 is a valid
    /// `minLength` and no Int; found by fuzzing, fuzz/crashes/schema/).
    static func count(_ n: Double) -> String {
        if let i = Int(exactly: n) { return String(i) }
        return "\(n)"
    }

    func validate(_ instance: JSONValue) -> [SchemaViolation] {
        var out: [SchemaViolation] = []
        Self.validate(instance, against: value, path: "", into: &out)
        return out
    }

    // MARK: - Checking the schema

    private static func check(_ schema: JSONValue, path: String, depth: Int) throws(JSONSchemaError) {
        guard depth <= 64 else { throw JSONSchemaError(path: path, message: "nested deeper than 64 levels") }
        if case .bool = schema { return }
        guard let object = schema.objectValue else {
            throw JSONSchemaError(path: path, message: "a schema must be an object or a boolean, found \(schema.typeName)")
        }
        for (key, v) in object.sorted(by: { $0.key < $1.key }) {
            let here = path + "/" + pointerEscape(key)
            if annotations.contains(key) { continue }
            guard keywords.contains(key) else {
                throw JSONSchemaError(path: here, message: "the keyword \"\(key)\" is not supported by robit; supported: \(keywords.sorted().joined(separator: ", "))")
            }
            func fail(_ m: String) -> JSONSchemaError { JSONSchemaError(path: here, message: m) }
            switch key {
            case "type":
                let names: [JSONValue] = v.arrayValue ?? [v]
                guard !names.isEmpty else { throw fail("must name at least one type") }
                for n in names {
                    guard let s = n.stringValue, typeNames.contains(s) else {
                        throw fail("must be one of \(typeNames.sorted().joined(separator: ", ")) or a list of them")
                    }
                }
            case "nullable", "uniqueItems":
                guard case .bool = v else { throw fail("must be true or false") }
            case "properties":
                guard let props = v.objectValue else { throw fail("must be an object of schemas") }
                for (name, sub) in props { try check(sub, path: here + "/" + pointerEscape(name), depth: depth + 1) }
            case "required":
                guard let items = v.arrayValue, items.allSatisfy({ $0.stringValue != nil }) else { throw fail("must be a list of property names") }
            case "additionalProperties", "items", "not":
                try check(v, path: here, depth: depth + 1)
            case "anyOf", "oneOf", "allOf":
                guard let items = v.arrayValue, !items.isEmpty else { throw fail("must be a non-empty list of schemas") }
                for (i, sub) in items.enumerated() { try check(sub, path: here + "/\(i)", depth: depth + 1) }
            case "enum":
                guard let items = v.arrayValue, !items.isEmpty else { throw fail("must be a non-empty list") }
            case "const":
                break
            case "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties":
                guard case .number(let n) = v, n >= 0, n == n.rounded() else { throw fail("must be a non-negative integer") }
            case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
                guard case .number = v else { throw fail("must be a number") }
            case "multipleOf":
                guard case .number(let n) = v, n > 0 else { throw fail("must be a number greater than 0") }
            case "pattern":
                guard let p = v.stringValue else { throw fail("must be a string") }
                guard (try? NSRegularExpression(pattern: p)) != nil else { throw fail("is not a valid regular expression: \(p)") }
            default:
                break
            }
        }
    }

    // MARK: - Validating

    /// A JSON Pointer token (`~` as `~0`, `/` as `~1`); runs for every property of every call's arguments.
    static func pointerEscape(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) else { return s }
        var out = ""
        for character in s.unicodeScalars {
            switch character {
            case "~": out += "~0"
            case "/": out += "~1"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    private static func matches(_ value: JSONValue, type name: String) -> Bool {
        switch (name, value) {
        case ("null", .null), ("boolean", .bool), ("object", .object), ("array", .array), ("number", .number), ("string", .string): return true
        case ("integer", .number(let n)): return n == n.rounded()
        default: return false
        }
    }

    private static func validate(_ value: JSONValue, against schema: JSONValue, path: String, into out: inout [SchemaViolation]) {
        if case .bool(let allowed) = schema {
            if !allowed { out.append(SchemaViolation(path: path, message: "no value is allowed here")) }
            return
        }
        guard let s = schema.objectValue else { return }
        func add(_ m: String) { out.append(SchemaViolation(path: path, message: m)) }

        if case .null = value, s["nullable"] == .bool(true) { return }
        if let t = s["type"] {
            let names = (t.arrayValue ?? [t]).compactMap(\.stringValue)
            guard names.contains(where: { matches(value, type: $0) }) else {
                add("expected \(names.joined(separator: " or ")), found \(value.typeName == "integer" ? "number" : value.typeName)")
                return
            }
        }
        if let e = s["enum"]?.arrayValue, !e.contains(value) {
            add("must be one of \(e.map(\.compactText).joined(separator: ", ")), found \(value.compactText.prefix(100))")
        }
        if let c = s["const"], c != value { add("must be \(c.compactText.prefix(100))") }

        switch value {
        case .string(let text):
            let length = text.unicodeScalars.count
            if case .number(let n) = s["minLength"], Double(length) < n { add("must be at least \(Self.count(n)) characters long, found \(length)") }
            if case .number(let n) = s["maxLength"], Double(length) > n { add("must be at most \(Self.count(n)) characters long, found \(length)") }
            if let p = s["pattern"]?.stringValue, let re = try? NSRegularExpression(pattern: p) {
                if re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil { add("must match the pattern \(p)") }
            }
        case .number(let n):
            if case .number(let m) = s["minimum"], n < m { add("must be at least \(JSONValue.numberText(m)), found \(JSONValue.numberText(n))") }
            if case .number(let m) = s["maximum"], n > m { add("must be at most \(JSONValue.numberText(m)), found \(JSONValue.numberText(n))") }
            if case .number(let m) = s["exclusiveMinimum"], n <= m { add("must be greater than \(JSONValue.numberText(m)), found \(JSONValue.numberText(n))") }
            if case .number(let m) = s["exclusiveMaximum"], n >= m { add("must be less than \(JSONValue.numberText(m)), found \(JSONValue.numberText(n))") }
            if case .number(let m) = s["multipleOf"] {
                let q = n / m
                if !q.isFinite || q != q.rounded() { add("must be a multiple of \(JSONValue.numberText(m))") }
            }
        case .array(let items):
            if case .number(let m) = s["minItems"], Double(items.count) < m { add("must have at least \(Self.count(m)) items, found \(items.count)") }
            if case .number(let m) = s["maxItems"], Double(items.count) > m { add("must have at most \(Self.count(m)) items, found \(items.count)") }
            if s["uniqueItems"] == .bool(true), Set(items).count != items.count { add("items must be unique") }
            if let itemSchema = s["items"] {
                for (i, item) in items.enumerated() { validate(item, against: itemSchema, path: path + "/\(i)", into: &out) }
            }
        case .object(let members):
            if case .number(let m) = s["minProperties"], Double(members.count) < m { add("must have at least \(Self.count(m)) properties") }
            if case .number(let m) = s["maxProperties"], Double(members.count) > m { add("must have at most \(Self.count(m)) properties") }
            let properties = s["properties"]?.objectValue ?? [:]
            for name in (s["required"]?.arrayValue ?? []).compactMap(\.stringValue) where members[name] == nil {
                add("missing required property \"\(name)\"")
            }
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                let here = path + "/" + pointerEscape(name)
                if let sub = properties[name] {
                    validate(member, against: sub, path: here, into: &out)
                } else if let extra = s["additionalProperties"] {
                    if extra == .bool(false) {
                        let allowed = properties.keys.sorted().joined(separator: ", ")
                        out.append(SchemaViolation(path: here, message: "unknown property; allowed: \(allowed.isEmpty ? "none" : allowed)"))
                    } else {
                        validate(member, against: extra, path: here, into: &out)
                    }
                }
            }
        default:
            break
        }

        if let all = s["allOf"]?.arrayValue {
            for sub in all { validate(value, against: sub, path: path, into: &out) }
        }
        if let any = s["anyOf"]?.arrayValue {
            var firstErrors: [SchemaViolation] = []
            var matched = false
            for sub in any {
                var errs: [SchemaViolation] = []
                validate(value, against: sub, path: path, into: &errs)
                if errs.isEmpty { matched = true; break }
                if firstErrors.isEmpty { firstErrors = errs }
            }
            if !matched {
                add("does not match any of the \(any.count) allowed forms (the first: \(firstErrors.map(\.description).joined(separator: "; ")))")
            }
        }
        if let one = s["oneOf"]?.arrayValue {
            var count = 0
            for sub in one {
                var errs: [SchemaViolation] = []
                validate(value, against: sub, path: path, into: &errs)
                if errs.isEmpty { count += 1 }
            }
            if count != 1 { add("must match exactly one of the \(one.count) allowed forms, matches \(count)") }
        }
        if let not = s["not"] {
            var errs: [SchemaViolation] = []
            validate(value, against: not, path: path, into: &errs)
            if errs.isEmpty { add("must not match the schema under \"not\"") }
        }
    }
}
