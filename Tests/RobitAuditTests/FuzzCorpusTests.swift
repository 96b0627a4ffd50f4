import Foundation
import Testing
@testable import RobitAudit

/// Replays the `canonical` fuzz seeds (fuzz/corpus/canonical) and every crash kept from fuzzing
/// (fuzz/crashes/canonical) through the fuzz target's own code path (`AuditFuzzing.canonical`, shared with
/// Sources/robit-fuzz). A regression shows as a trap in this test process.
struct AuditFuzzCorpusTests {
    static func files(_ directory: String) -> [String] {
        let path = AuditTestSupport.repositoryRoot + "/fuzz/" + directory + "/canonical"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted().map { path + "/" + $0 }
    }

    @Test func replaysSeeds() throws {
        let seeds = Self.files("corpus")
        #expect(!seeds.isEmpty, "no seeds in fuzz/corpus/canonical")
        let directory = try AuditFuzzing.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for path in seeds {
            AuditFuzzing.canonical(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))), directory: directory)
        }
    }

    /// Each kept crash runs in a child process (an exit test); `open-*` files are bugs not fixed yet, whose
    /// crash is a known issue (see Tests/RobitAgentTests/FuzzCorpusTests.swift).
    @Test(arguments: Self.files("crashes"))
    func replaysKeptCrash(path: String) async {
        if (path as NSString).lastPathComponent.hasPrefix("open-") {
            await withKnownIssue("an open robit bug found by fuzzing (fuzz/crashes/README.md)") {
                await Self.replay(path: path)
            }
        } else {
            await Self.replay(path: path)
        }
    }

    static func replay(path: String) async {
        await #expect(processExitsWith: .success, "fuzz/crashes: \(path)") { [path] in
            let directory = try AuditFuzzing.makeDirectory()
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let elapsed = ContinuousClock().measure { AuditFuzzing.canonical(bytes, directory: directory) }
            try? FileManager.default.removeItem(atPath: directory)
            if elapsed > .seconds(2) { exit(3) }  // a kept timeout: no input this small may take seconds
        }
    }

    /// The seed logs are real: they verify as they are, and the synthetic one (placeholder hashes) verifies
    /// once the harness has repaired its chain, so the fuzzer starts from inputs that reach the deep checks.
    @Test func seedLogsVerify() throws {
        let root = AuditTestSupport.repositoryRoot + "/fuzz/corpus/canonical/"
        let directory = try AuditFuzzing.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["log-unsigned", "log-signed"] {
            AuditFuzzing.writeLog(try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + name))), directory: directory)
            let verdict = AuditVerifier.verify(directory: directory)
            // The real logs' blob is not in the scratch directory: they fail exactly there.
            #expect(verdict.failure?.problem == .missingBlob, "\(name): \(verdict.failure.map(\.description) ?? "ok")")
        }
        let synthetic = try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + "log-synthetic-blob")))
        AuditFuzzing.writeLog(AuditFuzzing.repairChain(synthetic), directory: directory)
        let verdict = AuditVerifier.verify(directory: directory)
        #expect(verdict.ok, "\(verdict.failure.map(\.description) ?? "")")
        #expect(verdict.blobs == 1 && verdict.records == 4)
    }

    @Test func repairLeavesAValidChainAlone() throws {
        let root = AuditTestSupport.repositoryRoot + "/fuzz/corpus/canonical/"
        let log = try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + "log-signed")))
        #expect(AuditFuzzing.repairChain(log) == log)
    }
}
