import CSQLite3
import Foundation
import RobitSync

/// One run as the run store keeps it.
public struct RunRecord: Sendable, Equatable {
    public var id: String
    public var taskPath: String
    public var taskName: String
    public var workspace: String
    public var runWorkspace: String
    public var auditPath: String
    public var status: String
    public var exitCode: Int?
    public var steps: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var costMicroUSD: Int64?
    public var head: String?
    public var patchPath: String?
    /// The pull request output.pr opened or found.
    public var prURL: String?
    public var runtime: String
    public var provider: String
    public var model: String
    public var startedAt: Int64
    public var endedAt: Int64?
    var pid: Int32

    init(id: String, taskPath: String, taskName: String, workspace: String, runWorkspace: String, auditPath: String,
                status: String, runtime: String, provider: String, model: String) {
        self.id = id
        self.taskPath = taskPath
        self.taskName = taskName
        self.workspace = workspace
        self.runWorkspace = runWorkspace
        self.auditPath = auditPath
        self.status = status
        self.exitCode = nil
        self.steps = 0
        self.inputTokens = 0
        self.outputTokens = 0
        self.costMicroUSD = 0
        self.head = nil
        self.patchPath = nil
        self.runtime = runtime
        self.provider = provider
        self.model = model
        self.startedAt = Int64(Date().timeIntervalSince1970)
        self.endedAt = nil
        self.pid = getpid()
    }
}

public struct RunStoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The run store: one SQLite database (`$XDG_STATE_HOME/robit/runs.db`) with a row per run and per step.
public final class RunStore: @unchecked Sendable {
    private let db: OpaquePointer
    private let lock = NSLock()
    private let pending = Locked<(rows: [[Value]], lastWrite: ContinuousClock.Instant)>(([], ContinuousClock.now - .seconds(3600)))
    public let path: String

    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["ROBIT_RUN_STORE"], !explicit.isEmpty { return explicit }
        return RobitPaths.state(environment) + "/runs.db"
    }

    public init(path: String = RunStore.defaultPath()) throws(RunStoreError) {
        self.path = path
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        var handle: OpaquePointer?
        guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil) == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close(handle) }
            throw RunStoreError(message: "cannot open the run store \(path): \(message)")
        }
        db = handle
        sqlite3_busy_timeout(db, 5000)
        try exec("""
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=NORMAL;
            PRAGMA cache_size=-256;
            CREATE TABLE IF NOT EXISTS runs (
              id TEXT PRIMARY KEY, task_path TEXT NOT NULL, task_name TEXT NOT NULL, workspace TEXT NOT NULL,
              run_workspace TEXT NOT NULL, audit_path TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER,
              steps INTEGER NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
              cost_micro_usd INTEGER, head TEXT, patch_path TEXT, runtime TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
              started_at INTEGER NOT NULL, ended_at INTEGER, pid INTEGER NOT NULL, pr_url TEXT);
            CREATE TABLE IF NOT EXISTS steps (
              run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, tool_calls INTEGER NOT NULL,
              input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost_micro_usd INTEGER, status TEXT NOT NULL,
              at INTEGER NOT NULL, PRIMARY KEY (run_id, step));
            """)
        // Stores made before output.pr had no pr_url column.
        var hasPRURL = false
        try run("PRAGMA table_info(runs)", []) { s in if Self.text(s, 1) == "pr_url" { hasPRURL = true } }
        // Another robit may add it at the same moment: a "duplicate column" failure is that.
        if !hasPRURL { try? exec("ALTER TABLE runs ADD COLUMN pr_url TEXT") }
        chmod(path, 0o600)
    }

    deinit {
        try? flushSteps()
        sqlite3_close(db)
    }

    private func exec(_ sql: String) throws(RunStoreError) {
        var error: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(db, sql, nil, nil, &error) == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(error)
            throw RunStoreError(message: "run store \(path): \(message)")
        }
    }

    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    enum Value: Sendable {
        case text(String?)
        case int(Int64?)
    }

    private func run(_ sql: String, _ values: [Value], row: ((OpaquePointer) -> Void)? = nil) throws(RunStoreError) {
        lock.lock()
        defer { lock.unlock() }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw RunStoreError(message: "run store: \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(statement) }
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            switch value {
            case .text(let s?): sqlite3_bind_text(statement, index, s, -1, Self.transient)
            case .int(let n?): sqlite3_bind_int64(statement, index, n)
            default: sqlite3_bind_null(statement, index)
            }
        }
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_ROW { row?(statement); continue }
            if rc == SQLITE_DONE { return }
            throw RunStoreError(message: "run store: \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    func insert(_ r: RunRecord) throws(RunStoreError) {
        try run("""
            INSERT INTO runs (id, task_path, task_name, workspace, run_workspace, audit_path, status, exit_code, steps, input_tokens,
              output_tokens, cost_micro_usd, head, patch_path, runtime, provider, model, started_at, ended_at, pid, pr_url)
            VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
            """, values(r))
    }

    func update(_ r: RunRecord) throws(RunStoreError) {
        try flushSteps()
        try run("""
            UPDATE runs SET task_path=?, task_name=?, workspace=?, run_workspace=?, audit_path=?, status=?, exit_code=?, steps=?,
              input_tokens=?, output_tokens=?, cost_micro_usd=?, head=?, patch_path=?, runtime=?, provider=?, model=?, started_at=?,
              ended_at=?, pid=?, pr_url=? WHERE id=?
            """, Array(values(r).dropFirst()) + [.text(r.id)])
    }

    /// Step rows are written in batches, in one transaction at most about once a second and when the run
    /// ends (`update`, `flushSteps`), so a step of the loop costs no SQLite write. The run store lists
    /// runs; the audit log, written at every step, is the record of what each step did.
    func recordStep(run id: String, step: Int, toolCalls: Int, usage: Usage, cost: Int64?, status: String) throws(RunStoreError) {
        let row: [Value] = [.text(id), .int(Int64(step)), .int(Int64(toolCalls)), .int(Int64(usage.inputTokens)), .int(Int64(usage.outputTokens)),
                            .int(cost), .text(status), .int(Int64(Date().timeIntervalSince1970))]
        let due = pending.withLock { p in
            p.rows.append(row)
            return p.rows.count >= 512 || ContinuousClock.now - p.lastWrite >= .seconds(1)
        }
        if due { try flushSteps() }
    }

    /// Writes the step rows not yet written.
    func flushSteps() throws(RunStoreError) {
        let rows = pending.withLock { p in
            defer { p.rows = []; p.lastWrite = ContinuousClock.now }
            return p.rows
        }
        guard !rows.isEmpty else { return }
        try exec("BEGIN")
        do {
            for row in rows {
                try run("INSERT OR REPLACE INTO steps (run_id, step, tool_calls, input_tokens, output_tokens, cost_micro_usd, status, at) VALUES (?,?,?,?,?,?,?,?)", row)
            }
            try exec("COMMIT")
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }

    private func values(_ r: RunRecord) -> [Value] {
        [.text(r.id), .text(r.taskPath), .text(r.taskName), .text(r.workspace), .text(r.runWorkspace), .text(r.auditPath),
         .text(r.status), .int(r.exitCode.map(Int64.init)), .int(Int64(r.steps)), .int(Int64(r.inputTokens)), .int(Int64(r.outputTokens)),
         .int(r.costMicroUSD), .text(r.head), .text(r.patchPath), .text(r.runtime), .text(r.provider), .text(r.model),
         .int(r.startedAt), .int(r.endedAt), .int(Int64(r.pid)), .text(r.prURL)]
    }

    private static let columns = "id, task_path, task_name, workspace, run_workspace, audit_path, status, exit_code, steps, input_tokens, output_tokens, cost_micro_usd, head, patch_path, runtime, provider, model, started_at, ended_at, pid, pr_url"

    public func list(limit: Int = 50) throws(RunStoreError) -> [RunRecord] {
        var out: [RunRecord] = []
        try run("SELECT \(Self.columns) FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?", [.int(Int64(limit))]) { out.append(Self.decode($0)) }
        return out
    }

    /// The run with this id, or the only one whose id starts with it.
    public func get(_ id: String) throws(RunStoreError) -> RunRecord? {
        var out: [RunRecord] = []
        try run("SELECT \(Self.columns) FROM runs WHERE id = ? OR id LIKE ? ESCAPE '\\' ORDER BY id = ? DESC LIMIT 2",
                [.text(id), .text(id.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"), .text(id)]) {
            out.append(Self.decode($0))
        }
        if let exact = out.first, exact.id == id { return exact }
        return out.count == 1 ? out[0] : nil
    }

    /// Runs that ended (or, never having ended, started) before `time` (seconds since 1970), oldest first.
    func runs(before time: Int64) throws(RunStoreError) -> [RunRecord] {
        var out: [RunRecord] = []
        try run("SELECT \(Self.columns) FROM runs WHERE COALESCE(ended_at, started_at) < ? ORDER BY COALESCE(ended_at, started_at), rowid",
                [.int(time)]) { out.append(Self.decode($0)) }
        return out
    }

    /// Removes a run's row and its step rows.
    func delete(run id: String) throws(RunStoreError) {
        try flushSteps()
        try exec("BEGIN")
        do {
            try run("DELETE FROM steps WHERE run_id = ?", [.text(id)])
            try run("DELETE FROM runs WHERE id = ?", [.text(id)])
            try exec("COMMIT")
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }

    public struct Step: Sendable { public var step: Int; public var toolCalls: Int; public var inputTokens: Int; public var outputTokens: Int; public var costMicroUSD: Int64?; public var status: String }

    public func steps(run id: String) throws(RunStoreError) -> [Step] {
        try flushSteps()
        var out: [Step] = []
        try run("SELECT step, tool_calls, input_tokens, output_tokens, cost_micro_usd, status FROM steps WHERE run_id = ? ORDER BY step", [.text(id)]) { s in
            out.append(Step(step: Int(sqlite3_column_int64(s, 0)), toolCalls: Int(sqlite3_column_int64(s, 1)),
                            inputTokens: Int(sqlite3_column_int64(s, 2)), outputTokens: Int(sqlite3_column_int64(s, 3)),
                            costMicroUSD: sqlite3_column_type(s, 4) == SQLITE_NULL ? nil : sqlite3_column_int64(s, 4),
                            status: Self.text(s, 5) ?? ""))
        }
        return out
    }

    private static func text(_ s: OpaquePointer, _ i: Int32) -> String? {
        guard sqlite3_column_type(s, i) != SQLITE_NULL, let c = sqlite3_column_text(s, i) else { return nil }
        return String(cString: c)
    }

    private static func int(_ s: OpaquePointer, _ i: Int32) -> Int64? {
        sqlite3_column_type(s, i) == SQLITE_NULL ? nil : sqlite3_column_int64(s, i)
    }

    private static func decode(_ s: OpaquePointer) -> RunRecord {
        var r = RunRecord(id: text(s, 0) ?? "", taskPath: text(s, 1) ?? "", taskName: text(s, 2) ?? "", workspace: text(s, 3) ?? "",
                          runWorkspace: text(s, 4) ?? "", auditPath: text(s, 5) ?? "", status: text(s, 6) ?? "",
                          runtime: text(s, 14) ?? "", provider: text(s, 15) ?? "", model: text(s, 16) ?? "")
        r.exitCode = int(s, 7).map { Int($0) }
        r.steps = Int(int(s, 8) ?? 0)
        r.inputTokens = Int(int(s, 9) ?? 0)
        r.outputTokens = Int(int(s, 10) ?? 0)
        r.costMicroUSD = int(s, 11)
        r.head = text(s, 12)
        r.patchPath = text(s, 13)
        r.startedAt = int(s, 17) ?? 0
        r.endedAt = int(s, 18)
        r.pid = Int32(int(s, 19) ?? 0)
        r.prURL = text(s, 20)
        return r
    }
}
