import Foundation
import RobitExec
import RobitTestSupport
import Testing

/// The binary users run: `.build/release/robit` as `scripts/setup` builds it (or `$ROBIT_BIN`), run
/// many times in a row. A debug build hid a release-only miscompile that crashed most runs of the
/// README's main command (docs/compiler-bugs.md).
@Suite(.serialized) struct ReleaseBinaryTests {
    static let repetitions = 20

    /// `$ROBIT_BIN` or `.build/release/robit`; missing fails under CI=true and skips otherwise.
    static func releaseBinary() throws -> String {
        let path = ProcessInfo.processInfo.environment["ROBIT_BIN"].flatMap { $0.isEmpty ? nil : $0 }
            ?? CLI.packageRoot + "/.build/release/robit"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            try missing("the release binary \(path) does not exist; run ./scripts/setup (or set ROBIT_BIN)")
        }
        return path
    }

    static func missing(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Never {
        try TestEnv.missing(what, sourceLocation: sourceLocation)
    }

    static func requireRuntime(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard let kind = RuntimeKind(rawValue: name) else { try TestEnv.missing("no runtime named \(name)", sourceLocation: sourceLocation) }
        try TestEnv.require(kind, sourceLocation: sourceLocation)
    }

    /// Runs `binary args` and describes a bad exit: a signal by name, or the status and stderr's tail.
    static func run(_ binary: String, _ args: [String], environment: [String: String]) throws -> (CLI.Result, String?) {
        let r = try CLI.run(binary: binary, args, environment: environment)
        guard r.status != 0 else { return (r, nil) }
        let tail = r.stderr.split(separator: "\n").suffix(4).joined(separator: " | ")
        if r.status > 128 {
            let signal = r.status - 128
            let name = String(cString: strsignal(signal))
            return (r, "killed by signal \(signal) (\(name)): \(tail)")
        }
        return (r, "exit \(r.status): \(tail)")
    }

    /// `robit run` of examples/hello, then `robit audit verify` of its log, `repetitions` times.
    @Test(arguments: ["runsc", "crun"]) func helloExampleManyTimes(runtime: String) throws {
        let binary = try Self.releaseBinary()
        try Self.requireRuntime(runtime)
        var failures: [String] = []
        for i in 1...Self.repetitions {
            let hello = try RunCLITests.helloCopy()
            let home = (hello as NSString).deletingLastPathComponent
            let env = RunCLITests.environment(home: home)
            defer { try? FileManager.default.removeItem(atPath: home) }
            let (r, bad) = try Self.run(binary, ["run", hello + "/task.yaml", "--runtime", runtime, "--json"], environment: env)
            if let bad { failures.append("run \(i): \(bad)"); continue }
            guard let summary = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
                  summary["status"] as? String == "done", let audit = summary["audit_path"] as? String else {
                failures.append("run \(i): no done summary on stdout: \(r.stdout.prefix(300))"); continue
            }
            if !FileManager.default.fileExists(atPath: hello + "/out/fix.patch") { failures.append("run \(i): no out/fix.patch") }
            let (_, verifyBad) = try Self.run(binary, ["audit", "verify", audit], environment: env)
            if let verifyBad { failures.append("run \(i): audit verify: \(verifyBad)") }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(Self.repetitions) runs under \(runtime) failed:\n\(failures.joined(separator: "\n"))")
    }

    /// Model turns of several read-only calls, which run concurrently: every call's result must come
    /// back to its own call, in order, in every run.
    @Test(arguments: ["runsc", "crun"]) func parallelReadOnlyCallsManyTimes(runtime: String) throws {
        let binary = try Self.releaseBinary()
        try Self.requireRuntime(runtime)
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/ws", withIntermediateDirectories: true)
        for (name, text) in [("a.txt", "alpha\n"), ("b.txt", "bravo\n"), ("c.txt", "charlie\n"), ("d.txt", "delta\n")] {
            try text.write(toFile: dir + "/ws/" + name, atomically: false, encoding: .utf8)
        }
        func read(_ path: String) -> String { #"{"name":"read_file","arguments":{"path":"\#(path)"}}"# }
        let turns = [
            #"{"tool_calls":[\#(read("a.txt")),\#(read("b.txt"))]}"#,
            #"{"tool_calls":[\#(read("c.txt")),{"name":"search","arguments":{"pattern":"rav"}},\#(read("d.txt")),{"name":"list_files","arguments":{}},\#(read("a.txt"))]}"#,
            #"{"tool_calls":[\#(read("d.txt")),\#(read("nope.txt")),\#(read("b.txt"))]}"#,
            #"{"text":"done"}"#,
        ]
        try (turns.joined(separator: "\n") + "\n").write(toFile: dir + "/script.jsonl", atomically: false, encoding: .utf8)
        try """
        version: 1
        name: parallel-reads
        model: { provider: replay, script: script.jsonl }
        prompt: read them all
        workspace: { path: ws }
        sandbox: { runtime: \(runtime), rootfs: host }
        tools: [read_file, search, list_files]
        """.write(toFile: dir + "/task.yaml", atomically: false, encoding: .utf8)
        // What each call of the script must show the model, in call order.
        let expected: [(String, String)] = [
            ("read_file", "alpha"), ("read_file", "bravo"),
            ("read_file", "charlie"), ("search", "b.txt:1: bravo"), ("read_file", "delta"), ("list_files", "d.txt"), ("read_file", "alpha"),
            ("read_file", "delta"), ("read_file", "nope.txt"), ("read_file", "bravo"),
        ]
        let env = RunCLITests.environment(home: dir)
        var failures: [String] = []
        for i in 1...Self.repetitions {
            let (r, bad) = try Self.run(binary, ["run", dir + "/task.yaml", "--json"], environment: env)
            if let bad { failures.append("run \(i): \(bad)"); continue }
            guard let summary = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
                  summary["status"] as? String == "done", let audit = summary["audit_path"] as? String else {
                failures.append("run \(i): no done summary on stdout: \(r.stdout.prefix(300))"); continue
            }
            let (show, showBad) = try Self.run(binary, ["audit", "show", audit, "--type", "tool.result", "--json"], environment: env)
            if let showBad { failures.append("run \(i): audit show: \(showBad)"); continue }
            let results = show.stdout.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["data"] as? [String: Any]
            }
            let got = results.map { ($0["name"] as? String ?? "?", $0["content"] as? String ?? "") }
            let matches = got.count == expected.count && zip(got, expected).allSatisfy { $0.0 == $1.0 && $0.1.contains($1.1) }
            if !matches { failures.append("run \(i): results \(got.map { "\($0.0): \($0.1.prefix(40))" })") }
            let ids = results.compactMap { $0["id"] as? String }
            if ids != ids.sorted(by: { $0.localizedStandardCompare($1) == .orderedAscending }) { failures.append("run \(i): results out of call order: \(ids)") }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(Self.repetitions) runs under \(runtime) failed:\n\(failures.joined(separator: "\n"))")
    }
}

/// The reduction of the Swift 6.3.1 -O miscompile (docs/compiler-bugs/task-closure-tuple.swift),
/// compiled with `swiftc -O`: the forms robit relies on must stay right on the toolchain in use.
@Suite struct TaskClosureMiscompileTests {
    @Test func workaroundFormsStayRight() throws {
        guard let swiftc = ["/opt/swift/usr/bin/swiftc", "/usr/bin/swiftc"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
            ?? Self.onPath("swiftc") else {
            try ReleaseBinaryTests.missing("swiftc is not on PATH")
        }
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = CLI.packageRoot + "/docs/compiler-bugs/task-closure-tuple.swift"
        let compile = try CLI.run(binary: swiftc, ["-O", source, "-o", dir + "/reduction", "-module-cache-path", dir + "/cache"])
        try #require(compile.status == 0, "swiftc -O failed: \(compile.stderr)")
        let run = try CLI.run(binary: dir + "/reduction", [])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.count == 6, "\(run.stdout)")
        #expect(lines.last == "workarounds: ok", "a form robit uses to avoid the miscompile is wrong on this toolchain:\n\(run.stdout)")
        // Which way the miscompiled form goes is information, not a failure: it tells when the
        // workaround can go (see docs/compiler-bugs.md).
        let buggy = lines.prefix(2).filter { $0.hasSuffix(": wrong") }
        print("TaskClosureMiscompileTests: the toolchain \(buggy.isEmpty ? "no longer miscompiles" : "still miscompiles") the reduction")
    }

    static func onPath(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}
