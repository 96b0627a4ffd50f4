import Foundation
import RobitAudit
import RobitExec

/// A task's tool definition robit cannot offer: a schema it cannot apply, or a command template
/// that names a parameter the schema does not have.
struct ToolDefinitionError: Error, Sendable, Equatable, CustomStringConvertible {
    var tool: String
    var message: String

    init(tool: String, message: String) {
        self.tool = tool
        self.message = message
    }

    var description: String { "tool \(tool): \(message)" }
}

/// The tools of a run: their specs for the model, and the batch runner that executes a model turn's
/// calls inside the sandbox.
struct ToolRegistry: Sendable {
    struct Entry: Sendable {
        enum Implementation: Sendable {
            case builtin(TaskFile.BuiltinTool)
            case custom(TaskFile.CustomTool)
        }

        var spec: ToolSpec
        var schema: JSONSchema
        var implementation: Implementation
    }

    /// The tools offered to the model, built-in ones first, in the task file's order.
    let specs: [ToolSpec]
    let limits: ToolLimits
    let redactor: Redactor
    let entries: [String: Entry]

    /// The task's tools (`tools` and `custom_tools`) with its limits.
    init(task: TaskFile, redactor: Redactor = Redactor([])) throws(ToolDefinitionError) {
        try self.init(builtins: task.tools, customTools: task.customTools, limits: ToolLimits(task: task), redactor: redactor)
    }

    /// Checks every custom tool's schema (unsupported keywords are refused, see `JSONSchema`) and that
    /// its command names only its own parameters.
    init(builtins: [TaskFile.BuiltinTool], customTools: [TaskFile.CustomTool], limits: ToolLimits = ToolLimits(),
                redactor: Redactor = Redactor([])) throws(ToolDefinitionError) {
        var entries: [String: Entry] = [:]
        var specs: [ToolSpec] = []
        for tool in builtins where entries[tool.rawValue] == nil {
            let spec = tool.spec(limits: limits)
            let schema: JSONSchema
            do { schema = try JSONSchema(spec.parameters) } catch { throw ToolDefinitionError(tool: tool.rawValue, message: "\(error)") }
            entries[tool.rawValue] = Entry(spec: spec, schema: schema, implementation: .builtin(tool))
            specs.append(spec)
        }
        for tool in customTools {
            guard entries[tool.name] == nil else { throw ToolDefinitionError(tool: tool.name, message: "the name is used by another tool; pick another name") }
            let schema: JSONSchema
            do { schema = try JSONSchema(tool.parameters) } catch {
                throw ToolDefinitionError(tool: tool.name, message: "parameters: \(error); remove the keyword or express the rule with supported ones")
            }
            let properties = tool.parameters["properties"]?.objectValue ?? [:]
            for (i, element) in tool.command.enumerated() {
                for name in CustomToolCommand.placeholders(in: element) where properties[name] == nil {
                    throw ToolDefinitionError(tool: tool.name, message: "command[\(i)] uses {{\(name)}}, which is not a property of its parameters; add it to parameters.properties or fix the name")
                }
            }
            let spec = ToolSpec(name: tool.name, description: tool.description, parameters: tool.parameters)
            entries[tool.name] = Entry(spec: spec, schema: schema, implementation: .custom(tool))
            specs.append(spec)
        }
        self.specs = specs
        self.entries = entries
        self.limits = limits
        self.redactor = redactor
    }

    /// Runs one model turn's tool calls and returns one outcome per call, in call order.
    ///
    /// Every call is checked first (known tool, arguments valid JSON matching the schema, paths inside
    /// /work); a call that fails a check gets an error outcome and runs nothing. Consecutive read-only
    /// calls (read_file, list_files, search) run concurrently, at most `limits.concurrency` at a time;
    /// every other call runs alone, in order, so a read after a write sees the write.
    ///
    /// - Throws: `SandboxError` when the sandbox itself failed (it is gone, or robit was interrupted):
    ///   the run must stop; it is never turned into a tool error.
    func run(_ calls: [ToolCall], in sandbox: any ToolSandbox, limits: ToolLimits? = nil) async throws(SandboxError) -> [ToolOutcome] {
        let limits = limits ?? self.limits
        let prepared = calls.map { prepare($0, limits: limits) }
        var outcomes = [ToolOutcome?](repeating: nil, count: calls.count)
        var index = 0
        while index < calls.count {
            switch prepared[index] {
            case .failure(let failure):
                outcomes[index] = refused(calls[index], failure)
                index += 1
            case .success(let invocation) where !invocation.readOnly:
                outcomes[index] = try await execute(invocation, call: calls[index], in: sandbox, limits: limits)
                index += 1
            case .success:
                var group: [(Int, ToolInvocation)] = []
                while index < calls.count {
                    if case .success(let inv) = prepared[index] {
                        guard inv.readOnly else { break }
                        group.append((index, inv))
                    } else if case .failure(let failure) = prepared[index] {
                        outcomes[index] = refused(calls[index], failure)
                    }
                    index += 1
                }
                for (i, outcome) in try await runConcurrently(group, calls: calls, in: sandbox, limits: limits) { outcomes[i] = outcome }
            }
        }
        return outcomes.map { $0! }
    }

    /// One finished call of a concurrent group: its position in the turn and its outcome.
    private struct Finished: Sendable {
        var index: Int
        var result: Result<ToolOutcome, SandboxError>
    }

    private func runConcurrently(_ group: [(Int, ToolInvocation)], calls: [ToolCall], in sandbox: any ToolSandbox, limits: ToolLimits)
        async throws(SandboxError) -> [(Int, ToolOutcome)]
    {
        let finished = await withTaskGroup(of: Finished.self) { tasks in
            var finished: [Finished] = []
            var pending = group[...]
            func startNext() {
                guard let (i, invocation) = pending.popFirst() else { return }
                let call = calls[i]
                tasks.addTask {
                    // The outcome is bound before the value is built: Swift 6.3.1 -O loses the index of
                    // `do { return (i, .success(try await ...)) } catch { ... }` in a task closure
                    // (docs/compiler-bugs.md).
                    let result: Result<ToolOutcome, SandboxError>
                    do throws(SandboxError) {
                        result = .success(try await self.execute(invocation, call: call, in: sandbox, limits: limits))
                    } catch {
                        result = .failure(error)
                    }
                    return Finished(index: i, result: result)
                }
            }
            for _ in 0..<limits.concurrency { startNext() }
            while let done = await tasks.next() {
                finished.append(done)
                if case .failure = done.result { pending = [] } else { startNext() }
            }
            return finished
        }
        var out: [(Int, ToolOutcome)] = []
        for done in finished.sorted(by: { $0.index < $1.index }) {
            switch done.result {
            case .success(let outcome): out.append((done.index, outcome))
            case .failure(let error): throw error
            }
        }
        return out
    }

    /// Looks the tool up and checks its arguments; nothing runs.
    func prepare(_ call: ToolCall, limits: ToolLimits) -> Result<ToolInvocation, ToolFailure> {
        guard let entry = entries[call.name] else {
            let names = specs.map(\.name).joined(separator: ", ")
            return .failure(ToolFailure("unknown tool \(ToolPath.quote(call.name)); the available tools are: \(names.isEmpty ? "none" : names)"))
        }
        let text = String(call.arguments.trimmingJSONWhitespace)
        let arguments: JSONValue
        do {
            arguments = text.isEmpty ? .object([:]) : try JSONValue.parse(text)
        } catch {
            return .failure(ToolFailure("the arguments are not valid JSON (\(error)); send one JSON object matching the \(call.name) tool's parameters schema"))
        }
        guard let members = arguments.objectValue else {
            return .failure(ToolFailure("the arguments must be a JSON object, found \(arguments.typeName == "integer" ? "number" : arguments.typeName)"))
        }
        let violations = entry.schema.validate(arguments)
        guard violations.isEmpty else {
            let shown = violations.prefix(10).map(\.description).joined(separator: "; ")
            let more = violations.count > 10 ? " (and \(violations.count - 10) more)" : ""
            return .failure(ToolFailure("invalid arguments for \(call.name): \(shown)\(more)"))
        }
        do {
            switch entry.implementation {
            case .builtin(let tool): return .success(try ToolInvocation.builtin(tool, members, limits: limits))
            case .custom(let tool): return .success(try ToolInvocation.custom(tool, members, limits: limits))
            }
        } catch {
            return .failure(error)
        }
    }

    private func refused(_ call: ToolCall, _ failure: ToolFailure) -> ToolOutcome {
        ToolOutcome(callID: call.id, name: call.name, content: redactor.redact(failure.message), isError: true)
    }

    private func execute(_ invocation: ToolInvocation, call: ToolCall, in sandbox: any ToolSandbox, limits: ToolLimits) async throws(SandboxError) -> ToolOutcome {
        let result = try await sandbox.exec(invocation.request)
        let stdout = Data(redactor.redact([UInt8](result.stdout.data), cutAtEnd: result.stdout.truncated))
        let stderr = Data(redactor.redact([UInt8](result.stderr.data), cutAtEnd: result.stderr.truncated))
        // The model's view is built from the redacted output only, so it needs no pass of its own.
        var rendered = invocation.render(result, stdout: stdout, stderr: stderr, limits: limits)
        let room = max(256, limits.output - rendered.notes.utf8.count - 80)
        if rendered.content.utf8.count > room {
            let cut = Self.prefix(rendered.content, bytes: room)
            rendered.content = cut + (cut.hasSuffix("\n") ? "" : "\n") + "[content cut at \(room) bytes; ask for less at a time]\n"
            rendered.truncated = true
            rendered.isError = true
        }
        rendered.content += rendered.notes
        return ToolOutcome(callID: call.id, name: call.name, content: rendered.content, isError: rendered.isError,
                           exec: ExecFacts(argv: invocation.request.argv, result: result), stdout: stdout, stderr: stderr,
                           truncated: rendered.truncated || result.truncated)
    }

    /// The longest prefix of `text` of at most `bytes` UTF-8 bytes that ends on a character boundary.
    static func prefix(_ text: String, bytes: Int) -> String {
        var count = 0
        var end = text.startIndex
        for (i, ch) in zip(text.indices, text) {
            let n = ch.utf8.count
            if count + n > bytes { break }
            count += n
            end = text.index(after: i)
        }
        return String(text[..<end])
    }
}
