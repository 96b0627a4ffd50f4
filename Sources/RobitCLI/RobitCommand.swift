import ArgumentParser
import Foundation
import RobitAgent
import RobitExec

public let robitVersion = "0.1.0"

/// `robit`: run LLM agents headlessly inside OCI sandboxes.
public struct RobitCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "robit",
        abstract: "Run LLM agents headlessly inside real OCI sandboxes (gVisor runsc, crun or runc).",
        discussion: """
            Every command an agent runs executes inside one sandbox per run: read-only root \
            filesystem, no capabilities, seccomp, no_new_privs, a non-root user, cgroup limits \
            and no network. Only the workspace (at /work) and a size-limited /tmp are writable.

            Start here:
              robit run task.yaml          run an agent task (see examples/hello)
              robit batch tasks/ --jobs 2  run many tasks, each in its own sandbox
              robit doctor                 check the host (--fix repairs)
              robit sandbox run -- id      run one command in a fresh sandbox
              robit bundle T.yaml --out D  write a task's OCI bundle, without running it
              robit keygen                 create the key that signs audit logs
              robit audit verify LOG       check a run's audit log
              robit audit replay LOG       run its tool calls again and report divergences
              robit audit report LOG --html OUT.html   one self-contained page for a reviewer

            Exit codes: 0 done, 2 invalid input, 3 budget exhausted, 4 model provider failed, \
            5 sandbox failed, 6 audit verification failed, 7 a replay diverged, 130 interrupted.
            """,
        version: "robit \(robitVersion)",
        subcommands: [RunCommand.self, BatchCommand.self, RunsCommand.self, ResumeCommand.self, SandboxCommand.self, BundleCommand.self, DoctorCommand.self, KeygenCommand.self, AuditCommand.self])

    public init() {}

    /// Parses the command line, runs the command and exits with robit's exit codes.
    public static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // Fast path: `--version` must not pay for anything else.
        if arguments == ["--version"] {
            print("robit \(robitVersion)")
            Foundation.exit(0)
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Foundation.exit(0)
        } catch {
            finish(with: error)
        }
    }

    static func finish(with error: any Error) -> Never {
        switch error {
        case let e as ExitCode:
            Foundation.exit(e.rawValue)
        case let e as RobitExit:
            if !e.message.isEmpty { printError("robit: \(e.message)") }
            Foundation.exit(e.code)
        case let e as SandboxError:
            printError("robit: \(e.message)")
            Foundation.exit(ExitStatus(e).code)
        default:
            let code = RobitCommand.exitCode(for: error)
            if code == .success {
                // --help and friends.
                print(RobitCommand.fullMessage(for: error))
                Foundation.exit(0)
            }
            printError(RobitCommand.fullMessage(for: error))
            Foundation.exit(ExitStatus.invalidInput.code)
        }
    }
}

/// An error that ends robit with a given exit code.
public struct RobitExit: Error {
    public var code: Int32
    public var message: String

    /// `code` is a status of `ExitStatus`, or (`robit sandbox run`) the command's own exit status.
    public init(_ code: Int32, _ message: String = "") {
        self.code = code
        self.message = message
    }

    public init(_ status: ExitStatus, _ message: String = "") {
        self.init(status.code, message)
    }
}

func printError(_ message: String) {
    writeStandardError(message + "\n")
}

/// Straight to fd 2 (the progress lines write several per step): no FileHandle and no Data in between.
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}
