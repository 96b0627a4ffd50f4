import Foundation
@testable import RobitAgent
import Testing

struct JSONParserTests {
    @Test func parsesEveryKindOfValue() throws {
        let v = try JSONValue.parse(#" { "a" : [1, -2.5e3, 0, 0.125, true, false, null], "b": {"c": "d\u00e9\ud83d\ude00\n\"\\\/"} } "#)
        #expect(v == .object([
            "a": .array([.number(1), .number(-2500), .number(0), .number(0.125), .bool(true), .bool(false), .null]),
            "b": .object(["c": .string("dé😀\n\"\\/")]),
        ]))
        #expect(try JSONValue.parse("\"\"") == .string(""))
        #expect(try JSONValue.parse("[]") == .array([]))
        #expect(try JSONValue.parse("{}") == .object([:]))
        #expect(try JSONValue.parse("-0") == .number(0))
        #expect(try JSONValue.parse("1E+2") == .number(100))
        #expect(try JSONValue.parse("\"\\u0000\"") == .string("\u{0}"))
    }

    static let hostile: [(String, String)] = [
        ("", "empty"),
        ("   ", "empty"),
        ("{} x", "after the JSON value"),
        ("{}{}", "after the JSON value"),
        ("[1,]", "expected a value"),
        ("{\"a\":1,}", "member name"),
        ("// c\n{}", "unexpected"),
        ("{/* c */}", "member name"),
        ("NaN", "unexpected"),
        ("Infinity", "unexpected"),
        ("-Infinity", "digits"),
        ("01", "leading zeros"),
        ("-01", "leading zeros"),
        ("+1", "unexpected"),
        (".5", "unexpected"),
        ("1.", "after \".\""),
        ("1e", "exponent"),
        ("0x10", "after the JSON value"),
        ("1e400", "too large"),
        ("\"\\ud800\"", "lone high surrogate"),
        ("\"\\udc00\"", "lone low surrogate"),
        ("\"\\ud800\\u0041\"", "low surrogate"),
        ("\"\\u12\"", "four hex digits"),
        ("\"\\x41\"", "invalid escape"),
        ("\"a\nb\"", "raw control character"),
        ("\"a\tb\"", "raw control character"),
        ("\"abc", "unterminated"),
        ("{\"a\":1,\"a\":2}", "duplicate member name \"a\""),
        ("{'a':1}", "member name"),
        ("{a:1}", "member name"),
        ("[1 2]", "expected \",\" or \"]\""),
        ("tru", "unexpected"),
        ("nul", "unexpected"),
        ("\u{FEFF}{}", "unexpected"),
        ("{\"a\" 1}", "\":\""),
        ("[", "end of the text"),
    ]

    @Test(arguments: hostile) func rejectsHostileText(_ input: (String, String)) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(input.0) }
        do {
            _ = try JSONValue.parse(input.0)
        } catch {
            #expect(error.description.contains(input.1), "\(error) should mention \(input.1)")
        }
    }

    @Test func nestingIsLimited() throws {
        let ok = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(throws: Never.self) { try JSONValue.parse(ok) }
        for deep in [129, 100_000] {
            let text = String(repeating: "[", count: deep) + String(repeating: "]", count: deep)
            #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
            let objects = String(repeating: "{\"a\":", count: deep) + "1" + String(repeating: "}", count: deep)
            #expect(throws: JSONParseError.self) { try JSONValue.parse(objects) }
        }
        // Unclosed deep nesting fails on depth, not on a stack overflow.
        #expect(throws: JSONParseError.self) { try JSONValue.parse(String(repeating: "[", count: 1_000_000)) }
    }

    @Test func sizeIsLimited() throws {
        let big = "\"" + String(repeating: "a", count: 2000) + "\""
        #expect(throws: JSONParseError.self) { try JSONValue.parse(big, maxBytes: 1000) }
        #expect(try JSONValue.parse(big, maxBytes: 3000) == .string(String(repeating: "a", count: 2000)))
    }

    @Test func compactTextRoundTrips() throws {
        let v: JSONValue = ["b": [1, 2.5, "x\n\u{1}"], "a": nil, "c": true]
        #expect(v.compactText == #"{"a":null,"b":[1,2.5,"x\n\u0001"],"c":true}"#)
        #expect(try JSONValue.parse(v.compactText) == v)
    }
}
