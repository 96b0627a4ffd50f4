extension TaskFile {
    /// What the run leaves behind: a patch and, when asked, a branch and a pull request.
    public struct Output: Sendable, Equatable {
        /// Where a pull request is opened.
        public struct PullRequest: Sendable, Equatable {
            /// `owner/name`.
            public var repo: String
            /// Branch the pull request targets (default `main`).
            public var base: String
            /// Branch robit pushes (default `robit/<task name>`).
            public var branch: String
            /// Name of the host environment variable holding the token (default `GITHUB_TOKEN`).
            public var tokenEnv: String
            /// API root: GitHub (default `https://api.github.com`), GitHub Enterprise or a compatible server.
            public var apiURL: String

            public init(repo: String, base: String = "main", branch: String, tokenEnv: String = "GITHUB_TOKEN",
                        apiURL: String = "https://api.github.com") {
                self.repo = repo
                self.base = base
                self.branch = branch
                self.tokenEnv = tokenEnv
                self.apiURL = apiURL
            }
        }

        /// Absolute path of the patch file; nil = robit's default place (the run directory).
        public var patch: String?
        public var pullRequest: PullRequest?

        public init(patch: String? = nil, pullRequest: PullRequest? = nil) {
            self.patch = patch
            self.pullRequest = pullRequest
        }
    }
}
