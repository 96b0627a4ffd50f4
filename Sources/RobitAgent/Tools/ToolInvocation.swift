import Foundation
import RobitExec
import RobitOCI

/// A validated tool call, ready to run in the sandbox: the command and how to read its result.
struct ToolInvocation: Sendable {
    enum Kind: Sendable {
        case command(timeoutSeconds: Int)
        case read
        case write(path: String)
        case edit(path: String)
        case list(base: String)
        case search
    }

    var request: ExecRequest
    var kind: Kind
    /// Reads only: may run concurrently with other read-only calls of the batch.
    var readOnly: Bool

    static let initPath = SandboxConfiguration.initPath

    static func fs(_ args: [String], stdin: Data = Data(), limits: ToolLimits, outputLimit: Int? = nil) -> ExecRequest {
        ExecRequest(argv: [initPath, "fs"] + args, timeout: limits.timeout, outputLimit: outputLimit ?? limits.output + 4096, stdin: stdin)
    }

    /// Checks the tool-specific rules of a built-in tool's arguments (the schema has passed).
    static func builtin(_ tool: TaskFile.BuiltinTool, _ args: [String: JSONValue], limits: ToolLimits) throws(ToolFailure) -> ToolInvocation {
        func string(_ key: String) -> String? { args[key]?.stringValue }
        func int(_ key: String) -> Int? { if case .number(let n)? = args[key] { return Int(exactly: n) } else { return nil } }
        func bool(_ key: String) -> Bool { args[key] == .bool(true) }
        func noNUL(_ value: String, _ key: String) throws(ToolFailure) -> String {
            guard !value.utf8.contains(0) else { throw ToolFailure("\(key) contains a NUL byte, which cannot be passed to a command") }
            return value
        }
        let shownPath = { (p: String) in p.isEmpty ? "/work" : "/work/" + p }

        switch tool {
        case .shell:
            let command = try noNUL(string("command") ?? "", "command")
            let seconds = min(int("timeout_seconds") ?? limits.timeoutSeconds, limits.timeoutSeconds)
            let request = ExecRequest(argv: ["/bin/sh", "-c", command], timeout: .seconds(seconds), outputLimit: limits.output)
            return ToolInvocation(request: request, kind: .command(timeoutSeconds: seconds), readOnly: false)
        case .readFile:
            let path = try ToolPath.resolve(string("path") ?? "")
            guard !path.isEmpty else { throw ToolFailure("/work is a directory; use list_files to see what it holds") }
            let first = int("offset") ?? 1
            let lines = int("limit") ?? TaskFile.BuiltinTool.defaultReadLines
            let request = fs(["read", path, String(first), String(lines), String(max(512, limits.output - 512))], limits: limits)
            return ToolInvocation(request: request, kind: .read, readOnly: true)
        case .writeFile:
            let path = try ToolPath.resolve(string("path") ?? "")
            guard !path.isEmpty else { throw ToolFailure("/work is a directory; give the path of a file inside it") }
            let request = fs(["write", path], stdin: Data((string("content") ?? "").utf8), limits: limits, outputLimit: 4096)
            return ToolInvocation(request: request, kind: .write(path: shownPath(path)), readOnly: false)
        case .editFile:
            let path = try ToolPath.resolve(string("path") ?? "")
            guard !path.isEmpty else { throw ToolFailure("/work is a directory; give the path of a file inside it") }
            let old = Data((string("old_string") ?? "").utf8)
            let new = Data((string("new_string") ?? "").utf8)
            guard !old.isEmpty else { throw ToolFailure("old_string is empty; give the exact text to replace") }
            if old == new { throw ToolFailure("old_string and new_string are the same; nothing would change") }
            let stdin = Data("\(old.count) \(new.count)\n".utf8) + old + new
            let request = fs(["edit", path, bool("replace_all") ? "all" : "one"], stdin: stdin, limits: limits, outputLimit: 4096)
            return ToolInvocation(request: request, kind: .edit(path: shownPath(path)), readOnly: false)
        case .listFiles:
            let path = try ToolPath.resolve(string("path") ?? ".")
            let depth = bool("recursive") ? (int("max_depth") ?? 8) : 1
            let request = fs(["list", path.isEmpty ? "." : path, String(depth), String(TaskFile.BuiltinTool.maxListEntries)], limits: limits)
            return ToolInvocation(request: request, kind: .list(base: path), readOnly: true)
        case .search:
            let pattern = try noNUL(string("pattern") ?? "", "pattern")
            let glob = try noNUL(string("glob") ?? "", "glob")
            let path = try ToolPath.resolve(string("path") ?? ".")
            let request = fs(["search", path.isEmpty ? "." : path, bool("literal") ? "literal" : "regex", pattern, glob,
                              String(TaskFile.BuiltinTool.maxSearchMatches)], limits: limits)
            return ToolInvocation(request: request, kind: .search, readOnly: true)
        }
    }

    static func custom(_ tool: TaskFile.CustomTool, _ args: [String: JSONValue], limits: ToolLimits) throws(ToolFailure) -> ToolInvocation {
        let argv = try CustomToolCommand.argv(template: tool.command, arguments: args)
        let request = ExecRequest(argv: argv, timeout: limits.timeout, outputLimit: limits.output)
        return ToolInvocation(request: request, kind: .command(timeoutSeconds: limits.timeoutSeconds), readOnly: false)
    }
}

/// What a call's result says to the model.
struct RenderedResult {
    var content: String
    var isError: Bool
    var truncated: Bool
    /// Appended after `content`, which alone is cut to fit the output limit.
    var notes = ""
}

extension ToolInvocation {
    /// Turns the (already redacted) result into the model's view of it.
    func render(_ r: ExecResult, stdout: Data, stderr: Data, limits: ToolLimits) -> RenderedResult {
        let out = String(decoding: stdout, as: UTF8.self)
        let err = String(decoding: stderr, as: UTF8.self)
        if case .command(let seconds) = kind { return Self.renderCommand(r, out: out, err: err, seconds: seconds, limits: limits) }
        if r.timedOut {
            return RenderedResult(content: "the file operation did not finish within \(limits.timeoutSeconds) seconds and was stopped", isError: true, truncated: false)
        }
        if r.status == .exited(3) {
            return RenderedResult(content: err.trimmingCharacters(in: .whitespacesAndNewlines), isError: true, truncated: false)
        }
        guard r.status == .exited(0) else {
            return RenderedResult(content: "robit's file helper failed (\(r.status)): \(err.trimmingCharacters(in: .whitespacesAndNewlines).prefix(2000))",
                                  isError: true, truncated: false)
        }
        switch kind {
        case .command(let seconds): return Self.renderCommand(r, out: out, err: err, seconds: seconds, limits: limits)
        case .read:
            guard let newline = out.firstIndex(of: "\n") else {
                return RenderedResult(content: "robit's file helper returned no header", isError: true, truncated: false)
            }
            let header = Self.fields(String(out[..<newline]))
            var text = String(out[out.index(after: newline)...])
            let next = header["next"] ?? "?"
            if header["more"] == "1" {
                let why = header["cut"] == "1" ? "the \(limits.output)-byte limit was reached" : "the line limit was reached"
                text += (text.hasSuffix("\n") || text.isEmpty ? "" : "\n")
                    + "[\(why); the file (\(header["size"] ?? "?") bytes) continues at line \(next): call read_file with offset=\(next)]"
            } else if text.isEmpty {
                text = header["size"] == "0" ? "(empty file)" : "(the file has fewer than \(header["first"] ?? "?") lines; read it from offset 1)"
            }
            return RenderedResult(content: text, isError: false, truncated: header["more"] == "1")
        case .write(let path):
            let n = Self.fields(out.trimmingCharacters(in: .whitespacesAndNewlines))["wrote"] ?? "?"
            return RenderedResult(content: "wrote \(n) bytes to \(path)", isError: false, truncated: false)
        case .edit(let path):
            let n = Self.fields(out.trimmingCharacters(in: .whitespacesAndNewlines))["replaced"] ?? "?"
            return RenderedResult(content: "replaced \(n) occurrence\(n == "1" ? "" : "s") in \(path)", isError: false, truncated: false)
        case .list(let base):
            var lines: [String] = []
            var more = r.stdout.truncated
            for record in out.split(separator: "\0", omittingEmptySubsequences: true) {
                let f = record.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
                guard f.count == 3 else { continue }
                if f[0] == "!" { more = true; continue }
                let path = base.isEmpty ? String(f[2]) : base + "/" + f[2]
                switch f[0] {
                case "d": lines.append(path + "/")
                case "f": lines.append("\(path) (\(f[1]) bytes)")
                case "l": lines.append(path + " (symbolic link, not followed)")
                default: lines.append(path + " (special file)")
                }
            }
            lines.sort()
            var text = lines.isEmpty ? "(empty directory)" : lines.joined(separator: "\n")
            if more { text += "\n[listing cut at \(TaskFile.BuiltinTool.maxListEntries) entries; list a subdirectory or use a smaller max_depth]" }
            return RenderedResult(content: text, isError: false, truncated: more)
        case .search:
            var lines: [String] = []
            var more = r.stdout.truncated
            let fields = out.split(separator: "\0", omittingEmptySubsequences: false)
            var i = 0
            while i < fields.count {
                if fields[i] == "!" { more = true; break }
                guard i + 2 < fields.count else { break }
                lines.append("\(fields[i]):\(fields[i + 1]): \(fields[i + 2])")
                i += 3
            }
            var text = lines.isEmpty ? "no matches" : lines.joined(separator: "\n")
            if more { text += "\n[more matches not shown (at most \(TaskFile.BuiltinTool.maxSearchMatches)); narrow the pattern, path or glob]" }
            return RenderedResult(content: text, isError: false, truncated: more)
        }
    }

    static func fields(_ line: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in line.split(separator: " ") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    static func renderCommand(_ r: ExecResult, out: String, err: String, seconds: Int, limits: ToolLimits) -> RenderedResult {
        var body = out
        if !err.isEmpty { body += (body.isEmpty || body.hasSuffix("\n") ? "" : "\n") + "[stderr]\n" + err }
        if body.isEmpty { body = "(no output)" }
        if !body.hasSuffix("\n") { body += "\n" }
        var text = ""
        var isError = false
        if r.timedOut {
            isError = true
            text += "[timed out after \(seconds) s: the command and everything it started were killed; give it a larger timeout_seconds "
                + "(at most \(limits.timeoutSeconds)) or make it faster]"
        } else if r.outOfMemory || r.sandboxRestarted {
            isError = true
            text += "[killed: the sandbox ran out of memory\(r.sandboxRestarted ? " and was restarted (files in /work are kept, /tmp is not)" : ""); use less memory]"
        } else if r.interrupted {
            isError = true
            text += "[interrupted: robit is stopping]"
        } else {
            text += "[exit status \(r.exitCode)]"
        }
        if r.truncated {
            isError = true
            text += "\n[output over the limit: stdout was \(r.stdout.totalBytes) bytes and stderr \(r.stderr.totalBytes) bytes; only the first "
                + "\(limits.output) bytes of each are kept. Redirect the output to a file in /work and read it with read_file or search]"
        }
        return RenderedResult(content: body, isError: isError, truncated: r.truncated, notes: text)
    }
}
