import Foundation
import RobitOCI

/// Where robit keeps its sandboxes' bundles while they exist, with the owning robit process of each,
/// so that one robit can tell another's live sandbox from one left behind by a robit that was killed.
public struct SandboxState: Sendable {
    public var root: String

    /// `$ROBIT_STATE_DIR`, or /run/robit.
    public static func `default`() -> SandboxState {
        SandboxState(root: ProcessInfo.processInfo.environment["ROBIT_STATE_DIR"] ?? "/run/robit")
    }

    public init(root: String) { self.root = root }

    public var sandboxesDirectory: String { root + "/sandboxes" }
    public func directory(for id: String) -> String { sandboxesDirectory + "/" + id }

    struct Owner: Codable {
        var pid: Int32
        var startTime: UInt64
        var runtime: RuntimeKind
        var workspace: String?
        /// A scratch workspace robit made for this sandbox, removed with it.
        var scratch: String?
    }

    package func writeOwner(id: String, runtime: RuntimeKind, workspace: String?, scratch: String? = nil) throws {
        let dir = directory(for: id)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let me = getpid()
        let owner = Owner(pid: me, startTime: Self.startTime(of: me) ?? 0, runtime: runtime, workspace: workspace, scratch: scratch)
        try OCIBundle.write(JSONEncoder().encode(owner), to: dir + "/owner.json", mode: 0o600)
    }

    func owner(of id: String) -> Owner? {
        guard let data = FileManager.default.contents(atPath: directory(for: id) + "/owner.json") else { return nil }
        return try? JSONDecoder().decode(Owner.self, from: data)
    }

    /// Ids of sandboxes with a state directory.
    public func sandboxIDs() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: sandboxesDirectory)) ?? []).filter { $0.hasPrefix("robit-") }.sorted()
    }

    /// True while the robit process that created `id` is still running.
    func ownerIsAlive(_ id: String) -> Bool {
        guard let owner = owner(of: id) else {
            // No owner file yet: a robit is between mkdir and writing it, or died there. Give it a minute.
            let attrs = try? FileManager.default.attributesOfItem(atPath: directory(for: id))
            let created = (attrs?[.modificationDate] as? Date) ?? .distantPast
            return Date().timeIntervalSince(created) < 60
        }
        return Self.startTime(of: owner.pid) == owner.startTime
    }

    /// Field 22 of /proc/PID/stat: tells a live owner from a recycled pid.
    static func startTime(of pid: Int32) -> UInt64? {
        guard let text = KernelFile.read("/proc/\(pid)/stat"),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); starttime is field 22.
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}

/// A sandbox robit found that nobody owns any more, and what removing it did.
public struct Leftover: Sendable, CustomStringConvertible {
    public var id: String
    public var runtime: RuntimeKind?
    public var kind: String
    public var removed: Bool
    public var detail: String

    public var description: String {
        "\(id) (\(kind)\(runtime.map { ", \($0.rawValue)" } ?? ""))\(removed ? ": removed" : ": \(detail)")"
    }
}

/// Finds and removes what killed robits left behind: containers, cgroups, mounts and state dirs.
public enum Janitor {
    /// Lists leftovers; with `remove`, tears each one down. Sandboxes of live robits are never touched.
    public static func sweep(state: SandboxState = .default(), remove: Bool, includeRuntimeLists: Bool = false) async -> [Leftover] {
        var found: [Leftover] = []
        var handled = Set<String>()
        for id in state.sandboxIDs() where !state.ownerIsAlive(id) {
            handled.insert(id)
            let owner = state.owner(of: id)
            var item = Leftover(id: id, runtime: owner?.runtime, kind: "sandbox of a robit that is gone", removed: false, detail: "not removed")
            if remove {
                let problems = await teardown(id: id, runtimes: owner.map { [$0.runtime] } ?? RuntimeKind.allCases, state: state)
                item.removed = problems.isEmpty
                item.detail = problems.joined(separator: "; ")
            }
            found.append(item)
        }
        let live = Set(state.sandboxIDs())
        if includeRuntimeLists {
            for kind in RuntimeKind.allCases {
                guard let runtime = try? Runtime.locate(kind) else { continue }
                for id in await runtime.containerIDs() where id.hasPrefix("robit-") && !live.contains(id) && !handled.contains(id) {
                    // Only containers whose bundle was in this state root, older than a minute, and
                    // still without a state directory now: never another state root's or a robit's
                    // that is starting right now.
                    guard let info = await runtime.stateInfo(id: id), let bundle = info.bundle,
                          bundle == state.directory(for: id) || bundle.hasPrefix(state.sandboxesDirectory + "/"),
                          Date().timeIntervalSince(info.created ?? .distantPast) > 60,
                          !FileManager.default.fileExists(atPath: state.directory(for: id)) else { continue }
                    handled.insert(id)
                    var item = Leftover(id: id, runtime: kind, kind: "container without a robit", removed: false, detail: "not removed")
                    if remove {
                        let problems = await teardown(id: id, runtimes: [kind], state: state)
                        item.removed = problems.isEmpty
                        item.detail = problems.joined(separator: "; ")
                    }
                    found.append(item)
                }
            }
        }
        found += await SandboxNetwork.sweep(remove: remove, skipping: handled, includeUnleased: includeRuntimeLists)
        found += LayerRegistry(state: state).sweep(remove: remove)
        for id in CgroupMounts.current().sandboxIDs() where !live.contains(id) && !handled.contains(id) {
            var item = Leftover(id: id, runtime: nil, kind: "cgroup without a sandbox", removed: false, detail: "not removed")
            if remove {
                // Whose processes these are is unknown (another state root?): remove only if empty.
                let left = CgroupMounts.current().remove(path: "/robit/\(id)", killing: false)
                item.removed = left.isEmpty
                item.detail = left.isEmpty ? "" : "still holds processes: \(left.joined(separator: ", "))"
            }
            found.append(item)
        }
        return found
    }

    /// Deletes the container; nil when it is gone (or never existed), else what went wrong.
    static func removeContainer(id: String, runtime: Runtime, adopted: [AdoptedProcess] = []) async -> String? {
        func run(_ args: [String]) async -> ChildProcess.Result? {
            try? await ChildProcess(executable: runtime.path, arguments: args, outputLimit: 1 << 16, timeout: .seconds(30),
                                    interruptible: false).run()
        }
        if !adopted.isEmpty {
            // What the runtime's delete would kill first, killed and reaped here: its delete then has
            // no process to wait for (runsc polls for its sandbox and gofer processes every 100 ms).
            let start = ContinuousClock.now
            for process in adopted { process.kill() }
            let gone = await BlockingThreads.run { () -> [Bool] in
                defer { Subreaper.reapOrphans() }
                return AdoptedProcess.waitUntilGone(adopted, timeout: .seconds(5))
            }
            if ChildProcess.trace {
                let what = zip(adopted, gone).map { "\($0.pid)\($1 ? "" : " (still there)")" }.joined(separator: ", ")
                ChildProcess.writeTrace("killed and reaped \(runtime.kind.rawValue)'s processes \(what)", duration: ContinuousClock.now - start)
            }
        }
        // While the delete runs, and after: ended orphans robit did not adopt are reaped too, so that
        // no zombie makes the runtime wait (runsc waits for its processes to be reaped).
        let sweeping: Task<Void, Never>? = Subreaper.isEnabled ? Task {
            while !Task.isCancelled {
                Subreaper.reapOrphans()
                try? await Task.sleep(for: .milliseconds(50))
            }
        } : nil
        defer {
            sweeping?.cancel()
            Subreaper.reapOrphans()
        }
        var result = await run(runtime.delete(id: id, force: true))
        if result?.status == .exited(0) { return nil }
        guard await runtime.status(id: id) != nil else { return nil }
        _ = await run(runtime.kill(id: id))
        result = await run(runtime.delete(id: id, force: true))
        if result?.status == .exited(0) { return nil }
        if await runtime.status(id: id) == nil { return nil }
        return "\(runtime.kind.rawValue) still has container \(id): \(result?.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")"
    }

    /// Removes the container (under each candidate runtime), its cgroups, any mounts below its state
    /// directory, and the directory. Returns what could not be removed.
    package static func teardown(id: String, runtimes: [RuntimeKind], state: SandboxState, adopted: [AdoptedProcess] = []) async -> [String] {
        // The network goes while the runtime deletes the container: its first step removes the veth,
        // which cuts the sandbox off, and the kernel's waits for that and for the nft table overlap the runtime's.
        async let network = SandboxNetwork.tearDown(id: id)
        var problems: [String] = []
        for kind in runtimes {
            guard let runtime = try? Runtime.locate(kind) else { continue }
            if let problem = await removeContainer(id: id, runtime: runtime, adopted: adopted) { problems.append(problem) }
        }
        problems += await network
        let left = CgroupMounts.current().remove(path: "/robit/\(id)")
        if !left.isEmpty { problems.append("cgroups left: \(left.joined(separator: ", "))") }
        let dir = state.directory(for: id)
        if let scratch = state.owner(of: id)?.scratch, scratch.hasPrefix(state.root + "/workspaces/"), !scratch.contains("/../") {
            try? FileManager.default.removeItem(atPath: scratch)
        }
        for mp in mounts(under: dir) { umount2(mp, Int32(MNT_DETACH)) }
        if FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.removeItem(atPath: dir) } catch { problems.append("cannot remove \(dir): \(error.localizedDescription)") }
        }
        return problems
    }
}
