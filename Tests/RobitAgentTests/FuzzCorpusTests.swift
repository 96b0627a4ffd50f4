import Foundation
@testable import RobitAgent
import RobitTestSupport
import Testing

/// Replays the fuzz seeds (fuzz/corpus/TARGET) and every crash kept from fuzzing (fuzz/crashes/TARGET)
/// through the fuzz targets' own code paths (`AgentFuzzing`, shared with Sources/robit-fuzz), so that a crash
/// found once stays fixed. A regression shows as a trap in this test process.
enum FuzzCorpus {
    static var repositoryRoot: String { Repository.root }

    /// How long one kept input may take (exit tests exit 3 past it).
    static let timeLimit = Duration.seconds(2)

    /// Paths of the seed files of `target` (fuzz/corpus/TARGET, which must have some).
    static func seeds(_ target: String) -> [String] {
        files(repositoryRoot + "/fuzz/corpus/" + target)
    }

    /// The crashes kept from fuzzing `targets`, as "TARGET/NAME" under fuzz/crashes.
    static func keptCrashes(_ targets: [String]) -> [String] {
        targets.flatMap { target in
            files(repositoryRoot + "/fuzz/crashes/" + target).map { target + "/" + ($0 as NSString).lastPathComponent }
        }
    }

    static func files(_ directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted().map { directory + "/" + $0 }
    }
}

struct FuzzCorpusTests {
    @Test(arguments: ["taskfile", "json", "sse", "schema", "report"])
    func replaysSeeds(target: String) throws {
        let feed = try #require(AgentFuzzing.targets[target])
        let seeds = FuzzCorpus.seeds(target)
        #expect(!seeds.isEmpty, "no seeds in fuzz/corpus/\(target)")
        for path in seeds {
            feed(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        }
    }

    /// Each kept crash runs in a child process (an exit test), so that one that still crashes fails its own
    /// test instead of taking the whole suite down; it must also finish within `FuzzCorpus.timeLimit` (kept
    /// timeouts). A file named `open-*` is a bug not fixed yet: its failure is a known issue, and once the bug
    /// is fixed the test says so (rename the file then, without `open-`). See fuzz/crashes/README.md.
    @Test(arguments: FuzzCorpus.keptCrashes(["taskfile", "json", "sse", "schema", "report"]))
    func replaysKeptCrash(crash: String) async {
        let target = String(crash.prefix { $0 != "/" })
        let path = FuzzCorpus.repositoryRoot + "/fuzz/crashes/" + crash
        if (crash as NSString).lastPathComponent.hasPrefix("open-") {
            await withKnownIssue("an open robit bug found by fuzzing (fuzz/crashes/README.md)") {
                await Self.replay(target: target, path: path)
            }
        } else {
            await Self.replay(target: target, path: path)
        }
    }

    static func replay(target: String, path: String) async {
        await #expect(processExitsWith: .success, "fuzz/crashes: \(path)") { [target, path] in
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let elapsed = ContinuousClock().measure { AgentFuzzing.targets[target]!(bytes) }
            // A kept timeout: no input this small may take seconds (the fuzzer's limit is 10 s under ASan).
            if elapsed > FuzzCorpus.timeLimit { exit(3) }
        }
    }

    @Test func seedsReachTheDecoders() throws {
        // The seeds are worth something only if some of them get past the first check.
        let root = FuzzCorpus.repositoryRoot + "/fuzz/corpus/"
        let hello = try String(contentsOfFile: root + "taskfile/hello.yaml", encoding: .utf8)
        #expect(try TaskFile.parse(hello, file: "task.yaml", baseDirectory: "/base").name == "hello-fix-add")
        let object = try String(contentsOfFile: root + "json/object.json", encoding: .utf8)
        #expect(try JSONValue.parse(object)["c"] == .object(["d": "e"]))
    }

    @Test func sseChunksCoverTheInput() {
        for first in [UInt8(0), 5, 0x7F, 0x80, 0x83, 0xFF] {
            for count in [0, 1, 7, 100] {
                let chunks = AgentFuzzing.sseChunks(first: first, count: count)
                #expect(chunks.first?.lowerBound ?? 0 == 0)
                #expect(chunks.last?.upperBound ?? 0 == count)
                #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            }
        }
    }
}
