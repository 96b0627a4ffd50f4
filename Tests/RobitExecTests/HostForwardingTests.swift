import Foundation
import Glibc
@testable import RobitExec
import Testing

/// `HostForwarding` against a plain file standing in for the sysctl and a lease directory of the
/// test's own: forwarding is on while any lease is held, back to what it was after the last, also
/// with many robits (threads here) taking and releasing leases at once.
@Suite struct HostForwardingTests {
    final class Fixture {
        let root = "/tmp/robit-forwarding-" + UUID().uuidString.lowercased().prefix(8)
        let forwarding: HostForwarding
        init(value: String) throws {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            forwarding = HostForwarding(pool: AddressPool(directory: root + "/net/leases"), sysctl: root + "/ip_forward")
            try value.write(toFile: forwarding.sysctl, atomically: false, encoding: .utf8)
        }
        var value: String { ((try? String(contentsOfFile: forwarding.sysctl, encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines) }
        var saved: String? { try? String(contentsOfFile: forwarding.savedFile, encoding: .utf8) }
        var leaseCount: Int { forwarding.pool.leases().count }
        deinit { try? FileManager.default.removeItem(atPath: root) }
    }

    @Test("off: on with the first lease, off again after the last")
    func restoresAfterLast() throws {
        let f = try Fixture(value: "0\n")
        let a = try f.forwarding.acquire(id: "robit-aaaaaaaaaaaa")
        #expect(f.value == "1")
        #expect(f.saved == "0")
        let b = try f.forwarding.acquire(id: "robit-bbbbbbbbbbbb")
        #expect(f.forwarding.release([a]) == nil)
        #expect(f.value == "1", "a network is left")
        #expect(f.forwarding.release([b]) == nil)
        #expect(f.value == "0")
        #expect(f.saved == nil)
        #expect(f.leaseCount == 0)
    }

    @Test("already on: robit never turns it off")
    func leavesHostValue() throws {
        let f = try Fixture(value: "1\n")
        let a = try f.forwarding.acquire(id: "robit-aaaaaaaaaaaa")
        #expect(f.saved == nil)
        #expect(f.forwarding.release([a]) == nil)
        #expect(f.value == "1")
    }

    @Test("turned off by someone else meanwhile: left off")
    func someoneElseTurnedItOff() throws {
        let f = try Fixture(value: "0")
        let a = try f.forwarding.acquire(id: "robit-aaaaaaaaaaaa")
        try "0".write(toFile: f.forwarding.sysctl, atomically: false, encoding: .utf8)
        #expect(f.forwarding.release([a]) == nil)
        #expect(f.value == "0")
        #expect(f.saved == nil)
    }

    @Test("a lease of a robit that is gone keeps forwarding on until the sweep releases it")
    func deadLeaseCountsUntilSwept() throws {
        let f = try Fixture(value: "0")
        let a = try f.forwarding.acquire(id: "robit-aaaaaaaaaaaa")
        // A SIGKILLed robit's lease: its network (and maybe its sandbox) is still there.
        let dead = try f.forwarding.acquire(id: "robit-dddddddddddd")
        var gone = dead
        gone.pid = 999_999_999
        try JSONEncoder().encode(gone).write(to: URL(fileURLWithPath: "\(f.forwarding.pool.directory)/\(dead.index)"))
        #expect(f.forwarding.release([a]) == nil)
        #expect(f.value == "1")
        #expect(f.forwarding.report(fix: false).level == .ok)
        #expect(f.forwarding.release([], files: [dead.index]) == nil)
        #expect(f.value == "0")
    }

    @Test("doctor: on by robit with no network left is a warning that --fix repairs")
    func doctorFix() throws {
        let f = try Fixture(value: "0")
        let a = try f.forwarding.acquire(id: "robit-aaaaaaaaaaaa")
        // A robit that died between releasing its lease and putting the value back.
        f.forwarding.pool.release(a)
        let finding = f.forwarding.report(fix: false)
        #expect(finding.level == .warn, "\(finding.message)")
        #expect(finding.fix == "robit doctor --fix")
        #expect(f.value == "1")
        #expect(f.forwarding.report(fix: true).level == .ok)
        #expect(f.value == "0")
        #expect(f.saved == nil)
    }

    @Test("many robits at once: on whenever a lease is held, off after the last")
    func concurrent() async throws {
        let f = try Fixture(value: "0")
        let forwarding = f.forwarding
        let sysctl = forwarding.sysctl
        let violations = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    await KernelNetwork.offThread {
                        var bad = 0
                        for round in 0..<25 {
                            guard let lease = try? forwarding.acquire(id: String(format: "robit-%06x%06x", worker, round)) else { return bad + 1000 }
                            // While this lease is held, forwarding must stay on, whatever the others do.
                            for _ in 0..<3 {
                                if (try? String(contentsOfFile: sysctl, encoding: .utf8))?.hasPrefix("1") != true { bad += 1 }
                                usleep(UInt32.random(in: 0..<300))
                            }
                            if forwarding.release([lease]) != nil { bad += 1000 }
                        }
                        return bad
                    }
                }
            }
            return await group.reduce(0, +)
        }
        #expect(violations == 0)
        #expect(f.value == "0")
        #expect(f.saved == nil)
        #expect(f.leaseCount == 0)
    }
}
