extension TaskFile {
    /// The tools robit implements itself.
    enum BuiltinTool: String, Sendable, CaseIterable {
        case shell
        case readFile = "read_file"
        case writeFile = "write_file"
        case editFile = "edit_file"
        case listFiles = "list_files"
        case search
    }

    /// A tool defined in the task file: a command run inside the sandbox with the model's arguments.
    struct CustomTool: Sendable, Equatable {
        /// Matches `^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$`; unique, and not the name of a built-in tool.
        var name: String
        var description: String
        /// The argv template; never empty, and the first element (the program) is not empty.
        var command: [String]
        /// JSON Schema of the arguments; always an object schema (`type: object`).
        var parameters: JSONValue

        init(name: String, description: String, command: [String], parameters: JSONValue = CustomTool.emptyParameters) {
            self.name = name
            self.description = description
            self.command = command
            self.parameters = parameters
        }

        /// The schema of a tool that takes no arguments, used when `parameters` is left out.
        static let emptyParameters: JSONValue = .object([
            "type": .string("object"), "properties": .object([:]), "additionalProperties": .bool(false),
        ])
    }
}
