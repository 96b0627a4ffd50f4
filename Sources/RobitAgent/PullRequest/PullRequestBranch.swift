import Foundation
import RobitExec

/// The host-side git work of `output.pr`, never inside the sandbox: the run's patch becomes one commit
/// on top of the remote's `base`, pushed as `branch` to the workspace repository's remote. It is built
/// in a scratch repository that borrows the workspace repository's objects: the user's checkout, index
/// and refs are not touched. A branch that exists with other commits is never pushed over.
struct PullRequestBranch: Sendable {
    /// Where the workspace's repository pushes to.
    struct Location: Sendable, Equatable {
        /// The repository's top level, and the workspace's place in it (`""` or `sub/dir/`).
        var top: String
        var prefix: String
        var objects: String
        var remote: String
        var fetchURL: String
        var pushURL: String
    }

    struct Failure: Error, Sendable {
        var message: String
    }

    var location: Location
    /// robit's environment: what git needs of it (HOME, SSH agent, proxies) is passed on.
    var environment: [String: String]
    var token: String?
    /// GIT_ASKPASS, in a directory only robit's user can read (written by `publish`).
    var askpass: String?

    /// Finds the workspace's repository and its remote (`origin`, or the only one).
    static func locate(workspace: String, environment: [String: String]) async throws(Failure) -> Location {
        let git = PullRequestBranch(location: Location(top: workspace, prefix: "", objects: "", remote: "", fetchURL: "", pushURL: ""),
                                    environment: environment, token: nil, askpass: nil)
        guard let top = try? await git.run(["-C", workspace, "rev-parse", "--show-toplevel"]) else {
            throw Failure(message: "output.pr: the workspace \(workspace) is not in a git repository; a pull request needs one, with a remote to push to")
        }
        let prefix = try await git.run(["-C", workspace, "rev-parse", "--show-prefix"])
        var objects = try await git.run(["-C", workspace, "rev-parse", "--git-common-dir"])
        if !objects.hasPrefix("/") { objects = workspace + "/" + objects }
        objects = URL(fileURLWithPath: objects + "/objects").standardizedFileURL.path
        let remotes = try await git.run(["-C", workspace, "remote"]).split(separator: "\n").map(String.init)
        let remote: String
        if remotes.contains("origin") { remote = "origin" } else if remotes.count == 1 { remote = remotes[0] } else if remotes.isEmpty {
            throw Failure(message: "output.pr: the repository \(top) has no remote to push to; add one with `git remote add origin URL`")
        } else {
            throw Failure(message: "output.pr: the repository \(top) has remotes \(remotes.joined(separator: ", ")) but none named origin; robit pushes to origin")
        }
        let fetchURL = try await git.run(["-C", workspace, "remote", "get-url", remote])
        let pushURL = try await git.run(["-C", workspace, "remote", "get-url", "--push", remote])
        return Location(top: top, prefix: prefix, objects: objects, remote: remote, fetchURL: fetchURL, pushURL: pushURL)
    }

    /// Commits `patch` (a file) on top of the remote's `base` and pushes it as `branch`. Returns the
    /// branch's commit and whether robit pushed it (false: the branch already held the same change).
    func publish(patch: String, base: String, branch: String, message: String, identity: (name: String, email: String),
                 scratch: String) async throws(Failure) -> (commit: String, pushed: Bool) {
        let repo = scratch + "/pr-repository"
        try? FileManager.default.removeItem(atPath: repo)
        defer { try? FileManager.default.removeItem(atPath: repo) }
        var me = self
        if token != nil {
            me.askpass = scratch + "/pr-askpass"
            try Self.writeAskpass(me.askpass!)
        }
        defer { if let path = me.askpass { unlink(path) } }
        return try await me.publish(patch: patch, base: base, branch: branch, message: message, identity: identity, scratch: scratch, repo: repo)
    }

    private func publish(patch: String, base: String, branch: String, message: String, identity: (name: String, email: String),
                         scratch: String, repo: String) async throws(Failure) -> (commit: String, pushed: Bool) {
        _ = try await run(["init", "-q", repo])
        // The workspace repository's objects are borrowed: fetching base costs only what it lacks.
        try? (location.objects + "\n").write(toFile: repo + "/.git/objects/info/alternates", atomically: true, encoding: .utf8)
        let git = ["-C", repo]
        do { _ = try await run(git + ["fetch", "-q", "--no-tags", location.fetchURL, "+refs/heads/\(base):refs/robit/base"]) } catch {
            throw Failure(message: "cannot fetch \(base) from \(location.remote) (\(location.fetchURL)): \(error.message)")
        }
        _ = try await run(git + ["read-tree", "refs/robit/base"])
        var apply = git + ["apply", "--cached", "--whitespace=nowarn"]
        if !location.prefix.isEmpty { apply.append("--directory=" + location.prefix) }
        do { _ = try await run(apply + [patch]) } catch {
            throw Failure(message: "the run's patch does not apply on top of \(location.remote)/\(base) (did \(base) change since the run started?): \(error.message)")
        }
        let tree = try await run(git + ["write-tree"])
        let messageFile = scratch + "/pr-commit-message"
        try? message.write(toFile: messageFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: messageFile) }
        let commit = try await run(git + ["commit-tree", tree, "-p", "refs/robit/base", "-F", messageFile],
                                   extra: ["GIT_AUTHOR_NAME=" + identity.name, "GIT_AUTHOR_EMAIL=" + identity.email,
                                           "GIT_COMMITTER_NAME=" + identity.name, "GIT_COMMITTER_EMAIL=" + identity.email])
        let listed = try await run(git + ["ls-remote", "--heads", location.pushURL, "refs/heads/" + branch])
        if let line = listed.split(separator: "\n").first(where: { $0.hasSuffix("\trefs/heads/" + branch) }) {
            let existing = String(line.prefix { $0 != "\t" })
            _ = try await run(git + ["fetch", "-q", "--no-tags", location.pushURL, "+refs/heads/\(branch):refs/robit/existing"])
            let existingTree = try await run(git + ["rev-parse", "refs/robit/existing^{tree}"])
            guard existingTree == tree else {
                throw Failure(message: "branch \(branch) already exists in \(location.remote) with other commits (\(existing.prefix(12))); robit never pushes over a branch: delete it, or set output.pr.branch to a new name")
            }
            return (existing, false)
        }
        do { _ = try await run(git + ["push", "-q", location.pushURL, commit + ":refs/heads/" + branch]) } catch {
            throw Failure(message: "cannot push \(branch) to \(location.remote) (\(location.pushURL)): \(error.message)")
        }
        return (commit, true)
    }

    /// The author and committer: the workspace repository's user.name and user.email, else robit.
    func identity() async -> (name: String, email: String) {
        let name = (try? await run(["-C", location.top, "config", "user.name"])).flatMap { $0.isEmpty ? nil : $0 } ?? "robit"
        let email = (try? await run(["-C", location.top, "config", "user.email"])).flatMap { $0.isEmpty ? nil : $0 } ?? "robit@localhost"
        return (name, email)
    }

    /// Runs git; its trimmed stdout, or its stderr as the failure.
    private func run(_ arguments: [String], extra: [String] = []) async throws(Failure) -> String {
        let path = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { $0 + "/git" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else { throw Failure(message: "git is not installed (not found in PATH); output.pr needs it") }
        var env = ["LANG=C", "LC_ALL=C", "GIT_TERMINAL_PROMPT=0"]
        for name in ["PATH", "HOME", "USER", "SSH_AUTH_SOCK", "GIT_SSH", "GIT_SSH_COMMAND", "http_proxy", "https_proxy", "no_proxy",
                     "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy", "GIT_CONFIG_GLOBAL", "XDG_CONFIG_HOME"] {
            if let value = environment[name] { env.append(name + "=" + value) }
        }
        if let token, let askpass {
            // git asks GIT_ASKPASS for https credentials; the token is in git's environment only,
            // never on a command line or in a file.
            env += ["GIT_ASKPASS=" + askpass, "ROBIT_GIT_TOKEN=" + token]
        }
        let child = ChildProcess(executable: path, arguments: arguments, environment: env + extra, timeout: .seconds(300))
        let result: ChildProcess.Result
        do { result = try await child.run() } catch { throw Failure(message: "cannot run git: \(error)") }
        guard result.status == .exited(0) else {
            let said = result.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(message: said.isEmpty ? "git \(arguments.first(where: { !$0.hasPrefix("-") && !$0.hasPrefix("/") }) ?? "") failed (\(result.status))" : String(said.suffix(2000)))
        }
        return result.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// GIT_ASKPASS: `x-access-token` as the user name (GitHub's convention for tokens), the token (from
    /// git's environment) as the password.
    private static func writeAskpass(_ path: String) throws(Failure) {
        let script = "#!/bin/sh\ncase \"$1\" in\n  Username*) echo x-access-token ;;\n  *) printf '%s\\n' \"$ROBIT_GIT_TOKEN\" ;;\nesac\n"
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o700)
        guard fd >= 0 else { throw Failure(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
        _ = script.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
