import Testing
@testable import RobitAudit

@Suite struct AuditFormatTests {
    @Test func constants() {
        #expect(AuditFormat.zeroHash.count == 64)
    }
}
