import Foundation
import RobitOCI

/// A task file (`task.yaml`), loaded strictly: unknown keys, wrong types, duplicate keys and bad values
/// are errors that name the file, the line and the key path, so a typo can never silently weaken a sandbox.
///
/// Relative paths in the file (`workspace.path`, `sandbox.rootfs`, `sandbox.policy`, `output.patch`,
/// `model.script`) are resolved against the task file's directory; every path held here is absolute and
/// lexically normalized. Sections the file leaves out get the defaults documented on each type.
public struct TaskFile: Sendable, Equatable {
    /// The only schema version this robit reads.
    static let supportedVersion = 1
    /// Task files larger than this are refused.
    static let maxFileSize = 1 << 20

    var version: Int
    /// Task name (letters, digits, `.`, `_`, `-`); defaults to the file name without its extension.
    var name: String
    var model: Model
    /// System prompt; nil when the file has none.
    var system: String?
    var prompt: String
    var workspace: Workspace
    var sandbox: Sandbox
    /// Built-in tools offered to the model; all of them unless the file says otherwise.
    var tools: [BuiltinTool]
    var customTools: [CustomTool]
    var budget: Budget
    var output: Output

    init(version: Int = TaskFile.supportedVersion, name: String, model: Model, system: String? = nil, prompt: String,
                workspace: Workspace, sandbox: Sandbox = Sandbox(), tools: [BuiltinTool] = BuiltinTool.allCases,
                customTools: [CustomTool] = [], budget: Budget = Budget(), output: Output = Output()) {
        self.version = version
        self.name = name
        self.model = model
        self.system = system
        self.prompt = prompt
        self.workspace = workspace
        self.sandbox = sandbox
        self.tools = tools
        self.customTools = customTools
        self.budget = budget
        self.output = output
    }

    /// Reads and validates the task file at `path`.
    ///
    /// - Parameter path: the file, absolute or relative to the current directory. Errors name it as given.
    /// - Throws: `TaskFileError` when the file cannot be read (missing, a directory, over 1 MiB, not UTF-8)
    ///   or is not a valid task.
    public static func load(path: String) throws(TaskFileError) -> TaskFile {
        try read(path: path).task
    }

    /// Reads the task file at `path` once: the task, and the very bytes it was parsed from (what a run
    /// hashes and keeps in its audit log).
    static func read(path: String) throws(TaskFileError) -> (task: TaskFile, bytes: Data) {
        let data = try TaskFileReader.read(path: path)
        let text = try TaskFileReader.decodeUTF8(data, file: path)
        let absolute = TaskPaths.absolute(path)
        let directory = TaskPaths.normalize((absolute as NSString).deletingLastPathComponent)
        return (try parse(text, file: path, baseDirectory: directory), data)
    }

    /// Parses and validates task-file text.
    ///
    /// - Parameters:
    ///   - text: the YAML text.
    ///   - file: the name used in error messages (and for the default task name).
    ///   - baseDirectory: directory that relative paths in the file are resolved against; a relative
    ///     one is taken relative to the current directory.
    /// - Throws: `TaskFileError` naming the file, line and key path of the first problem.
    static func parse(_ text: String, file: String, baseDirectory: String) throws(TaskFileError) -> TaskFile {
        let root = try YAMLDocument.compose(text, file: file)
        let decoder = TaskFileDecoder(file: file, baseDirectory: TaskPaths.normalize(TaskPaths.absolute(baseDirectory)))
        return try decoder.decode(root)
    }
}

/// Reading the bytes of a task file, with the size and encoding checks that come before YAML.
enum TaskFileReader {
    static func read(path: String) throws(TaskFileError) -> Data {
        func fail(_ message: String) -> TaskFileError {
            TaskFileError(file: path, line: nil, keyPath: "", message: message)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw fail("no such file; check the path (relative paths are taken from the current directory)")
        }
        guard !isDirectory.boolValue else {
            throw fail("is a directory; give the path of a task file such as task.yaml")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw fail("cannot be read; check its permissions")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: TaskFile.maxFileSize + 1) ?? Data()
        } catch {
            throw fail("cannot be read: \(error.localizedDescription)")
        }
        guard data.count <= TaskFile.maxFileSize else {
            throw fail("is larger than 1 MiB; task files are limited to 1 MiB (keep large inputs in the workspace and refer to them from the prompt)")
        }
        return data
    }

    static func decodeUTF8(_ data: Data, file: String) throws(TaskFileError) -> String {
        let bytes = [UInt8](data)
        guard let offset = firstInvalidUTF8Offset(bytes) else {
            return String(decoding: bytes, as: UTF8.self)
        }
        let line = bytes[..<offset].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        let shown = offset < bytes.count ? String(format: " (byte 0x%02X)", bytes[offset]) : " (truncated character at the end)"
        throw TaskFileError(
            file: file, line: line, keyPath: "",
            message: "not valid UTF-8 text\(shown); task files must be UTF-8 YAML, not binary data (re-save the file as UTF-8)")
    }

    /// Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no overlong
    /// forms, no surrogates, nothing above U+10FFFF); nil when all of `bytes` is valid.
    static func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int? {
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let length: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF  // allowed range of the second byte
            switch lead {
            case 0x00...0x7F: index += 1; continue
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return index
            }
            guard index + length <= bytes.count else { return index }
            guard (low...high).contains(bytes[index + 1]) else { return index }
            for next in bytes[(index + 2)..<(index + length)] where !(0x80...0xBF).contains(next) { return index }
            index += length
        }
        return nil
    }
}
