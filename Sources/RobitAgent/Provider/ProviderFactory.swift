import Foundation

/// Builds the provider a task file's `model:` section names.
enum ProviderFactory {
    static let openAIBaseURL = "https://api.openai.com/v1"
    static let anthropicBaseURL = "https://api.anthropic.com"
    /// Ollama is spoken to through its OpenAI-compatible endpoint (`/v1/chat/completions`,
    /// streaming tool calls since Ollama 0.4), so it shares the Chat Completions codec.
    static let ollamaBaseURL = "http://127.0.0.1:11434/v1"

    /// - Parameters:
    ///   - model: the task's model section.
    ///   - environment: the host environment the API key is read from (`model.api_key_env`).
    ///   - baseDirectory: directory a relative `model.script` is resolved against.
    ///   - options: timeouts, retries and the circuit breaker of HTTP providers.
    static func make(model: TaskFile.Model, environment: [String: String], baseDirectory: String,
                            options: HTTPProviderOptions = HTTPProviderOptions()) throws(ProviderError) -> any ModelProvider {
        let keyEnv = model.apiKeyEnv ?? TaskFile.Model.defaultAPIKeyEnv(for: model.provider)
        switch model.provider {
        case .openai:
            let key = try apiKey(keyEnv, provider: "openai", required: true, environment: environment)
            let base = try baseURL(model.baseURL ?? openAIBaseURL)
            return StreamingProvider(codec: OpenAIChatCodec(name: "openai", baseURL: base, flavor: .openai), apiKey: key, apiKeyEnv: keyEnv, options: options)
        case .anthropic:
            let key = try apiKey(keyEnv, provider: "anthropic", required: true, environment: environment)
            let base = try baseURL(model.baseURL ?? anthropicBaseURL)
            return StreamingProvider(codec: AnthropicMessagesCodec(baseURL: base), apiKey: key, apiKeyEnv: keyEnv, options: options)
        case .ollama:
            let key = try apiKey(keyEnv, provider: "ollama", required: false, environment: environment)
            let base = try baseURL(model.baseURL ?? ollamaBaseURL)
            return StreamingProvider(codec: OpenAIChatCodec(name: "ollama", baseURL: base, flavor: .compatible), apiKey: key, apiKeyEnv: keyEnv, options: options)
        case .openaiCompatible:
            guard let configured = model.baseURL else {
                throw ProviderError(.configuration, "provider openai-compatible needs model.base_url (e.g. http://127.0.0.1:8000/v1)", attempts: 0)
            }
            let key = try apiKey(keyEnv, provider: "openai-compatible", required: false, environment: environment)
            let base = try baseURL(configured)
            return StreamingProvider(codec: OpenAIChatCodec(name: "openai-compatible", baseURL: base, flavor: .compatible), apiKey: key, apiKeyEnv: keyEnv, options: options)
        case .replay:
            guard let script = model.script, !script.isEmpty else {
                throw ProviderError(.configuration, "provider replay needs model.script: a JSONL file with one model turn per line", attempts: 0)
            }
            let path = script.hasPrefix("/") ? script : URL(fileURLWithPath: baseDirectory).appendingPathComponent(script).standardizedFileURL.path
            return ReplayProvider(turns: try ReplayScript.load(path: path), source: path)
        }
    }

    private static func apiKey(_ name: String?, provider: String, required: Bool, environment: [String: String]) throws(ProviderError) -> String? {
        guard let name else {
            if required {
                throw ProviderError(.configuration, "provider \(provider) needs an API key: set model.api_key_env to the name of the host variable holding it", attempts: 0)
            }
            return nil
        }
        guard let key = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty else {
            throw ProviderError(.configuration, "the API key variable \(name) (model.api_key_env) is not set or empty in robit's environment: export \(name)=… on the host", attempts: 0)
        }
        guard !key.contains(where: { $0.isNewline || $0 == "\0" }) else {
            throw ProviderError(.configuration, "the API key in \(name) contains a line break or NUL; it cannot be sent in a header", attempts: 0)
        }
        return key
    }

    private static func baseURL(_ text: String) throws(ProviderError) -> String {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty else {
            throw ProviderError(.configuration, "model.base_url \"\(text)\" is not an http or https URL with a host (e.g. https://api.openai.com/v1)", attempts: 0)
        }
        guard components.user == nil, components.password == nil, components.query == nil, components.fragment == nil else {
            throw ProviderError(.configuration, "model.base_url \"\(components.host ?? text)…\" must not carry credentials, a query or a fragment: put the key in the variable named by model.api_key_env", attempts: 0)
        }
        return text
    }
}
