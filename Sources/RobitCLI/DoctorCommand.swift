import ArgumentParser
import Foundation
import RobitExec

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check runtimes, cgroups, nft, user namespaces, seccomp and leftover sandboxes.",
        discussion: "Each problem is printed with the command that fixes it. With --fix, robit repairs what it can: it moves hugetlb off the cgroup2 tree for crun and removes containers, cgroups and state that killed robits left behind. Exits 5 when a check fails.")

    @Flag(help: "Repair what can be repaired.")
    var fix = false

    func run() async throws {
        let findings = await Doctor.run(fix: fix)
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
        if findings.contains(where: { $0.level == .fail }) { throw RobitExit(RobitExit.sandboxFailed) }
    }
}
