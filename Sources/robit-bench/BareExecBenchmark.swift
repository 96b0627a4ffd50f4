import Foundation
import RobitOCI
import RobitExec

extension SandboxBenchmark {
    /// `scripts/bench loop`'s baseline: the wall time (ms) of `count` bare `RUNTIME exec --user 65532:65532 ID ARGV`
    /// into one running sandbox made with `options`, after three unmeasured warm-up execs. Create and destroy
    /// are not timed.
    /// - Parameter gap: a pause before each exec (an agent loop's execs come that far apart).
    public static func bareExecs(options: SandboxOptions, argv: [String], count: Int, gap: Duration = .zero) async throws -> [Double] {
        let runtime = try Runtime.locate(options.runtime)
        let clock = ContinuousClock()
        let user = options.user.map { "\($0.uid):\($0.gid)" } ?? "0:0"
        let box = try await Sandbox.create(options)
        var times: [Double] = []
        do {
            let bare = ChildProcess(executable: runtime.path,
                                    arguments: runtime.globalArguments + ["exec", "--user", user, box.id] + argv,
                                    outputLimit: 4096, interruptible: false)
            for i in 0..<(count + 3) {
                if gap > .zero { try await Task.sleep(for: gap) }
                let t0 = clock.now
                let b = try await bare.run()
                let t1 = clock.now
                guard b.status == .exited(0) else {
                    throw SandboxError(.execFailed, "bare \(options.runtime.rawValue) exec of \(argv) failed: \(b.status) \(b.stderr.text)")
                }
                if i >= 3 { times.append(ms(t1 - t0)) }
            }
        } catch {
            await box.destroy()
            throw error
        }
        await box.destroy()
        return times
    }
}
