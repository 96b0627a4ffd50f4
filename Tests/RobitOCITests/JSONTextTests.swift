import Foundation
import RobitOCI
import Testing

/// The bytes of robit's one JSON string writer, pinned (request bodies, tool messages, custom-tool
/// arguments and exec process files all go through it).
struct JSONTextTests {
    @Test func controlCharactersHaveOneSpelling() {
        var expected: [String] = []
        for byte in 0..<0x20 {
            switch byte {
            case 0x08: expected.append("\\b")
            case 0x09: expected.append("\\t")
            case 0x0A: expected.append("\\n")
            case 0x0C: expected.append("\\f")
            case 0x0D: expected.append("\\r")
            default: expected.append(String(format: "\\u%04x", byte))
            }
        }
        for byte in 0..<0x20 {
            let text = String(UnicodeScalar(UInt8(byte)))
            #expect(JSONText.quoted(text) == "\"" + expected[byte] + "\"", "U+\(String(byte, radix: 16))")
        }
        #expect(JSONText.quoted("a\"b\\c/d\u{7F}") == "\"a\\\"b\\\\c/d\u{7F}\"")
    }

    @Test func lineAndParagraphSeparatorsAreEscaped() {
        #expect(JSONText.quoted("x\u{2028}y\u{2029}z") == "\"x\\u2028y\\u2029z\"")
        // Other characters of the same lead byte are not.
        #expect(JSONText.quoted("\u{2027}\u{202A}€") == "\"\u{2027}\u{202A}€\"")
    }

    @Test func aLoneSurrogateArrivesAsTheReplacementCharacter() throws {
        // Swift strings cannot hold one: the UTF-8 of a surrogate (ED A0 80) decodes to U+FFFD per byte.
        // (robit's JSON parser refuses a `\ud800` escape outright; see OneJSONWriterTests.)
        #expect(JSONText.quoted(String(decoding: [0x61, 0xED, 0xA0, 0x80, 0x62], as: UTF8.self)) == "\"a\u{FFFD}\u{FFFD}\u{FFFD}b\"")
    }

    @Test func numbers() {
        func text(_ n: Double) -> String { var out: [UInt8] = []; JSONText.number(n, into: &out); return String(decoding: out, as: UTF8.self) }
        #expect(text(3) == "3" && text(-0.5) == "-0.5" && text(1e300) == "1e+300" && text(.nan) == "null" && text(.infinity) == "null")
    }

    @Test func processFilesUseIt() throws {
        let process = Process(user: User(uid: 1, gid: 1), args: ["sh", "-c", "printf '\u{8}\u{2028}'"], cwd: "/work")
        let text = String(decoding: process.compactJSON, as: UTF8.self)
        #expect(text.contains(#""printf '\b\u2028'""#), "\(text)")
        let back = try JSONDecoder().decode(Process.self, from: Data(process.compactJSON))
        #expect(back.args == process.args)
    }
}
