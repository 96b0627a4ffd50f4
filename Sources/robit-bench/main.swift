// robit-bench: the measurements behind scripts/bench. Not installed; run through scripts/bench.
import Foundation
import RobitAudit
import RobitExec
import RobitOCI
import CRobitBench
import CRobitSys

let args = Array(CommandLine.arguments.dropFirst())
// As robit's CLI does; not for `loop`, which starts robit with Foundation's Process (a subreaper's
// sweep would reap those children's exit statuses away from it).
if args.first == "net" || args.first == "sandbox" { Subreaper.enable() }
if args.first == "audit-write", args.count == 3, let megabytes = Int(args[2]) {
    // Appends tool.call/tool.result-sized records (no per-record fsync) until the log reaches the size.
    let dir = args[1]
    let log = try AuditLog.create(directory: dir, run: "robit-bench", options: AuditOptions(signer: AuditSigningKey()),
                                  startData: ["task_sha256": .string(String(repeating: "0", count: 64)), "robit_version": "bench"])
    let target = megabytes << 20
    let output = String(repeating: "line of tool output ✓\n", count: 8)
    let clock = ContinuousClock()
    let start = clock.now
    var records = 0
    var bytes = 0
    while bytes < target {
        let call: AuditValue = ["status": "ok", "id": .string("call-\(records)"), "name": "shell", "arguments": #"{"command":"make test"}"#]
        let result: AuditValue = ["status": "ok", "id": .string("call-\(records)"), "name": "shell", "exit_code": 0,
                                  "duration_ns": .int(Int64(records) * 1000), "stdout": .string(output), "stderr": "", "truncated": false]
        try log.append("tool.call", call)
        try log.append("tool.result", result)
        records += 2
        bytes += 800
        if records % 4096 == 0 { bytes = Int((try? FileManager.default.attributesOfItem(atPath: log.path)[.size] as? Int) ?? bytes) }
    }
    _ = try log.finish(["status": "ok"])
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let size = (try FileManager.default.attributesOfItem(atPath: log.path)[.size] as? Int) ?? 0
    print(String(format: "append: %d records, %.1f MB in %.2f s = %.0f records/s (%.0f MB/s)", records, Double(size) / 1e6, seconds,
                 Double(records) / seconds, Double(size) / 1e6 / seconds))
    exit(0)
}
if args.first == "loop" {
    do { try await LoopBench.run(Array(args.dropFirst())) } catch {
        FileHandle.standardError.write(Data("robit-bench loop: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}
if args.first == "profile-create" {
    // Where robit's cold-start time goes, step by step (medians of 20).
    let ws = NSTemporaryDirectory() + "robit-bench-profile"
    try FileManager.default.createDirectory(atPath: ws, withIntermediateDirectories: true)
    chown(ws, User.sandbox.uid, User.sandbox.gid)
    let clock = ContinuousClock()
    var sweep: [Double] = [], config: [Double] = [], bundle: [Double] = [], policy: [Double] = []
    for kind in [RuntimeKind.crun, .runsc] {
        for _ in 0..<20 {
            let t0 = clock.now
            _ = await Janitor.sweep(remove: true)
            let t1 = clock.now
            let p = SandboxPolicy.builtInDefault()
            let t2 = clock.now
            let options = SandboxOptions(runtime: kind, workspace: ws, user: User.sandbox, policy: p)
            let c = try options.configuration(id: "robit-profile00000", bundleDirectory: "/run/robit/profile-bundle")
            let t3 = clock.now
            _ = try OCIBundle.create(at: "/run/robit/profile-bundle", configuration: c, readable: false)
            let t4 = clock.now
            try FileManager.default.removeItem(atPath: "/run/robit/profile-bundle")
            let spec = SpecGenerator.spec(for: c, rootfsPath: "/x")
            let e0 = clock.now
            _ = try OCIBundle.encodeCompact(spec)
            let e1 = clock.now
            _ = try OCIBundle.encodeCompact(spec.linux!.seccomp!)
            let e2 = clock.now
            if sweep.count == 0 { print("encode spec \(e1 - e0), seccomp alone \(e2 - e1)") }
            func ms(_ d: Duration) -> Double { Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1000 }
            sweep.append(ms(t1 - t0)); policy.append(ms(t2 - t1)); config.append(ms(t3 - t2)); bundle.append(ms(t4 - t3))
        }
        print("\(kind): sweep \(SandboxBenchmark.median(sweep)) ms, builtInDefault policy \(SandboxBenchmark.median(policy)) ms, configuration \(SandboxBenchmark.median(config)) ms, bundle write \(SandboxBenchmark.median(bundle)) ms")
        sweep = []; config = []; bundle = []; policy = []
    }
    exit(0)
}
if args.first == "net" {
    // The added cost of an egress allowlist per run: create + destroy with one allowlist entry
    // (198.18.0.2:8080: nothing is sent) against the same without, alternating; each round measures
    // both back to back, and the figures are medians of the per-round differences (paired, so that
    // the host's drift cancels), with their range and quartiles.
    let n = args.firstIndex(of: "--runs").flatMap { $0 + 1 < args.count ? Int(args[$0 + 1]) : nil } ?? 15
    let ws = NSTemporaryDirectory() + "robit-bench-net-\(getpid())"
    try FileManager.default.createDirectory(atPath: ws, withIntermediateDirectories: true)
    chown(ws, User.sandbox.uid, User.sandbox.gid)
    defer { try? FileManager.default.removeItem(atPath: ws) }
    let clock = ContinuousClock()
    func ms(_ d: Duration) -> Double { Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1000 }
    let m = SandboxBenchmark.median
    func spread(_ xs: [Double]) -> String {
        let s = xs.sorted()
        guard !s.isEmpty else { return "" }
        return String(format: "quartiles %+.1f..%+.1f, range %+.1f..%+.1f", s[s.count / 4], s[(s.count * 3) / 4], s.first!, s.last!)
    }
    let rcu = RCUGracePeriods.report()
    print("net benchmark: \(n) rounds per runtime, each a create+destroy without and one with an egress allowlist")
    print("host: rcu \(rcu.level == .ok ? "" : "(\(rcu.level.rawValue)) ")\(rcu.message)")
    for kind in [RuntimeKind.runsc, .crun] {
        var plainCreate: [Double] = [], plainDestroy: [Double] = [], egressCreate: [Double] = [], egressDestroy: [Double] = []
        for i in 0..<(n + 1) {
            // Alternate which goes first, so neither always follows the other's teardown.
            for withEgress in i % 2 == 0 ? [false, true] : [true, false] {
                let options = SandboxOptions(runtime: kind, workspace: ws, user: User.sandbox,
                                             egress: withEgress ? [Egress(.ipv4("198.18.0.2"), port: 8080)] : [])
                let t0 = clock.now
                let box = try await Sandbox.create(options)
                let t1 = clock.now
                let left = await box.destroy()
                let t2 = clock.now
                guard left.isEmpty else { throw SandboxError(.createFailed, "destroy left: \(left)") }
                guard i > 0 else { continue }  // the first round warms caches and modules
                if withEgress { egressCreate.append(ms(t1 - t0)); egressDestroy.append(ms(t2 - t1)) } else { plainCreate.append(ms(t1 - t0)); plainDestroy.append(ms(t2 - t1)) }
            }
        }
        let create = zip(egressCreate, plainCreate).map { $0 - $1 }
        let destroy = zip(egressDestroy, plainDestroy).map { $0 - $1 }
        let total = zip(create, destroy).map { $0 + $1 }
        print(String(format: "%@: without egress create %.1f ms, destroy %.1f ms; with egress create %.1f ms, destroy %.1f ms (medians)",
                     kind.rawValue, m(plainCreate), m(plainDestroy), m(egressCreate), m(egressDestroy)))
        print(String(format: "%@: added per run %+.1f ms (target <= 30 ms: %@; %@): create %+.1f ms (%@), destroy %+.1f ms (%@)",
                     kind.rawValue, m(total), m(total) <= 30 ? "met" : "NOT met", spread(total), m(create), spread(create), m(destroy), spread(destroy)))
    }
    // robit's own part, without a runtime: the kernel calls of setup and teardown, one by one.
    var steps: [[Double]] = Array(repeating: [], count: 5)
    var packet: [[Double]] = [[], []]
    for i in 0..<(n + 1) {
        let id = Sandbox.newID()
        let ruleset = EgressRuleset(table: EgressRuleset.tableName(id: id), hostInterface: EgressRuleset.hostInterfaceName(id: id),
                                    sandboxAddress: "198.19.255.254", allowed: [Egress(.ipv4("198.18.0.2"), port: 8080)])
        let t0 = clock.now
        _ = try KernelNetwork.nft(ruleset.text)
        let t1 = clock.now
        try KernelNetwork.create(namespacePath: "/run/netns/" + id, hostInterface: ruleset.hostInterface, hostAddress: "198.19.255.253",
                                 sandboxAddress: "198.19.255.254", prefixLength: 30)
        let t2 = clock.now
        try KernelNetwork.deleteLink(ruleset.hostInterface)
        let t3 = clock.now
        try KernelNetwork.removeNamespace("/run/netns/" + id)
        let t4 = clock.now
        _ = try KernelNetwork.nft("delete table inet \(ruleset.table)")
        let t5 = clock.now
        var bind = 0.0, ring = 0.0
        let e = robit_bench_packet_setup(&bind, &ring)
        guard e == 0 else { throw SandboxError(.hostNotReady, "AF_PACKET setup failed: errno \(e)") }
        guard i > 0 else { continue }
        for (k, d) in [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4].enumerated() { steps[k].append(ms(d)) }
        packet[0].append(bind)
        packet[1].append(ring)
    }
    print(String(format: "robit's kernel calls alone: setup nft table %.1f ms, netns+veth+addresses+route %.1f ms; teardown veth %.1f ms, netns %.1f ms, nft table %.1f ms",
                 m(steps[0]), m(steps[1]), m(steps[2]), m(steps[3]), m(steps[4])))
    print(String(format: "runsc's network start asks the kernel for an AF_PACKET socket per interface; alone, its bind takes %.1f ms and its PACKET_RX_RING %.1f ms (each waits for an RCU grace period)",
                 m(packet[0]), m(packet[1])))
    exit(0)
}
guard args.first == "sandbox" else {
    FileHandle.standardError.write(Data("usage: robit-bench sandbox [--warm N] [--cold N] [--runtime R]...\n".utf8))
    exit(2)
}
func value(_ flag: String) -> String? { args.firstIndex(of: flag).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil } }
let warm = Int(value("--warm") ?? "") ?? 40
let cold = Int(value("--cold") ?? "") ?? 10
var runtimes: [RuntimeKind] = []
for (i, a) in args.enumerated() where a == "--runtime" && i + 1 < args.count {
    if let k = RuntimeKind(rawValue: args[i + 1]) { runtimes.append(k) }
}
if runtimes.isEmpty { runtimes = [.runsc, .crun, .runc] }

let workspace = NSTemporaryDirectory() + "robit-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
chown(workspace, User.sandbox.uid, User.sandbox.gid)
defer { try? FileManager.default.removeItem(atPath: workspace) }

func f(_ x: Double) -> String { String(format: "%7.1f ms", x) }
print("sandbox benchmark: medians of \(warm) warm execs (`/bin/true`) and \(cold) cold starts per runtime, interleaved")
print("runtime  warm robit  warm bare   ratio | cold robit  cold bare   ratio")
for kind in runtimes {
    do {
        let row = try await SandboxBenchmark.run(runtime: kind, warm: warm, cold: cold, workspace: workspace)
        let wr = SandboxBenchmark.median(row.warmRobit), wb = SandboxBenchmark.median(row.warmBare)
        let cr = SandboxBenchmark.median(row.coldRobit), cb = SandboxBenchmark.median(row.coldBare)
        print("\(kind.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) \(f(wr)) \(f(wb))  \(String(format: "%5.2fx", wr / wb)) | \(f(cr)) \(f(cb))  \(String(format: "%5.2fx", cr / cb))")
    } catch {
        print("\(kind.rawValue): failed: \(error)")
    }
}
