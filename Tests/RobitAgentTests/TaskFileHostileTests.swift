import Foundation
import RobitOCI
@testable import RobitAgent
import Testing

/// One bad task file and exactly where its error must point.
struct BadTask: Sendable, CustomTestStringConvertible {
    var label: String
    var yaml: String
    var line: Int?
    var keyPath: String
    /// Text the message must contain.
    var says: String

    init(_ label: String, _ yaml: String, line: Int?, _ keyPath: String, says: String) {
        self.label = label
        self.yaml = yaml
        self.line = line
        self.keyPath = keyPath
        self.says = says
    }

    var testDescription: String { label }
}

func check(_ bad: BadTask, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error = parseError(bad.yaml) else {
        Issue.record("\(bad.label): parsed without error", sourceLocation: sourceLocation)
        return
    }
    #expect(error.file == "task.yaml", sourceLocation: sourceLocation)
    #expect(error.line == bad.line, "\(error)", sourceLocation: sourceLocation)
    #expect(error.keyPath == bad.keyPath, "\(error)", sourceLocation: sourceLocation)
    #expect(error.message.contains(bad.says), "\(error)", sourceLocation: sourceLocation)
}

let unknownKeys: [BadTask] = [
    BadTask("top level", example(inserting: "typo_key: 1", afterLine: 2), line: 3, "typo_key", says: "unknown key \"typo_key\""),
    BadTask("model", example(inserting: "  temperature: 0.2", afterLine: 5), line: 6, "model.temperature", says: "valid keys here: provider, name"),
    BadTask("workspace", example(inserting: "  mode: copy", afterLine: 13), line: 14, "workspace.mode", says: "unknown key \"mode\""),
    BadTask("sandbox", example(inserting: "  privileged: true", afterLine: 15), line: 16, "sandbox.privileged", says: "unknown key"),
    BadTask("sandbox typo", example(replacingLine: 20, with: "  limts: { memory: 512MiB }"), line: 20, "sandbox.limts",
            says: "did you mean \"limits\"?"),
    BadTask("network", example(inserting: "    ingress: []", afterLine: 19), line: 20, "sandbox.network.ingress", says: "valid keys here: egress"),
    BadTask("network typo", example(replacingLine: 19, with: "    egres: [\"example.com:443\"]"), line: 19, "sandbox.network.egres",
            says: "did you mean \"egress\"?"),
    BadTask("limits", example(replacingLine: 20, with: "  limits: { memory: 512MiB, swap: 1GiB }"), line: 20, "sandbox.limits.swap",
            says: "unknown key \"swap\""),
    BadTask("custom tool", example(inserting: "    shell: true", afterLine: 25), line: 26, "custom_tools[0].shell", says: "unknown key"),
    BadTask("budget", example(replacingLine: 27, with: "budget: { max_steps: 40, max_dollars: 3 }"), line: 27, "budget.max_dollars",
            says: "unknown key"),
    BadTask("output", example(inserting: "  branch: x", afterLine: 29), line: 30, "output.branch", says: "valid keys here: patch, pr"),
    BadTask("pr", example(replacingLine: 31, with: "        api_url: https://api.github.com, labels: [bug] }"), line: 31, "output.pr.labels",
            says: "unknown key"),
    BadTask("merge key", minimalTask + "sandbox:\n  <<: {}\n", line: 6, "sandbox.<<", says: "unknown key"),
]

let wrongTypes: [BadTask] = [
    BadTask("string for mapping", minimalTask + "sandbox: runsc\n", line: 5, "sandbox", says: "expected a mapping with keys runtime"),
    BadTask("list for mapping", minimalTask + "sandbox:\n  limits: [512MiB]\n", line: 6, "sandbox.limits", says: "found a list"),
    BadTask("mapping for string", "model: { provider: openai, name: x }\nprompt: { text: hi }\n", line: 2, "prompt",
            says: "expected text, found a mapping"),
    BadTask("list for scalar", minimalTask + "sandbox:\n  limits:\n    cpu: [1]\n", line: 7, "sandbox.limits.cpu", says: "found a list"),
    BadTask("yes for number", minimalTask + "sandbox:\n  limits:\n    pids: yes\n", line: 7, "sandbox.limits.pids", says: "yes/no word"),
    BadTask("quoted number", minimalTask + "sandbox:\n  limits:\n    pids: \"256\"\n", line: 7, "sandbox.limits.pids", says: "quoted text"),
    BadTask("fraction for int", minimalTask + "budget:\n  max_steps: 1.5\n", line: 6, "budget.max_steps", says: "not a plain number"),
    BadTask("negative int", minimalTask + "budget:\n  max_tokens: -5\n", line: 6, "budget.max_tokens", says: "negative"),
    BadTask("zero steps", minimalTask + "budget:\n  max_steps: 0\n", line: 6, "budget.max_steps", says: "from 1 to 1000000"),
    BadTask("huge int", minimalTask + "sandbox: { limits: { pids: 99999999999999999999999 } }\n", line: 5, "sandbox.limits.pids",
            says: "out of range"),
    BadTask("hex int", minimalTask + "budget: { max_steps: 0x10 }\n", line: 5, "budget.max_steps", says: "not a plain number"),
    BadTask("string for list", minimalTask + "tools: shell\n", line: 5, "tools", says: "expected a list of tool names"),
    BadTask("string for argv", minimalTask + "custom_tools:\n  - name: t\n    description: d\n    command: make test\n", line: 8,
            "custom_tools[0].command", says: "expected a list of arguments"),
    BadTask("mapping in argv", minimalTask + "custom_tools: [{ name: t, description: d, command: [make, {a: b}] }]\n", line: 5,
            "custom_tools[0].command[1]", says: "found a mapping"),
    BadTask("null list item", minimalTask + "tools: [shell, ~]\n", line: 5, "tools[1]", says: "found nothing (null)"),
    BadTask("quoted cpu", minimalTask + "sandbox: { limits: { cpu: \"1.0\" } }\n", line: 5, "sandbox.limits.cpu", says: "quoted text"),
    BadTask("cpu zero", minimalTask + "sandbox: { limits: { cpu: 0 } }\n", line: 5, "sandbox.limits.cpu", says: "from 0.01 to 1024"),
    BadTask("cpu too many", minimalTask + "sandbox: { limits: { cpu: 2048 } }\n", line: 5, "sandbox.limits.cpu", says: "from 0.01 to 1024"),
    BadTask("cpu word", minimalTask + "sandbox: { limits: { cpu: on } }\n", line: 5, "sandbox.limits.cpu", says: "yes/no word"),
    BadTask("explicit tag", minimalTask + "sandbox:\n  limits:\n    pids: !!int \"5\"\n", line: 7, "sandbox.limits.pids",
            says: "YAML tag \"!!int\" is not supported"),
    BadTask("custom tag", minimalTask + "workspace: !local { path: . }\n", line: 5, "workspace", says: "YAML tag \"!local\""),
    BadTask("version 2", example(replacingLine: 1, with: "version: 2"), line: 1, "version", says: "version 2 is not supported"),
    BadTask("quoted version", example(replacingLine: 1, with: "version: \"1\""), line: 1, "version", says: "quoted text"),
    BadTask("cost quoted", minimalTask + "budget:\n  max_cost_usd: \"2.00\"\n", line: 6, "budget.max_cost_usd", says: "quoted text"),
    BadTask("cost negative", minimalTask + "budget:\n  max_cost_usd: -1\n", line: 6, "budget.max_cost_usd", says: "negative"),
    BadTask("cost dollar", minimalTask + "budget:\n  max_cost_usd: $2\n", line: 6, "budget.max_cost_usd", says: "not a plain number"),
    BadTask("cost precision", minimalTask + "budget:\n  max_cost_usd: 0.1234567\n", line: 6, "budget.max_cost_usd",
            says: "more than 6 decimal places"),
    BadTask("cost huge", minimalTask + "budget:\n  max_cost_usd: 99999999999999999999.5\n", line: 6, "budget.max_cost_usd",
            says: "out of range"),
    BadTask("cost exponent", minimalTask + "budget:\n  max_cost_usd: 1e3\n", line: 6, "budget.max_cost_usd", says: "not a plain number"),
]

let missingAndInvalidValues: [BadTask] = [
    BadTask("no model", "prompt: hi\n", line: 1, "model", says: "missing required key"),
    BadTask("null model", "model:\nprompt: hi\n", line: 1, "model", says: "needs a value"),
    BadTask("no prompt", "model: { provider: openai, name: x }\n", line: 1, "prompt", says: "missing required key"),
    BadTask("blank prompt", "model: { provider: openai, name: x }\nprompt: \"  \"\n", line: 2, "prompt", says: "is empty"),
    BadTask("no provider", "model: { name: x }\nprompt: hi\n", line: 1, "model.provider", says: "missing required key"),
    BadTask("bad provider", "model: { provider: gpt, name: x }\nprompt: hi\n", line: 1, "model.provider",
            says: "\"gpt\" is not one of openai, anthropic, ollama, openai-compatible, replay"),
    BadTask("provider typo", "model:\n  provider: antropic\n  name: x\nprompt: hi\n", line: 2, "model.provider", says: "did you mean \"anthropic\"?"),
    BadTask("no model name", "model: { provider: openai }\nprompt: hi\n", line: 1, "model.name", says: "missing required key"),
    BadTask("compatible without base_url", "model:\n  provider: openai-compatible\n  name: q\nprompt: hi\n", line: 2, "model.base_url",
            says: "required for provider openai-compatible"),
    BadTask("ftp base_url", example(replacingLine: 6, with: "  base_url: ftp://example.com/v1"), line: 6, "model.base_url",
            says: "must start with https:// or http://"),
    BadTask("base_url with credentials", example(replacingLine: 6, with: "  base_url: https://user:pw@example.com/v1"), line: 6,
            "model.base_url", says: "must not contain credentials"),
    BadTask("base_url without host", example(replacingLine: 6, with: "  base_url: https:///v1"), line: 6, "model.base_url",
            says: "has no host name"),
    BadTask("script without replay", example(inserting: "  script: run.jsonl", afterLine: 8), line: 9, "model.script",
            says: "only used by provider replay"),
    BadTask("zero output tokens", example(replacingLine: 8, with: "  max_output_tokens: 0"), line: 8, "model.max_output_tokens",
            says: "out of range"),
    BadTask("invalid task name", example(replacingLine: 2, with: "name: fix failing test"), line: 2, "name", says: "not a valid task name"),
    BadTask("home path", example(replacingLine: 13, with: "  path: ~/src"), line: 13, "workspace.path", says: "\"~\" is not expanded"),
    BadTask("empty path", example(replacingLine: 29, with: "  patch: \"\""), line: 29, "output.patch", says: "is empty"),
    BadTask("bad runtime", example(replacingLine: 15, with: "  runtime: docker"), line: 15, "sandbox.runtime",
            says: "\"docker\" is not one of runsc, crun, runc"),
    BadTask("runtime typo", example(replacingLine: 15, with: "  runtime: runcs"), line: 15, "sandbox.runtime", says: "did you mean"),
    BadTask("unknown tool", example(replacingLine: 21, with: "tools: [shell, browse]"), line: 21, "tools[1]", says: "\"browse\" is not one of"),
    BadTask("duplicate tool", example(replacingLine: 21, with: "tools: [shell, read_file, shell]"), line: 21, "tools[2]", says: "listed twice"),
    BadTask("tool name clash", example(replacingLine: 23, with: "  - name: shell"), line: 23, "custom_tools[0].name",
            says: "name of a built-in tool"),
    BadTask("bad tool name", example(replacingLine: 23, with: "  - name: 1st-tool"), line: 23, "custom_tools[0].name",
            says: "not a valid tool name"),
    BadTask("long tool name", example(replacingLine: 23, with: "  - name: " + String(repeating: "a", count: 65)), line: 23,
            "custom_tools[0].name", says: "not a valid tool name"),
    BadTask("duplicate tool names", minimalTask + """
        custom_tools:
          - { name: t, description: d, command: [a] }
          - { name: t, description: d, command: [b] }
        """, line: 7, "custom_tools[1].name", says: "already the name of custom_tools[0]"),
    BadTask("empty command", example(replacingLine: 25, with: "    command: []"), line: 25, "custom_tools[0].command", says: "is empty"),
    BadTask("empty program", example(replacingLine: 25, with: "    command: [\"\", x]"), line: 25, "custom_tools[0].command[0]",
            says: "program name is empty"),
    BadTask("no description", minimalTask + "custom_tools: [{ name: t, command: [a] }]\n", line: 5, "custom_tools[0].description",
            says: "missing required key"),
    BadTask("parameters not object", example(replacingLine: 26, with: "    parameters: { type: string }"), line: 26,
            "custom_tools[0].parameters.type", says: "write `type: object`"),
    BadTask("parameters a list", example(replacingLine: 26, with: "    parameters: [a]"), line: 26, "custom_tools[0].parameters",
            says: "expected a JSON Schema mapping"),
    BadTask("parameters ambiguous bool", example(replacingLine: 26, with: "    parameters: { type: object, additionalProperties: no }"),
            line: 26, "custom_tools[0].parameters.additionalProperties", says: "ambiguous"),
    BadTask("parameters required unknown", example(replacingLine: 26, with: "    parameters: { type: object, properties: {}, required: [x] }"),
            line: 26, "custom_tools[0].parameters.required[0]", says: "must name a property"),
    BadTask("parameters properties list", example(replacingLine: 26, with: "    parameters: { type: object, properties: [a] }"),
            line: 26, "custom_tools[0].parameters.properties", says: "must be a mapping"),
    BadTask("parameters hex", example(replacingLine: 26, with: "    parameters: { type: object, maxLength: 0x10 }"),
            line: 26, "custom_tools[0].parameters.maxLength", says: "not a JSON number"),
    BadTask("bad repo", example(replacingLine: 30, with: "  pr: { repo: owner, base: main, branch: robit/fix, token_env: GITHUB_TOKEN,"),
            line: 30, "output.pr.repo", says: "write owner/name"),
    BadTask("bad branch", example(replacingLine: 30, with: "  pr: { repo: o/n, base: main, branch: \"robit/../x\", token_env: GITHUB_TOKEN,"),
            line: 30, "output.pr.branch", says: "not a valid git branch name"),
    BadTask("branch equals base", example(replacingLine: 30, with: "  pr: { repo: o/n, base: main, branch: main, token_env: GITHUB_TOKEN,"),
            line: 30, "output.pr.branch", says: "same as base"),
    BadTask("bad api_url", example(replacingLine: 31, with: "        api_url: github.com }"), line: 31, "output.pr.api_url",
            says: "must start with https://"),
    BadTask("no repo", minimalTask + "output:\n  pr: { base: main }\n", line: 6, "output.pr.repo", says: "missing required key"),
    BadTask("empty pr title", example(replacingLine: 31, with: "        api_url: https://api.github.com, title: \"\" }"), line: 31,
            "output.pr.title", says: "one line of 1 to 256 characters"),
    BadTask("pr title with a newline", example(replacingLine: 31, with: "        api_url: https://api.github.com, title: \"a\\nb\" }"), line: 31,
            "output.pr.title", says: "one line of 1 to 256 characters"),
    BadTask("pr title too long", example(replacingLine: 31, with: "        api_url: https://api.github.com, title: \(String(repeating: "t", count: 257)) }"),
            line: 31, "output.pr.title", says: "one line of 1 to 256 characters"),
    BadTask("pr body too long", example(replacingLine: 31, with: "        api_url: https://api.github.com, body: \(String(repeating: "b", count: 60_001)) }"),
            line: 31, "output.pr.body", says: "longer than 60000 bytes"),
    BadTask("pr draft ambiguous", example(replacingLine: 31, with: "        api_url: https://api.github.com, draft: yes }"), line: 31,
            "output.pr.draft", says: "is not a boolean"),
    BadTask("pr title a list", example(replacingLine: 31, with: "        api_url: https://api.github.com, title: [a] }"), line: 31,
            "output.pr.title", says: "expected text, found"),
    BadTask("pr force key", example(replacingLine: 31, with: "        api_url: https://api.github.com, force: true }"), line: 31,
            "output.pr.force", says: "unknown key"),
]

let badUnits: [BadTask] = [
    BadTask("memory 512MB!", example(replacingLine: 20, with: "  limits: { memory: 512MB!, pids: 256 }"), line: 20, "sandbox.limits.memory",
            says: "\"512MB!\" is not a size (use e.g. 512MiB, 1GiB)"),
    BadTask("memory without unit", minimalTask + "sandbox:\n  limits:\n    memory: 512\n", line: 7, "sandbox.limits.memory",
            says: "did you mean 512MiB?"),
    BadTask("memory with space", minimalTask + "sandbox: { limits: { memory: 1 GiB } }\n", line: 5, "sandbox.limits.memory",
            says: "is not a size"),
    BadTask("memory list", minimalTask + "sandbox: { limits: { memory: [1GiB] } }\n", line: 5, "sandbox.limits.memory",
            says: "expected a size such as 512MiB, found a list"),
    BadTask("disk negative", minimalTask + "sandbox: { limits: { disk: -1GiB } }\n", line: 5, "sandbox.limits.disk", says: "is not a size"),
    BadTask("disk overflow", minimalTask + "sandbox: { limits: { disk: 99999999EiB } }\n", line: 5, "sandbox.limits.disk", says: "is not a size"),
    BadTask("output zero", minimalTask + "sandbox: { limits: { output: 0 } }\n", line: 5, "sandbox.limits.output",
            says: "too small; the minimum is 1KiB"),
    BadTask("output too big", minimalTask + "sandbox: { limits: { output: 2GiB } }\n", line: 5, "sandbox.limits.output",
            says: "too large; the maximum is 1GiB"),
    BadTask("timeout without unit", minimalTask + "sandbox:\n  limits:\n    timeout: 30\n", line: 7, "sandbox.limits.timeout",
            says: "has no unit; write e.g. 30s"),
    BadTask("timeout unknown unit", minimalTask + "sandbox: { limits: { timeout: 30x } }\n", line: 5, "sandbox.limits.timeout",
            says: "\"30x\" is not a duration (use e.g. 30s, 20m, 1h30m"),
    BadTask("timeout zero", minimalTask + "sandbox: { limits: { timeout: 0s } }\n", line: 5, "sandbox.limits.timeout", says: "too short"),
    BadTask("timeout too long", minimalTask + "sandbox: { limits: { timeout: 8d } }\n", line: 5, "sandbox.limits.timeout",
            says: "too long; the maximum is 168h"),
    BadTask("max_wall negative", example(replacingLine: 27, with: "budget: { max_wall: -5m }"), line: 27, "budget.max_wall",
            says: "is not a duration"),
    BadTask("max_wall overflow", example(replacingLine: 27, with: "budget: { max_wall: 99999999999999999999h }"), line: 27,
            "budget.max_wall", says: "is not a duration"),
]

let badEgress: [BadTask] = [
    BadTask("no port", minimalTask + "sandbox:\n  network:\n    egress: [api.github.com]\n", line: 7, "sandbox.network.egress[0]",
            says: "missing port"),
    BadTask("port 0", minimalTask + "sandbox:\n  network:\n    egress:\n      - api.github.com:443\n      - api.github.com:0\n", line: 9,
            "sandbox.network.egress[1]", says: "port 0 is out of range"),
    BadTask("port 70000", minimalTask + "sandbox: { network: { egress: [\"api.github.com:70000\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "port 70000 is out of range"),
    BadTask("port word", minimalTask + "sandbox: { network: { egress: [\"api.github.com:https\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "is not a number from 1 to 65535"),
    BadTask("empty port", minimalTask + "sandbox: { network: { egress: [\"api.github.com:\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "missing port number"),
    BadTask("cidr /33", minimalTask + "sandbox: { network: { egress: [\"10.0.0.0/33:5432\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "prefix length /33 is not a number from 0 to 32"),
    BadTask("cidr host bits", minimalTask + "sandbox: { network: { egress: [\"10.1.2.3/8:5432\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "did you mean 10.0.0.0/8?"),
    BadTask("ipv6 cidr /129", minimalTask + "sandbox: { network: { egress: [\"[fd00::/129]:443\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "from 0 to 128"),
    BadTask("empty host", minimalTask + "sandbox: { network: { egress: [\":443\"] } }\n", line: 5, "sandbox.network.egress[0]",
            says: "empty host"),
    BadTask("empty entry", minimalTask + "sandbox: { network: { egress: [\"\"] } }\n", line: 5, "sandbox.network.egress[0]",
            says: "empty egress entry"),
    BadTask("bad ipv4", minimalTask + "sandbox: { network: { egress: [\"256.1.1.1:80\"] } }\n", line: 5, "sandbox.network.egress[0]",
            says: "is not an IPv4 address"),
    BadTask("octal-looking ipv4", minimalTask + "sandbox: { network: { egress: [\"010.0.0.1:80\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "without leading zeros"),
    BadTask("unbracketed ipv6", minimalTask + "sandbox: { network: { egress: [\"2001:db8::1:443\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "IPv6 addresses go in brackets"),
    BadTask("bad ipv6", minimalTask + "sandbox: { network: { egress: [\"[2001:db8:::1]:443\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "is not an IPv6 address"),
    BadTask("hostname underscore", minimalTask + "sandbox: { network: { egress: [\"bad_host.example.com:443\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "is not a valid host name"),
    BadTask("hostname hyphen", minimalTask + "sandbox: { network: { egress: [\"-x.example.com:443\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "is not a valid host name"),
    BadTask("hostname empty label", minimalTask + "sandbox: { network: { egress: [\"a..b:443\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "is not a valid host name"),
    BadTask("wildcard", minimalTask + "sandbox: { network: { egress: [\"*.github.com:443\"] } }\n", line: 5, "sandbox.network.egress[0]",
            says: "wildcards are not supported"),
    BadTask("url", minimalTask + "sandbox: { network: { egress: [\"https://api.github.com:443\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "without a scheme"),
    BadTask("path", minimalTask + "sandbox: { network: { egress: [\"example.com:443/api\"] } }\n", line: 5,
            "sandbox.network.egress[0]", says: "is not a number from 1 to 65535"),
    BadTask("duplicate entry", minimalTask + "sandbox: { network: { egress: [\"API.github.com:443\", \"api.github.com:443\"] } }\n",
            line: 5, "sandbox.network.egress[1]", says: "repeats egress[0]"),
    BadTask("egress string", minimalTask + "sandbox: { network: { egress: \"api.github.com:443\" } }\n", line: 5,
            "sandbox.network.egress", says: "expected a list of host:port entries"),
    BadTask("egress number", minimalTask + "sandbox: { network: { egress: [443] } }\n", line: 5, "sandbox.network.egress[0]",
            says: "missing port"),
]

let badDocuments: [BadTask] = [
    BadTask("duplicate key", "model:\n  provider: openai\n  name: a\n  name: b\nprompt: x\n", line: 4, "model.name",
            says: "duplicate key \"name\" (also at line 3)"),
    BadTask("duplicate top-level key", minimalTask + "prompt: again\n", line: 5, "prompt", says: "duplicate key \"prompt\" (also at line 4)"),
    BadTask("duplicate in flow mapping", example(replacingLine: 20, with: "  limits: { memory: 1GiB, pids: 1, memory: 2GiB }"), line: 20,
            "sandbox.limits.memory", says: "duplicate key \"memory\""),
    BadTask("duplicate quoted key", minimalTask + "\"sandbox\": {}\nsandbox: {}\n", line: 6, "sandbox", says: "duplicate key \"sandbox\" (also at line 5)"),
    BadTask("duplicate inside list item", example(inserting: "    description: again", afterLine: 25), line: 26,
            "custom_tools[0].description", says: "duplicate key \"description\" (also at line 24)"),
    BadTask("duplicates at two levels", "model: { provider: openai, name: a }\nsandbox:\n  runtime: runc\n  runtime: crun\nsandbox: {}\nprompt: x\n",
            line: 4, "sandbox.runtime", says: "also at line 3"),
    BadTask("unclosed bracket", "model: [openai\nprompt: x\n", line: 2, "", says: "invalid YAML"),
    BadTask("bad indentation", "model:\n  provider: openai\n name: x\nprompt: x\n", line: 3, "", says: "invalid YAML"),
    BadTask("tab indentation", "model:\n\tprovider: openai\nprompt: x\n", line: 2, "", says: "tab character used for indentation"),
    BadTask("tab in block scalar", minimalTask + "system: |\n  ok\n\tbad\n", line: 7, "", says: "tab character"),
    BadTask("two documents", minimalTask + "---\nprompt: y\n", line: 5, "", says: "one YAML document"),
    BadTask("top-level list", "- model\n- prompt\n", line: 1, "", says: "expected a mapping with keys version, name, model"),
    BadTask("top-level scalar", "hello world\n", line: 1, "", says: "found \"hello world\""),
    BadTask("control character", minimalTask + "system: a\u{01}b\n", line: 5, "", says: "U+0001 cannot appear in a task file"),
    BadTask("NUL byte", minimalTask + "system: a\u{00}b\n", line: 5, "", says: "cannot appear in a task file"),
    BadTask("escaped NUL", minimalTask + "system: \"a\\0b\"\n", line: 5, "system", says: "NUL character"),
    BadTask("complex key", minimalTask + "? [a, b]\n: c\n", line: 5, "", says: "keys must be plain names"),
    BadTask("simple alias", "model: &m { provider: openai, name: x }\nprompt: x\nsystem: *m\n", line: 3, "system",
            says: "YAML aliases such as \"*m\" are not supported"),
    BadTask("alias as key", minimalTask + "x: &k name\nsandbox: { *k : 1 }\n", line: 6, "sandbox", says: "YAML aliases"),
    BadTask("undefined alias", minimalTask + "system: *nowhere\n", line: 5, "system", says: "YAML aliases"),
    BadTask("deep nesting", minimalTask + "system: " + String(repeating: "[", count: 5000) + "\n", line: 5, "", says: "nested too deeply"),
    BadTask("deep block nesting", minimalTask + "system:\n  " + String(repeating: "- ", count: 3000) + "x\n", line: 6, "",
            says: "nested too deeply"),
    BadTask("tab after dash", minimalTask + "tools:\n-\tshell\n", line: 6, "", says: "tab character used for indentation"),
    BadTask("empty", "", line: nil, "", says: "is empty; a task needs at least `model:`"),
    BadTask("only comments", "# nothing here\n\n", line: nil, "", says: "is empty"),
    BadTask("only null", "~\n", line: nil, "", says: "is empty"),
]

struct TaskFileHostileTests {
    @Test(arguments: unknownKeys) func unknownKeysAreErrors(_ bad: BadTask) { check(bad) }
    @Test(arguments: wrongTypes) func wrongTypesAreErrors(_ bad: BadTask) { check(bad) }
    @Test(arguments: missingAndInvalidValues) func missingAndInvalidValuesAreErrors(_ bad: BadTask) { check(bad) }
    @Test(arguments: badUnits) func badUnitsAreErrors(_ bad: BadTask) { check(bad) }
    @Test(arguments: badEgress) func badEgressEntriesAreErrors(_ bad: BadTask) { check(bad) }
    @Test(arguments: badDocuments) func badDocumentsAreErrors(_ bad: BadTask) { check(bad) }

    @Test func exactMessageForABadSize() throws {
        let error = try #require(parseError(example(replacingLine: 20, with: "  limits: { memory: 512MB!, pids: 256 }")))
        #expect(error.description == "task.yaml:20: sandbox.limits.memory: \"512MB!\" is not a size (use e.g. 512MiB, 1GiB)")
    }

    @Test func secretsPastedIntoEnvNameFieldsAreNotEchoed() throws {
        let modelError = try #require(parseError(example(replacingLine: 7, with: "  api_key_env: sk-live-abcdef123456")))
        #expect(modelError.line == 7)
        #expect(modelError.keyPath == "model.api_key_env")
        #expect(modelError.message.contains("NAME of an environment variable"))
        #expect(!modelError.description.contains("sk-live"))
        let prError = try #require(parseError(example(replacingLine: 30, with: "  pr: { repo: o/n, token_env: ghp_0123456789abcdef-x,")))
        #expect(prError.keyPath == "output.pr.token_env")
        #expect(!prError.description.contains("ghp_0123456789"))
    }

    @Test(.timeLimit(.minutes(1))) func aliasBombsAreRefusedQuickly() throws {
        var lines = ["model: { provider: openai, name: x }", "prompt: x", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...12 {
            lines.append("a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]")
        }
        // As values (billion laughs) and as a mapping key (which Yams would hash, expanding every alias).
        let valueBomb = lines.joined(separator: "\n") + "\n"
        let keyBomb = lines.joined(separator: "\n") + "\nk: { ? *a12 : 1 }\n"
        for yaml in [valueBomb, keyBomb] {
            let start = ContinuousClock.now
            let error = try #require(parseError(yaml))
            #expect(ContinuousClock.now - start < .seconds(5))
            #expect(error.line == 4)
            #expect(error.keyPath == "a1[0]")
            #expect(error.message.contains("YAML aliases such as \"*a0\" are not supported"))
        }
    }

    @Test func filesOverOneMebibyteAreRefused() throws {
        let huge = minimalTask + "system: |\n" + String(repeating: "  " + String(repeating: "x", count: 1021) + "\n", count: 2048)
        #expect(huge.utf8.count > 2_000_000)
        let error = try #require(parseError(huge))
        #expect(error.line == nil)
        #expect(error.message.contains("limited to 1 MiB"))

        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try huge.write(toFile: directory + "/huge.yaml", atomically: true, encoding: .utf8)
        #expect(throws: TaskFileError(file: directory + "/huge.yaml", line: nil, keyPath: "",
                                      message: "is larger than 1 MiB; task files are limited to 1 MiB (keep large inputs in the workspace and refer to them from the prompt)")) {
            try TaskFile.load(path: directory + "/huge.yaml")
        }
    }

    @Test func binaryJunkIsRefusedWithItsLine() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var bytes = Array("model: x\nprompt: y\n".utf8)
        bytes += [0xFF, 0xFE, 0x00, 0x9C, 0xC3, 0x28, 0x80]
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/junk.yaml"))
        do {
            _ = try TaskFile.load(path: directory + "/junk.yaml")
            Issue.record("binary junk was accepted")
        } catch {
            #expect(error.line == 3)
            #expect(error.message.contains("not valid UTF-8 text (byte 0xFF)"))
        }

        // Valid UTF-8 but full of control characters.
        var generator = SystemRandomNumberGenerator()
        let junk = String(decoding: (0..<4096).map { _ in UInt8.random(in: 0...0x1F, using: &generator) }, as: UTF8.self)
        let error = try #require(parseError(junk))
        #expect(error.file == "task.yaml")
    }

    @Test(arguments: [
        [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xE2, 0x28, 0xA1],
    ] as [[UInt8]])
    func malformedUTF8IsRefused(sequence: [UInt8]) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bytes = Array("model: { provider: openai, name: x }\nprompt: \"".utf8) + sequence
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/bad.yaml"))
        do {
            _ = try TaskFile.load(path: directory + "/bad.yaml")
            Issue.record("malformed UTF-8 was accepted")
        } catch {
            #expect(error.line == 2)
            #expect(error.message.contains("not valid UTF-8 text"))
        }
        // The same file with well-formed multi-byte text loads.
        try Data(Array("model: { provider: openai, name: x }\nprompt: \"é € 😀 \u{10FFFF}\"\n".utf8)).write(to: URL(fileURLWithPath: directory + "/good.yaml"))
        #expect(try TaskFile.load(path: directory + "/good.yaml").prompt == "é € 😀 \u{10FFFF}")
    }

    @Test func windowsLineEndingsAndByteOrderMarkKeepLineNumbers() {
        let crlf = "\u{FEFF}model:\r\n  provider: openai\r\n  name: x\r\nprompt: hi\r\nsandbox:\r\n  runtime: docker\r\n"
        let error = parseError(crlf)
        #expect(error?.line == 6)
        #expect(error?.keyPath == "sandbox.runtime")
        let duplicate = "model:\r\n  provider: openai\r\n  name: x\r\n  name: y\r\nprompt: hi\r\n"
        #expect(parseError(duplicate)?.line == 4)
        #expect(parseError(duplicate)?.keyPath == "model.name")
    }

    @Test func loadReportsMissingFilesAndDirectories() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: TaskFileError(file: directory + "/nope.yaml", line: nil, keyPath: "",
                                      message: "no such file; check the path (relative paths are taken from the current directory)")) {
            try TaskFile.load(path: directory + "/nope.yaml")
        }
        do {
            _ = try TaskFile.load(path: directory)
            Issue.record("a directory was accepted")
        } catch {
            #expect(error.message.contains("is a directory"))
        }
    }

    @Test func randomMutationsNeverCrash() {
        // Byte-level mutations of the full example: every outcome is a value or a TaskFileError.
        var generator = SystemRandomNumberGenerator()
        let original = Array(productExample.unicodeScalars)
        let alphabet: [Unicode.Scalar] = [":", "-", " ", "\n", "\t", "[", "]", "{", "}", "&", "*", "!", "|", ">", "'", "\"", "#", "?", ",", "a", "1", "%", "@"]
        for _ in 0..<300 {
            var scalars = original
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<scalars.count, using: &generator)
                switch Int.random(in: 0...2, using: &generator) {
                case 0: scalars[index] = alphabet.randomElement(using: &generator) ?? "x"
                case 1: scalars.insert(alphabet.randomElement(using: &generator) ?? "x", at: index)
                default: scalars.remove(at: index)
                }
            }
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            if let error = parseError(String(view)) {
                #expect(error.file == "task.yaml")
                #expect(!error.message.isEmpty)
            }
        }
    }
}
