extension TaskFile.BuiltinTool {
    /// Lines read_file returns when the call gives no `limit`.
    static let defaultReadLines = 2000
    /// Entries list_files returns at most.
    static let maxListEntries = 2000
    /// Matching lines search returns at most.
    static let maxSearchMatches = 500

    /// The tool's name, description and argument schema as offered to the model.
    func spec(limits: ToolLimits) -> ToolSpec {
        func object(_ properties: [String: JSONValue], required: [String]) -> JSONValue {
            .object([
                "type": "object", "properties": .object(properties), "required": .array(required.map { .string($0) }),
                "additionalProperties": false,
            ])
        }
        func string(_ description: String, minLength: Int = 0, maxLength: Int? = nil) -> JSONValue {
            var s: [String: JSONValue] = ["type": "string", "description": .string(description)]
            if minLength > 0 { s["minLength"] = .number(Double(minLength)) }
            if let maxLength { s["maxLength"] = .number(Double(maxLength)) }
            return .object(s)
        }
        func integer(_ description: String, minimum: Int, maximum: Int) -> JSONValue {
            .object(["type": "integer", "description": .string(description), "minimum": .number(Double(minimum)), "maximum": .number(Double(maximum))])
        }
        func boolean(_ description: String) -> JSONValue { .object(["type": "boolean", "description": .string(description)]) }
        let path = string("Path relative to /work (the workspace), or absolute under /work. Symbolic links are not followed.",
                          minLength: 1, maxLength: ToolPath.maxBytes)

        switch self {
        case .shell:
            return ToolSpec(
                name: rawValue,
                description: "Run a command with /bin/sh -c in /work inside the sandbox. Returns stdout, stderr and the exit status. "
                    + "Output over \(limits.output) bytes per stream is cut; a command running longer than its timeout is killed with everything it started.",
                parameters: object([
                    "command": string("The shell command line.", minLength: 1, maxLength: 100_000),
                    "timeout_seconds": integer("Kill the command after this many seconds (default and maximum \(limits.timeoutSeconds)).",
                                               minimum: 1, maximum: limits.timeoutSeconds),
                ], required: ["command"]))
        case .readFile:
            return ToolSpec(
                name: rawValue,
                description: "Read a text file in /work. Returns up to `limit` lines starting at line `offset` (1-based), "
                    + "at most \(limits.output) bytes; says where to continue when the file has more.",
                parameters: object([
                    "path": path,
                    "offset": integer("First line to return, 1-based (default 1).", minimum: 1, maximum: Int(Int32.max)),
                    "limit": integer("Maximum number of lines to return (default \(Self.defaultReadLines)).", minimum: 1, maximum: 1_000_000),
                ], required: ["path"]))
        case .writeFile:
            return ToolSpec(
                name: rawValue,
                description: "Create or overwrite a file in /work with the given content. Missing parent directories are created.",
                parameters: object([
                    "path": path,
                    "content": string("The complete new content of the file."),
                ], required: ["path", "content"]))
        case .editFile:
            return ToolSpec(
                name: rawValue,
                description: "Replace exact text in a file in /work. old_string must occur exactly once (include enough surrounding "
                    + "lines to make it unique) unless replace_all is true. Whitespace and indentation must match exactly.",
                parameters: object([
                    "path": path,
                    "old_string": string("The exact text to replace.", minLength: 1),
                    "new_string": string("The replacement text."),
                    "replace_all": boolean("Replace every occurrence instead of requiring exactly one (default false)."),
                ], required: ["path", "old_string", "new_string"]))
        case .listFiles:
            return ToolSpec(
                name: rawValue,
                description: "List a directory in /work: directories end with \"/\", files show their size. "
                    + "At most \(Self.maxListEntries) entries; .git directories are listed but not entered.",
                parameters: object([
                    "path": string("Directory relative to /work (default: /work itself).", maxLength: ToolPath.maxBytes),
                    "recursive": boolean("Also list subdirectories (default false)."),
                    "max_depth": integer("With recursive, how many levels to descend (default 8).", minimum: 1, maximum: 64),
                ], required: []))
        case .search:
            return ToolSpec(
                name: rawValue,
                description: "Search the text files under a path in /work for lines matching a POSIX extended regular expression "
                    + "(or a literal string with literal: true). Returns path:line: text, at most \(Self.maxSearchMatches) matches; "
                    + "binary files, files over 8 MiB and .git directories are skipped.",
                parameters: object([
                    "pattern": string("POSIX extended regular expression (grep -E syntax), or the literal text with literal: true.",
                                      minLength: 1, maxLength: 10_000),
                    "literal": boolean("Treat pattern as plain text (default false)."),
                    "path": string("File or directory relative to /work to search (default: all of /work).", maxLength: ToolPath.maxBytes),
                    "glob": string("Only search files whose name matches this shell glob, e.g. *.swift (with a \"/\", the path relative to /work is matched).",
                                   maxLength: 1000),
                ], required: ["pattern"]))
        }
    }
}
