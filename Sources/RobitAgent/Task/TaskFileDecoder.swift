import RobitOCI
import Yams

/// Walks a composed task file against the schema, section by section.
struct TaskFileDecoder {
    let file: String
    /// Absolute, normalized directory that relative paths are resolved against.
    let baseDirectory: String
    let reader: YAMLReader

    init(file: String, baseDirectory: String) {
        self.file = file
        self.baseDirectory = baseDirectory
        self.reader = YAMLReader(file: file)
    }

    static let topLevelKeys = ["version", "name", "model", "system", "prompt", "workspace", "sandbox", "tools", "custom_tools",
                               "budget", "output"]

    func decode(_ root: Node?) throws(TaskFileError) -> TaskFile {
        guard let root, !root.isNull else {
            throw TaskFileError(file: file, line: nil, keyPath: "",
                                message: "is empty; a task needs at least `model:` (provider and name) and `prompt:`")
        }
        let fields = try reader.mapping(root, "", allowed: Self.topLevelKeys)

        var version = TaskFile.supportedVersion
        if let node = fields.value("version") {
            version = try reader.integer(node, "version", in: 0...1_000_000, example: "1")
            guard version == TaskFile.supportedVersion else {
                throw reader.fail(node, "version", "version \(version) is not supported; this robit reads `version: \(TaskFile.supportedVersion)` task files")
            }
        }

        var name = TaskSyntax.defaultTaskName(forFile: file)
        if let node = fields.value("name") {
            name = try reader.string(node, "name")
            guard TaskSyntax.isTaskName(name) else {
                throw reader.fail(node, "name", "\(quoted(name)) is not a valid task name; use letters, digits, \".\", \"_\" and \"-\" (up to 128, starting with a letter or digit), e.g. fix-failing-test")
            }
        }

        let model = try decodeModel(reader.required(fields, "model", hint: "add e.g. `model: { provider: openai, name: gpt-4.1-mini }`"))

        var system: String?
        if let node = fields.value("system") {
            let text = try reader.string(node, "system")
            system = text.isEmpty ? nil : text
        }

        let promptNode = try reader.required(fields, "prompt", hint: "add `prompt:` with what the agent should do")
        let prompt = try reader.nonEmptyString(promptNode, "prompt", hint: "write what the agent should do")

        var workspace = TaskFile.Workspace(path: baseDirectory)
        if let node = fields.value("workspace") {
            workspace = try decodeWorkspace(node)
        }

        var sandbox = TaskFile.Sandbox()
        if let node = fields.value("sandbox") {
            sandbox = try decodeSandbox(node)
        }

        var tools = TaskFile.BuiltinTool.allCases
        if let node = fields.value("tools") {
            tools = try decodeTools(node)
        }

        var customTools: [TaskFile.CustomTool] = []
        if let node = fields.value("custom_tools") {
            customTools = try decodeCustomTools(node)
        }

        var budget = TaskFile.Budget()
        if let node = fields.value("budget") {
            budget = try decodeBudget(node)
        }

        var output = TaskFile.Output()
        if let node = fields.value("output") {
            output = try decodeOutput(node, taskName: name)
        }

        return TaskFile(version: version, name: name, model: model, system: system, prompt: prompt, workspace: workspace,
                        sandbox: sandbox, tools: tools, customTools: customTools, budget: budget, output: output)
    }

    // MARK: - model

    private func decodeModel(_ node: Node) throws(TaskFileError) -> TaskFile.Model {
        let path = "model"
        let fields = try reader.mapping(node, path, allowed: ["provider", "name", "base_url", "api_key_env", "max_output_tokens", "script"])
        let providerNode = try reader.required(fields, "provider", hint: "add e.g. `provider: openai` (openai, anthropic, ollama, openai-compatible, replay)")
        let provider = try reader.choice(providerNode, fields.path("provider"), of: TaskFile.Model.Provider.self)

        var name = "replay"
        if provider != .replay || fields.value("name") != nil {
            let nameNode = try reader.required(fields, "name", hint: "add the model's name, e.g. `name: gpt-4.1-mini`")
            name = try reader.nonEmptyString(nameNode, fields.path("name"), hint: "write the model's name, e.g. gpt-4.1-mini")
            guard !name.contains(where: { $0.isNewline }), name.count <= 256 else {
                throw reader.fail(nameNode, fields.path("name"), "must be a single line of at most 256 characters")
            }
        }

        var baseURL: String?
        if let node = fields.value("base_url") {
            guard provider != .replay else {
                throw reader.fail(node, fields.path("base_url"), "is not used by provider replay; remove it")
            }
            baseURL = try reader.url(node, fields.path("base_url"), example: "https://api.openai.com/v1")
        } else if provider == .openaiCompatible {
            throw reader.fail(fields.keyNode("base_url") ?? node, fields.path("base_url"),
                              "is required for provider openai-compatible; add e.g. `base_url: http://localhost:8000/v1`")
        }

        var apiKeyEnv = TaskFile.Model.defaultAPIKeyEnv(for: provider)
        if let node = fields.value("api_key_env") {
            guard provider != .replay else {
                throw reader.fail(node, fields.path("api_key_env"), "is not used by provider replay; remove it")
            }
            apiKeyEnv = try reader.environmentVariableName(node, fields.path("api_key_env"), example: "OPENAI_API_KEY")
        }

        var maxOutputTokens: Int?
        if let node = fields.value("max_output_tokens") {
            maxOutputTokens = try reader.integer(node, fields.path("max_output_tokens"), in: 1...10_000_000, example: "4096")
        }

        var script: String?
        if let node = fields.value("script") {
            guard provider == .replay else {
                throw reader.fail(node, fields.path("script"), "is only used by provider replay; remove it or set `provider: replay`")
            }
            script = try reader.path(node, fields.path("script"), base: baseDirectory)
        }

        return TaskFile.Model(provider: provider, name: name, baseURL: baseURL, apiKeyEnv: apiKeyEnv,
                              maxOutputTokens: maxOutputTokens, script: script)
    }

    // MARK: - workspace

    private func decodeWorkspace(_ node: Node) throws(TaskFileError) -> TaskFile.Workspace {
        let fields = try reader.mapping(node, "workspace", allowed: ["path"])
        var path = baseDirectory
        if let node = fields.value("path") {
            path = try reader.path(node, fields.path("path"), base: baseDirectory)
        }
        return TaskFile.Workspace(path: path)
    }

    // MARK: - sandbox

    private func decodeSandbox(_ node: Node) throws(TaskFileError) -> TaskFile.Sandbox {
        let fields = try reader.mapping(node, "sandbox", allowed: ["runtime", "rootfs", "policy", "network", "limits", "keep_background_processes"])
        var sandbox = TaskFile.Sandbox()
        if let node = fields.value("runtime") {
            sandbox.runtime = try reader.choice(node, fields.path("runtime"), of: TaskFile.Sandbox.Runtime.self)
        }
        if let node = fields.value("rootfs") {
            let text = try reader.string(node, fields.path("rootfs"), what: "`host` or a path")
            sandbox.rootfs = text == "host" ? .host : .path(try reader.path(node, fields.path("rootfs"), base: baseDirectory))
        }
        if let node = fields.value("policy") {
            sandbox.policy = try reader.path(node, fields.path("policy"), base: baseDirectory)
        }
        if let node = fields.value("network") {
            sandbox.network = try decodeNetwork(node, path: fields.path("network"))
        }
        if let node = fields.value("limits") {
            sandbox.limits = try decodeLimits(node, path: fields.path("limits"))
        }
        if let node = fields.value("keep_background_processes") {
            sandbox.keepBackgroundProcesses = try reader.boolean(node, fields.path("keep_background_processes"))
        }
        return sandbox
    }

    private func decodeNetwork(_ node: Node, path: String) throws(TaskFileError) -> TaskFile.Sandbox.Network {
        let fields = try reader.mapping(node, path, allowed: ["egress"])
        var rules: [EgressRule] = []
        guard let egressNode = fields.value("egress") else { return TaskFile.Sandbox.Network() }
        let items = try reader.list(egressNode, fields.path("egress"), of: "host:port entries")
        guard items.count <= 1024 else {
            throw reader.fail(egressNode, fields.path("egress"), "has \(items.count) entries; at most 1024 are allowed (use CIDR networks)")
        }
        var seen: [EgressRule: Int] = [:]
        for (index, item) in items.enumerated() {
            let itemPath = KeyPath.index(fields.path("egress"), index)
            let text = try reader.string(item, itemPath, what: "a host:port entry such as \"api.github.com:443\"")
            let rule: EgressRule
            do {
                rule = try EgressRule(parsing: text)
            } catch {
                throw reader.fail(item, itemPath, error.message)
            }
            if let earlier = seen[rule] {
                throw reader.fail(item, itemPath, "\(quoted(text)) repeats egress[\(earlier)] (\(rule)); list each destination once")
            }
            seen[rule] = index
            rules.append(rule)
        }
        return TaskFile.Sandbox.Network(egress: rules)
    }

    private func decodeLimits(_ node: Node, path: String) throws(TaskFileError) -> TaskFile.Sandbox.Limits {
        let fields = try reader.mapping(node, path, allowed: ["memory", "pids", "cpu", "timeout", "output", "disk"])
        var limits = TaskFile.Sandbox.Limits()
        if let node = fields.value("memory") {
            limits.memory = try reader.size(node, fields.path("memory"), in: LimitRules.memory)
        }
        if let node = fields.value("pids") {
            let pids = try reader.integer(node, fields.path("pids"), in: 0...Int.max, example: "256")
            if let error = LimitRules.pids(pids) { throw reader.fail(node, fields.path("pids"), error.message) }
            limits.pids = pids
        }
        if let node = fields.value("cpu") {
            let text = try reader.decimalText(node, fields.path("cpu"), example: "1.0 or 0.5")
            let value = Double(text) ?? .infinity
            if let error = LimitRules.cpu(value) { throw reader.fail(node, fields.path("cpu"), error.message) }
            limits.cpu = value
        }
        if let node = fields.value("timeout") {
            limits.timeout = try reader.duration(node, fields.path("timeout"), in: LimitRules.timeout)
        }
        if let node = fields.value("output") {
            limits.output = try reader.size(node, fields.path("output"), in: LimitRules.output)
        }
        if let node = fields.value("disk") {
            limits.disk = try reader.size(node, fields.path("disk"), in: LimitRules.disk)
        }
        return limits
    }

    // MARK: - tools

    private func decodeTools(_ node: Node) throws(TaskFileError) -> [TaskFile.BuiltinTool] {
        let items = try reader.list(node, "tools", of: "tool names")
        var tools: [TaskFile.BuiltinTool] = []
        for (index, item) in items.enumerated() {
            let itemPath = KeyPath.index("tools", index)
            let tool = try reader.choice(item, itemPath, of: TaskFile.BuiltinTool.self)
            guard !tools.contains(tool) else {
                throw reader.fail(item, itemPath, "\(quoted(tool.rawValue)) is listed twice; list each tool once")
            }
            tools.append(tool)
        }
        return tools
    }

    private func decodeCustomTools(_ node: Node) throws(TaskFileError) -> [TaskFile.CustomTool] {
        let items = try reader.list(node, "custom_tools", of: "tool definitions")
        guard items.count <= 128 else {
            throw reader.fail(node, "custom_tools", "has \(items.count) tools; at most 128 are allowed")
        }
        var tools: [TaskFile.CustomTool] = []
        for (index, item) in items.enumerated() {
            let path = KeyPath.index("custom_tools", index)
            let fields = try reader.mapping(item, path, allowed: ["name", "description", "command", "parameters"])

            let nameNode = try reader.required(fields, "name", hint: "add e.g. `name: run_tests`")
            let name = try reader.string(nameNode, fields.path("name"))
            guard TaskSyntax.isToolName(name) else {
                throw reader.fail(nameNode, fields.path("name"), "\(quoted(name)) is not a valid tool name; use letters, digits, \"_\" and \"-\" (up to 64, not starting with a digit or \"-\"), e.g. run_tests")
            }
            guard TaskFile.BuiltinTool(rawValue: name) == nil else {
                throw reader.fail(nameNode, fields.path("name"), "\(quoted(name)) is the name of a built-in tool; pick another name")
            }
            if let earlier = tools.firstIndex(where: { $0.name == name }) {
                throw reader.fail(nameNode, fields.path("name"), "\(quoted(name)) is already the name of custom_tools[\(earlier)]; tool names must be unique")
            }

            let descriptionNode = try reader.required(fields, "description", hint: "add a one-line description the model can read")
            let description = try reader.nonEmptyString(descriptionNode, fields.path("description"), hint: "describe what the tool does")

            let commandNode = try reader.required(fields, "command", hint: "add the argv to run, e.g. `command: [\"make\", \"test\"]`")
            let commandItems = try reader.list(commandNode, fields.path("command"), of: "arguments")
            guard !commandItems.isEmpty else {
                throw reader.fail(commandNode, fields.path("command"), "is empty; give the program and its arguments, e.g. [\"make\", \"test\"]")
            }
            var command: [String] = []
            for (argIndex, argNode) in commandItems.enumerated() {
                command.append(try reader.string(argNode, KeyPath.index(fields.path("command"), argIndex), what: "an argument string"))
            }
            if command[0].isEmpty {
                throw reader.fail(commandItems[0], KeyPath.index(fields.path("command"), 0), "the program name is empty; write e.g. \"make\"")
            }

            var parameters = TaskFile.CustomTool.emptyParameters
            if let node = fields.value("parameters") {
                parameters = try decodeParameters(node, path: fields.path("parameters"))
            }
            tools.append(TaskFile.CustomTool(name: name, description: description, command: command, parameters: parameters))
        }
        return tools
    }

    /// A JSON Schema for a tool's arguments: an object schema, with `properties` a mapping and
    /// `required` a list of property names when present.
    private func decodeParameters(_ node: Node, path: String) throws(TaskFileError) -> JSONValue {
        guard case .mapping = node else {
            throw reader.fail(node, path, "expected a JSON Schema mapping such as `{ type: object, properties: {} }`, found \(node.kindDescription)")
        }
        let value = try JSONValueReader(reader: reader).value(node, path, depth: 0)
        guard case .object(let schema) = value else { return value }
        guard schema["type"] == .string("object") else {
            let typeNode = node.mapping?.first { $0.key.scalar?.string == "type" }?.value
            throw reader.fail(typeNode ?? node, KeyPath.child(path, "type"), "tool parameters must be an object schema; write `type: object`")
        }
        var propertyNames: Set<String> = []
        if let properties = schema["properties"] {
            guard case .object(let members) = properties else {
                let propertiesNode = node.mapping?.first { $0.key.scalar?.string == "properties" }?.value
                throw reader.fail(propertiesNode ?? node, KeyPath.child(path, "properties"), "must be a mapping of property names to schemas")
            }
            propertyNames = Set(members.keys)
        }
        if let required = schema["required"] {
            let requiredNode = node.mapping?.first { $0.key.scalar?.string == "required" }?.value
            guard case .array(let names) = required else {
                throw reader.fail(requiredNode ?? node, KeyPath.child(path, "required"), "must be a list of property names")
            }
            for (index, entry) in names.enumerated() {
                guard case .string(let name) = entry, propertyNames.contains(name) else {
                    let itemNode = requiredNode?.sequence.flatMap { index < $0.count ? $0[index] : nil }
                    throw reader.fail(itemNode ?? requiredNode ?? node, KeyPath.index(KeyPath.child(path, "required"), index),
                                      "must name a property declared under `properties`")
                }
            }
        }
        return value
    }

    // MARK: - budget

    private func decodeBudget(_ node: Node) throws(TaskFileError) -> TaskFile.Budget {
        let fields = try reader.mapping(node, "budget", allowed: ["max_steps", "max_tokens", "max_wall", "max_cost_usd", "max_audit_log"])
        var budget = TaskFile.Budget()
        if let node = fields.value("max_steps") {
            budget.maxSteps = try reader.integer(node, fields.path("max_steps"), in: 1...1_000_000, example: "40")
        }
        if let node = fields.value("max_tokens") {
            budget.maxTokens = try reader.integer(node, fields.path("max_tokens"), in: 1...1_000_000_000_000, example: "400000")
        }
        if let node = fields.value("max_wall") {
            budget.maxWall = try reader.duration(node, fields.path("max_wall"), in: .seconds(1)...(.seconds(7 * 86_400)))
        }
        if let node = fields.value("max_cost_usd") {
            budget.maxCostMicroUSD = try microUSD(node, fields.path("max_cost_usd"))
        }
        if let node = fields.value("max_audit_log") {
            budget.maxAuditLog = try reader.size(node, fields.path("max_audit_log"), in: (1 << 20)...(1 << 40))
        }
        return budget
    }

    /// A non-negative amount of US dollars with at most 6 decimals, as micro-USD (no floating point).
    private func microUSD(_ node: Node, _ path: String) throws(TaskFileError) -> Int64 {
        let text = try reader.decimalText(node, path, example: "2.00")
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let fraction = parts.count == 2 ? parts[1] : ""
        guard fraction.count <= 6 else {
            throw reader.fail(node, path, "\(text) has more than 6 decimal places; round it, e.g. 2.50")
        }
        let dollarLimit: Int64 = 1_000_000
        guard parts[0].count <= 7, let dollars = Int64(parts[0]),
              let micros = Int64(fraction + String(repeating: "0", count: 6 - fraction.count)),
              dollars * 1_000_000 + micros <= dollarLimit * 1_000_000
        else {
            throw reader.fail(node, path, "\(text) is out of range; use an amount from 0 to \(dollarLimit) (US dollars)")
        }
        return dollars * 1_000_000 + micros
    }

    // MARK: - output

    private func decodeOutput(_ node: Node, taskName: String) throws(TaskFileError) -> TaskFile.Output {
        let fields = try reader.mapping(node, "output", allowed: ["patch", "pr"])
        var output = TaskFile.Output()
        if let node = fields.value("patch") {
            output.patch = try reader.path(node, fields.path("patch"), base: baseDirectory)
        }
        if let node = fields.value("pr") {
            output.pullRequest = try decodePullRequest(node, path: fields.path("pr"), taskName: taskName)
        }
        return output
    }

    private func decodePullRequest(_ node: Node, path: String, taskName: String) throws(TaskFileError) -> TaskFile.Output.PullRequest {
        let fields = try reader.mapping(node, path, allowed: ["repo", "base", "branch", "token_env", "api_url", "title", "body", "draft"])
        let repoNode = try reader.required(fields, "repo", hint: "add the repository as `repo: owner/name`")
        let repo = try reader.string(repoNode, fields.path("repo"))
        guard TaskSyntax.isRepository(repo) else {
            throw reader.fail(repoNode, fields.path("repo"), "\(quoted(repo)) is not a repository; write owner/name, e.g. octocat/hello-world")
        }
        func branch(_ key: String, default value: String) throws(TaskFileError) -> String {
            guard let node = fields.value(key) else { return value }
            let text = try reader.string(node, fields.path(key))
            guard TaskSyntax.isBranchName(text) else {
                throw reader.fail(node, fields.path(key), "\(quoted(text)) is not a valid git branch name; use e.g. robit/fix (no spaces, \"..\", \"~^:?*[\\\" or leading \"-\")")
            }
            return text
        }
        let base = try branch("base", default: "main")
        let head = try branch("branch", default: "robit/" + taskName)
        guard head != base else {
            throw reader.fail(fields.value("branch") ?? node, fields.path("branch"), "is the same as base (\(base)); robit pushes its work to a separate branch")
        }
        var tokenEnv = "GITHUB_TOKEN"
        if let node = fields.value("token_env") {
            tokenEnv = try reader.environmentVariableName(node, fields.path("token_env"), example: "GITHUB_TOKEN")
        }
        var apiURL = "https://api.github.com"
        if let node = fields.value("api_url") {
            apiURL = try reader.url(node, fields.path("api_url"), example: "https://api.github.com")
        }
        var title: String?
        if let node = fields.value("title") {
            let text = try reader.string(node, fields.path("title"))
            guard !text.isEmpty, text.count <= 256, !text.contains("\n"), !text.contains("\r") else {
                throw reader.fail(node, fields.path("title"), "must be one line of 1 to 256 characters")
            }
            title = text
        }
        var body: String?
        if let node = fields.value("body") {
            body = try reader.string(node, fields.path("body"))
            guard body!.utf8.count <= 60_000 else { throw reader.fail(node, fields.path("body"), "is longer than 60000 bytes") }
        }
        let draft = try fields.value("draft").map { node throws(TaskFileError) in try reader.boolean(node, fields.path("draft")) } ?? false
        return TaskFile.Output.PullRequest(repo: repo, base: base, branch: head, tokenEnv: tokenEnv, apiURL: apiURL,
                                           title: title, body: body, draft: draft)
    }
}

/// Converts YAML into `JSONValue`, refusing what has no single JSON reading.
struct JSONValueReader {
    let reader: YAMLReader
    static let maxDepth = 64

    func value(_ node: Node, _ path: String, depth: Int) throws(TaskFileError) -> JSONValue {
        try reader.checkTag(node, path)
        guard depth < Self.maxDepth else {
            throw reader.fail(node, path, "nested more than \(Self.maxDepth) levels deep; simplify the schema")
        }
        switch node {
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key, !key.isNull else {
                    throw reader.fail(key, path, "JSON object keys must be strings, found \(key.kindDescription)")
                }
                let childPath = KeyPath.child(path, keyScalar.string)
                members[keyScalar.string] = try self.value(value, childPath, depth: depth + 1)
            }
            return .object(members)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            for (index, item) in sequence.enumerated() {
                items.append(try value(item, KeyPath.index(path, index), depth: depth + 1))
            }
            return .array(items)
        case .scalar(let scalar):
            guard scalar.style == .plain else { return .string(scalar.string) }
            return try plainScalar(scalar.string, node, path)
        case .alias:
            throw reader.fail(node, path, "YAML aliases are not supported; write the value out in full")
        }
    }

    /// Plain scalars read as in JSON: null, true/false, numbers; other words are strings. YAML 1.1 words that
    /// other tools read as booleans (yes/no/on/off) and non-JSON numbers (0x1F, .inf) are refused as ambiguous.
    private func plainScalar(_ text: String, _ node: Node, _ path: String) throws(TaskFileError) -> JSONValue {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        let lower = text.lowercased()
        if ["yes", "no", "y", "n", "on", "off"].contains(lower) {
            throw reader.fail(node, path, "\(quoted(text)) is ambiguous in YAML; write true or false, or quote it if you mean the text")
        }
        if [".inf", "+.inf", "-.inf", ".nan"].contains(lower) || lower.hasPrefix("0x") || lower.hasPrefix("0o") {
            throw reader.fail(node, path, "\(quoted(text)) is not a JSON number; write a decimal number, or quote it if you mean the text")
        }
        if Self.looksLikeJSONNumber(text) {
            guard let number = Double(text), number.isFinite else {
                throw reader.fail(node, path, "\(text) is too large a number")
            }
            return .number(number)
        }
        return .string(text)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    static func looksLikeJSONNumber(_ text: String) -> Bool {
        var scalars = Substring(text).unicodeScalars[...]
        func digits() -> Int {
            var count = 0
            while let first = scalars.first, ("0"..."9").contains(first) { scalars.removeFirst(); count += 1 }
            return count
        }
        if scalars.first == "-" { scalars.removeFirst() }
        let leadingZero = scalars.first == "0"
        let integerDigits = digits()
        guard integerDigits > 0, !(leadingZero && integerDigits > 1) else { return false }
        if scalars.first == "." {
            scalars.removeFirst()
            guard digits() > 0 else { return false }
        }
        if scalars.first == "e" || scalars.first == "E" {
            scalars.removeFirst()
            if scalars.first == "+" || scalars.first == "-" { scalars.removeFirst() }
            guard digits() > 0 else { return false }
        }
        return scalars.isEmpty
    }
}
