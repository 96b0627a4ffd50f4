import ArgumentParser
import Foundation
import RobitAgent
import RobitAudit
import RobitExec

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check runtimes, cgroups, nft, user namespaces, seccomp and leftover sandboxes.",
        discussion: "Each problem is printed with the command that fixes it. With --fix, robit repairs what it can: it moves hugetlb off the cgroup2 tree for crun and removes containers, cgroups and state that killed robits left behind. Exits 5 when a check fails.")

    @Flag(help: "Repair what can be repaired.")
    var fix = false

    func run() async throws {
        var findings = await Doctor.run(fix: fix)
        findings.append(contentsOf: Self.hostTools())
        let tty = isatty(STDOUT_FILENO) == 1
        for f in findings {
            let mark: String
            switch f.level {
            case .ok: mark = tty ? "\u{1b}[32mok\u{1b}[0m  " : "ok  "
            case .warn: mark = tty ? "\u{1b}[33mwarn\u{1b}[0m" : "warn"
            case .fail: mark = tty ? "\u{1b}[31mFAIL\u{1b}[0m" : "FAIL"
            }
            print("\(mark) \(f.subject.padding(toLength: 16, withPad: " ", startingAt: 0)) \(f.message)")
            if let fixCommand = f.fix, f.level != .ok { print("     \(String(repeating: " ", count: 16)) fix: \(fixCommand)") }
        }
        if findings.contains(where: { $0.level == .fail }) { throw RobitExit(.sandboxFailed) }
    }

    /// The audit signing key, and git (for patches).
    static func hostTools() -> [Finding] {
        var out: [Finding] = []
        do {
            if let (key, path) = try AuditKeyLocation.resolve(explicit: nil) {
                out.append(Finding(level: .ok, subject: "audit key", message: "\(path) signs audit logs (key id \(key.publicKey.keyID))"))
            } else {
                out.append(Finding(level: .warn, subject: "audit key", message: "no signing key: audit logs are chained but unsigned",
                                   fix: "robit keygen"))
            }
        } catch {
            out.append(Finding(level: .fail, subject: "audit key", message: error.message,
                               fix: error.message.contains("chmod") ? "chmod 600 <key>" : "robit keygen --out DIR; export ROBIT_AUDIT_KEY=DIR/audit.key"))
        }
        let git = ["/usr/bin/git", "/bin/git", "/usr/local/bin/git"].first { FileManager.default.isExecutableFile(atPath: $0) }
        out.append(git.map { Finding(level: .ok, subject: "git", message: "\($0) (writes the run's patch)") }
            ?? Finding(level: .warn, subject: "git", message: "git is missing: robit run cannot write output.patch", fix: "apt-get install git"))
        return out
    }
}
