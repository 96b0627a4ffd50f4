import Foundation
@testable import RobitExec
import Testing

@Suite("robit doctor reports the host's RCU grace periods")
struct RCUGracePeriodsTests {
    func report(expedited: String?, normal: String?) throws -> Finding {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("robit-rcu-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        if let expedited { try Data(expedited.utf8).write(to: URL(fileURLWithPath: dir + "/rcu_expedited")) }
        if let normal { try Data(normal.utf8).write(to: URL(fileURLWithPath: dir + "/rcu_normal")) }
        return RCUGracePeriods.report(expeditedPath: dir + "/rcu_expedited", normalPath: dir + "/rcu_normal")
    }

    @Test("normal grace periods are a warning that says how to expedite them")
    func normal() throws {
        let f = try report(expedited: "0\n", normal: "0\n")
        #expect(f.level == .warn && f.subject == "rcu")
        #expect(f.fix?.hasPrefix("echo 1 > /sys/kernel/rcu_expedited") == true, "\(f.fix ?? "no fix")")
    }

    @Test("expedited grace periods are fine")
    func expedited() throws {
        let f = try report(expedited: "1\n", normal: "0\n")
        #expect(f.level == .ok && f.fix == nil && f.message.contains("expedited"))
    }

    @Test("rcu_normal = 1 is the host's choice, and a kernel without the file is not a problem")
    func hostChoice() throws {
        let normalOnly = try report(expedited: "0\n", normal: "1\n")
        #expect(normalOnly.level == .ok && normalOnly.message.contains("rcu_normal = 1"))
        let none = try report(expedited: nil, normal: nil)
        #expect(none.level == .ok && none.fix == nil)
    }
}
