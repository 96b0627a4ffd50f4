/// What model tokens cost, in micro-USD (1e-6 USD) per million tokens, to turn usage into money.
///
/// Model names match exactly or by the longest known prefix, so dated snapshots
/// (`claude-sonnet-4-20250514`, `gpt-4.1-mini-2025-04-14`) find their family. Unknown models
/// (local ones, new ones) have no price: `cost` is nil and the caller reports tokens only.
struct PriceTable: Sendable, Equatable {
    struct Price: Sendable, Equatable {
        var inputPerMillion: Int64
        var outputPerMillion: Int64

        init(inputPerMillion: Int64, outputPerMillion: Int64) {
            self.inputPerMillion = inputPerMillion
            self.outputPerMillion = outputPerMillion
        }

        /// From USD per million tokens, as providers publish them.
        init(usdPerMillionInput input: Double, output: Double) {
            self.init(inputPerMillion: Int64((input * 1_000_000).rounded()), outputPerMillion: Int64((output * 1_000_000).rounded()))
        }
    }

    var prices: [String: Price]

    /// List prices (standard tier, uncached input) as published by OpenAI and Anthropic in 2025.
    static let defaultPrices: [String: Price] = [
        "gpt-5": Price(usdPerMillionInput: 1.25, output: 10),
        "gpt-5-mini": Price(usdPerMillionInput: 0.25, output: 2),
        "gpt-5-nano": Price(usdPerMillionInput: 0.05, output: 0.4),
        "gpt-4.1": Price(usdPerMillionInput: 2, output: 8),
        "gpt-4.1-mini": Price(usdPerMillionInput: 0.4, output: 1.6),
        "gpt-4.1-nano": Price(usdPerMillionInput: 0.1, output: 0.4),
        "gpt-4o": Price(usdPerMillionInput: 2.5, output: 10),
        "gpt-4o-mini": Price(usdPerMillionInput: 0.15, output: 0.6),
        "o3": Price(usdPerMillionInput: 2, output: 8),
        "o3-mini": Price(usdPerMillionInput: 1.1, output: 4.4),
        "o4-mini": Price(usdPerMillionInput: 1.1, output: 4.4),
        "claude-opus-4-5": Price(usdPerMillionInput: 5, output: 25),
        "claude-opus-4-1": Price(usdPerMillionInput: 15, output: 75),
        "claude-opus-4": Price(usdPerMillionInput: 15, output: 75),
        "claude-sonnet-4-5": Price(usdPerMillionInput: 3, output: 15),
        "claude-sonnet-4": Price(usdPerMillionInput: 3, output: 15),
        "claude-3-7-sonnet": Price(usdPerMillionInput: 3, output: 15),
        "claude-haiku-4-5": Price(usdPerMillionInput: 1, output: 5),
        "claude-3-5-haiku": Price(usdPerMillionInput: 0.8, output: 4),
    ]

    /// The default prices with `overrides` replacing or adding entries.
    init(overrides: [String: Price] = [:]) {
        prices = PriceTable.defaultPrices.merging(overrides) { _, override in override }
    }

    func price(model: String) -> Price? {
        if let exact = prices[model] { return exact }
        let candidates = prices.keys.filter { prefix in
            model.hasPrefix(prefix) && model.dropFirst(prefix.count).first.map { $0 == "-" || $0 == ":" || $0 == "@" } == true
        }
        return candidates.max { $0.count < $1.count }.flatMap { prices[$0] }
    }

    /// The cost of `usage` in micro-USD, rounded up; nil when the model has no known price.
    func cost(model: String, usage: Usage) -> Int64? {
        guard let price = price(model: model) else { return nil }
        let total = Int64(usage.inputTokens) * price.inputPerMillion + Int64(usage.outputTokens) * price.outputPerMillion
        return (total + 999_999) / 1_000_000
    }
}
