import ArgumentParser
import Foundation
import RobitAgent
import RobitAudit

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create an Ed25519 key pair for signing audit checkpoints.",
        discussion: """
            Writes audit.key (private, mode 0600) and audit.key.pub into --out (default \
            $XDG_CONFIG_HOME/robit, i.e. ~/.config/robit, where robit looks for the signing key when \
            neither --key nor ROBIT_AUDIT_KEY names one). Keep the public key (or its key id) somewhere \
            else too: `robit audit verify --key` pins it. Existing keys are never overwritten.
            """)

    @Option(help: "Directory to write audit.key and audit.key.pub into.")
    var out: String?

    func run() throws {
        let directory = out ?? AuditKeyLocation.defaultDirectory()
        do {
            let (privatePath, publicPath, key) = try AuditKeyLocation.generate(into: directory)
            print(publicPath)
            printError("robit: wrote \(privatePath) (mode 0600) and \(publicPath); key id \(key.keyID)")
        } catch {
            throw RobitExit(.invalidInput, error.message)
        }
    }
}
