import Foundation
import RobitAudit

/// Reads a run's conversation back out of its audit log: for `robit resume` (the messages and usage so
/// far) and for the `replay` provider (the model's recorded answers).
struct AuditHistory: Sendable {
    var messages: [Message] = []
    var responses: [ModelResponse] = []
    var usage = RunUsage()
    var elapsed: Duration = .zero
    var taskText: String?
    var taskPath: String?
    var run: String?

    /// `path`: a run's audit directory or its audit.jsonl.
    static func load(_ path: String) throws(AuditError) -> AuditHistory {
        let file = AuditFormat.logPath(path)
        let directory = (file as NSString).deletingLastPathComponent
        var history = AuditHistory()
        var segmentStart: Int64?
        var lastTime: Int64?
        var pendingCalls: [ToolCall] = []
        var answered = Set<String>()
        func closePending(_ h: inout AuditHistory) {
            for call in pendingCalls where !answered.contains(call.id) {
                h.messages.append(.tool(callID: call.id, name: call.name,
                                        content: "robit: the run was interrupted before this call finished; it may or may not have run",
                                        isError: true))
            }
            pendingCalls = []
            answered = []
        }
        for record in try AuditReader(path: file) {
            let seconds = Self.seconds(record.ts)
            switch record.type {
            case "run.start", "resumed":
                if let start = segmentStart, let last = lastTime { history.elapsed += .seconds(last - start) }
                segmentStart = seconds
                if record.type == "run.start" {
                    history.run = record.run
                    history.taskText = record.data["task"].flatMap { Self.text($0, directory: directory) }
                    history.taskPath = record.data["task_path"]?.stringValue
                    if let prompt = record.data["prompt"].flatMap({ Self.text($0, directory: directory) }) {
                        history.messages.append(.user(prompt))
                    }
                }
            case "model.response":
                guard record.data["status"]?.stringValue == "ok" else { continue }
                closePending(&history)
                let text = record.data["text"].flatMap { Self.text($0, directory: directory) } ?? ""
                let calls = (record.data["tool_calls"].flatMap { v -> [AuditValue]? in if case .array(let a) = v { return a }; return nil } ?? [])
                    .compactMap { c -> ToolCall? in
                        guard let id = c["id"]?.stringValue, let name = c["name"]?.stringValue, let recorded = c["arguments"] else { return nil }
                        // Inline or a blob; arguments robit refused unread (over 8 MiB) were not kept, only their size and hash.
                        let args = Self.text(recorded, directory: directory)
                            ?? "robit: the recorded arguments (\(recorded["size"]?.intValue ?? 0) bytes) were over the limit and not kept"
                        return ToolCall(id: id, name: name, arguments: args)
                    }
                let usage = Usage(inputTokens: Int(record.data["input_tokens"]?.intValue ?? 0), outputTokens: Int(record.data["output_tokens"]?.intValue ?? 0))
                let stop: StopReason = calls.isEmpty ? .endTurn : .toolUse
                history.responses.append(ModelResponse(text: text, toolCalls: calls, stopReason: stop, usage: usage))
                history.messages.append(.assistant(text: text, toolCalls: calls))
                pendingCalls = calls
                history.usage.steps += 1
                history.usage.inputTokens += usage.inputTokens
                history.usage.outputTokens += usage.outputTokens
                if let cost = record.data["cost_micro_usd"]?.intValue {
                    history.usage.costMicroUSD = history.usage.costMicroUSD.map { $0 + cost }
                } else if record.data["cost_micro_usd"]?.isNull == true {
                    history.usage.costMicroUSD = nil
                }
            case "tool.result":
                guard let id = record.data["id"]?.stringValue, let name = record.data["name"]?.stringValue,
                      pendingCalls.contains(where: { $0.id == id }), !answered.contains(id) else { continue }
                let content = record.data["content"].flatMap { Self.text($0, directory: directory) } ?? ""
                history.messages.append(.tool(callID: id, name: name, content: content, isError: record.data["status"]?.stringValue == "error"))
                answered.insert(id)
                history.usage.toolCalls += 1
            default:
                break
            }
            lastTime = seconds
        }
        closePending(&history)
        if let start = segmentStart, let last = lastTime { history.elapsed += .seconds(last - start) }
        return history
    }

    /// A payload's text: inline, or read from its blob.
    static func text(_ value: AuditValue, directory: String) -> String? {
        if let s = value.stringValue { return s }
        guard let path = value["blob"]?.stringValue.flatMap({ blobPath($0, directory: directory) }),
              let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The file a blob reference (`sha256:<64 lowercase hex>`) names in the log's directory; nil for
    /// anything else, so a reference from a log can never name a path outside `blobs/`.
    static func blobPath(_ ref: String, directory: String) -> String? {
        guard ref.hasPrefix("sha256:") else { return nil }
        let hex = ref.dropFirst(7)
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        return directory + "/" + AuditFormat.blobDirectoryName + "/" + hex
    }

    /// Seconds since the epoch of an audit timestamp (to the second; enough for budgets).
    static func seconds(_ ts: String) -> Int64? {
        let parts = ts.split(whereSeparator: { "-T:.Z".contains($0) }).compactMap { Int64($0) }
        guard parts.count >= 6 else { return nil }
        var (y, m) = (parts[0], parts[1])
        if m <= 2 { y -= 1; m += 12 }
        let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * (m - 3) + 2) / 5 + parts[2] - 719_469
        return days * 86400 + parts[3] * 3600 + parts[4] * 60 + parts[5]
    }
}
