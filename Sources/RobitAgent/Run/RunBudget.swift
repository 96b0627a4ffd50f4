/// What a run has used, against the task's budget.
public struct RunUsage: Sendable, Equatable {
    public var steps = 0
    var inputTokens = 0
    var outputTokens = 0
    /// micro-USD; nil when the model has no known price.
    public var costMicroUSD: Int64? = 0
    public var toolCalls = 0
    public var tokens: Int { inputTokens + outputTokens }

    public init() {}
}

/// Which limit ended a run.
enum BudgetLimit: String, Sendable {
    case steps = "max_steps"
    case tokens = "max_tokens"
    case wall = "max_wall"
    case cost = "max_cost_usd"
    case repeatedCall = "repeated_call"
    case auditLog = "max_audit_log"
}

extension TaskFile.Budget {
    /// The first limit `usage` has reached after `elapsed`, if any.
    func exhausted(by usage: RunUsage, elapsed: Duration) -> BudgetLimit? {
        if usage.steps >= maxSteps { return .steps }
        if usage.tokens >= maxTokens { return .tokens }
        if elapsed >= maxWall { return .wall }
        if let max = maxCostMicroUSD, let cost = usage.costMicroUSD, cost >= max { return .cost }
        return nil
    }
}

/// Detects the model making the same call again and again.
struct RepeatDetector {
    /// The same call this many times in a row is not run again: the model gets a tool error instead.
    static let refuseAfter = 3
    /// ... and this many ends the run (exit 3).
    static let stopAfter = 6

    private var lastKey: String?
    private(set) var count = 0

    /// Records a call; returns how many times in a row it has now been made.
    mutating func record(name: String, arguments: String) -> Int {
        let key = name + "\u{0}" + arguments
        if key == lastKey { count += 1 } else { lastKey = key; count = 1 }
        return count
    }
}
