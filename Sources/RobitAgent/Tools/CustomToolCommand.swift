import Foundation

/// The argv of a custom tool: its command template with `{{name}}` placeholders replaced by the
/// model's arguments. No shell is involved: each element stays one argv element, whatever it holds.
///
/// A placeholder may be a whole element (`"{{file}}"`) or part of one (`"--file={{file}}"`). Values
/// render as: a string as is; a number without a fraction as an integer (`3`), otherwise in its
/// shortest form (`1.5`); a boolean as `true`/`false`; an array or object as compact JSON. An element
/// whose placeholder is missing or null is dropped entirely (so `"--file={{file}}"` disappears when
/// the optional `file` is not given). A name in braces that is not a parameter of the tool is a
/// definition error when the registry is built.
enum CustomToolCommand {
    /// The placeholder names in one template element, in order.
    static func placeholders(in element: String) -> [String] {
        pieces(element).compactMap { if case .placeholder(let name) = $0 { return name } else { return nil } }
    }

    static func argv(template: [String], arguments: [String: JSONValue]) throws(ToolFailure) -> [String] {
        var argv: [String] = []
        elements: for element in template {
            var out = ""
            for piece in pieces(element) {
                switch piece {
                case .text(let t): out += t
                case .placeholder(let name):
                    guard let value = arguments[name], value != .null else { continue elements }
                    out += render(value)
                }
            }
            guard !out.utf8.contains(0) else { throw ToolFailure("an argument contains a NUL byte, which cannot be passed to a command") }
            argv.append(out)
        }
        guard let program = argv.first, !program.isEmpty else {
            throw ToolFailure("the command's program name came out empty; give the argument that names it")
        }
        return argv
    }

    static func render(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        case .number(let n): return JSONValue.numberText(n)
        case .bool(let b): return b ? "true" : "false"
        case .null: return ""
        case .array, .object: return value.compactText
        }
    }

    enum Piece: Equatable {
        case text(String)
        case placeholder(String)
    }

    /// Splits an element into literal text and `{{name}}` placeholders (`name`: letters, digits, `_`,
    /// `-`, not starting with a digit or `-`). Braces around anything else are literal text.
    static func pieces(_ element: String) -> [Piece] {
        var result: [Piece] = []
        var rest = Substring(element)
        var text = ""
        while let open = rest.firstRange(of: "{{") {
            text += rest[..<open.lowerBound]
            let after = rest[open.upperBound...]
            if let close = after.firstRange(of: "}}") {
                let name = String(after[..<close.lowerBound])
                if isName(name) {
                    if !text.isEmpty { result.append(.text(text)) }
                    text = ""
                    result.append(.placeholder(name))
                    rest = after[close.upperBound...]
                    continue
                }
            }
            text += "{{"
            rest = after
        }
        text += rest
        if !text.isEmpty { result.append(.text(text)) }
        return result
    }

    static func isName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, s.unicodeScalars.count <= 64 else { return false }
        let ok = { (c: Unicode.Scalar) in c.isASCII && (c.properties.isAlphabetic || c == "_" || c == "-" || ("0"..."9").contains(c)) }
        return (first.isASCII && (first.properties.isAlphabetic || first == "_")) && s.unicodeScalars.allSatisfy(ok)
    }
}
