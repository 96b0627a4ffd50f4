import Foundation
import RobitAudit
import RobitOCI

/// `robit audit report LOG --html OUT.html`: one self-contained page for a reviewer. The verification
/// verdict comes first; then the run summary (task, model, budgets and totals, policy hashes, the egress
/// allowlist and what it denied) and a timeline of model turns and tool calls. Nothing is loaded from
/// anywhere: the page's Content-Security-Policy allows only its own style and script, by hash, so even
/// a log crafted to inject markup cannot make it fetch or run anything. Every string from the log is
/// escaped; secrets appear only as the log holds them (redacted when the run wrote it).
public enum AuditHTMLReport {
    /// What an output shows inline before it is cut (the rest is in the log or its blob).
    static let outputLimit = 4096
    /// Outputs longer than this many bytes or lines start collapsed.
    static let collapseBytes = 600
    static let collapseLines = 8

    public struct Result: Sendable {
        public var html: String
        public var verified: Bool
        /// The verdict's first line, as the page shows it.
        public var verdictLine: String
        public var steps: Int
    }

    public static func render(logPath argument: String, options: AuditVerifyOptions = AuditVerifyOptions()) -> Result {
        let path = AuditFormat.logPath(argument)
        let directory = (path as NSString).deletingLastPathComponent
        let verdict = AuditVerifier.verify(path: path, options: options)
        var records: [AuditRecord] = []
        var skipped = 0
        if var reader = try? AuditReader(path: path) {
            while let r = reader.next() { records.append(r) }
            skipped = reader.skipped
        }
        let verdictLine: String
        let verdictClass: String
        if let f = verdict.failure {
            verdictLine = "FAILED verification: line \(f.line): \(f.problem.rawValue): \(f.detail)"
            verdictClass = "bad"
        } else if !verdict.signed {
            verdictLine = "Verified, but UNSIGNED: the chain is intact, and anyone could have written it; keep the head hash to pin it"
            verdictClass = "warn"
        } else if !verdict.pinned {
            verdictLine = "Verified with an UNPINNED key \(verdict.keyID ?? "?"): the key named in the log itself; pin it with --key"
            verdictClass = "warn"
        } else {
            verdictLine = "Verified: signed with the pinned key \(verdict.keyID ?? "?")"
            verdictClass = "ok"
        }
        var page = Page(directory: directory)
        let steps = page.build(path: path, records: records, skipped: skipped, verdict: verdict, verdictLine: verdictLine, verdictClass: verdictClass)
        return Result(html: page.out, verified: verdict.ok, verdictLine: verdictLine, steps: steps)
    }

    // MARK: - The page

    static let style = """
        :root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--mute:#5b6570;--line:#d8dee4;--card:#f6f8fa;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--acc:#0969da}
        @media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#9198a1;--line:#30363d;--card:#161b22;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--acc:#4493f8}}
        *{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
        main{max-width:1100px;margin:0 auto;padding:0 16px 48px}a{color:var(--acc)}
        .skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--bg);padding:4px 8px;z-index:9}
        .verdict{margin:0;padding:14px 16px;font-size:17px;font-weight:600;border-bottom:4px solid}
        .verdict.ok{border-color:var(--ok);color:var(--ok)}.verdict.bad{border-color:var(--bad);color:var(--bad)}.verdict.warn{border-color:var(--warn);color:var(--warn)}
        h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin:26px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
        table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;vertical-align:top;padding:3px 8px;border-bottom:1px solid var(--line)}th{width:220px;color:var(--mute);font-weight:500}
        code,pre,.mono{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
        pre{white-space:pre-wrap;word-break:break-word;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px;margin:4px 0;max-height:480px;overflow:auto}
        .hash{word-break:break-all}
        .tools{display:flex;gap:12px;align-items:center;flex-wrap:wrap;margin:8px 0}
        .step{content-visibility:auto;contain-intrinsic-size:auto 160px;border:1px solid var(--line);border-radius:8px;margin:10px 0;padding:8px 12px;background:var(--bg)}
        .step:focus{outline:3px solid var(--acc);outline-offset:2px}
        .step>h3{font-size:15px;margin:0 0 4px}.item{border-top:1px dashed var(--line);padding:6px 0 2px}.item:first-of-type{border-top:0}
        .tag{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;border:1px solid var(--line)}
        .tag.ok{color:var(--ok);border-color:var(--ok)}.tag.error{color:var(--bad);border-color:var(--bad)}
        .meta{color:var(--mute);font-size:13px}.lbl{color:var(--mute);user-select:none}pre{margin:2px 0}summary{cursor:pointer;color:var(--acc)}summary:focus{outline:2px solid var(--acc)}
        .hidden{display:none}
        """

    static let script = """
        (function(){var steps=[].slice.call(document.querySelectorAll('.step'));var i=-1;
        function go(n,d){d=d||1;while(n>=0&&n<steps.length&&steps[n].classList.contains('hidden'))n+=d;if(n<0||n>=steps.length)return;i=n;steps[i].focus();}
        document.addEventListener('keydown',function(e){if(e.target&&/INPUT|SELECT|TEXTAREA/.test(e.target.tagName))return;
        if(e.key==='j')go(i+1,1);else if(e.key==='k')go(i-1,-1);else if(e.key==='e'){for(var n=i+1;n<steps.length;n++){if(steps[n].dataset.error){go(n);return;}}}});
        var f=document.getElementById('only-errors');if(f)f.addEventListener('change',function(){steps.forEach(function(s){s.classList.toggle('hidden',f.checked&&!s.dataset.error);});});
        document.body.dataset.ready='1';})();
        """

    static func csp() -> String {
        func hash(_ s: String) -> String { "'sha256-" + Data(AuditHash.sha256(Array(s.utf8))).base64EncodedString() + "'" }
        return "default-src 'none'; style-src \(hash(style)); script-src \(hash(script)); img-src 'none'; font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'"
    }

    struct Page {
        let directory: String
        var out = ""

        init(directory: String) {
            self.directory = directory
            out.reserveCapacity(1 << 20)
        }

        mutating func raw(_ s: String) { out += s }
        mutating func text(_ s: String) { out += AuditHTMLReport.escape(s) }

        /// Builds the page; returns the number of model steps.
        mutating func build(path: String, records: [AuditRecord], skipped: Int, verdict: AuditVerdict, verdictLine: String, verdictClass: String) -> Int {
            let start = records.first { $0.type == "run.start" }
            let end = records.last { $0.type == "run.end" }
            let policy = records.first { $0.type == "policy" }
            let create = records.first { $0.type == "sandbox.create" }
            let taskText = start?.data["task"].flatMap { AuditHistory.text($0, directory: directory) }
            let task = taskText.flatMap { t -> TaskFile? in
                guard start?.data["command"]?.stringValue != "sandbox run" else { return nil }
                let file = start?.data["task_path"]?.stringValue ?? "task.yaml"
                return try? TaskFile.parse(t, file: file, baseDirectory: (file as NSString).deletingLastPathComponent)
            }
            let steps = records.filter { $0.type == "model.response" }.compactMap { $0.data["step"]?.intValue }.max().map(Int.init) ?? 0
            let toolResults = records.filter { $0.type == "tool.result" }.count

            raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
            raw("<meta http-equiv=\"Content-Security-Policy\" content=\"\(AuditHTMLReport.csp())\">")
            raw("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\">")
            raw("<title>")
            text("robit audit report: \(start?.run ?? records.first?.run ?? "unknown run")")
            raw("</title><style>\(AuditHTMLReport.style)</style></head><body>")
            raw("<p class=\"verdict \(verdictClass)\" id=\"verdict\" role=\"status\">")
            text(verdictLine)
            raw("</p><a class=\"skip\" href=\"#timeline\">Skip to the timeline</a><main>")
            raw("<h1>")
            text("Run \(start?.run ?? records.first?.run ?? "?")")
            raw("</h1><p class=\"meta\">")
            text("\(path) · \(verdict.records) records, \(verdict.checkpoints) checkpoints, \(verdict.blobs) blobs · head \(verdict.head ?? "none")")
            if skipped > 0 { text(" · \(skipped) line(s) could not be read as records") }
            raw("</p>")

            // Summary
            raw("<h2 id=\"summary\">Summary</h2><table>")
            row("Result", end.map { "\($0.data["result"]?.stringValue ?? "?") (exit \($0.data["exit_code"]?.intValue ?? -1))" } ?? "no run.end: the log is incomplete")
            if let message = end?.data["message"]?.stringValue, !message.isEmpty { row("Message", message) }
            row("Command", "robit \(start?.data["command"]?.stringValue ?? "?")")
            if let name = start?.data["task_name"]?.stringValue { row("Task", name + (start?.data["task_path"]?.stringValue.map { " (\($0))" } ?? "")) }
            if let replay = start?.data["replay_of"], !replay.isNull {
                row("Replay of", "\(replay["run"]?.stringValue ?? "?") (head \(replay["head"]?.stringValue ?? "?"), \(replay["path"]?.stringValue ?? "?"))")
            }
            if let provider = start?.data["provider"]?.stringValue { row("Model", "\(provider) / \(start?.data["model"]?.stringValue ?? "?")") }
            row("Started", start?.ts ?? "?")
            row("Ended", end?.ts ?? "not ended")
            row("robit", start?.data["robit_version"]?.stringValue ?? "?")
            if let end {
                let tokens = (end.data["input_tokens"]?.intValue ?? 0) + (end.data["output_tokens"]?.intValue ?? 0)
                let cost = end.data["cost_micro_usd"]?.intValue.map { String(format: "$%.6f", Double($0) / 1e6) } ?? "unknown"
                row("Totals", "\(end.data["steps"]?.intValue ?? 0) steps, \(end.data["tool_calls"]?.intValue ?? 0) tool calls, \(tokens) tokens (\(end.data["input_tokens"]?.intValue ?? 0) in, \(end.data["output_tokens"]?.intValue ?? 0) out), cost \(cost)")
            } else {
                row("Totals", "\(steps) steps, \(toolResults) tool results so far")
            }
            if let b = task?.budget {
                row("Budgets", "max_steps \(b.maxSteps), max_tokens \(b.maxTokens), max_wall \(b.maxWall.components.seconds)s, max_cost "
                    + (b.maxCostMicroUSD.map { String(format: "$%.2f", Double($0) / 1e6) } ?? "none") + ", max_audit_log \(b.maxAuditLog)")
            }
            if let hit = records.last(where: { $0.type == "budget" }) {
                row("Budget reached", "\(hit.data["limit"]?.stringValue ?? "?"): \(hit.data["detail"]?.stringValue ?? "")")
            }
            if let patch = records.last(where: { $0.type == "patch" }) {
                row("Patch", "\(patch.data["path"]?.stringValue ?? "?") · \(patch.data["bytes"]?.intValue ?? 0) bytes, \(patch.data["files"]?.intValue ?? 0) file(s), sha256 \(patch.data["sha256"]?.stringValue ?? "?")")
            }
            raw("</table>")

            // Sandbox and policy
            raw("<h2 id=\"policy\">Sandbox and policy</h2><table>")
            if let create {
                row("Sandbox", "\(create.data["resource"]?.stringValue ?? "?") under \(create.data["runtime"]?.stringValue ?? "?") (\(create.data["runtime_path"]?.stringValue ?? "?"))")
                row("Limits", "memory \(create.data["memory_bytes"]?.intValue ?? 0) bytes, pids \(create.data["pids"]?.intValue ?? 0), cpu \(Double(create.data["cpu_millis"]?.intValue ?? 0) / 1000)")
            }
            if let p = policy?.data {
                row("Isolation", "rootfs read-only \(p["rootfs_readonly"]?.boolValue == true ? "yes" : "NO"), no_new_privileges \(p["no_new_privileges"]?.boolValue == true ? "yes" : "NO"), user \(p["user"]?.stringValue ?? "?"), capabilities \(ReplayComparison.show(p["capabilities"]))")
                row("Policy", p["policy_source"]?.stringValue ?? "?")
                for key in ["config_sha256", "config_template_sha256", "seccomp_sha256", "nft_sha256", "nft_template_sha256"] {
                    row(key, p[key]?.stringValue ?? "null", mono: true)
                }
                row("Network", p["network"]?.stringValue ?? "?")
            } else {
                row("Policy", "no policy record (the sandbox was not created)")
            }
            if let task {
                let rules = task.sandbox.network.egress
                row("Egress allowlist", rules.isEmpty ? "none: no network" : rules.map(\.description).joined(separator: ", "))
            }
            if case .array(let pinned)? = policy?.data["pinned_hosts"], !pinned.isEmpty {
                row("Pinned hosts", pinned.map { "\($0["name"]?.stringValue ?? "?") → \($0["address"]?.stringValue ?? "?")" }.joined(separator: ", "))
            }
            var denied: [String: Int64] = [:]
            for r in records where r.type == "net.denied" {
                guard case .array(let list)? = r.data["destinations"] else { continue }
                for d in list { denied["\(d["proto"]?.stringValue ?? "?") \(d["address"]?.stringValue ?? "?"):\(d["port"]?.intValue ?? 0)", default: 0] += d["packets"]?.intValue ?? 0 }
            }
            row("Denied attempts", denied.isEmpty ? "none recorded" : denied.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value) packets)" }.joined(separator: ", "))
            raw("</table>")

            // Timeline
            raw("<h2 id=\"timeline\">Timeline</h2>")
            raw("<div class=\"tools\"><span class=\"meta\">\(steps) steps, \(toolResults) tool calls. Keys: j / k next / previous step, e next error.</span>")
            raw("<label><input type=\"checkbox\" id=\"only-errors\"> only steps with errors</label></div>")
            timeline(records)
            raw("</main><script>\(AuditHTMLReport.script)</script></body></html>\n")
            return steps
        }

        mutating func row(_ name: String, _ value: String, mono: Bool = false) {
            raw("<tr><th scope=\"row\">")
            text(name)
            raw(mono ? "</th><td class=\"mono hash\">" : "</th><td>")
            text(value)
            raw("</td></tr>")
        }

        /// Steps in order: a section per model turn, holding its answer and the results of its calls;
        /// what comes before the first turn and after the last has a section of its own. A call's
        /// arguments (from its `tool.call`) are shown with its result.
        mutating func timeline(_ records: [AuditRecord]) {
            // By step and id: servers that send no call ids get `call_0`… in every step.
            var arguments: [String: AuditValue] = [:]
            for r in records where r.type == "tool.call" {
                if let id = r.data["id"]?.stringValue { arguments["\(r.data["step"]?.intValue ?? -1)/\(id)"] = r.data["arguments"] }
            }
            var open = false
            var sectionHasError = false
            var body = Page(directory: directory)
            var heading = ""
            func flush(_ page: inout Page) {
                guard open else { return }
                page.raw("<section class=\"step\" tabindex=\"-1\"\(sectionHasError ? " data-error=\"1\"" : "")><h3>")
                page.text(heading)
                page.raw("</h3>")
                page.raw(body.out)
                page.raw("</section>")
                body.out = ""
                open = false
                sectionHasError = false
            }
            for r in records {
                switch r.type {
                case "checkpoint", "model.request", "tool.call":
                    continue
                case "model.response":
                    flush(&self)
                    open = true
                    heading = "Step \(r.data["step"]?.intValue ?? 0)"
                case "run.end":
                    flush(&self)
                    open = true
                    heading = "End"
                default:
                    if !open { open = true; heading = "Start" }
                }
                if r.data["status"]?.stringValue == "error" { sectionHasError = true }
                body.record(r, arguments: r.type == "tool.result" ? r.data["id"]?.stringValue.flatMap { arguments["\(r.data["step"]?.intValue ?? -1)/\($0)"] } : nil)
            }
            flush(&self)
        }

        mutating func record(_ r: AuditRecord, arguments: AuditValue? = nil) {
            let status = r.data["status"]?.stringValue
            raw("<div class=\"item\"><span class=\"meta\">#\(r.seq) ")
            text(String(r.ts.dropFirst(11).prefix(12)))
            raw("</span> ")
            if r.type == "tool.result" {
                raw("<b>")
                text(r.data["name"]?.stringValue ?? "?")
                raw("</b> ")
            } else {
                raw("<b>")
                text(r.type)
                raw("</b> ")
            }
            if status == "error" { raw("<span class=\"tag error\">error</span> ") }
            switch r.type {
            case "model.response":
                if status == "error" {
                    line("error (\(r.data["error_kind"]?.stringValue ?? "?")): \(r.data["error"]?.stringValue ?? "")")
                    break
                }
                raw("<span class=\"meta\">")
                text("\(r.data["input_tokens"]?.intValue ?? 0) tokens in, \(r.data["output_tokens"]?.intValue ?? 0) out · \(AuditHTMLReport.duration(r.data["latency_ns"]?.intValue)) · stop \(r.data["stop_reason"]?.stringValue ?? "?")")
                if case .array(let calls)? = r.data["tool_calls"], !calls.isEmpty {
                    text(" · calls " + calls.map { $0["name"]?.stringValue ?? "?" }.joined(separator: ", "))
                }
                raw("</span>")
                output("answer", r.data["text"])
            case "tool.result":
                raw("<span class=\"meta\">")
                var facts: [String] = [r.data["id"]?.stringValue ?? ""]
                if let code = r.data["exit_code"]?.intValue { facts.append("exit \(code)") }
                if let signal = r.data["signal"]?.intValue { facts.append("signal \(signal)") }
                if let ns = r.data["duration_ns"]?.intValue { facts.append(AuditHTMLReport.duration(ns)) }
                if let o = r.data["stdout_bytes"]?.intValue, let e = r.data["stderr_bytes"]?.intValue { facts.append("\(o)+\(e) bytes") }
                for flag in ["truncated", "timed_out", "out_of_memory", "interrupted", "sandbox_restarted"] where r.data[flag]?.boolValue == true { facts.append(flag) }
                if let refused = r.data["refused"]?.stringValue { facts.append("refused: \(refused)") }
                text(facts.joined(separator: " · "))
                raw("</span>")
                output("arguments", arguments)
                if case .array(let argv)? = r.data["argv"] {
                    let shown = argv.compactMap(\.stringValue).joined(separator: " ")
                    if shown != "" { output("argv", .string(shown)) }
                }
                output("stdout", r.data["stdout"])
                output("stderr", r.data["stderr"])
                // What the model was shown matters on its own where nothing ran (refused, invalid arguments).
                if r.data["exit_code"]?.isNull != false { output("shown to the model", r.data["content"]) }
            case "net.denied":
                if case .array(let list)? = r.data["destinations"] {
                    line("after \(r.data["after"]?.stringValue ?? "?"): " + list.map { "\($0["proto"]?.stringValue ?? "?") \($0["address"]?.stringValue ?? "?"):\($0["port"]?.intValue ?? 0) ×\($0["packets"]?.intValue ?? 0)" }.joined(separator: ", "))
                }
            case "error":
                line("\(r.data["stage"]?.stringValue ?? "?"): \(r.data["message"]?.stringValue ?? "")")
            case "budget":
                line("\(r.data["limit"]?.stringValue ?? "?"): \(r.data["detail"]?.stringValue ?? "")")
            case "patch":
                line("\(r.data["path"]?.stringValue ?? "?"), \(r.data["bytes"]?.intValue ?? 0) bytes, \(r.data["files"]?.intValue ?? 0) file(s), \(r.data["redacted"]?.intValue ?? 0) secret value(s) redacted")
            case "run.end":
                line("\(r.data["result"]?.stringValue ?? "?"), exit \(r.data["exit_code"]?.intValue ?? -1): \(r.data["message"]?.stringValue ?? "")")
                output("final answer", r.data["final_text"])
            case "sandbox.create":
                line("\(r.data["resource"]?.stringValue ?? "?") under \(r.data["runtime"]?.stringValue ?? "?") in \(AuditHTMLReport.duration(r.data["duration_ns"]?.intValue))")
            case "sandbox.destroy":
                line("\(r.data["resource"]?.stringValue ?? "?") in \(AuditHTMLReport.duration(r.data["duration_ns"]?.intValue))" + (ReplayComparison.show(r.data["leftovers"]) == "[]" ? "" : ", leftovers \(ReplayComparison.show(r.data["leftovers"]))"))
            case "run.start":
                line("robit \(r.data["command"]?.stringValue ?? "?") · \(r.data["signed"]?.boolValue == true ? "signed, key \(r.data["key_id"]?.stringValue ?? "?")" : "unsigned")")
                output("prompt", r.data["prompt"])
            default:
                break
            }
            raw("</div>")
        }

        mutating func line(_ s: String) {
            raw("<div class=\"meta\">")
            text(s)
            raw("</div>")
        }

        /// A payload: inline text, a blob (read, cut), or bytes the log did not keep; long ones start collapsed.
        mutating func output(_ label: String, _ value: AuditValue?) {
            guard let value, !value.isNull else { return }
            var shown: String
            var note = ""
            var total: Int
            if let s = value.stringValue {
                shown = s
                total = s.utf8.count
            } else if let ref = value["blob"]?.stringValue {
                total = Int(value["size"]?.intValue ?? 0)
                if let path = AuditHistory.blobPath(ref, directory: directory), let handle = FileHandle(forReadingAtPath: path) {
                    let head = (try? handle.read(upToCount: AuditHTMLReport.outputLimit + 4)) ?? Data()
                    try? handle.close()
                    shown = String(decoding: head, as: UTF8.self)
                } else {
                    shown = ""
                    note = "blob \(ref) is missing"
                }
                if note.isEmpty { note = "in blob \(ref)" }
            } else if value["omitted"]?.boolValue == true {
                total = Int(value["size"]?.intValue ?? 0)
                shown = value["prefix"]?.stringValue ?? ""
                note = "not kept: only its first bytes, size and sha256 \(value["sha256"]?.stringValue ?? "?")"
            } else {
                shown = ReplayComparison.show(value)
                total = shown.utf8.count
            }
            if shown.isEmpty && total == 0 { return }
            if shown.utf8.count > AuditHTMLReport.outputLimit {
                var bytes = Array(shown.utf8.prefix(AuditHTMLReport.outputLimit))
                while !bytes.isEmpty && String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }
                shown = String(decoding: bytes, as: UTF8.self)
            }
            let cut = total > shown.utf8.count
            let lines = shown.utf8.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            let long = total > AuditHTMLReport.collapseBytes || lines > AuditHTMLReport.collapseLines
            if long {
                raw("<details><summary>")
                text("\(label) (\(total) bytes\(note.isEmpty ? "" : ", " + note))")
                raw("</summary><pre>")
            } else {
                raw("<pre title=\"")
                text(label)
                raw("\"><span class=\"lbl\">")
                text(label + (note.isEmpty ? "" : " (" + note + ")"))
                raw("</span> ")
            }
            text(shown)
            if cut { text("\n… \(total - shown.utf8.count) more bytes in the log") }
            raw(long ? "</pre></details>" : "</pre>")
        }
    }

    static func duration(_ ns: Int64?) -> String {
        guard let ns else { return "?" }
        return ns >= 1_000_000_000 ? String(format: "%.2f s", Double(ns) / 1e9) : String(format: "%.1f ms", Double(ns) / 1e6)
    }

    /// Text made safe for HTML element content and attribute values; control characters (but tab and
    /// newline) are shown as symbols.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count + 16)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\n", "\t": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 { out.unicodeScalars.append(Unicode.Scalar(0x2400 + scalar.value)!) }
                else if scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value) { out += "\u{FFFD}" }
                // Bidirectional overrides could reorder a command as it is displayed: shown, not applied.
                else if (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value) || scalar.value == 0x200E || scalar.value == 0x200F {
                    out += "[U+\(String(scalar.value, radix: 16, uppercase: true))]"
                }
                else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }
}
