import RobitExec

/// What the tool loop needs of a sandbox: run a command, and say which connections the egress filter
/// dropped. `Sandbox` is the real one; tests of the loop's logic use an in-memory one.
protocol ToolSandbox: Sendable {
    var id: String { get }
    func exec(_ request: ExecRequest) async throws(SandboxError) -> ExecResult
    /// The connection attempts dropped since the last call (empty without a network).
    func deniedSinceLastRead() async -> [DeniedDestination]
}

extension Sandbox: ToolSandbox {
    func deniedSinceLastRead() async -> [DeniedDestination] {
        await network?.deniedSinceLastRead() ?? []
    }
}
