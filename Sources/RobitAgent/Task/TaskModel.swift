extension TaskFile {
    /// The model section: which provider and model answer, and how robit reaches them.
    struct Model: Sendable, Equatable {
        enum Provider: String, Sendable, CaseIterable {
            case openai
            case anthropic
            case ollama
            case openaiCompatible = "openai-compatible"
            /// Answers from a recorded audit log (`script`); used by `robit audit replay` and offline demos.
            case replay
        }

        var provider: Provider
        /// Model name as the provider knows it (`gpt-4.1-mini`); `replay` when the provider is replay and none is given.
        var name: String
        /// API base URL (http or https); nil = the provider's usual endpoint. Required for `openai-compatible`.
        var baseURL: String?
        /// Name of the host environment variable holding the API key (never the key itself).
        /// Defaults to `OPENAI_API_KEY` for openai and `ANTHROPIC_API_KEY` for anthropic.
        var apiKeyEnv: String?
        var maxOutputTokens: Int?
        /// For `replay`: absolute path of the recorded log to answer from.
        var script: String?

        init(provider: Provider, name: String, baseURL: String? = nil, apiKeyEnv: String? = nil,
                    maxOutputTokens: Int? = nil, script: String? = nil) {
            self.provider = provider
            self.name = name
            self.baseURL = baseURL
            self.apiKeyEnv = apiKeyEnv
            self.maxOutputTokens = maxOutputTokens
            self.script = script
        }

        /// The environment variable robit reads the API key from when the file names none.
        static func defaultAPIKeyEnv(for provider: Provider) -> String? {
            switch provider {
            case .openai: return "OPENAI_API_KEY"
            case .anthropic: return "ANTHROPIC_API_KEY"
            case .ollama, .openaiCompatible, .replay: return nil
            }
        }
    }

    /// The workspace: a host directory mounted read-write at /work inside the sandbox.
    struct Workspace: Sendable, Equatable {
        /// Absolute host path; defaults to the task file's directory.
        var path: String

        init(path: String) {
            self.path = path
        }
    }
}
