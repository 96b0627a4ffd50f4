import Foundation
import RobitAudit

/// `output.pr`: after a run that finished with changes, its patch becomes a branch and a pull request.
/// Host-side only; the token is used by git (GIT_ASKPASS) and the API call and nowhere else.
enum PullRequestPublisher {
    /// What came of it: the `pr` audit record, the summary's `pr_url`, and the run's outcome.
    struct Result: Sendable {
        enum Kind: String, Sendable {
            case created, existing
            /// The run changed nothing: no branch, no pull request.
            case noChanges = "no_changes"
            case failed
        }

        var kind: Kind
        var url: String?
        var number: Int?
        var commit: String?
        /// Whether robit pushed the branch (false: it already held the same change, or nothing was pushed).
        var pushed = false
        var message: String
    }

    /// Checks, before the run starts, what a pull request will need: the token and the repository's remote.
    static func preflight(_ pr: TaskFile.Output.PullRequest, workspace: String,
                          environment: [String: String]) async throws(RunSetupError) -> PullRequestBranch.Location {
        guard let token = environment[pr.tokenEnv], !token.isEmpty else {
            throw RunSetupError(.invalidInput, "output.pr needs a token in $\(pr.tokenEnv), which is not set; export it (it is used on the host only, never in the sandbox)")
        }
        do { return try await PullRequestBranch.locate(workspace: workspace, environment: environment) } catch {
            throw RunSetupError(.invalidInput, error.message)
        }
    }

    static func publish(_ pr: TaskFile.Output.PullRequest, location: PullRequestBranch.Location, patch: String, task: String, run: String,
                        head: String, finalText: String?, environment: [String: String], scratch: String,
                        robitVersion: String) async -> Result {
        let size = (try? FileManager.default.attributesOfItem(atPath: patch))?[.size] as? Int ?? 0
        guard size > 0 else {
            return Result(kind: .noChanges, message: "the run changed nothing: no branch and no pull request")
        }
        let token = environment[pr.tokenEnv] ?? ""
        let title = pr.title ?? "robit: \(task)"
        let message = "\(title)\n\nMade by robit, task \(task), run \(run).\n\nRobit-Run: \(run)\nRobit-Audit-Head: \(head)\n"
        let git = PullRequestBranch(location: location, environment: environment, token: token, askpass: nil)
        let pushed: (commit: String, pushed: Bool)
        do {
            pushed = try await git.publish(patch: patch, base: pr.base, branch: pr.branch, message: message, identity: await git.identity(),
                                           scratch: scratch)
        } catch {
            return Result(kind: .failed, message: "no pull request: \(error.message)")
        }
        var body = pr.body ?? defaultBody(task: task, run: run, head: head, finalText: finalText)
        if body.count > 60_000 { body = String(body.prefix(60_000)) + "\n\n…" }
        let api = PullRequestAPI(apiURL: pr.apiURL, repo: pr.repo, token: token, tokenEnv: pr.tokenEnv, robitVersion: robitVersion)
        let branchNote = pushed.pushed ? "branch \(pr.branch) pushed (\(pushed.commit.prefix(12)))" : "branch \(pr.branch) already held this change"
        do {
            switch try await api.open(title: title, body: body, head: pr.branch, base: pr.base, draft: pr.draft) {
            case .created(let url, let number):
                return Result(kind: .created, url: url, number: number, commit: pushed.commit, pushed: pushed.pushed,
                              message: "\(branchNote); pull request opened: \(url)")
            case .existing(let url, let number):
                return Result(kind: .existing, url: url, number: number, commit: pushed.commit, pushed: pushed.pushed,
                              message: "\(branchNote); a pull request for it was already open: \(url)")
            }
        } catch {
            return Result(kind: .failed, commit: pushed.commit, pushed: pushed.pushed,
                          message: "\(branchNote), but no pull request: \(error.message)")
        }
    }

    static func defaultBody(task: String, run: String, head: String, finalText: String?) -> String {
        var body = "Opened by robit for task `\(task)` (run `\(run)`).\n"
        if let finalText, !finalText.isEmpty { body += "\n" + finalText + "\n" }
        body += "\nAudit head: `\(head)` (the log's head when the commit was made; `robit audit verify` checks the log).\n"
        return body
    }
}
