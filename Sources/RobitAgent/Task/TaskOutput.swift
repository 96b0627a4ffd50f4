extension TaskFile {
    /// What the run leaves behind: a patch and, when asked, a branch and a pull request.
    struct Output: Sendable, Equatable {
        /// Where a pull request is opened.
        struct PullRequest: Sendable, Equatable {
            /// `owner/name`.
            var repo: String
            /// Branch the pull request targets (default `main`).
            var base: String
            /// Branch robit pushes (default `robit/<task name>`).
            var branch: String
            /// Name of the host environment variable holding the token (default `GITHUB_TOKEN`).
            var tokenEnv: String
            /// API root: GitHub (default `https://api.github.com`), GitHub Enterprise or a compatible server.
            var apiURL: String
            /// Title and body of the pull request (nil: robit's, naming the task and the run).
            var title: String?
            var body: String?
            var draft: Bool

            init(repo: String, base: String = "main", branch: String, tokenEnv: String = "GITHUB_TOKEN",
                        apiURL: String = "https://api.github.com", title: String? = nil, body: String? = nil, draft: Bool = false) {
                self.repo = repo
                self.base = base
                self.branch = branch
                self.tokenEnv = tokenEnv
                self.apiURL = apiURL
                self.title = title
                self.body = body
                self.draft = draft
            }
        }

        /// Absolute path of the patch file; nil = robit's default place (the run directory).
        var patch: String?
        var pullRequest: PullRequest?

        init(patch: String? = nil, pullRequest: PullRequest? = nil) {
            self.patch = patch
            self.pullRequest = pullRequest
        }
    }
}
