/// The bounds of every sandbox limit and the messages that refuse a value outside them: one table for
/// a task file's `sandbox.limits` and `robit sandbox run`'s flags alike.
public enum LimitRules {
    public static let memory: ClosedRange<UInt64> = (16 << 20)...(1 << 50)
    /// Fewer than 8 cannot hold robit's init, a shell and the command it starts.
    public static let pids: ClosedRange<Int> = 8...4_194_304
    public static let cpu: ClosedRange<Double> = 0.01...1024
    public static let timeout: ClosedRange<Duration> = .milliseconds(1)...(.seconds(7 * 86_400))
    public static let output: ClosedRange<UInt64> = (1 << 10)...(1 << 30)
    public static let disk: ClosedRange<UInt64> = (1 << 20)...(1 << 40)
    public static let tmp: ClosedRange<UInt64> = (1 << 20)...(1 << 40)

    /// Why `text` is not a size within `range`; nil (and the size) when it is.
    public static func size(_ text: String, in range: ClosedRange<UInt64>) -> Result<UInt64, LimitError> {
        guard let value = ByteCount(parsing: text) else { return .failure(LimitError("\(quoted(text)) is not a size (use e.g. 512MiB, 1GiB)")) }
        if value.bytes < range.lowerBound {
            var message = "\(text) is too small; the minimum is \(ByteCount(range.lowerBound))"
            if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), value.bytes > 0 {
                message += " (a number without a unit counts bytes: did you mean \(text)MiB?)"
            }
            return .failure(LimitError(message))
        }
        guard value.bytes <= range.upperBound else {
            return .failure(LimitError("\(text) is too large; the maximum is \(ByteCount(range.upperBound))"))
        }
        return .success(value.bytes)
    }

    public static func duration(_ text: String, in range: ClosedRange<Duration>) -> Result<Duration, LimitError> {
        guard let value = parseDuration(text) else {
            if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                return .failure(LimitError("\(quoted(text)) has no unit; write e.g. \(text)s or \(text)m"))
            }
            return .failure(LimitError("\(quoted(text)) is not a duration (use e.g. 30s, 20m, 1h30m, 500ms)"))
        }
        guard value >= range.lowerBound else { return .failure(LimitError("\(text) is too short; the minimum is \(formatDuration(range.lowerBound))")) }
        guard value <= range.upperBound else { return .failure(LimitError("\(text) is too long; the maximum is \(formatDuration(range.upperBound))")) }
        return .success(value)
    }

    public static func pids(_ value: Int) -> LimitError? {
        pids.contains(value) ? nil : LimitError("\(value) is out of range; use a whole number from \(pids.lowerBound) to \(pids.upperBound)")
    }

    public static func cpu(_ value: Double) -> LimitError? {
        guard !cpu.contains(value) else { return nil }
        let text = value.isFinite && value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
        return LimitError("\(text) is out of range; use a number of CPUs from 0.01 to 1024, e.g. 1.0 or 0.5")
    }
}

/// A limit robit refuses, and why; the caller names where it was given (a task's key path, a flag).
public struct LimitError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
