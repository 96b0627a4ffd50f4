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
    /// The run finished, but its pull request (output.pr) could not be opened.
    case prFailed = "pr_failed"

    var exit: ExitStatus {
        switch self {
        case .done: return .ok
        case .budget: return .budgetExhausted
        case .providerFailed: return .providerFailed
        case .sandboxFailed: return .sandboxFailed
        case .interrupted: return .interrupted
        case .failed: return .failed
        case .prFailed: return .invalidInput
        }
    }

    var exitCode: Int32 { exit.code }
}

struct LoopOutcome: Sendable {
    var status: RunStatus
    var message: String
    var finalText: String?
    var limit: BudgetLimit?
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
final class AgentLoop: Sendable {
    let task: TaskFile
    let provider: any ModelProvider
    let providerName: String
    let tools: ToolRegistry
    let sandbox: any ToolSandbox
    let log: AuditLog
    let prices: PriceTable
    let events: @Sendable (LoopEvent) -> Void
    /// The signal robit was interrupted by, nil while it was not (SIGINT/SIGTERM: `Interrupts.signal`).
    let interruption: @Sendable () -> Int32?

    private struct State {
        var messages: [Message]
        var usage: RunUsage
        var repeats = RepeatDetector()
        var priceWarningGiven = false
    }

    private let state: Locked<State>
    /// Wall time already used before this process (a resumed run).
    private let elapsedBefore: Duration

    init(task: TaskFile, provider: any ModelProvider, tools: ToolRegistry, sandbox: any ToolSandbox, log: AuditLog,
                prices: PriceTable = PriceTable(), messages: [Message], usage: RunUsage = RunUsage(), elapsedBefore: Duration = .zero,
                events: @escaping @Sendable (LoopEvent) -> Void = { _ in },
                interruption: @escaping @Sendable () -> Int32? = { Interrupts.signal }) {
        self.task = task
        self.provider = provider
        self.providerName = task.model.provider.rawValue
        self.tools = tools
        self.sandbox = sandbox
        self.log = log
        self.prices = prices
        self.events = events
        self.interruption = interruption
        self.elapsedBefore = elapsedBefore
        self.state = Locked(State(messages: messages, usage: usage))
    }

    var usage: RunUsage { state.withLock { $0.usage } }
    var messages: [Message] { state.withLock { $0.messages } }

    func run() async -> LoopOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        func elapsed() -> Duration { elapsedBefore + (clock.now - start) }
        while true {
            if interruption() != nil { return interrupted() }
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
            append(AuditRecords.modelRequest(step: step, provider: providerName, model: task.model.name, messages: messages.count,
                                             tools: tools.specs.count, lastMessage: lastMessageRecord(messages.last)))
            flush()
            events(.modelCall(step: step))
            let remaining = task.budget.maxWall - elapsed()
            let answer = await Race.model(provider, request, deadline: remaining, interrupted: { self.interruption() != nil })
            let response: ModelResponse
            switch answer {
            case .interrupted:
                append(AuditRecords.modelFailure(step: step, provider: providerName, model: task.model.name, message: "interrupted",
                                                 kind: "interrupted", attempts: nil))
                return interrupted()
            case .deadline:
                append(AuditRecords.modelFailure(step: step, provider: providerName, model: task.model.name,
                                                 message: "max_wall reached during the model call", kind: "deadline", attempts: nil))
                return budgetExhausted(.wall, usage: self.usage, elapsed: elapsed())
            case .failed(let error):
                append(AuditRecords.modelFailure(step: step, provider: providerName, model: task.model.name, message: error.message,
                                                 kind: "\(error.kind)", attempts: error.attempts))
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
            append(AuditRecords.modelResponse(response, step: step, provider: providerName, model: task.model.name, cost: cost,
                                              payload: payload, arguments: argumentsRecord))
            events(.modelAnswer(step: step, toolCalls: response.toolCalls.count, usage: updated))
            if response.toolCalls.isEmpty {
                return LoopOutcome(status: .done, message: "the model finished", finalText: response.text, limit: nil)
            }
            if let stop = await runBatch(response.toolCalls, step: step, elapsed: elapsed) { return stop }
            // Free heap pages back to the kernel now and then (a trim costs about 50 µs).
            if step % 32 == 0 { ProcessMemory.trim() }
        }
    }

    // MARK: - Tools

    private func runBatch(_ calls: [ToolCall], step: Int, elapsed: () -> Duration) async -> LoopOutcome? {
        var runnable: [ToolCall] = []
        var refused: [String: String] = [:]
        for call in calls {
            let count = state.withLock { $0.repeats.record(name: call.name, arguments: call.arguments) }
            append(AuditRecords.toolCall(step: step, id: call.id, name: call.name, arguments: argumentsRecord(call.arguments)))
            if count >= RepeatDetector.stopAfter {
                append(AuditRecords.budget(.repeatedCall, usage: self.usage, elapsed: elapsed(),
                                           detail: "\(call.name) called \(count) times in a row with the same arguments"))
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
            append(AuditRecords.error(error.message, stage: "tool"))
            if error.code == .interrupted || interruption() != nil { return interrupted() }
            return LoopOutcome(status: .sandboxFailed, message: "the sandbox failed: \(error.message)", finalText: nil, limit: nil)
        }
        var byID: [String: ToolOutcome] = [:]
        for outcome in outcomes { byID[outcome.callID] = outcome }
        var results: [Message] = []
        for call in calls {
            if let message = refused[call.id] {
                append(AuditRecords.toolResult(step: step, id: call.id, name: call.name, exec: nil, stdout: .null, stderr: .null,
                                               truncated: false, content: payload(message), isError: true, refused: "repeated_call"))
                results.append(.tool(callID: call.id, name: call.name, content: message, isError: true))
                continue
            }
            guard let outcome = byID[call.id] else { continue }
            events(.toolEnd(step: step, name: call.name, isError: outcome.isError, duration: outcome.duration))
            append(AuditRecords.toolResult(step: step, id: outcome.callID, name: outcome.name, exec: outcome.exec,
                                           stdout: outcome.exec == nil ? .null : payload(outcome.stdout),
                                           stderr: outcome.exec == nil ? .null : payload(outcome.stderr),
                                           truncated: outcome.truncated, content: payload(outcome.content), isError: outcome.isError))
            results.append(.tool(callID: call.id, name: call.name, content: outcome.content, isError: outcome.isError))
        }
        if let denied = await SandboxAudit.deniedRecord(sandbox, after: calls.last?.id) { append(denied) }
        state.withLock {
            $0.messages.append(contentsOf: results)
            $0.usage.toolCalls += calls.count
        }
        if interruption() != nil { return interrupted() }
        return nil
    }

    // MARK: - Records

    private func append(_ record: AuditEvent) {
        do { try log.append(record) } catch {
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
        AuditRecords.omittable(arguments.utf8.count > JSONValue.defaultMaxBytes, Array(arguments.utf8)) { payload(arguments) }
    }

    private func payload(_ text: String) -> AuditValue { log.storedPayload(Array(text.utf8)) }

    private func payload(_ data: Data) -> AuditValue { log.storedPayload([UInt8](data)) }

    private func lastMessageRecord(_ message: Message?) -> AuditValue {
        switch message {
        case .user(let text): return ["role": "user", "content": payload(text)]
        case .tool(let id, let name, _, let isError): return ["role": "tool", "id": .string(id), "name": .string(name), "is_error": .bool(isError)]
        case .assistant(let text, let calls): return ["role": "assistant", "content": payload(text), "tool_calls": .int(Int64(calls.count))]
        case nil: return nil
        }
    }

    private func interrupted() -> LoopOutcome {
        LoopOutcome(status: .interrupted, message: "interrupted (signal \(interruption() ?? 2))", finalText: nil, limit: nil)
    }

    private func budgetExhausted(_ limit: BudgetLimit, usage: RunUsage, elapsed: Duration) -> LoopOutcome {
        append(AuditRecords.budget(limit, usage: usage, elapsed: elapsed))
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

    static func model(_ provider: any ModelProvider, _ request: ModelRequest, deadline: Duration,
                      interrupted: @escaping @Sendable () -> Bool = { Interrupts.pending }) async -> Answer {
        await withCheckedContinuation { (continuation: CheckedContinuation<Answer, Never>) in
            let once = Once(continuation)
            let call = Task {
                do throws(ProviderError) { once.finish(.answered(try await provider.complete(request))) } catch { once.finish(.failed(error)) }
            }
            Task {
                let clock = ContinuousClock()
                let end = clock.now + deadline
                while !once.done {
                    if interrupted() { call.cancel(); once.finish(.interrupted); return }
                    if clock.now >= end { call.cancel(); once.finish(.deadline); return }
                    try? await Task.sleep(for: .milliseconds(25))
                }
            }
        }
    }
}
