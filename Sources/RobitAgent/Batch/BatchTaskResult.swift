import Foundation

/// How one task of a batch ended: its `robit run` summary, or why it did not run.
public struct BatchTaskResult: Sendable {
    var index: Int
    public var path: String
    public var name: String?
    /// A run status (`done`, `budget`, `provider_failed`, `sandbox_failed`, `interrupted`, `failed`),
    /// or `invalid` (the task file was refused), `skipped` (its name is held by another robit),
    /// `not_started` (the batch was interrupted first) or `crashed` (robit run ended by a signal).
    public var status: String
    /// nil when it did not run (skipped, not started).
    public var exitCode: Int32?
    public var message: String
    public var run: String?
    public var steps: Int?
    public var tokens: Int?
    public var costMicroUSD: Int64?
    public var elapsedMS: Int = 0
    public var patchPath: String?
    public var prURL: String?
    public var auditPath: String?
    public var head: String?
    /// The task's robit run stderr.
    public var log: String?

    init(index: Int, path: String, name: String?, status: String, exitCode: Int32?, message: String, log: String? = nil) {
        self.index = index
        self.path = path
        self.name = name
        self.status = status
        self.exitCode = exitCode
        self.message = message
        self.log = log
    }

    /// Takes what the task's `robit run --json` printed.
    mutating func summary(_ object: [String: Any]) {
        status = object["status"] as? String ?? status
        message = object["message"] as? String ?? message
        run = object["run"] as? String
        steps = object["steps"] as? Int
        tokens = object["tokens"] as? Int
        costMicroUSD = (object["cost_micro_usd"] as? Int).map(Int64.init)
        patchPath = object["patch_path"] as? String
        prURL = object["pr_url"] as? String
        auditPath = object["audit_path"] as? String
        head = object["head"] as? String
    }

    /// One line of `robit batch --json`: keys sorted.
    public var jsonText: String {
        func string(_ s: String?) -> WireJSON { s.map { .string($0) } ?? .null }
        let members: [(String, WireJSON)] = [
            ("task", .string(path)), ("name", string(name)), ("status", .string(status)),
            ("exit_code", exitCode.map { .int(Int($0)) } ?? .null), ("message", .string(message)), ("run", string(run)),
            ("steps", steps.map { .int($0) } ?? .null), ("tokens", tokens.map { .int($0) } ?? .null),
            ("cost_usd", costMicroUSD.map { .number(Double($0) / 1_000_000) } ?? .null),
            ("cost_micro_usd", costMicroUSD.map { .int(Int($0)) } ?? .null), ("elapsed_ms", .int(elapsedMS)),
            ("patch_path", string(patchPath)), ("pr_url", string(prURL)), ("audit_path", string(auditPath)), ("head", string(head)),
            ("log", string(log)),
        ]
        return WireJSON.object(members.sorted { $0.0 < $1.0 }).text
    }
}
