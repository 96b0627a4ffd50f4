import RobitOCI

extension TaskFile {
    /// Limits of the whole run; whichever is reached first stops it (exit code 3).
    struct Budget: Sendable, Equatable {
        /// Model turns (default 50).
        var maxSteps: Int
        /// Input plus output tokens over the run (default 1,000,000).
        var maxTokens: Int
        /// Wall-clock time of the run (default 30m).
        var maxWall: Duration
        /// Cost ceiling in micro-USD (1 USD = 1,000,000); nil = no cost limit beyond `maxTokens`.
        var maxCostMicroUSD: Int64?
        /// What the run may add to its audit log and blobs (default 1GiB): the run ends (exit 3) before
        /// a model's output fills the disk.
        var maxAuditLog: ByteCount = .gibibytes(1)

        init(maxSteps: Int = 50, maxTokens: Int = 1_000_000, maxWall: Duration = .seconds(30 * 60), maxCostMicroUSD: Int64? = nil) {
            self.maxSteps = maxSteps
            self.maxTokens = maxTokens
            self.maxWall = maxWall
            self.maxCostMicroUSD = maxCostMicroUSD
        }
    }
}
