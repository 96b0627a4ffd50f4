import Foundation
import RobitExec
import RobitTestSupport
import Testing

/// The egress address pool (docs/network.md): configurable, validated, refused when it overlaps a
/// route the host has.
@Suite struct AddressPoolTests {
    typealias Range = AddressPool.Range

    @Test func theDefaultIs10_213AndAnotherPoolCanBeNamed() throws {
        #expect(try AddressPool.configured(environment: [:]).range.description == "10.213.0.0/16")
        #expect(try AddressPool.configured(environment: [:]).slots == 16384)
        let pool = try AddressPool.configured(environment: ["ROBIT_EGRESS_POOL": "100.64.8.0/24"])
        #expect(pool.range == Range(base: 0x6440_0800, prefixLength: 24) && pool.slots == 64)
        let lease = AddressPool.Lease(index: 3, id: "robit-x", pid: 1, startTime: 1, range: pool.range)
        #expect(lease.hostAddress == "100.64.8.13" && lease.sandboxAddress == "100.64.8.14")
        // A lease written before pools were configurable names no pool: it is the default's.
        let old = try JSONDecoder().decode(AddressPool.Lease.self, from: Data(#"{"index":1,"id":"robit-y","pid":2,"startTime":3}"#.utf8))
        #expect(old.sandboxAddress == "10.213.0.6")
    }

    @Test(arguments: ["", "10.0.0.0", "10.0.0.0/8", "10.0.0.0/29", "10.0.0.1/16", "10.0.0.0/16/1", "256.0.0.0/16", "1.2.3/16",
                      "127.0.0.0/16", "169.254.0.0/16", "224.0.0.0/16", "0.0.0.0/16", "10.0.0.0/+16", "10.0.0.0/ 16", "١٠.0.0.0/16",
                      "10.0.0.0/016x", "0010.0.0.0/16", String(repeating: "9", count: 40) + ".0.0.0/16"])
    func hostileValuesAreRefusedNamingTheVariable(text: String) {
        do {
            let pool = try AddressPool.configured(environment: ["ROBIT_EGRESS_POOL": text])
            if !text.isEmpty { Issue.record("\(text) was accepted as \(pool.range)") }
        } catch {
            #expect(error.code == .invalidInput && error.message.hasPrefix("ROBIT_EGRESS_POOL=\(text): "), "\(error.message)")
        }
    }

    @Test func overlapsAndTheRouteTable() throws {
        let pool = try Range(parsing: "10.213.0.0/16")
        #expect(pool.overlaps(try Range(parsing: "10.213.4.0/24")))
        #expect(pool.overlaps(Range(base: 0x0A00_0000, prefixLength: 8)))
        #expect(!pool.overlaps(try Range(parsing: "10.214.0.0/16")))
        // /proc/net/route: little-endian hex; the default route, robit's own rb* links and other
        // networks do not count; 10.0.0.0/8 on eth1 does.
        let table = """
        Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
        eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
        eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
        rb0a1b2c3d4e5f\t0400D50A\t00000000\t0001\t0\t0\t0\tFCFFFFFF\t0\t0\t0
        eth1\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0
        """
        #expect(pool.conflictingRoute(in: table) == "10.0.0.0/8 on eth1")
        #expect(try Range(parsing: "100.64.0.0/16").conflictingRoute(in: table) == nil)
        do {
            try AddressPool(range: pool).checkHostRoutes(routeTable: table)
            Issue.record("an overlapping pool was accepted")
        } catch {
            #expect(error.code == .hostNotReady && error.message.contains("10.0.0.0/8 on eth1") && error.message.contains("ROBIT_EGRESS_POOL"), "\(error.message)")
        }
    }

    /// In a network namespace of its own with a route into the pool, robit refuses the egress sandbox
    /// (exit 5, naming the route) and `robit doctor` reports it.
    @Test func aPoolOverlappingAHostRouteIsRefusedAtStart() async throws {
        try TestEnv.require(.crun)
        let ns = "robit-pooltest-\(getpid())"
        func ip(_ args: [String]) throws -> HostCommand.Result { try HostCommand.run("/usr/sbin/ip", args) }
        _ = try ip(["netns", "add", ns])
        defer { _ = try? ip(["netns", "del", ns]) }
        for args in [["link", "add", "pt0", "type", "veth", "peer", "name", "pt1"], ["addr", "add", "198.19.255.1/24", "dev", "pt0"],
                     ["link", "set", "pt1", "up"], ["link", "set", "pt0", "up"]] {
            let r = try ip(["-n", ns] + args)
            #expect(r.status == .exited(0), "\(args): \(String(decoding: r.stderr, as: UTF8.self))")
        }
        let robit = try RobitBinary.path()
        let run = try HostCommand.run("/usr/sbin/ip", ["netns", "exec", ns, "/usr/bin/env", "ROBIT_EGRESS_POOL=198.19.0.0/16", robit,
                                                       "sandbox", "run", "--runtime", "crun", "--egress", "198.18.0.1:80", "--", "true"],
                                      environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"])
        let stderr = String(decoding: run.stderr, as: UTF8.self)
        #expect(run.status == .exited(5), "\(run.status): \(stderr)")
        #expect(stderr.contains("198.19.0.0/16 overlaps the host's route 198.19.255.0/24 on pt0"), "\(stderr)")
        let doctor = try HostCommand.run("/usr/sbin/ip", ["netns", "exec", ns, "/usr/bin/env", "ROBIT_EGRESS_POOL=198.19.0.0/16", robit, "doctor"],
                                         environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"])
        let report = String(decoding: doctor.stdout + doctor.stderr, as: UTF8.self)
        let line = report.split(separator: "\n").first { $0.contains("egress pool") } ?? ""
        #expect(line.lowercased().hasPrefix("fail") && line.contains("198.19.255.0/24 on pt0"), "\(report)")
    }
}
