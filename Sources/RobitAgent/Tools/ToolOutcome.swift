import Foundation

/// The result of one tool call: what goes back to the model, and what the audit log records.
struct ToolOutcome: Sendable, Equatable {
    var callID: String
    var name: String
    /// The text sent back to the model (secrets redacted, capped at the output limit).
    var content: String
    /// The call failed in a way the model should correct (bad arguments, unknown tool, path outside
    /// /work, missing edit match, timeout, output over the limit). A command's non-zero exit is not
    /// an error: it is reported in `content` and `exitStatus`.
    var isError: Bool
    /// What the sandbox reported about the command this call ran; nil when nothing ran (the call was
    /// refused first).
    var exec: ExecFacts?
    /// The captured stdout and stderr of what ran, secrets redacted (for the audit log).
    var stdout: Data
    var stderr: Data
    /// Output was cut: by the capture limit, or in `content` by the output limit.
    var truncated: Bool

    init(callID: String, name: String, content: String, isError: Bool, exec: ExecFacts? = nil,
                stdout: Data = Data(), stderr: Data = Data(), truncated: Bool = false) {
        self.callID = callID
        self.name = name
        self.content = content
        self.isError = isError
        self.exec = exec
        self.stdout = stdout
        self.stderr = stderr
        self.truncated = truncated
    }

    /// The exit status of what ran in the sandbox; nil when nothing ran.
    var exitStatus: Int32? { exec?.exitCode }
    var duration: Duration { exec?.duration ?? .zero }
    /// The command executed in the sandbox for this call; nil when nothing ran.
    var argv: [String]? { exec?.argv }
}
