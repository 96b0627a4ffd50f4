import Foundation

extension PriceTable {
    /// `$XDG_CONFIG_HOME/robit/prices.json` (~/.config/robit/prices.json), or `ROBIT_PRICES`.
    static func configPath(environment: [String: String]) -> String {
        if let explicit = environment["ROBIT_PRICES"], !explicit.isEmpty { return explicit }
        return RobitPaths.config(environment) + "/prices.json"
    }

    /// The built-in prices, overridden by the price config when it exists:
    /// `{"my-model": {"input_usd_per_million": 0.5, "output_usd_per_million": 1.5}, ...}`.
    static func load(environment: [String: String]) throws(RunSetupError) -> PriceTable {
        let path = configPath(environment: environment)
        guard let data = FileManager.default.contents(atPath: path) else {
            if environment["ROBIT_PRICES"] != nil { throw RunSetupError(.invalidInput, "cannot read the price table \(path)") }
            return PriceTable()
        }
        let value: JSONValue
        do { value = try JSONValue.parse(String(decoding: data, as: UTF8.self)) } catch {
            throw RunSetupError(.invalidInput, "\(path): \(error.description)")
        }
        guard let models = value.objectValue else { throw RunSetupError(.invalidInput, "\(path): expected an object of model names") }
        var overrides: [String: Price] = [:]
        for (model, entry) in models {
            guard let fields = entry.objectValue, Set(fields.keys) == ["input_usd_per_million", "output_usd_per_million"],
                  case .number(let input)? = fields["input_usd_per_million"], case .number(let output)? = fields["output_usd_per_million"],
                  input >= 0, output >= 0, input < 1e6, output < 1e6 else {
                throw RunSetupError(.invalidInput, "\(path): \(model): expected {\"input_usd_per_million\": N, \"output_usd_per_million\": N}")
            }
            overrides[model] = Price(usdPerMillionInput: input, output: output)
        }
        return PriceTable(overrides: overrides)
    }
}
