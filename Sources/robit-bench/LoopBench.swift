// `robit-bench loop`: robit's own cost per agent step against an instant local model (scripts/fake-model.py)
// and a no-op custom tool, next to the bare runtime exec of the same tool; and robit's RSS across the run.
import Foundation
import RobitExec
import RobitOCI

enum LoopBench {
    struct Options {
        var robit = ".build/release/robit"
        var modelURL = ""
        var long = 1000
        var short = 100
        var bare = 120
        var runtimes: [RuntimeKind] = []
    }

    /// One `robit run`, as measured from outside and read back from its audit log.
    struct RunFigures {
        var steps: Int
        var wallMS: Double
        var maxRSSKiB: Int
        var createMS: Double
        var destroyMS: Double
        var serverMS: Double
        /// Per step, from the audit log: model.request → model.response, model.response → tool.result,
        /// tool.result → the next model.request; and the tool's own duration_ns.
        var modelMS: [Double]
        var toolMS: [Double]
        var betweenMS: [Double]
        var toolDurationMS: [Double]
        /// step → (VmRSS, VmHWM) in KiB, sampled by the fake model as each request arrived.
        var rss: [Int: (Int, Int)]
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    static func run(_ args: [String]) async throws {
        var o = Options()
        var i = 0
        while i < args.count {
            let next = i + 1 < args.count ? args[i + 1] : ""
            switch args[i] {
            case "--robit": o.robit = next
            case "--model-url": o.modelURL = next
            case "--steps": o.long = Int(next) ?? o.long
            case "--short": o.short = Int(next) ?? o.short
            case "--bare": o.bare = Int(next) ?? o.bare
            case "--runtime":
                guard let k = RuntimeKind(rawValue: next) else { throw Failure("unknown runtime \(next)") }
                o.runtimes.append(k)
            default: throw Failure("usage: robit-bench loop --model-url URL [--robit PATH] [--steps N] [--short N] [--bare N] [--runtime R]...")
            }
            i += 2
        }
        guard !o.modelURL.isEmpty else { throw Failure("--model-url is required (start scripts/fake-model.py)") }
        if o.runtimes.isEmpty { o.runtimes = [.crun, .runsc] }
        let dir = NSTemporaryDirectory() + "robit-bench-loop-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/project", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("robit loop benchmark\n".utf8).write(to: URL(fileURLWithPath: dir + "/project/README"))
        chown(dir + "/project", User.sandbox.uid, User.sandbox.gid)
        let control = try Control(modelURL: o.modelURL)

        print("loop benchmark: \(o.short)- and \(o.long)-step `robit run`s, provider openai-compatible (scripts/fake-model.py on 127.0.0.1),")
        print("custom tool noop = [\"true\", \"{{step}}\"], rootfs host, no network; bare = \(o.bare) `RUNTIME exec ID /bin/true 1`")
        print("into a running sandbox, measured before, between and after the runs. Per step is a mean (wall time / steps),")
        print("so it is compared with the bare exec's mean; medians are shown next to it. Times in ms.")
        for kind in o.runtimes {
            let task = dir + "/task-\(kind.rawValue).yaml"
            try Data(taskYAML(runtime: kind, baseURL: o.modelURL).utf8).write(to: URL(fileURLWithPath: task))
            let options = SandboxOptions(runtime: kind, workspace: dir + "/project", user: User.sandbox)
            var bare: [Double] = []
            var runs: [RunFigures] = []
            for steps in [o.short, o.long] {
                bare += try await SandboxBenchmark.bareExecs(options: options, argv: ["/bin/true", "1"], count: o.bare / 2)
                runs.append(try await robitRun(robit: o.robit, task: task, steps: steps, stateDirectory: dir + "/state", control: control))
            }
            bare += try await SandboxBenchmark.bareExecs(options: options, argv: ["/bin/true", "1"], count: o.bare - o.bare / 2)
            // The same execs spaced as the loop spaces its execs (the time a step spends outside the exec).
            let last = runs[runs.count - 1]
            let gapMS = max(0, (last.wallMS - last.createMS - last.destroyMS) / Double(last.steps) - mean(last.toolDurationMS))
            let paced = try await SandboxBenchmark.bareExecs(options: options, argv: ["/bin/true", "1"], count: o.bare / 2,
                                                              gap: .microseconds(Int64(gapMS * 1000)))
            report(kind, bare: bare, paced: (paced, gapMS), runs: runs)
        }
    }

    static func taskYAML(runtime: RuntimeKind, baseURL: String) -> String {
        """
        version: 1
        name: bench-loop
        model:
          provider: openai-compatible
          name: fake-steps-1
          base_url: \(baseURL)
        system: Call noop until the benchmark is over.
        prompt: Benchmark robit's loop.
        workspace:
          path: project
        sandbox:
          runtime: \(runtime.rawValue)
          rootfs: host
          network:
            egress: []
        tools: []
        custom_tools:
          - name: noop
            description: Does nothing
            command: ["true", "{{step}}"]
            parameters: { type: object, properties: { step: { type: integer } }, additionalProperties: false }
        budget: { max_steps: 1000000, max_tokens: 1000000000000, max_wall: 2h }

        """
    }

    static func robitRun(robit: String, task: String, steps: Int, stateDirectory: String, control: Control) async throws -> RunFigures {
        _ = try control.request("POST", "/reset")
        let timeFile = stateDirectory + "-time.txt"
        let out = stateDirectory + "-stdout.json"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/time")
        process.arguments = ["-o", timeFile, "-f", "%M", robit, "run", task, "--model", "fake-steps-\(steps)", "--json"]
        process.environment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                               "XDG_STATE_HOME": stateDirectory, "LANG": "C.UTF-8"]
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle.nullDevice
        let clock = ContinuousClock()
        let t0 = clock.now
        try process.run()
        // robit is /usr/bin/time's child; the fake model samples its RSS as each request arrives.
        let children = "/proc/\(process.processIdentifier)/task/\(process.processIdentifier)/children"
        var robitPID: Int?
        for _ in 0..<2000 where robitPID == nil {
            robitPID = (try? String(contentsOfFile: children, encoding: .utf8)).flatMap { Int($0.split(separator: " ").first ?? "") }
            if robitPID == nil { usleep(500) }
        }
        if let robitPID { _ = try control.request("POST", "/reset?pid=\(robitPID)") }
        while process.isRunning { try await Task.sleep(for: .milliseconds(5)) }
        let wall = clock.now - t0
        guard process.terminationStatus == 0 else {
            throw Failure("robit run (\(steps) steps) exited \(process.terminationStatus): \((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")")
        }
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any] ?? [:]
        guard summary["steps"] as? Int == steps + 1 || summary["steps"] as? Int == steps, let auditPath = summary["audit_path"] as? String else {
            throw Failure("robit run did not take \(steps) steps: \(summary)")
        }
        let stats = try JSONSerialization.jsonObject(with: control.request("GET", "/stats")) as? [String: Any] ?? [:]
        guard stats["requests"] as? Int == steps + 1 else {
            throw Failure("the fake model counted \(stats["requests"] ?? "?") requests for a \(steps)-step run (expected \(steps + 1)); was it shared?")
        }
        var rss: [Int: (Int, Int)] = [:]
        for (key, value) in stats["rss"] as? [String: [Int]] ?? [:] where value.count == 2 {
            if let step = Int(key) { rss[step] = (value[0], value[1]) }
        }
        var figures = RunFigures(steps: steps, wallMS: ms(wall),
                                 maxRSSKiB: Int((try String(contentsOfFile: timeFile, encoding: .utf8)).split(separator: "\n").last ?? "") ?? 0,
                                 createMS: 0, destroyMS: 0, serverMS: Double(stats["handle_ns"] as? Int ?? 0) / 1e6,
                                 modelMS: [], toolMS: [], betweenMS: [], toolDurationMS: [], rss: rss)
        try readAudit(auditPath, into: &figures)
        try? FileManager.default.removeItem(atPath: stateDirectory)
        return figures
    }

    /// Durations from the audit log: sandbox create/destroy, and each step's phases from the records' timestamps.
    static func readAudit(_ path: String, into f: inout RunFigures) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var request: Double?, response: Double?, lastResult: Double?
        for line in text.split(separator: "\n") {
            guard let record = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let type = record["type"] as? String, let ts = record["ts"] as? String, let t = secondsOfDay(ts) else { continue }
            let data = record["data"] as? [String: Any] ?? [:]
            let duration = Double(data["duration_ns"] as? Int ?? 0) / 1e6
            switch type {
            case "sandbox.create": f.createMS = duration
            case "sandbox.destroy": f.destroyMS = duration
            case "model.request":
                if let r = lastResult { f.betweenMS.append(since(r, t)) }
                request = t
            case "model.response":
                if let q = request { f.modelMS.append(since(q, t)) }
                response = t
            case "tool.result":
                if let r = response { f.toolMS.append(since(r, t)) }
                f.toolDurationMS.append(duration)
                lastResult = t
            default: break
            }
        }
    }

    /// "2026-11-26T00:30:20.526941596Z" → seconds since midnight (ms differences between records only).
    static func secondsOfDay(_ ts: String) -> Double? {
        guard let tee = ts.firstIndex(of: "T") else { return nil }
        let parts = ts[ts.index(after: tee)...].dropLast().split(separator: ":")
        guard parts.count == 3, let h = Double(parts[0]), let m = Double(parts[1]), let s = Double(parts[2]) else { return nil }
        return h * 3600 + m * 60 + s
    }

    static func since(_ a: Double, _ b: Double) -> Double { ((b - a) < 0 ? b - a + 86_400 : b - a) * 1000 }

    static func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }

    static func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }

    /// Per step = (wall - create - destroy) / steps, a mean over the run: the overhead is that minus the
    /// bare exec's mean (the runtime exec's time varies: its median is lower than its mean).
    static func report(_ kind: RuntimeKind, bare samples: [Double], paced: (samples: [Double], gapMS: Double), runs: [RunFigures]) {
        let m = SandboxBenchmark.median
        let bare = mean(samples)
        print("\n\(kind.rawValue): bare exec mean \(String(format: "%.2f", bare)) ms, median \(String(format: "%.2f", m(samples))) ms (\(samples.count) execs)")
        // Peak RSS is robit's own VmHWM as the fake model last sampled it. `/usr/bin/time %M` is not:
        // it is the largest of robit and the processes robit reaped, and robit reaps runsc's sandbox.
        print("  steps     wall  create+destroy  per step  overhead/step  (minus fake model)  robit exec  loop w/o exec  (minus fake model)  peak RSS  time %M")
        for r in runs {
            let perStep = (r.wallMS - r.createMS - r.destroyMS) / Double(r.steps)
            let overhead = perStep - bare
            let exec = mean(r.toolDurationMS)
            let model = r.serverMS / Double(r.steps)
            let hwm = r.rss.values.map(\.1).max() ?? 0
            print(String(format: "  %5d %8.0f %15.1f %9.2f %14.2f %19.2f %11.2f %14.2f %19.2f %5.1f MiB %5.1f MiB", r.steps, r.wallMS, r.createMS + r.destroyMS,
                         perStep, overhead, overhead - model, exec, perStep - exec, perStep - exec - model, Double(hwm) / 1024, Double(r.maxRSSKiB) / 1024))
        }
        if let last = runs.last {
            print(String(format: "  the runtime exec as robit runs it (spawn to exit, %d-step run) vs bare: median %.2f vs %.2f ms, mean %.2f vs %.2f ms",
                         last.steps, m(last.toolDurationMS), m(samples), mean(last.toolDurationMS), bare))
            print(String(format: "  bare execs %.2f ms apart, as the loop spaces them: median %.2f ms, mean %.2f ms (%d execs); the %d-step run's overhead against that mean: %.2f ms (%.2f without the fake model)",
                         paced.gapMS, m(paced.samples), mean(paced.samples), paced.samples.count, last.steps,
                         (last.wallMS - last.createMS - last.destroyMS) / Double(last.steps) - mean(paced.samples),
                         (last.wallMS - last.createMS - last.destroyMS - last.serverMS) / Double(last.steps) - mean(paced.samples)))
        }
        if runs.count == 2 {
            let (a, b) = (runs[0], runs[1])
            let marginal = ((b.wallMS - b.createMS - b.destroyMS) - (a.wallMS - a.createMS - a.destroyMS)) / Double(b.steps - a.steps)
            let server = (b.serverMS - a.serverMS) / Double(b.steps - a.steps)
            print(String(format: "  steps %d→%d (fixed costs cancel): %.2f ms per step, overhead %.2f ms (%.2f without the fake model's %.2f ms)",
                         a.steps, b.steps, marginal, marginal - bare, marginal - bare - server, server))
        }
        guard let last = runs.last else { return }
        print(String(format: "  audit log of the %d-step run, mean (median) per step: model.request→response %.2f (%.2f), response→tool.result %.2f (%.2f), tool duration_ns %.2f (%.2f), tool.result→next request %.2f (%.2f)",
                     last.steps, mean(last.modelMS), m(last.modelMS), mean(last.toolMS), m(last.toolMS), mean(last.toolDurationMS), m(last.toolDurationMS),
                     mean(last.betweenMS), m(last.betweenMS)))
        let marks = [1, 10, 100, last.steps / 2, last.steps].filter { last.rss[$0] != nil }
        let series = marks.map { String(format: "%d: %.1f", $0, Double(last.rss[$0]!.0) / 1024) }.joined(separator: ", ")
        let hwm = last.rss.values.map(\.1).max() ?? 0
        print("  RSS (MiB) of robit after N steps of the \(last.steps)-step run: \(series); VmHWM \(String(format: "%.1f", Double(hwm) / 1024))")
    }

    /// Plain HTTP/1.0 to the fake model's control endpoints.
    struct Control {
        var port: UInt16

        init(modelURL: String) throws {
            guard let url = URL(string: modelURL), url.host == "127.0.0.1", let p = url.port else {
                throw Failure("--model-url must be http://127.0.0.1:PORT/v1, got \(modelURL)")
            }
            port = UInt16(p)
        }

        func request(_ method: String, _ path: String) throws -> Data {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Failure("socket: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { throw Failure("cannot reach the fake model on 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
            let head = "\(method) \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
            _ = head.withCString { send(fd, $0, strlen($0), 0) }
            var response = Data()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                response.append(contentsOf: buffer[0..<n])
            }
            guard let end = response.firstRange(of: Data("\r\n\r\n".utf8)) else { throw Failure("the fake model's answer to \(path) has no body") }
            return Data(response[end.upperBound...])
        }
    }
}
