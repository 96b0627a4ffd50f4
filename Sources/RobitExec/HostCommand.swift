import Foundation

/// A host program that robit runs outside any sandbox (cp, chown and git for the run's workspace),
/// started by robit's own spawn like the runtimes: in a subreaper (`Subreaper`), the sweep that reaps
/// the runtimes' orphans knows these processes and never takes their exit status.
public enum HostCommand {
    public struct Result: Sendable {
        public var status: TerminationStatus
        public var stdout: Data
        public var stderr: Data
    }

    /// Runs `executable` to its end on the calling thread (it blocks) with `environment` ("NAME=value";
    /// default: only PATH and LANG) and stdin from /dev/null. SIGINT does not stop it: a run that was
    /// interrupted still writes its patch. Throws when the program cannot be started.
    public static func run(_ executable: String, _ arguments: [String], environment: [String]? = nil) throws -> Result {
        var process = ChildProcess(executable: executable, arguments: arguments, outputLimit: 1 << 32, interruptible: false)
        if let environment { process.environment = environment }
        let r = try process.runBlocking()
        return Result(status: r.status, stdout: r.stdout.data, stderr: r.stderr.data)
    }
}
