import RobitExec

/// robit's exit statuses: the one table the CLI exits with and `run.end` records (README "Exit codes").
public enum ExitStatus: Int32, Sendable, CaseIterable {
    case ok = 0
    /// The run ended without the model finishing, for a reason no other status names.
    case failed = 1
    /// A task file, flag or argument robit refuses; nothing ran.
    case invalidInput = 2
    case budgetExhausted = 3
    case providerFailed = 4
    /// The sandbox could not be set up, failed, or was not fully removed.
    case sandboxFailed = 5
    /// An audit log failed verification or could not be written.
    case auditFailed = 6
    /// `robit audit replay`: the replay did not do what the log recorded, or was refused because the
    /// sandbox would not have the recorded policy.
    case replayDiverged = 7
    /// `robit sandbox run`: the command hit its timeout and was killed.
    case timedOut = 124
    case interrupted = 130
    /// `robit sandbox run`: the command was killed for running out of memory.
    case outOfMemory = 137

    public var code: Int32 { rawValue }
}

extension ExitStatus {
    /// The status a sandbox failure ends robit with: refused input 2, an interrupt 130, anything else 5.
    public init(_ error: SandboxError) {
        switch error.code {
        case .invalidInput: self = .invalidInput
        case .interrupted: self = .interrupted
        default: self = .sandboxFailed
        }
    }
}
