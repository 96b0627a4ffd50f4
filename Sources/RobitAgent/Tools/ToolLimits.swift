import RobitOCI

/// Limits applied to every tool call.
struct ToolLimits: Sendable, Equatable {
    /// Wall-clock limit of one call; the shell tool's `timeout_seconds` may only lower it.
    var timeout: Duration
    /// Bytes of output kept per call: stdout and stderr are captured up to this much each, and the
    /// content sent to the model is cut at this size.
    var output: Int
    /// Read-only calls of one batch run at most this many at a time.
    var concurrency: Int

    init(timeout: Duration = .seconds(30), output: Int = 1 << 20, concurrency: Int = 4) {
        self.timeout = timeout
        self.output = max(1024, output)
        self.concurrency = max(1, concurrency)
    }

    /// The limits a task file sets (`sandbox.limits.timeout` and `.output`).
    init(task: TaskFile) {
        let output = task.sandbox.limits.output.bytes
        self.init(timeout: task.sandbox.limits.timeout, output: output > UInt64(Int.max) ? Int.max : Int(output))
    }

    var timeoutSeconds: Int {
        let (s, a) = timeout.components
        return Int(max(1, s + (a > 0 ? 1 : 0)))
    }
}
