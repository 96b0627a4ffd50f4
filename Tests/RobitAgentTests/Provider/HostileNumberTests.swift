import Foundation
import Testing
@testable import RobitAgent

/// Numbers a hostile or broken server (or task author) can send that are no Int: each must be refused
/// or shown, never converted with a trapping `Int(Double)`.
@Suite struct HostileNumberTests {
    @Test(arguments: [1e300, -1e300, 1e19, -1e19, 9_007_199_254_740_992.0, .infinity, -.infinity, .nan])
    func wireCountsThatAreNoIntAreIgnored(_ n: Double) {
        #expect(WireDecoding.int(.number(n)) == nil)
    }

    @Test func wireCountsInRangeAreKept() {
        #expect(WireDecoding.int(.number(0)) == 0)
        #expect(WireDecoding.int(.number(123_456)) == 123_456)
        #expect(WireDecoding.int(.number(9_007_199_254_740_991)) == 9_007_199_254_740_991)
    }

    /// Found by the schema fuzz target (fuzz/crashes/schema/): a `minLength` of 1e19 trapped while
    /// the violation's message was written.
    @Test func schemaCountsBeyondIntAreReportedNotTrapped() throws {
        let schema = try JSONSchema(JSONValue.parse(#"{"type":"object","properties":{"s":{"type":"string","minLength":1e19}}}"#))
        let violations = schema.validate(try JSONValue.parse(#"{"s":"short"}"#))
        #expect(violations.count == 1)
        #expect(violations.first?.message.contains("1e+19") == true, "\(violations)")
        #expect(JSONSchema.count(1e19) == "1e+19")
        #expect(JSONSchema.count(12) == "12")
    }
}
