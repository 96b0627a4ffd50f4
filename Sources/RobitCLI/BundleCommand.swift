import ArgumentParser
import Foundation
import RobitAgent
import RobitExec
import RobitOCI

struct BundleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle",
        abstract: "Write the OCI bundle a task would run in, without running it.",
        discussion: """
            Writes config.json (exactly what `robit run` would give the runtime), the rootfs skeleton \
            (or a `rootfs` link to a prepared rootfs), seccomp.json (the policy's profile) and, for runsc, \
            seccomp.bpf, then prints the path of config.json. The bundle can be inspected, validated \
            against the OCI schema, or run by hand with the runtime. Commands run as uid and gid 65532, \
            as in `robit run`; the /work mount names the task's workspace directory, where `robit run` \
            mounts its overlay of that directory (the run's own view, whose changes become the patch).
            """)

    @Argument(help: "The task file.")
    var task: String

    @Option(help: "Directory to write the bundle into (new or empty).")
    var out: String

    func run() async throws {
        let taskFile: TaskFile
        let options: SandboxOptions
        do {
            taskFile = try TaskFile.load(path: task)
            options = try taskFile.sandboxOptions()
        } catch {
            throw RobitExit(.invalidInput, error.description)
        }
        let (bundle, _) = try Sandbox.writeBundle(options, to: out)
        print(bundle.configPath)
    }
}
