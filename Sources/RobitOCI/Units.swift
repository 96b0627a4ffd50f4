/// Sizes and durations as people write them in task files and on the command line.
///
/// Pure helpers with no I/O, shared by every module: `ByteCount("512MiB")`, `parseDuration("1h30m")`.

/// A number of bytes, parsed from and printed as a human size such as `512MiB`.
///
/// Accepted forms: a plain number of bytes (`4096`), or a number (optionally with a fraction) followed
/// directly by a unit: `B`, decimal `kB`/`KB`, `MB`, `GB`, `TB`, `PB`, `EB` (powers of 1000), binary
/// `KiB`, `MiB`, `GiB`, `TiB`, `PiB`, `EiB` (powers of 1024). A fraction must give a whole number of
/// bytes (`1.5GiB` is fine, `1.5B` is not). No signs, no spaces, no overflow past `UInt64.max`.
public struct ByteCount: Sendable, Hashable, Codable, CustomStringConvertible, Comparable {
    public var bytes: UInt64

    public init(_ bytes: UInt64) {
        self.bytes = bytes
    }

    /// Parses a size such as `512MiB`, `1GB`, `1.5GiB` or `4096`; nil when `parsing` is not one.
    public init?(parsing text: String) {
        guard let value = ByteCount.parse(text) else { return nil }
        self.bytes = value
    }

    public static func kibibytes(_ n: UInt64) -> ByteCount { ByteCount(n << 10) }
    public static func mebibytes(_ n: UInt64) -> ByteCount { ByteCount(n << 20) }
    public static func gibibytes(_ n: UInt64) -> ByteCount { ByteCount(n << 30) }

    /// The most compact exact binary form: `512MiB`, `1GiB`, `1536MiB`, `100B`, `0B`.
    public var description: String {
        if bytes == 0 { return "0B" }
        for (suffix, shift) in ByteCount.binaryUnits where bytes & ((1 << shift) - 1) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)B"
    }

    public static func < (lhs: ByteCount, rhs: ByteCount) -> Bool { lhs.bytes < rhs.bytes }

    /// Encoded as its description (`"512MiB"`); decodes from such a string or from a plain number.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(UInt64.self) {
            self.bytes = number
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = ByteCount(parsing: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\"\(text)\" is not a size (use e.g. 512MiB, 1GiB)")
        }
        self = parsed
    }

    // Largest first, so `description` picks the most compact unit.
    private static let binaryUnits: [(String, UInt64)] = [
        ("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10),
    ]

    private static let multipliers: [String: UInt64] = [
        "B": 1,
        "kB": 1_000, "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000,
        "TB": 1_000_000_000_000, "PB": 1_000_000_000_000_000, "EB": 1_000_000_000_000_000_000,
        "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50, "EiB": 1 << 60,
    ]

    private static func parse(_ text: String) -> UInt64? {
        let scalars = Substring(text).unicodeScalars
        guard let number = DecimalNumber(prefixOf: scalars) else { return nil }
        let unit = String(Substring(scalars[number.end...]))
        let multiplier: UInt64
        if unit.isEmpty {
            guard number.fraction.isEmpty else { return nil }  // "1.5" of what?
            multiplier = 1
        } else {
            guard let m = multipliers[unit] else { return nil }
            multiplier = m
        }
        return number.scaled(by: multiplier)
    }
}

/// Parses a duration such as `30s`, `20m`, `1h30m`, `500ms`, `1.5s` or `30d`.
///
/// Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`. A unit is required (`90` is rejected), each
/// unit appears at most once and from largest to smallest (`1h30m`, not `30m1h`); no signs, no spaces.
/// The result must be a whole number of nanoseconds and fit in 64 bits (about 292 years).
///
/// - Returns: the duration, or nil when `text` is not one.
public func parseDuration(_ text: String) -> Duration? {
    let scalars = Substring(text).unicodeScalars
    guard !scalars.isEmpty else { return nil }
    var rest = scalars[...]
    var total: Int64 = 0
    var previousUnit = Int64.max
    while !rest.isEmpty {
        guard let number = DecimalNumber(prefixOf: rest) else { return nil }
        rest = rest[number.end...]
        let unitEnd = rest.firstIndex { isDecimalDigit($0) || $0 == "." } ?? rest.endIndex
        guard let nanoseconds = durationUnits[String(Substring(rest[..<unitEnd]))], nanoseconds < previousUnit else { return nil }
        previousUnit = nanoseconds
        rest = rest[unitEnd...]
        guard let part = number.scaled(by: UInt64(nanoseconds)), part <= UInt64(Int64.max) else { return nil }
        let (sum, overflow) = total.addingReportingOverflow(Int64(part))
        guard !overflow else { return nil }
        total = sum
    }
    return .nanoseconds(total)
}

/// Formats a duration in the form `parseDuration` reads: `1h30m`, `30s`, `1s500ms`, `0s`.
///
/// Days are written as hours (`720h`); precision below a nanosecond is dropped.
public func formatDuration(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    if seconds < 0 || attoseconds < 0 {
        // Both components carry the sign; format the magnitude.
        let magnitude = Duration(secondsComponent: -seconds, attosecondsComponent: -attoseconds)
        return "-" + formatDuration(magnitude)
    }
    let nanos = attoseconds / 1_000_000_000
    var parts: [(Int64, String)] = [
        (seconds / 3600, "h"), (seconds % 3600 / 60, "m"), (seconds % 60, "s"),
        (nanos / 1_000_000, "ms"), (nanos / 1_000 % 1_000, "us"), (nanos % 1_000, "ns"),
    ]
    parts.removeAll { $0.0 == 0 }
    if parts.isEmpty { return "0s" }
    return parts.map { "\($0.0)\($0.1)" }.joined()
}

private let durationUnits: [String: Int64] = [
    "ns": 1, "us": 1_000, "\u{00B5}s": 1_000, "\u{03BC}s": 1_000, "ms": 1_000_000,
    "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000,
]

private func isDecimalDigit(_ scalar: Unicode.Scalar) -> Bool {
    scalar >= "0" && scalar <= "9"
}

/// An unsigned decimal `DIGITS[.DIGITS]` at the start of some text, kept as digits so scaling is exact.
private struct DecimalNumber {
    var integer: Substring.UnicodeScalarView
    var fraction: Substring.UnicodeScalarView
    /// Where the number ends in the text it was read from.
    var end: Substring.UnicodeScalarView.Index

    init?(prefixOf scalars: Substring.UnicodeScalarView) {
        let integerEnd = scalars.firstIndex { !isDecimalDigit($0) } ?? scalars.endIndex
        guard integerEnd != scalars.startIndex else { return nil }
        integer = scalars[..<integerEnd]
        fraction = scalars[integerEnd..<integerEnd]
        end = integerEnd
        if integerEnd != scalars.endIndex, scalars[integerEnd] == "." {
            let fractionStart = scalars.index(after: integerEnd)
            let fractionEnd = scalars[fractionStart...].firstIndex { !isDecimalDigit($0) } ?? scalars.endIndex
            guard fractionEnd != fractionStart else { return nil }  // "1." or "1.s"
            fraction = scalars[fractionStart..<fractionEnd]
            end = fractionEnd
        }
    }

    /// `self × multiplier` when it is a whole number that fits in a UInt64.
    func scaled(by multiplier: UInt64) -> UInt64? {
        var whole: UInt64 = 0
        for digit in integer {
            let (times10, o1) = whole.multipliedReportingOverflow(by: 10)
            let (next, o2) = times10.addingReportingOverflow(UInt64(digit.value - 48))
            guard !o1, !o2 else { return nil }
            whole = next
        }
        let (wholePart, o3) = whole.multipliedReportingOverflow(by: multiplier)
        guard !o3 else { return nil }
        // Drop trailing zeros of the fraction; at most 19 significant digits fit the exact division below.
        var digits = Array(fraction)
        while digits.last == "0" { digits.removeLast() }
        guard !digits.isEmpty else { return wholePart }
        guard digits.count <= 19 else { return nil }
        var numerator: UInt64 = 0
        var denominator: UInt64 = 1
        for digit in digits {
            numerator = numerator * 10 + UInt64(digit.value - 48)
            denominator *= 10
        }
        // numerator < denominator, so numerator × multiplier / denominator < multiplier: the quotient fits.
        let product = numerator.multipliedFullWidth(by: multiplier)
        let (quotient, remainder) = denominator.dividingFullWidth(product)
        guard remainder == 0 else { return nil }  // not a whole number of the base unit
        let (sum, o4) = wholePart.addingReportingOverflow(quotient)
        return o4 ? nil : sum
    }
}
