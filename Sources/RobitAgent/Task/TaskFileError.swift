/// A problem with a task file: which file, which line, which key, and what to do about it.
///
/// `description` reads like a compiler diagnostic:
/// `task.yaml:14: sandbox.limits.memory: "512MB!" is not a size (use e.g. 512MiB, 1GiB)`.
public struct TaskFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as the user named it (or the label given to `TaskFile.parse`).
    var file: String
    /// 1-based line, when the problem has a place in the file.
    var line: Int?
    /// Dotted key path such as `sandbox.limits.memory` or `custom_tools[0].name`; empty for the whole file.
    var keyPath: String
    /// What is wrong and how to fix it.
    var message: String

    init(file: String, line: Int?, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if !keyPath.isEmpty { text += keyPath + ": " }
        return text + message
    }
}
