/// A value quoted for an error message: escaped, and shortened when long.
public func quoted(_ value: String, limit: Int = 60) -> String {
    var shown = value
    if shown.count > limit { shown = String(shown.prefix(limit)) + "…" }
    var escaped = ""
    for scalar in shown.unicodeScalars {
        switch scalar {
        case "\"": escaped += "\\\""
        case "\\": escaped += "\\\\"
        case "\n": escaped += "\\n"
        case "\t": escaped += "\\t"
        case "\r": escaped += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) {
                escaped += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                escaped.unicodeScalars.append(scalar)
            }
        }
    }
    return "\"" + escaped + "\""
}
