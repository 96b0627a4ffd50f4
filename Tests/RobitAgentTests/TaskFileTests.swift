import Foundation
import RobitExec
@testable import RobitAgent
import RobitOCI
import Testing

struct TaskFileTests {
    @Test func productExampleParsesToTheDocumentedValues() throws {
        let task = try TaskFile.parse(productExample, file: "tasks/fix.yaml", baseDirectory: "/repo/tasks")
        #expect(task.version == 1)
        #expect(task.name == "fix-failing-test")
        #expect(task.model == TaskFile.Model(provider: .openai, name: "gpt-4.1-mini", baseURL: "https://api.openai.com/v1",
                                             apiKeyEnv: "OPENAI_API_KEY", maxOutputTokens: 4096, script: nil))
        #expect(task.system == "You are a careful engineer.")
        #expect(task.prompt == "The test suite fails. Find the cause, fix it, and run the tests.\n")
        #expect(task.workspace.path == "/repo/tasks")
        #expect(task.sandbox.runtime == .runsc)
        #expect(task.sandbox.rootfs == .host)
        #expect(task.sandbox.policy == "/repo/tasks/policies/default.json")
        #expect(task.sandbox.network.egress.isEmpty)
        #expect(task.sandbox.limits == TaskFile.Sandbox.Limits(
            memory: ByteCount(512 << 20), pids: 256, cpu: 1.0, timeout: .seconds(30), output: ByteCount(1 << 20), disk: ByteCount(1 << 30)))
        #expect(task.tools == [.shell, .readFile, .writeFile, .editFile, .listFiles, .search])
        #expect(task.customTools == [TaskFile.CustomTool(
            name: "run_tests", description: "Run the project's tests", command: ["make", "test"],
            parameters: .object(["type": .string("object"), "properties": .object([:]), "additionalProperties": .bool(false)]))])
        #expect(task.budget == TaskFile.Budget(maxSteps: 40, maxTokens: 400_000, maxWall: .seconds(1200), maxCostMicroUSD: 2_000_000))
        #expect(task.output.patch == "/repo/tasks/out/fix.patch")
        #expect(task.output.pullRequest == TaskFile.Output.PullRequest(
            repo: "owner/name", base: "main", branch: "robit/fix", tokenEnv: "GITHUB_TOKEN", apiURL: "https://api.github.com"))
    }

    @Test func minimalFileGetsTheDefaults() throws {
        let task = try TaskFile.parse(minimalTask, file: "nightly-check.yaml", baseDirectory: "/srv/jobs/")
        #expect(task == TaskFile(
            version: 1, name: "nightly-check",
            model: TaskFile.Model(provider: .openai, name: "gpt-4.1-mini", apiKeyEnv: "OPENAI_API_KEY"),
            system: nil, prompt: "do it", workspace: TaskFile.Workspace(path: "/srv/jobs")))
        #expect(task.sandbox == TaskFile.Sandbox(runtime: .runsc, rootfs: .host, policy: nil, network: .init(egress: []), limits: .init()))
        #expect(task.sandbox.limits.memory == ByteCount(parsing: "512MiB"))
        #expect(task.sandbox.limits.pids == 256)
        #expect(task.sandbox.limits.cpu == 1.0)
        #expect(task.sandbox.limits.timeout == .seconds(30))
        #expect(task.sandbox.limits.output == ByteCount(parsing: "1MiB"))
        #expect(task.sandbox.limits.disk == ByteCount(parsing: "1GiB"))
        #expect(task.tools == TaskFile.BuiltinTool.allCases)
        #expect(task.customTools.isEmpty)
        #expect(task.budget == TaskFile.Budget(maxSteps: 50, maxTokens: 1_000_000, maxWall: .seconds(1800), maxCostMicroUSD: nil))
        #expect(task.output == TaskFile.Output(patch: nil, pullRequest: nil))
    }

    @Test func nullSectionsMeanDefaults() throws {
        let task = try parse(minimalTask + "sandbox:\nbudget: ~\ntools: null\nsystem:\n")
        #expect(task.sandbox == TaskFile.Sandbox())
        #expect(task.budget == TaskFile.Budget())
        #expect(task.tools == TaskFile.BuiltinTool.allCases)
        #expect(task.system == nil)
    }

    @Test func providersAndTheirRules() throws {
        let anthropic = try parse("model: { provider: anthropic, name: claude-sonnet-4 }\nprompt: x\n")
        #expect(anthropic.model.apiKeyEnv == "ANTHROPIC_API_KEY")
        let ollama = try parse("model: { provider: ollama, name: \"llama3.1:8b\" }\nprompt: x\n")
        #expect(ollama.model.apiKeyEnv == nil)
        #expect(ollama.model.name == "llama3.1:8b")
        let compatible = try parse("""
            model:
              provider: openai-compatible
              name: qwen
              base_url: http://localhost:8000/v1
              api_key_env: VLLM_KEY
            prompt: x
            """)
        #expect(compatible.model.baseURL == "http://localhost:8000/v1")
        #expect(compatible.model.apiKeyEnv == "VLLM_KEY")
        let replay = try parse("model: { provider: replay, script: ../logs/./run.jsonl }\nprompt: x\n")
        #expect(replay.model == TaskFile.Model(provider: .replay, name: "replay", script: "/logs/run.jsonl"))
    }

    @Test func sandboxValuesAreRead() throws {
        let task = try parse(minimalTask + """
            sandbox:
              runtime: crun
              rootfs: ./images//alpine/
              network:
                egress: ["api.github.com:443", "10.0.0.0/8:5432", "[2001:DB8::1]:443", "192.168.1.10:22"]
              limits:
                memory: 1.5GiB
                pids: 64
                cpu: 0.5
                timeout: 1m30s
                output: 64KiB
                disk: 100MB
            """)
        #expect(task.sandbox.runtime == .crun)
        #expect(task.sandbox.rootfs == .path("/base/images/alpine"))
        #expect(task.sandbox.network.egress.map(\.description) == ["api.github.com:443", "10.0.0.0/8:5432", "[2001:db8::1]:443", "192.168.1.10:22"])
        #expect(task.sandbox.limits == TaskFile.Sandbox.Limits(
            memory: ByteCount(3 << 29), pids: 64, cpu: 0.5, timeout: .seconds(90), output: ByteCount(64 << 10), disk: ByteCount(100_000_000)))
    }

    @Test func keepBackgroundProcessesIsAnExplicitBoolean() throws {
        #expect(try parse(minimalTask).sandbox.keepBackgroundProcesses == false)
        #expect(try parse(minimalTask).sandboxOptions().keepBackgroundProcesses == false)
        let kept = try parse(minimalTask + "sandbox:\n  keep_background_processes: true\n")
        #expect(kept.sandbox.keepBackgroundProcesses == true)
        #expect(try kept.sandboxOptions().keepBackgroundProcesses == true)
        for bad in ["yes", "\"true\"", "1", "on", "[true]"] {
            let error = parseError(minimalTask + "sandbox:\n  keep_background_processes: \(bad)\n")
            #expect(error?.keyPath == "sandbox.keep_background_processes" && error?.line == 6, "\(bad): \(String(describing: error))")
        }
    }

    @Test func customToolParametersAreKeptAsJSON() throws {
        let task = try parse(minimalTask + """
            tools: []
            custom_tools:
              - name: grep-logs
                description: Search the logs
                command: [rg, "--json", "{{pattern}}", 5]
                parameters:
                  type: object
                  properties:
                    pattern: { type: string, description: "regex: what to find", default: "" }
                    limit: { type: integer, minimum: 1, maximum: 1.5e3 }
                    flags: { type: array, items: { enum: [i, "yes", null, true] } }
                  required: [pattern]
            """)
        #expect(task.tools.isEmpty)
        let tool = try #require(task.customTools.first)
        #expect(tool.name == "grep-logs")
        #expect(tool.command == ["rg", "--json", "{{pattern}}", "5"])
        #expect(tool.parameters == .object([
            "type": .string("object"),
            "properties": .object([
                "pattern": .object(["type": .string("string"), "description": .string("regex: what to find"), "default": .string("")]),
                "limit": .object(["type": .string("integer"), "minimum": .number(1), "maximum": .number(1500)]),
                "flags": .object(["type": .string("array"), "items": .object(["enum": .array([.string("i"), .string("yes"), .null, .bool(true)])])]),
            ]),
            "required": .array([.string("pattern")]),
        ]))
        let omitted = try parse(minimalTask + "custom_tools: [{ name: lint, description: Lint, command: [make, lint] }]\n")
        #expect(omitted.customTools.first?.parameters == TaskFile.CustomTool.emptyParameters)
    }

    @Test func budgetAndOutputValues() throws {
        let task = try parse(minimalTask + """
            name: nightly
            budget: { max_cost_usd: 0.000001, max_wall: 2h }
            output:
              pr: { repo: acme/widgets.js }
            """)
        #expect(task.budget.maxCostMicroUSD == 1)
        #expect(task.budget.maxWall == .seconds(7200))
        #expect(task.output.pullRequest == TaskFile.Output.PullRequest(
            repo: "acme/widgets.js", base: "main", branch: "robit/nightly", tokenEnv: "GITHUB_TOKEN", apiURL: "https://api.github.com"))
        let free = try parse(minimalTask + "budget: { max_cost_usd: 0 }\n")
        #expect(free.budget.maxCostMicroUSD == 0)
        let big = try parse(minimalTask + "budget: { max_cost_usd: 1000000.000000 }\n")
        #expect(big.budget.maxCostMicroUSD == 1_000_000_000_000)
    }

    @Test func textThatMerelyLooksLikeAnchorsOrAliasesIsFine() throws {
        let task = try parse("""
            model: { provider: openai, name: gpt-4.1-mini }
            system: "Never write *ptr = &x; quote: '*a'"
            prompt: |
              Fix the `&mut self` borrow and the *ptr deref.
              *item one
              &ref **bold**
            custom_tools:
              - name: t
                description: uses &amp; and a*b and *.swift
                command: [sh, -c, 'ls *.swift && echo &x']
            """)
        #expect(task.prompt == "Fix the `&mut self` borrow and the *ptr deref.\n*item one\n&ref **bold**\n")
        #expect(task.system == "Never write *ptr = &x; quote: '*a'")
        #expect(task.customTools.first?.command == ["sh", "-c", "ls *.swift && echo &x"])
    }

    @Test func loadResolvesRelativePathsAgainstTheTaskFileDirectory() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/tasks", withIntermediateDirectories: true)
        let yaml = """
            model: { provider: replay, script: logs/../logs/run.jsonl }
            prompt: go
            workspace: { path: ../project/ }
            sandbox: { rootfs: ./rootfs, policy: /etc/robit//strict.json }
            output: { patch: out//fix.patch }
            """
        try yaml.write(toFile: root + "/tasks/job.yml", atomically: true, encoding: .utf8)
        let task = try TaskFile.load(path: root + "/tasks/./job.yml")
        #expect(task.name == "job")
        #expect(task.model.script == root + "/tasks/logs/run.jsonl")
        #expect(task.workspace.path == root + "/project")
        #expect(task.sandbox.rootfs == .path(root + "/tasks/rootfs"))
        #expect(task.sandbox.policy == "/etc/robit/strict.json")
        #expect(task.output.patch == root + "/tasks/out/fix.patch")

        // Without a workspace section the workspace is the task file's directory.
        try minimalTask.write(toFile: root + "/tasks/min.yaml", atomically: true, encoding: .utf8)
        #expect(try TaskFile.load(path: root + "/tasks/min.yaml").workspace.path == root + "/tasks")
    }

    @Test func errorDescriptionNamesFileLineAndKeyPath() {
        let error = TaskFileError(file: "task.yaml", line: 14, keyPath: "sandbox.limits.memory",
                                  message: "\"512MB!\" is not a size (use e.g. 512MiB, 1GiB)")
        #expect(error.description == "task.yaml:14: sandbox.limits.memory: \"512MB!\" is not a size (use e.g. 512MiB, 1GiB)")
        #expect(TaskFileError(file: "t.yaml", line: nil, keyPath: "", message: "is empty").description == "t.yaml: is empty")
        #expect(TaskFileError(file: "t.yaml", line: 3, keyPath: "", message: "bad").description == "t.yaml:3: bad")
    }
}
