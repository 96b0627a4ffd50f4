import ArgumentParser
import Foundation
import RobitTestSupport
import Testing
@testable import RobitCLI
@testable import RobitAgent
import RobitExec
import RobitOCI

/// The robit binary built next to the tests.
enum CLI {
    static var packageRoot: String { Repository.root }

    /// RobitTestSupport's `RobitBinary` (a missing binary fails under CI=true).
    static var binary: String { (try? RobitBinary.path()) ?? packageRoot + "/.build/debug/robit" }

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    static func run(_ args: [String], environment: [String: String]? = nil) throws -> Result {
        try run(binary: binary, args, environment: environment)
    }

    /// Runs `binary` with stdin from /dev/null; stdout and stderr go to files, so neither can fill a
    /// pipe while the other is read.
    static func run(binary: String, _ args: [String], environment: [String: String]? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        if let environment { p.environment = environment }
        let base = NSTemporaryDirectory() + "robit-cli-" + UUID().uuidString
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
        }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = out
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        try? out.close()
        try? err.close()
        let o = FileManager.default.contents(atPath: base + ".out") ?? Data()
        let e = FileManager.default.contents(atPath: base + ".err") ?? Data()
        // As a shell reports it: 128 + N for a process killed by signal N.
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return Result(status: status, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "robit-cli-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

@Suite struct CLITests {
    /// Every subcommand is reachable and has help (like apple/container's HelpCommandTests).
    @Test func everySubcommandHasHelp() throws {
        func walk(_ command: any ParsableCommand.Type, _ path: [String]) throws {
            let r = try CLI.run(path + ["--help"])
            #expect(r.status == 0, "\(path) --help exited \(r.status): \(r.stderr)")
            #expect(r.stdout.contains("USAGE: robit"), "\(path)")
            for sub in command.configuration.subcommands {
                try walk(sub, path + [sub.configuration.commandName ?? ""])
            }
        }
        try walk(RobitCommand.self, [])
    }

    @Test func versionIsPrinted() throws {
        let r = try CLI.run(["--version"])
        #expect(r.status == 0)
        #expect(r.stdout == "robit \(robitVersion)\n")
    }

    @Test(arguments: [
        ["bogus"], ["sandbox", "run"], ["sandbox", "run", "--"], ["sandbox", "run", "--memory", "lots", "--", "true"],
        ["sandbox", "run", "--runtime", "docker", "--", "true"], ["sandbox", "run", "--user", "0:0", "--", "true"],
        ["sandbox", "run", "--timeout", "-1s", "--", "true"], ["sandbox", "run", "--workspace", "/", "--", "true"],
        ["sandbox", "run", "--workspace", "/etc", "--", "true"], ["sandbox", "run", "--workspace", "/nonexistent-robit", "--", "true"],
        ["sandbox", "run", "--policy", "/nonexistent-policy.json", "--", "true"], ["bundle"], ["bundle", "x.yaml"],
        ["doctor", "--fix", "--bogus"],
        ["sandbox", "run", "--user", "4294967295:4294967295", "--", "id"], ["sandbox", "run", "--user", "1000:0", "--", "id"],
        ["sandbox", "run", "--rootfs", "/", "--", "id"], ["sandbox", "run", "--rootfs", "/etc", "--", "id"],
        ["sandbox", "run", "--rootfs", "relative/dir", "--", "id"],
    ])
    func invalidInputExitsTwo(args: [String]) throws {
        let r = try CLI.run(args)
        #expect(r.status == 2, "\(args): \(r.status) \(r.stderr)")
        #expect(!r.stderr.isEmpty)
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("crashed"))
    }

    @Test func bundleWritesAValidatedConfigAndPrintsItsPath() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/ws", withIntermediateDirectories: true)
        chown(dir + "/ws", 1000, 1000)
        try """
            version: 1
            name: b
            model: {provider: openai, name: gpt-4.1-mini}
            prompt: hi
            workspace: {path: ws}
            sandbox: {runtime: crun, limits: {memory: 256MiB, pids: 99, disk: 64MiB}}
            """.write(toFile: dir + "/task.yaml", atomically: true, encoding: .utf8)
        let r = try CLI.run(["bundle", dir + "/task.yaml", "--out", dir + "/out"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == dir + "/out/config.json\n")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/out/config.json"))) as? [String: Any]
        let linux = config?["linux"] as? [String: Any]
        let resources = linux?["resources"] as? [String: Any]
        #expect((resources?["pids"] as? [String: Any])?["limit"] as? Int == 99)
        // init runs as nobody; a task's commands run as robit's sandbox user (as in `robit run`, whose
        // overlay shows the workspace owner's files as that user's), named in the curated /etc/passwd.
        #expect((config?["process"] as? [String: Any])?["user"] as? [String: Int] == ["uid": 65534, "gid": 65534, "umask": 63])
        let passwd = try String(contentsOfFile: dir + "/out/rootfs/etc/passwd", encoding: .utf8)
        #expect(passwd.contains("robit:x:65532:65532:"))
        #expect(FileManager.default.fileExists(atPath: dir + "/out/seccomp.json"))
        let validator = URL(fileURLWithPath: CLI.packageRoot + "/../shared/reference/validate-oci-config.py").standardizedFileURL.path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", validator, dir + "/out/config.json"]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)

        // A second bundle into the same directory is refused rather than mixed in.
        let again = try CLI.run(["bundle", dir + "/task.yaml", "--out", dir + "/out"])
        #expect(again.status == 2)
    }

    @Test func bundleRefusesAnOutputDirectoryOthersCanRedirect() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/ws", withIntermediateDirectories: true)
        chown(dir + "/ws", 1000, 1000)
        try FileManager.default.createDirectory(atPath: dir + "/open", withIntermediateDirectories: true)
        chmod(dir + "/open", 0o777)
        try "version: 1\nmodel: {provider: openai, name: m}\nprompt: p\nworkspace: {path: ws}\n".write(toFile: dir + "/t.yaml", atomically: true, encoding: .utf8)
        let r = try CLI.run(["bundle", dir + "/t.yaml", "--out", dir + "/open/b"])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("writable by group or others"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/open/b"))
        // A symlink planted as the output directory is not followed.
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/ws")
        let r2 = try CLI.run(["bundle", dir + "/t.yaml", "--out", dir + "/link"])
        #expect(r2.status == 2, "\(r2.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/ws").isEmpty)
    }

    @Test func bundleErrorsNameFileLineAndKey() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "version: 1\nmodel: {provider: openai, name: m}\nprompt: p\nsandbox:\n  limits:\n    memroy: 1GiB\n"
            .write(toFile: dir + "/t.yaml", atomically: true, encoding: .utf8)
        let r = try CLI.run(["bundle", dir + "/t.yaml", "--out", dir + "/out"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(dir)/t.yaml:6: sandbox.limits.memroy"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))

        try "{\"capabilities\": [], \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"mkdri\"], \"action\": \"SCMP_ACT_ALLOW\"}]}}"
            .write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        try "version: 1\nmodel: {provider: openai, name: m}\nprompt: p\nsandbox: {policy: bad.json}\n"
            .write(toFile: dir + "/t2.yaml", atomically: true, encoding: .utf8)
        let r2 = try CLI.run(["bundle", dir + "/t2.yaml", "--out", dir + "/out2"])
        #expect(r2.status == 2)
        #expect(r2.stderr.contains("bad.json:1: seccomp.syscalls[0].names[0]") && r2.stderr.contains("mkdri"), "\(r2.stderr)")
    }

    /// `robit bundle` and `robit run` agree on a task: a root-owned workspace (a CI checkout) is
    /// bundled as it is run, as the sandbox user 65532.
    @Test func bundleOfARootOwnedWorkspaceShowsWhatRunRuns() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/ws", withIntermediateDirectories: true)
        chown(dir + "/ws", 0, 0)
        try "version: 1\nmodel: {provider: openai, name: m}\nprompt: p\nworkspace: {path: ws}\n".write(toFile: dir + "/t.yaml", atomically: true, encoding: .utf8)
        let r = try CLI.run(["bundle", dir + "/t.yaml", "--out", dir + "/out"])
        #expect(r.status == 0, "\(r.stderr)")
        let spec = try JSONDecoder().decode(Spec.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/out/config.json")))
        // config.json's process is init (nobody); commands are exec'd as the user /etc/passwd names.
        let passwd = try String(contentsOfFile: dir + "/out/rootfs/etc/passwd", encoding: .utf8)
        #expect(passwd.contains("robit:x:65532:65532:"), "\(passwd)")
        #expect(spec.mounts?.contains { $0.destination == "/work" && $0.source == dir + "/ws" } == true, "\(String(describing: spec.mounts))")
        let task = try TaskFile.load(path: dir + "/t.yaml")
        #expect(try task.sandboxOptions().user == RunWorkspace.sandboxUser)
    }

    @Test func secretsInRobitsEnvironmentDoNotReachTheBundle() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/ws", withIntermediateDirectories: true)
        chown(dir + "/ws", 1000, 1000)
        try "version: 1\nmodel: {provider: openai, name: m}\nprompt: p\nworkspace: {path: ws}\n".write(toFile: dir + "/t.yaml", atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env["OPENAI_API_KEY"] = "sk-robit-test-secret-4242"
        let r = try CLI.run(["bundle", dir + "/t.yaml", "--out", dir + "/out"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let config = try String(contentsOfFile: dir + "/out/config.json", encoding: .utf8)
        #expect(!config.contains("sk-robit-test-secret-4242"))
        #expect(!config.contains("OPENAI_API_KEY"))
    }
}

@Suite struct ExampleTests {
    @Test func exampleTasksLoad() throws {
        let dir = CLI.packageRoot + "/examples"
        let files = (FileManager.default.enumerator(atPath: dir)?.compactMap { $0 as? String } ?? []).filter { $0.hasSuffix("task.yaml") }
        #expect(!files.isEmpty)
        for file in files {
            let task = try TaskFile.load(path: dir + "/" + file)
            #expect(try task.sandboxOptions().policy.seccomp == SandboxPolicy.builtInDefault().seccomp, "\(file)")
        }
    }
}
