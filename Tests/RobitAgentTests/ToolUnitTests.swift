import Foundation
@testable import RobitAgent
import Testing

struct ToolCustomCommandTests {
    @Test func substitutesPlaceholdersLiterally() throws {
        let argv = try CustomToolCommand.argv(
            template: ["grep", "-n", "--max-count={{n}}", "{{pattern}}", "{{file}}", "{{flag}}", "{{obj}}", "{{x}}{{y}}", "{{not a name}}", "{{"],
            arguments: ["n": 3, "pattern": "; rm -rf / $(id) `id` 'q\"", "file": nil, "flag": true, "obj": ["a": [1, 1.5]], "x": "a", "y": "b"])
        #expect(argv == ["grep", "-n", "--max-count=3", "; rm -rf / $(id) `id` 'q\"", "true", #"{"a":[1,1.5]}"#, "ab", "{{not a name}}", "{{"])
    }

    @Test func missingOptionalDropsTheElementAndBadValuesFail() throws {
        #expect(try CustomToolCommand.argv(template: ["ls", "--color={{c}}", "x"], arguments: [:]) == ["ls", "x"])
        #expect(throws: ToolFailure.self) { try CustomToolCommand.argv(template: ["{{prog}}"], arguments: [:]) }
        #expect(throws: ToolFailure.self) { try CustomToolCommand.argv(template: ["echo", "{{a}}"], arguments: ["a": "x\u{0}y"]) }
    }

    @Test func registryRefusesUnknownPlaceholdersAndSchemas() {
        let params: JSONValue = ["type": "object", "properties": ["a": ["type": "string"]]]
        #expect(throws: ToolDefinitionError.self) {
            try ToolRegistry(builtins: [], customTools: [TaskFile.CustomTool(name: "t", description: "d", command: ["echo", "{{b}}"], parameters: params)])
        }
        #expect(throws: ToolDefinitionError.self) {
            try ToolRegistry(builtins: [], customTools: [TaskFile.CustomTool(name: "t", description: "d", command: ["echo"],
                                                                             parameters: ["type": "object", "$defs": [:]])])
        }
        #expect(throws: ToolDefinitionError.self) {
            try ToolRegistry(builtins: [.shell], customTools: [TaskFile.CustomTool(name: "shell", description: "d", command: ["echo"])])
        }
    }
}

struct ToolPreparationTests {
    let registry: ToolRegistry
    init() throws {
        registry = try ToolRegistry(
            builtins: TaskFile.BuiltinTool.allCases,
            customTools: [TaskFile.CustomTool(name: "greet", description: "d", command: ["echo", "{{who}}"],
                                              parameters: ["type": "object", "properties": ["who": ["type": "string"]],
                                                           "required": ["who"], "additionalProperties": false])],
            limits: ToolLimits(timeout: .seconds(20), output: 4096))
    }

    func refusal(_ name: String, _ arguments: String) -> String? {
        if case .failure(let f) = registry.prepare(ToolCall(id: "1", name: name, arguments: arguments), limits: registry.limits) { return f.message }
        return nil
    }

    @Test func specsAreValidSchemasInOrder() throws {
        #expect(registry.specs.map(\.name) == ["shell", "read_file", "write_file", "edit_file", "list_files", "search", "greet"])
        for spec in registry.specs { _ = try JSONSchema(spec.parameters) }
        #expect(registry.specs[0].parameters["properties"]?["timeout_seconds"]?["maximum"] == 20)
    }

    @Test func refusesBadCallsBeforeRunning() {
        #expect(refusal("nope", "{}")?.hasPrefix("unknown tool \"nope\"; the available tools are: shell, read_file") == true)
        #expect(refusal("shell", "{\"command\": ")?.contains("not valid JSON") == true)
        #expect(refusal("shell", "[1]")?.contains("must be a JSON object") == true)
        #expect(refusal("shell", "{}") == "invalid arguments for shell: /: missing required property \"command\"")
        #expect(refusal("shell", "{\"command\":\"ls\",\"timeout_seconds\":21}")?.contains("/timeout_seconds: must be at most 20") == true)
        #expect(refusal("shell", "{\"command\":\"ls\",\"rm\":true}")?.contains("/rm: unknown property") == true)
        #expect(refusal("shell", "{\"command\":\"ls\",\"command\":\"rm\"}")?.contains("duplicate member name") == true)
        #expect(refusal("read_file", #"{"path":"../etc/passwd"}"#)?.contains("contains \"..\"") == true)
        #expect(refusal("read_file", #"{"path":"a/../../x"}"#)?.contains("contains \"..\"") == true)
        #expect(refusal("read_file", #"{"path":"/etc/passwd"}"#)?.contains("outside /work") == true)
        #expect(refusal("read_file", #"{"path":"/workspace/x"}"#)?.contains("outside /work") == true)
        #expect(refusal("read_file", #"{"path":"a\u0000b"}"#)?.contains("NUL byte") == true)
        #expect(refusal("read_file", "{\"path\":\"" + String(repeating: "a", count: 5000) + "\"}")?.contains("at most 4096 characters") == true)
        #expect(refusal("write_file", #"{"path":"/work","content":""}"#)?.contains("is a directory") == true)
        #expect(refusal("edit_file", #"{"path":"a","old_string":"","new_string":"x"}"#)?.contains("at least 1 characters") == true)
        #expect(refusal("search", #"{"pattern":"a\u0000"}"#)?.contains("NUL byte") == true)
        #expect(refusal("greet", #"{"who":1}"#) == "invalid arguments for greet: /who: expected string, found number")
        #expect(refusal("greet", #"{"who":"x\u0000"}"#)?.contains("NUL byte") == true)
        #expect(refusal("shell", #"{"command":"ls"}"#) == nil)
        #expect(refusal("read_file", #"{"path":"/work/./a//b"}"#) == nil)
        #expect(refusal("list_files", "") == nil, "empty arguments are {}")
    }

    @Test func pathsResolveUnderWork() throws {
        #expect(try ToolPath.resolve("/work") == "")
        #expect(try ToolPath.resolve("/work/") == "")
        #expect(try ToolPath.resolve("./a/./b/") == "a/b")
        #expect(try ToolPath.resolve("/work//a") == "a")
        #expect(try ToolPath.resolve("a..b/..c") == "a..b/..c")
    }
}

/// compactText (tool messages, custom-tool arguments) and the wire writer are one writer.
struct OneJSONWriterTests {
    @Test func compactTextAndWireJSONAgreeByteForByte() throws {
        let value: JSONValue = ["b": "x\u{8}\u{C}\u{1F}\u{2028}\u{2029}\"\\", "a": [1, 2.5, true, nil], "c": ["nested": "é😀"]]
        #expect(value.compactText == WireJSON(value).text)
        #expect(value.compactText == #"{"a":[1,2.5,true,null],"b":"x\b\f\u001f\u2028\u2029\"\\","c":{"nested":"é😀"}}"#)
        #expect(try JSONValue.parse(value.compactText) == value)
        // A custom tool's array argument becomes argv text the same way.
        #expect(CustomToolCommand.render(["\u{8}\u{2028}"]) == #"["\b\u2028"]"#)
        // A lone surrogate never gets as far as a writer: the parser refuses it.
        #expect(throws: (any Error).self) { try JSONValue.parse(#"["a\ud800b"]"#) }
        #expect(try JSONValue.parse(#"["\ud83d\ude00"]"#).compactText == #"["😀"]"#)
    }
}
