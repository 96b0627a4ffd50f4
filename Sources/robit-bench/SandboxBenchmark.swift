import Foundation
import RobitOCI
import RobitExec

/// `scripts/bench sandbox`: robit's cost against the bare runtime, measured in one process with the
/// same process-spawning code on both sides, interleaved so that machine noise hits both alike.
public enum SandboxBenchmark {
    public struct Row: Sendable {
        public var runtime: RuntimeKind
        public var warmRobit: [Double]
        public var warmBare: [Double]
        public var coldRobit: [Double]
        public var coldBare: [Double]
    }

    public static func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return .nan }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func ms(_ d: Duration) -> Double { Double(d.nanoseconds) / 1e6 }

    public static func run(runtime kind: RuntimeKind, warm: Int, cold: Int, workspace: String) async throws -> Row {
        let runtime = try Runtime.locate(kind)
        let clock = ContinuousClock()
        let options = SandboxOptions(runtime: kind, workspace: workspace, user: User.sandbox)
        var row = Row(runtime: kind, warmRobit: [], warmBare: [], coldRobit: [], coldBare: [])

        // Warm: one sandbox; `true` exec'd through robit, and by a bare `RUNTIME exec` of the same container.
        let box = try await Sandbox.create(options)
        do {
            let bare = ChildProcess(executable: runtime.path,
                                    arguments: runtime.globalArguments + ["exec", "--user", "65532:65532", box.id, "/bin/true"],
                                    outputLimit: 4096, interruptible: false)
            for i in 0..<(warm + 3) {
                let t0 = clock.now
                let r = try await box.exec(ExecRequest(argv: ["/bin/true"]))
                let t1 = clock.now
                let b = try await bare.run()
                let t2 = clock.now
                guard r.status == .exited(0), b.status == .exited(0) else {
                    throw SandboxError(.execFailed, "benchmark command failed: robit \(r.status) \(r.stderr.text), bare \(b.status) \(b.stderr.text)")
                }
                if i >= 3 {  // warm-up
                    row.warmRobit.append(ms(t1 - t0))
                    row.warmBare.append(ms(t2 - t1))
                }
            }
        } catch {
            await box.destroy()
            throw error
        }

        // Cold: robit's bundle + create against a bare `RUNTIME run --detach` of the same bundle, copied.
        let template = NSTemporaryDirectory() + "robit-bench-" + Sandbox.newID()
        try FileManager.default.copyItem(atPath: box.bundle.path, toPath: template)
        await box.destroy()
        defer { try? FileManager.default.removeItem(atPath: template) }
        for _ in 0..<cold {
            let t0 = clock.now
            let fresh = try await Sandbox.create(options)
            let t1 = clock.now
            await fresh.destroy()

            let id = Sandbox.newID()
            let bundle = options.state.directory(for: id)
            try FileManager.default.copyItem(atPath: template, toPath: bundle)
            var spec = try OCIBundle(path: bundle).loadSpec()
            spec.root?.path = bundle + "/rootfs"
            spec.linux?.cgroupsPath = SpecGenerator.cgroupsPath(id: id)
            spec.mounts = spec.mounts?.map { m in
                var m = m
                if let s = m.source, s.hasPrefix(box.bundle.path) { m.source = bundle + s.dropFirst(box.bundle.path.count) }
                return m
            }
            try OCIBundle.encode(spec).write(to: URL(fileURLWithPath: bundle + "/config.json"))
            try options.state.writeOwner(id: id, runtime: kind, workspace: workspace)
            let t2 = clock.now
            let r = try await ChildProcess(executable: runtime.path, arguments: runtime.runDetached(bundle: bundle, id: id),
                                           stdout: .null, stderr: .file(bundle + "/runtime.log"), interruptible: false).run()
            let t3 = clock.now
            let adopted = await runtime.adoptDetached(bundle: bundle, id: id)
            _ = await Janitor.teardown(id: id, runtimes: [kind], state: options.state, adopted: adopted)
            guard r.status == .exited(0) else { throw SandboxError(.createFailed, "bare \(kind.rawValue) run failed: \(r.status)") }
            row.coldRobit.append(ms(t1 - t0))
            row.coldBare.append(ms(t3 - t2))
        }
        return row
    }
}
