import Foundation
import RobitOCI
@testable import RobitAgent
import Testing

struct EgressRuleTests {
    @Test(arguments: [
        ("api.github.com:443", "api.github.com:443"),
        ("API.GitHub.com:443", "api.github.com:443"),
        ("localhost:8080", "localhost:8080"),
        ("10.1.2.3:5432", "10.1.2.3:5432"),
        ("0.0.0.0/0:53", "0.0.0.0/0:53"),
        ("10.0.0.0/8:5432", "10.0.0.0/8:5432"),
        ("192.168.1.128/25:1", "192.168.1.128/25:1"),
        ("[2001:DB8:0:0::1]:443", "[2001:db8::1]:443"),
        ("[::1]:65535", "[::1]:65535"),
        ("[fd00::/8]:443", "[fd00::/8]:443"),
        ("[::ffff:10.0.0.1]:80", "[::ffff:10.0.0.1]:80"),
        ("xn--bcher-kva.example:443", "xn--bcher-kva.example:443"),
    ])
    func parsesAndPrintsCanonically(text: String, canonical: String) throws {
        let rule = try EgressRule(parsing: text)
        #expect(rule.description == canonical)
        #expect(try EgressRule(parsing: canonical) == rule)
    }

    @Test func destinationsAreClassified() throws {
        #expect(try EgressRule(parsing: "api.github.com:443") == EgressRule(destination: .host("api.github.com"), port: 443))
        #expect(try EgressRule(parsing: "10.0.0.0/8:5432") == EgressRule(destination: .ipv4Network("10.0.0.0", prefixLength: 8), port: 5432))
        #expect(try EgressRule(parsing: "1.2.3.4:1") == EgressRule(destination: .ipv4("1.2.3.4"), port: 1))
        #expect(try EgressRule(parsing: "[fd00::/8]:443") == EgressRule(destination: .ipv6Network("fd00::", prefixLength: 8), port: 443))
        #expect(try EgressRule(parsing: "[::1]:22") == EgressRule(destination: .ipv6("::1"), port: 22))
    }

    @Test(arguments: [
        "", "api.github.com", "api.github.com:", ":443", "api.github.com:0", "api.github.com:65536", "api.github.com:70000",
        "api.github.com:0443", "api.github.com:-1", "api.github.com:44 3", "10.0.0.0/33:5432", "10.0.0.0/:5432", "10.0.0.1/8:5432",
        "10.0.0/8:1", "1.2.3.4.5:1", "1.2.3:80", "999.1.1.1:80", "2001:db8::1:443", "[2001:db8::1]", "[2001:db8::1]443", "[zz::1]:443",
        "[fd00::1/8]:443", "[::1/129]:1", "*.example.com:443", "-bad.example.com:1", "bad-.example.com:1", "a..b:1", "a_b.com:1",
        "ex ample.com:1", "https://example.com:443", String(repeating: "a", count: 64) + ".com:1", "exämple.com:443", "[]:443",
    ])
    func rejectsMalformedEntries(text: String) {
        #expect(throws: EgressRule.ParseError.self) { try EgressRule(parsing: text) }
    }
}

struct JSONValueTests {
    @Test func roundTripsThroughCodable() throws {
        let value: JSONValue = .object(["a": .array([.null, .bool(true), .number(1.5), .string("x")]), "b": .object([:])])
        let data = try JSONEncoder().encode(value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: data) == value)
        #expect(value["a"]?.arrayValue?.count == 4)
        #expect(value["b"]?.objectValue?.isEmpty == true)
        #expect(value["zz"] == nil)
    }
}
