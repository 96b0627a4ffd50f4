import Foundation
@testable import RobitAgent
import RobitAudit
import RobitExec
import RobitSync
import RobitTestSupport
import Testing

/// A sandbox in memory: answers every command with `answer` and remembers what it was asked, in order.
/// For the loop's own logic (budgets, repeats, batching, records, redaction); what really runs in a
/// sandbox is tested against the runtimes elsewhere.
final class MemorySandbox: ToolSandbox {
    let id = "memory-sandbox"
    let answer: @Sendable (ExecRequest) -> ExecResult
    private let asked = Locked<[[String]]>([])

    init(answer: @escaping @Sendable (ExecRequest) -> ExecResult) { self.answer = answer }

    /// The argv of every command, in the order they started.
    var requests: [[String]] { asked.withLock { $0 } }

    func exec(_ request: ExecRequest) async throws(SandboxError) -> ExecResult {
        asked.withLock { $0.append(request.argv) }
        // Let concurrent calls overlap, so an ordering bug would show.
        try? await Task.sleep(for: .milliseconds(5))
        return answer(request)
    }

    func deniedSinceLastRead() async -> [DeniedDestination] { [] }

    static func output(_ text: String, total: Int? = nil, exit: Int32 = 0) -> ExecResult {
        ExecResult(status: .exited(exit), stdout: CapturedOutput(data: Data(text.utf8), totalBytes: total ?? text.utf8.count),
                   duration: .milliseconds(1))
    }
}

/// One loop over a replay script against a `MemorySandbox`, with its audit log in a temporary directory.
struct LoopRun {
    let directory: String
    let outcome: LoopOutcome
    let records: [AuditRecord]
    let messages: [Message]
    let logText: String

    static func run(_ turns: [ModelResponse], sandbox: MemorySandbox, budget: String = "{ max_steps: 20, max_tokens: 1000000, max_wall: 5m }",
                    tools: String = "[shell, read_file, write_file, list_files, search]", secrets: [Redaction] = [],
                    provider: (any ModelProvider)? = nil, interruption: @escaping @Sendable () -> Int32? = { nil }) async throws -> LoopRun {
        let directory = NSTemporaryDirectory() + "robit-loop-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory + "/ws", withIntermediateDirectories: true)
        let task = try TaskFile.parse("""
            version: 1
            name: loop-logic
            model: { provider: replay, script: none.jsonl }
            prompt: go
            workspace: { path: ws }
            sandbox: { runtime: crun, limits: { output: 4KiB } }
            tools: \(tools)
            budget: \(budget)
            """, file: directory + "/task.yaml", baseDirectory: directory)
        let redactor = Redactor(secrets)
        let registry = try ToolRegistry(task: task, redactor: redactor)
        let log = try AuditLog.create(directory: directory + "/audit", run: "loop-test", options: AuditOptions(redactions: secrets),
                                      startData: AuditRecords.runStart(robitVersion: "test", taskBytes: [], taskPath: directory + "/task.yaml",
                                                                       task: task, workspaceTree: "none").setting("task", "(test)"))
        let loop = AgentLoop(task: task, provider: provider ?? ReplayProvider(turns: turns, source: "test"), tools: registry, sandbox: sandbox,
                             log: log, messages: [.user(task.prompt)], interruption: interruption)
        let outcome = await loop.run()
        _ = SandboxAudit.finish(log, status: outcome.status == .done ? "ok" : "error", exitCode: outcome.status.exitCode,
                                result: outcome.status.rawValue, message: outcome.message, usage: loop.usage)
        let path = directory + "/audit/" + AuditFormat.logFileName
        return LoopRun(directory: directory, outcome: outcome, records: Array(try AuditReader(path: path)), messages: loop.messages,
                       logText: try String(contentsOfFile: path, encoding: .utf8))
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    /// The tool results sent back to the model, in order.
    var toolMessages: [(id: String, content: String, isError: Bool)] {
        messages.compactMap { if case .tool(let id, _, let content, let isError) = $0 { return (id, content, isError) }; return nil }
    }
}

extension AuditValue {
    func setting(_ key: String, _ value: AuditValue) -> AuditValue {
        var copy = self
        copy.set(key, value)
        return copy
    }
}

func turn(_ calls: [(id: String, name: String, arguments: String)], text: String = "") -> ModelResponse {
    ModelResponse(text: text, toolCalls: calls.map { ToolCall(id: $0.id, name: $0.name, arguments: $0.arguments) },
                  stopReason: calls.isEmpty ? .endTurn : .toolUse, usage: Usage(inputTokens: 10, outputTokens: 5))
}

func shell(_ id: String, _ command: String) -> (id: String, name: String, arguments: String) {
    (id, "shell", String(decoding: try! JSONSerialization.data(withJSONObject: ["command": command]), as: UTF8.self))
}

/// The loop's logic, without root or a runtime.
struct LoopLogicTests {
    @Test func aBatchRunsReadsTogetherAndEverythingElseInOrder() async throws {
        let box = MemorySandbox { request in
            if request.argv.contains(where: { $0.hasSuffix(".txt") }) { return MemorySandbox.output("size=3 first=1 next=2 more=0\nabc") }
            return MemorySandbox.output("ran\n")
        }
        let read = { (id: String, path: String) in (id: id, name: "read_file", arguments: #"{"path":"\#(path)"}"#) }
        let run = try await LoopRun.run([
            turn([shell("c1", "echo first"), read("c2", "a.txt"), read("c3", "b.txt"), read("c4", "c.txt"), shell("c5", "echo last")]),
            turn([], text: "done"),
        ], sandbox: box)
        defer { run.remove() }
        #expect(run.outcome.status == .done)
        let order = box.requests.map { argv in argv.first { $0.hasSuffix(".txt") } ?? argv.last ?? "" }
        #expect(order.first == "echo first")
        #expect(order.last == "echo last")
        #expect(Set(order[1...3]) == ["/work/a.txt", "/work/b.txt", "/work/c.txt"] || Set(order[1...3]).count == 3, "\(order)")
        // Results go back, and are recorded, in the order the model made the calls.
        #expect(run.toolMessages.map(\.id) == ["c1", "c2", "c3", "c4", "c5"])
        #expect(run.records.filter { $0.type == "tool.result" }.map { $0.data["id"]?.stringValue } == ["c1", "c2", "c3", "c4", "c5"])
        #expect(run.toolMessages[1].content == "abc")
    }

    @Test func theSameCallIsRefusedThenTheRunStops() async throws {
        let box = MemorySandbox { _ in MemorySandbox.output("same\n") }
        let turns = (1...10).map { i in turn([shell("r\(i)", "cat same.txt")]) }
        let run = try await LoopRun.run(turns, sandbox: box)
        defer { run.remove() }
        #expect(run.outcome.status == .budget && run.outcome.limit == .repeatedCall)
        // Run twice, refused from the third time on, stopped at the sixth.
        #expect(box.requests.count == RepeatDetector.refuseAfter - 1)
        let refused = run.records.filter { $0.type == "tool.result" && $0.data["refused"]?.stringValue == "repeated_call" }
        #expect(refused.count == RepeatDetector.stopAfter - RepeatDetector.refuseAfter)
        #expect(refused.allSatisfy { $0.data["exit_code"]?.isNull == true && $0.data["is_error"]?.boolValue == true })
        let budget = try #require(run.records.first { $0.type == "budget" })
        #expect(budget.data["limit"]?.stringValue == "repeated_call")
        #expect(run.records.last { $0.type == "run.end" }?.data["exit_code"]?.intValue == 3)
    }

    @Test func maxStepsEndsTheRunWithABudgetRecord() async throws {
        let box = MemorySandbox { _ in MemorySandbox.output("ok\n") }
        let turns = (1...10).map { i in turn([shell("s\(i)", "echo \(i)")]) }
        let run = try await LoopRun.run(turns, sandbox: box, budget: "{ max_steps: 3, max_tokens: 1000000, max_wall: 5m }")
        defer { run.remove() }
        #expect(run.outcome.status == .budget && run.outcome.limit == .steps)
        #expect(run.records.filter { $0.type == "model.request" }.count == 3)
        #expect(box.requests.count == 3)
        let budget = try #require(run.records.first { $0.type == "budget" })
        #expect(budget.data["limit"]?.stringValue == "max_steps" && budget.data["steps"]?.intValue == 3)
    }

    /// SIGINT/SIGTERM (here: the loop's interruption source) stops the run after the batch that is
    /// running, with no further model call.
    @Test func anInterruptDuringABatchEndsTheRunAfterIt() async throws {
        let signal = Locked<Int32?>(nil)
        let box = MemorySandbox { _ in
            signal.withLock { $0 = SIGTERM }
            return MemorySandbox.output("ran\n")
        }
        let turns = (1...5).map { i in turn([shell("i\(i)", "echo \(i)"), shell("j\(i)", "echo again \(i)")]) }
        let run = try await LoopRun.run(turns, sandbox: box, interruption: { signal.withLock { $0 } })
        defer { run.remove() }
        #expect(run.outcome.status == .interrupted && run.outcome.message == "interrupted (signal \(SIGTERM))")
        // The batch in progress finishes (both calls) and is recorded; no second model call is made.
        #expect(box.requests.count == 2)
        #expect(run.records.filter { $0.type == "model.request" }.count == 1)
        #expect(run.records.filter { $0.type == "tool.result" }.count == 2)
        #expect(run.records.last { $0.type == "run.end" }?.data["exit_code"]?.intValue == 130)
    }

    /// A model call in flight is abandoned at once, and recorded as such.
    @Test func anInterruptDuringAModelCallAbandonsIt() async throws {
        struct Stuck: ModelProvider {
            func complete(_ request: ModelRequest) async throws(ProviderError) -> ModelResponse {
                try? await Task.sleep(for: .seconds(30))
                return turn([], text: "too late")
            }
        }
        let started = ContinuousClock.now
        let run = try await LoopRun.run([], sandbox: MemorySandbox { _ in MemorySandbox.output("") }, provider: Stuck(),
                                        interruption: { ContinuousClock.now - started > .milliseconds(200) ? SIGINT : nil })
        defer { run.remove() }
        #expect(run.outcome.status == .interrupted)
        #expect(ContinuousClock.now - started < .seconds(10))
        let response = try #require(run.records.first { $0.type == "model.response" })
        #expect(response.data["status"]?.stringValue == "error" && response.data["error_kind"]?.stringValue == "interrupted")
        #expect(try DocumentedRecords.load().problems(run.records) == [])
    }

    @Test func everyRecordHasTheDocumentedLayout() async throws {
        let box = MemorySandbox { request in
            if request.argv.contains(where: { $0.contains("sleep") }) {
                return ExecResult(status: .exited(137), duration: .seconds(1), timedOut: true, notes: ["killed at the timeout"])
            }
            if request.argv.last == "false" { return MemorySandbox.output("out\n", exit: 1) }
            return MemorySandbox.output("out\n", total: 9000)
        }
        let run = try await LoopRun.run([
            turn([shell("a", "false"), shell("b", "sleep 99"), (id: "c", name: "nope", arguments: "{}"), (id: "d", name: "shell", arguments: "[1")]),
            turn([shell("e", "x")]), turn([shell("e", "x")]), turn([shell("e", "x")]),
            turn([], text: "done"),
        ], sandbox: box)
        defer { run.remove() }
        let documented = try DocumentedRecords.load()
        #expect(documented.problems(run.records) == [])
        #expect(Set(run.records.map(\.type)).isSuperset(of: ["run.start", "model.request", "model.response", "tool.call", "tool.result", "run.end", "checkpoint"]))
        let results = Dictionary(run.records.filter { $0.type == "tool.result" }.compactMap { r in r.data["id"]?.stringValue.map { ($0, r) } },
                                 uniquingKeysWith: { first, _ in first })
        // The facts of the exec are kept, whatever the model was shown.
        #expect(results["b"]?.data["timed_out"]?.boolValue == true)
        #expect(results["b"]?.data["notes"] == .array(["killed at the timeout"]))
        #expect(results["a"]?.data["exit_code"]?.intValue == 1)
        #expect(results["e"]?.data["stdout_bytes"]?.intValue == 9000 && results["e"]?.data["truncated"]?.boolValue == true)
        #expect(results["a"]?.data["status"]?.stringValue == "ok", "a non-zero exit is not a tool error")
        #expect(results["c"]?.data["argv"]?.isNull == true && results["c"]?.data["is_error"]?.boolValue == true)
        #expect(results["d"]?.data["content"]?.stringValue?.contains("not valid JSON") == true)
    }

    /// One redactor, one rule: 6, 7 and 8 byte secrets are hidden from the model and the log alike.
    @Test(arguments: ["S3cr3t", "S3cr3t7", "S3cr3t78", "sk-live-0123456789abcdefXYZ"])
    func secretsAreHiddenFromTheModelAndTheLog(_ secret: String) async throws {
        let box = MemorySandbox { _ in MemorySandbox.output("token=\(secret)\n") }
        let run = try await LoopRun.run([turn([shell("k", "printenv TOKEN")]), turn([], text: "The token is \(secret).")], sandbox: box,
                                        secrets: [Redaction(name: "TOKEN", value: secret)])
        defer { run.remove() }
        #expect(run.toolMessages.first?.content.contains("token=[REDACTED:TOKEN]") == true, "\(run.toolMessages)")
        #expect(!run.toolMessages.contains { $0.content.contains(secret) })
        #expect(!run.logText.contains(secret))
        #expect(run.logText.contains("[REDACTED:TOKEN]"))
        #expect(Redactor([Redaction(name: "TOKEN", value: secret)]).redact(run.outcome.finalText ?? "") == "The token is [REDACTED:TOKEN].")
    }

    @Test func aSecretCutAtTheCaptureLimitIsHidden() async throws {
        let secret = "sk-cut-0123456789"
        // The capture kept only the secret's first 9 bytes of a longer output.
        let box = MemorySandbox { _ in MemorySandbox.output("line\n" + secret.prefix(9), total: 100_000) }
        let run = try await LoopRun.run([turn([shell("k", "cat big")]), turn([], text: "done")], sandbox: box,
                                        secrets: [Redaction(name: "TOKEN", value: secret)])
        defer { run.remove() }
        let shown = try #require(run.toolMessages.first?.content)
        #expect(!shown.contains(secret.prefix(9)), "\(shown)")
        #expect(shown.contains("[REDACTED:TOKEN]"))
        #expect(!run.logText.contains(String(secret.prefix(9))))
    }
}

/// robit's one redactor (RobitAudit `Redactor`): the rules docs/audit-format.md states.
struct RedactorRuleTests {
    @Test func replacesExactMatchesLongestFirst() {
        let r = Redactor([Redaction(name: "SHORT", value: "abcdefgh"), Redaction(name: "LONG", value: "abcdefgh-12345678"),
                          Redaction(name: "TINY", value: "abc")])
        #expect(r.redact("x abcdefgh-12345678 y abcdefgh z abc") == "x [REDACTED:LONG] y [REDACTED:SHORT] z abc")
        #expect(r.redact("abcdefghabcdefgh") == "[REDACTED:SHORT][REDACTED:SHORT]")
        #expect(r.redact("nothing here") == "nothing here")
        #expect(r.redact("é😀abcdefgh😀") == "é😀[REDACTED:SHORT]😀")
    }

    @Test func sixBytesIsTheShortestSecret() {
        #expect(Redactor([Redaction(name: "S", value: "12345")]).isEmpty)
        #expect(Redactor([Redaction(name: "S", value: "")]).isEmpty)
        for value in ["123456", "1234567", "12345678"] {
            #expect(Redactor([Redaction(name: "S", value: value)]).redact("a \(value) b") == "a [REDACTED:S] b")
        }
    }

    @Test func redactsBytesAndATruncatedTail() {
        let r = Redactor([Redaction(name: "KEY", value: "sk-0123456789abcdef")])
        let data: [UInt8] = [0xFF, 0x00] + Array("sk-0123456789abcdef".utf8) + [0xFE]
        #expect(r.redact(data) == [0xFF, 0x00] + Array("[REDACTED:KEY]".utf8) + [0xFE])
        #expect(r.redact(Array("out: sk-0123".utf8), cutAtEnd: true) == Array("out: [REDACTED:KEY]".utf8))
        #expect(r.redact(Array("out: sk-0123".utf8), cutAtEnd: false) == Array("out: sk-0123".utf8))
    }

    @Test func echoedFragmentsOfALongKeyAreHidden() {
        let key = "sk-proj-AAAAbbbbCCCCddddEEEE1234"
        let r = Redactor([Redaction(name: "OPENAI_API_KEY", value: key)])
        #expect(r.redact("Incorrect API key provided: sk-proj-…EEEE1234.") == "Incorrect API key provided: [REDACTED:OPENAI_API_KEY]…[REDACTED:OPENAI_API_KEY].")
        let (text, count) = r.redactCounting("\(key) and \(key)")
        #expect(text == "[REDACTED:OPENAI_API_KEY] and [REDACTED:OPENAI_API_KEY]" && count == 2)
        // A key under 16 bytes is only hidden whole: its fragments would match ordinary text.
        #expect(Redactor([Redaction(name: "K", value: "short-key-12")]).redact("short-ke") == "short-ke")
    }

    @Test func auditValuesAreRedactedThroughout() {
        let r = Redactor([Redaction(name: "K", value: "hunter22")])
        let value: AuditValue = ["a": "x hunter22", "b": .array(["hunter22", .int(1)]), "hunter22": true]
        #expect(r.redact(value) == ["a": "x [REDACTED:K]", "b": .array(["[REDACTED:K]", .int(1)]), "[REDACTED:K]": true])
    }
}
