import Foundation
import Testing
@testable import RobitAgent

@Suite("WireJSON string escaping")
struct WireJSONStringTests {
    /// The escaping rules, one scalar at a time: the definition the fast writer must match.
    private func reference(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    @Test func everyASCIIScalarAndTheLineSeparators() throws {
        var all = (0..<0x80).map { String(UnicodeScalar(UInt8($0))) }
        all += ["\u{2027}", "\u{2028}", "\u{2029}", "\u{202A}", "\u{20AC}", "é", "😀", "\u{E2}", "a\u{2028}b\u{2029}"]
        for text in all {
            let written = WireJSON.string(text).text
            #expect(written == reference(text), "\(Array(text.unicodeScalars.map(\.value)))")
            let back = try JSONSerialization.jsonObject(with: Data(written.utf8), options: .fragmentsAllowed) as? String
            #expect(back == text)
        }
        #expect(WireJSON.string("\u{1f}\u{2028}").text == #""\u001f\u2028""#)
    }

    @Test func randomStringsMatchTheReference() throws {
        let alphabet: [Character] = ["a", "Z", " ", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{8}", "\u{C}", "\u{1f}", "/", "é", "€",
                                     "\u{2027}", "\u{2028}", "\u{2029}", "😀", "{", "}"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let length = Int.random(in: 0...40, using: &generator)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            let written = WireJSON.string(text).text
            #expect(written == reference(text))
            let back = try JSONSerialization.jsonObject(with: Data(written.utf8), options: .fragmentsAllowed) as? String
            #expect(back == text)
        }
    }
}
