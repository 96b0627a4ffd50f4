import ArgumentParser
import Foundation

struct BundleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle",
        abstract: "Write the OCI bundle a task would run in (config.json, rootfs, seccomp profile) without running it.")

    @Argument(help: "The task file.")
    var task: String

    @Option(help: "Directory to write the bundle into.")
    var out: String

    func run() async throws {
        throw RobitExit(RobitExit.invalidInput, "not yet")
    }
}
