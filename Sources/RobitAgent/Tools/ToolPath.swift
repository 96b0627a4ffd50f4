/// A path argument of a file tool, checked before anything runs: relative to /work, or absolute under
/// /work; no NUL byte, no `..` component, at most 4096 bytes. The result is relative to /work
/// ("" = /work itself). robit-init checks again inside the sandbox and never follows a symlink.
enum ToolPath {
    static let maxBytes = 4096

    static func resolve(_ raw: String, argument: String = "path") throws(ToolFailure) -> String {
        guard !raw.utf8.contains(0) else { throw ToolFailure("\(argument) contains a NUL byte; give a plain path inside /work") }
        guard raw.utf8.count <= maxBytes else {
            throw ToolFailure("\(argument) is \(raw.utf8.count) bytes long; paths are limited to \(maxBytes) bytes")
        }
        var path = Substring(raw)
        if path.hasPrefix("/") {
            guard path == "/work" || path.hasPrefix("/work/") else {
                throw ToolFailure("\(argument) \(quote(raw)) is outside /work; give a path relative to /work (the workspace), e.g. src/main.c")
            }
            path = path.dropFirst("/work".count)
        }
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            guard part != ".." else {
                throw ToolFailure("\(argument) \(quote(raw)) contains \"..\"; give a path inside /work without \"..\"")
            }
            parts.append(part)
        }
        return parts.joined(separator: "/")
    }

    static func quote(_ s: String) -> String {
        JSONValue.quoted(s.count > 200 ? String(s.prefix(200)) + "..." : s)
    }
}

/// A tool call that fails with a message for the model (never a crash, never a sandbox problem).
struct ToolFailure: Error, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
}
