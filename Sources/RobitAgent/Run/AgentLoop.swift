import Foundation
import RobitAudit
import RobitExec
import RobitOCI
import RobitSync

/// How a run ended, and the exit code that says so.
public enum RunStatus: String, Sendable {
    case done
    case budget
    case providerFailed = "provider_failed"
    case sandboxFailed = "sandbox_failed"
    case interrupted
    case failed

    public var exitCode: Int32 {
        switch self {
        case .done: return 0
        case .budget: return 3
        case .providerFailed: return 4
        case .sandboxFailed: return 5
        case .interrupted: return 130
        case .failed: return 1
        }
    }
}

public struct LoopOutcome: Sendable {
    public var status: RunStatus
    public var message: String
    public var finalText: String?
    public var limit: BudgetLimit?
}

/// What the loop reports as it goes (for the live status line).
public enum LoopEvent: Sendable {
    case modelCall(step: Int)
    case modelAnswer(step: Int, toolCalls: Int, usage: RunUsage)
    case toolStart(step: Int, name: String)
    case toolEnd(step: Int, name: String, isError: Bool, duration: Duration)
}

/// The batch-oriented tool-calling loop: ask the model, run the turn's tool calls in the sandbox as one
/// batch, feed the results back, until the model answers without calls, a budget runs out, or robit is
/// interrupted. Every request, response, call and result is appended to the audit log.
public final class AgentLoop: Sendable {
    let task: TaskFile
    let provider: any ModelProvider
    let providerName: String
    let tools: ToolRegistry
    let sandbox: Sandbox
    let log: AuditLog
    let prices: PriceTable
    let events: @Sendable (LoopEvent) -> Void

    private struct State {
        var messages: [Message]
        var usage: RunUsage
        var repeats = RepeatDetector()
        var priceWarningGiven = false
    }

    private let state: Locked<State>
    /// Wall time already used before this process (a resumed run).
    private let elapsedBefore: Duration

    public init(task: TaskFile, provider: any ModelProvider, tools: ToolRegistry, sandbox: Sandbox, log: AuditLog,
                prices: PriceTable = PriceTable(), messages: [Message], usage: RunUsage = RunUsage(), elapsedBefore: Duration = .zero,
                events: @escaping @Sendable (LoopEvent) -> Void = { _ in }) {
        self.task = task
        self.provider = provider
        self.providerName = task.model.provider.rawValue
        self.tools = tools
        self.sandbox = sandbox
        self.log = log
        self.prices = prices
        self.events = events
        self.elapsedBefore = elapsedBefore
        self.state = Locked(State(messages: messages, usage: usage))
    }

    public var usage: RunUsage { state.withLock { $0.usage } }
    public var messages: [Message] { state.withLock { $0.messages } }

    public func run() async -> LoopOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        func elapsed() -> Duration { elapsedBefore + (clock.now - start) }
        while true {
            if Interrupts.pending { return interrupted() }
            let (usage, messages) = state.withLock { ($0.usage, $0.messages) }
            if let limit = task.budget.exhausted(by: usage, elapsed: elapsed()) {
                return budgetExhausted(limit, usage: usage, elapsed: elapsed())
            }
            if log.bytesWritten >= Int64(clamping: task.budget.maxAuditLog.bytes) {
                return budgetExhausted(.auditLog, usage: usage, elapsed: elapsed())
            }
            let step = usage.steps + 1
            let request = ModelRequest(model: task.model.name, system: task.system, messages: messages, tools: tools.specs,
                                       maxOutputTokens: task.model.maxOutputTokens)
            append("model.request", [
                "status": "ok", "step": .int(Int64(step)), "provider": .string(providerName), "model": .string(task.model.name),
                "messages": .int(Int64(messages.count)), "tools": .int(Int64(tools.specs.count)),
                "last_message": lastMessageRecord(messages.last),
            ])
            flush()
            events(.modelCall(step: step))
            let remaining = task.budget.maxWall - elapsed()
            let answer = await Race.model(provider, request, deadline: remaining)
            let response: ModelResponse
            switch answer {
            case .interrupted:
                append("model.response", ["status": "error", "step": .int(Int64(step)), "error": "interrupted"])
                return interrupted()
            case .deadline:
                append("model.response", ["status": "error", "step": .int(Int64(step)), "error": "max_wall reached during the model call"])
                return budgetExhausted(.wall, usage: self.usage, elapsed: elapsed())
            case .failed(let error):
                append("model.response", [
                    "status": "error", "step": .int(Int64(step)), "error": .string(error.message),
                    "error_kind": .string("\(error.kind)"), "attempts": .int(Int64(error.attempts)),
                ])
                return LoopOutcome(status: .providerFailed, message: "model provider \(providerName) failed: \(error.message)", finalText: nil, limit: nil)
            case .answered(let r):
                response = r
            }
            let cost = prices.cost(model: task.model.name, usage: response.usage)
            let updated = state.withLock { s -> RunUsage in
                s.usage.steps = step
                s.usage.inputTokens += response.usage.inputTokens
                s.usage.outputTokens += response.usage.outputTokens
                if task.model.provider == .replay {
                    s.usage.costMicroUSD = s.usage.costMicroUSD.map { $0 + (cost ?? 0) }
                } else if let cost, let total = s.usage.costMicroUSD {
                    s.usage.costMicroUSD = total + cost
                } else {
                    s.usage.costMicroUSD = nil
                }
                s.messages.append(.assistant(text: response.text, toolCalls: response.toolCalls))
                return s.usage
            }
            append("model.response", responseRecord(response, step: step, cost: cost))
            events(.modelAnswer(step: step, toolCalls: response.toolCalls.count, usage: updated))
            if response.toolCalls.isEmpty {
                return LoopOutcome(status: .done, message: "the model finished", finalText: response.text, limit: nil)
            }
            if let stop = await runBatch(response.toolCalls, step: step) { return stop }
            // Free heap pages back to the kernel now and then (a trim costs about 50 µs).
            if step % 32 == 0 { ProcessMemory.trim() }
        }
    }

    // MARK: - Tools

    private func runBatch(_ calls: [ToolCall], step: Int) async -> LoopOutcome? {
        var runnable: [ToolCall] = []
        var refused: [String: String] = [:]
        for call in calls {
            let count = state.withLock { $0.repeats.record(name: call.name, arguments: call.arguments) }
            append("tool.call", ["status": "ok", "step": .int(Int64(step)), "id": .string(call.id), "name": .string(call.name),
                                 "arguments": argumentsRecord(call.arguments)])
            if count >= RepeatDetector.stopAfter {
                append("budget", ["status": "error", "limit": .string(BudgetLimit.repeatedCall.rawValue),
                                  "detail": .string("\(call.name) called \(count) times in a row with the same arguments")])
                return LoopOutcome(status: .budget, message: "stopped: the model made the same \(call.name) call \(count) times in a row",
                                   finalText: nil, limit: .repeatedCall)
            }
            if count >= RepeatDetector.refuseAfter {
                refused[call.id] = "robit: this exact \(call.name) call has now been made \(count) times in a row; it was not run again and its result would not change. Try something different."
            } else {
                runnable.append(call)
            }
        }
        flush()
        for call in runnable { events(.toolStart(step: step, name: call.name)) }
        let outcomes: [ToolOutcome]
        do {
            outcomes = try await tools.run(runnable, in: sandbox)
        } catch {
            append("error", ["status": "error", "stage": "tool", "message": .string(error.message)])
            if error.code == .interrupted || Interrupts.pending { return interrupted() }
            return LoopOutcome(status: .sandboxFailed, message: "the sandbox failed: \(error.message)", finalText: nil, limit: nil)
        }
        var byID: [String: ToolOutcome] = [:]
        for outcome in outcomes { byID[outcome.callID] = outcome }
        var results: [Message] = []
        for call in calls {
            if let message = refused[call.id] {
                append("tool.result", ["status": "error", "step": .int(Int64(step)), "id": .string(call.id), "name": .string(call.name),
                                       "content": .string(message), "refused": "repeated_call"])
                results.append(.tool(callID: call.id, name: call.name, content: message, isError: true))
                continue
            }
            guard let outcome = byID[call.id] else { continue }
            events(.toolEnd(step: step, name: call.name, isError: outcome.isError, duration: outcome.duration))
            append("tool.result", resultRecord(outcome, step: step))
            results.append(.tool(callID: call.id, name: call.name, content: outcome.content, isError: outcome.isError))
        }
        if let denied = await SandboxAudit.deniedRecord(sandbox, after: calls.last?.id) { append("net.denied", denied) }
        state.withLock {
            $0.messages.append(contentsOf: results)
            $0.usage.toolCalls += calls.count
        }
        if Interrupts.pending { return interrupted() }
        return nil
    }

    // MARK: - Records

    private func append(_ type: String, _ data: AuditValue) {
        do { try log.append(type, data) } catch {
            // A log that cannot be written stops nothing here; the run's end reports it (finish fails too).
            FileHandle.standardError.write(Data("robit: audit log: \(error.message)\n".utf8))
        }
    }

    /// Puts what was appended so far on disk before something that may block for long or crash.
    private func flush() {
        do { try log.flush() } catch {
            FileHandle.standardError.write(Data("robit: audit log: \(error.message)\n".utf8))
        }
    }

    /// Tool-call arguments as recorded, in `model.response` and again in `tool.call`: the exact text
    /// (inline, or one content-addressed blob both records point to, so it is stored once). Arguments
    /// over the limit tools accept are refused unread: only their size, SHA-256 and first 4 KiB are kept.
    func argumentsRecord(_ arguments: String) -> AuditValue {
        Self.omittable(arguments.utf8.count > JSONValue.defaultMaxBytes, Array(arguments.utf8)) { payload(arguments) }
    }

    /// `{"omitted": true, "size": N, "sha256": HEX, "prefix": TEXT}` in place of bytes robit does not keep.
    static func omittable(_ omit: Bool, _ bytes: @autoclosure () -> [UInt8], keep: () -> AuditValue) -> AuditValue {
        guard omit else { return keep() }
        let all = bytes()
        var prefix = Array(all.prefix(4096))
        while !prefix.isEmpty && String(validating: prefix, as: UTF8.self) == nil { prefix.removeLast() }
        return ["omitted": true, "size": .int(Int64(all.count)), "sha256": .string(AuditHash.sha256Hex(all)),
                "prefix": .string(String(decoding: prefix, as: UTF8.self))]
    }

    /// Raw provider responses above this size are kept as size, hash and prefix: what they carry is in
    /// the record's `text` and `tool_calls`, and storing it again would double what the log grows by.
    static let rawResponseLimit = 1 << 20

    private func payload(_ text: String) -> AuditValue {
        (try? log.payload(text)) ?? .string("[robit: payload could not be stored]")
    }

    private func payload(_ data: Data) -> AuditValue {
        (try? log.payload([UInt8](data))) ?? .string("[robit: payload could not be stored]")
    }

    private func lastMessageRecord(_ message: Message?) -> AuditValue {
        switch message {
        case .user(let text): return ["role": "user", "content": payload(text)]
        case .tool(let id, let name, _, let isError): return ["role": "tool", "id": .string(id), "name": .string(name), "is_error": .bool(isError)]
        case .assistant(let text, let calls): return ["role": "assistant", "content": payload(text), "tool_calls": .int(Int64(calls.count))]
        case nil: return nil
        }
    }

    private func responseRecord(_ r: ModelResponse, step: Int, cost: Int64?) -> AuditValue {
        let stop: String
        switch r.stopReason {
        case .endTurn: stop = "end_turn"
        case .toolUse: stop = "tool_use"
        case .maxTokens: stop = "max_tokens"
        case .other(let s): stop = s
        }
        return [
            "status": "ok", "step": .int(Int64(step)), "provider": .string(providerName), "model": .string(task.model.name),
            "text": payload(r.text),
            "tool_calls": .array(r.toolCalls.map { ["id": .string($0.id), "name": .string($0.name), "arguments": argumentsRecord($0.arguments)] }),
            "stop_reason": .string(stop),
            "input_tokens": .int(Int64(r.usage.inputTokens)), "output_tokens": .int(Int64(r.usage.outputTokens)),
            "cost_micro_usd": cost.map { .int($0) } ?? .null,
            "latency_ns": AuditValue(nanoseconds: r.latency), "attempts": .int(Int64(r.attempts)),
            "request_id": AuditValue(r.requestID),
            "request_sha256": .string(r.requestSHA256 ?? AuditHash.sha256Hex(r.requestBody)), "request_bytes": .int(Int64(r.requestBody.utf8.count)),
            // The first request in full (system prompt, tool definitions, the task's prompt); every later one
            // is that plus the answers and results recorded since, so its hash is enough to prove it.
            "request_body": step == 1 ? payload(r.requestBody) : .null,
            "response": Self.omittable(r.rawResponse.utf8.count > Self.rawResponseLimit, Array(r.rawResponse.utf8)) { payload(r.rawResponse) },
        ]
    }

    private func resultRecord(_ o: ToolOutcome, step: Int) -> AuditValue {
        var record: AuditValue = [
            "status": o.isError ? "error" : "ok", "step": .int(Int64(step)), "id": .string(o.callID), "name": .string(o.name),
            "content": payload(o.content), "is_error": .bool(o.isError),
            "exit_code": o.exitStatus.map { .int(Int64($0)) } ?? .null,
            "duration_ns": AuditValue(nanoseconds: o.duration),
            "stdout": payload(o.stdout), "stderr": payload(o.stderr),
            "truncated": .bool(o.truncated),
        ]
        if let argv = o.argv { record.set("argv", AuditValue(argv)) }
        return record
    }

    private func interrupted() -> LoopOutcome {
        LoopOutcome(status: .interrupted, message: "interrupted (signal \(Interrupts.signal ?? 2))", finalText: nil, limit: nil)
    }

    private func budgetExhausted(_ limit: BudgetLimit, usage: RunUsage, elapsed: Duration) -> LoopOutcome {
        append("budget", [
            "status": "error", "limit": .string(limit.rawValue), "steps": .int(Int64(usage.steps)), "tokens": .int(Int64(usage.tokens)),
            "cost_micro_usd": usage.costMicroUSD.map { .int($0) } ?? .null, "elapsed_ns": AuditValue(nanoseconds: elapsed),
        ])
        return LoopOutcome(status: .budget, message: "budget exhausted: \(limit.rawValue)", finalText: nil, limit: limit)
    }
}

/// A model call raced against SIGINT/SIGTERM and the run's wall-clock budget. The loser is abandoned,
/// not awaited: a provider stuck in a transfer must not hold up teardown.
enum Race {
    enum Answer: Sendable {
        case answered(ModelResponse)
        case failed(ProviderError)
        case interrupted
        case deadline
    }

    /// Resumes a continuation exactly once, from whichever side finishes first.
    final class Once: Sendable {
        private let continuation: Locked<CheckedContinuation<Answer, Never>?>
        init(_ c: CheckedContinuation<Answer, Never>) { continuation = Locked(c) }
        var done: Bool { continuation.withLock { $0 == nil } }
        func finish(_ answer: Answer) {
            let c = continuation.withLock { s -> CheckedContinuation<Answer, Never>? in defer { s = nil }; return s }
            c?.resume(returning: answer)
        }
    }

    static func model(_ provider: any ModelProvider, _ request: ModelRequest, deadline: Duration) async -> Answer {
        await withCheckedContinuation { (continuation: CheckedContinuation<Answer, Never>) in
            let once = Once(continuation)
            let call = Task {
                do throws(ProviderError) { once.finish(.answered(try await provider.complete(request))) } catch { once.finish(.failed(error)) }
            }
            Task {
                let clock = ContinuousClock()
                let end = clock.now + deadline
                while !once.done {
                    if Interrupts.pending { call.cancel(); once.finish(.interrupted); return }
                    if clock.now >= end { call.cancel(); once.finish(.deadline); return }
                    try? await Task.sleep(for: .milliseconds(25))
                }
            }
        }
    }
}
