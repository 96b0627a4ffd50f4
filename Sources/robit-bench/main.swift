// robit-bench: the measurements behind scripts/bench. Not installed; run through scripts/bench.
import Foundation
import RobitExec

let args = Array(CommandLine.arguments.dropFirst())
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

let workspace = "/run/robit/workspaces/bench-\(getpid())"
try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
chown(workspace, 65532, 65532)
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
