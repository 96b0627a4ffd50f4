import RobitOCI
import Testing

private let validSizes: [(String, UInt64)] = [
    ("512MiB", 536_870_912), ("1GiB", 1_073_741_824), ("64KiB", 65_536), ("1MB", 1_000_000), ("1GB", 1_000_000_000),
    ("1kB", 1_000), ("1KB", 1_000), ("100B", 100), ("4096", 4096), ("0", 0), ("1.5GiB", 1_610_612_736), ("0.5KiB", 512),
    ("1.50MiB", 1_572_864), ("2TiB", 2_199_023_255_552), ("15EiB", 17_293_822_569_102_704_640),
    ("18446744073709551615", UInt64.max), ("18446744073709551615B", UInt64.max), ("1.000000000000000000000GiB", 1_073_741_824),
]

private let validDurations: [(String, Duration)] = [
    ("30s", .seconds(30)), ("20m", .seconds(1200)), ("1h", .seconds(3600)), ("500ms", .milliseconds(500)),
    ("1h30m", .seconds(5400)), ("1.5s", .milliseconds(1500)), ("0s", .zero), ("30d", .seconds(2_592_000)),
    ("250us", .microseconds(250)), ("250µs", .microseconds(250)), ("7ns", .nanoseconds(7)),
    ("1h2m3s4ms5us6ns", .nanoseconds(3_723_004_005_006)), ("0.5m", .seconds(30)), ("2562047h", .seconds(9_223_369_200)),
]

struct ByteCountTests {
    @Test(arguments: validSizes)
    func parsesSizes(text: String, bytes: UInt64) {
        #expect(ByteCount(parsing: text)?.bytes == bytes)
    }

    @Test(arguments: [
        "", "-1MiB", "+1MiB", "12XB", "MiB", "B", "512 MiB", " 512MiB", "512MiB ", "1.5", "1.5B", "0.1KiB", "1.MiB", ".5MiB",
        "1e3", "0x10", "16EiB", "18446744073709551616", "99999999999999999999999", "1mib", "1m", "512MB!", "1,024", "１MiB",
    ])
    func rejectsNonSizes(text: String) {
        #expect(ByteCount(parsing: text) == nil)
    }

    @Test func descriptionIsTheMostCompactExactBinaryForm() {
        #expect(ByteCount(512 << 20).description == "512MiB")
        #expect(ByteCount(1 << 30).description == "1GiB")
        #expect(ByteCount(3 << 29).description == "1536MiB")
        #expect(ByteCount(1_000_000).description == "1000000B")
        #expect(ByteCount(100).description == "100B")
        #expect(ByteCount(0).description == "0B")
        #expect(ByteCount(1024).description == "1KiB")
        #expect(ByteCount(UInt64.max).description == "18446744073709551615B")
    }

    @Test func descriptionParsesBack() {
        for bytes: UInt64 in [0, 1, 1023, 1024, 1025, 512 << 20, 3 << 29, 1 << 62, UInt64.max] {
            #expect(ByteCount(parsing: ByteCount(bytes).description)?.bytes == bytes)
        }
    }
}

struct DurationParsingTests {
    @Test(arguments: validDurations)
    func parsesDurations(text: String, expected: Duration) {
        #expect(parseDuration(text) == expected)
    }

    @Test(arguments: [
        "", "90", "-5s", "+5s", "5", "5x", "s", "1.5", "1 h", " 1h", "1h ", "30m1h", "1s1s", "1.s", ".5s", "0.5ns",
        "1e3s", "1H", "1sec", "9999999999999999999s", "106752d", "2562048h", "1h-30m",
    ])
    func rejectsNonDurations(text: String) {
        #expect(parseDuration(text) == nil)
    }

    @Test func formatsCompactly() {
        #expect(formatDuration(.seconds(5400)) == "1h30m")
        #expect(formatDuration(.seconds(30)) == "30s")
        #expect(formatDuration(.milliseconds(1500)) == "1s500ms")
        #expect(formatDuration(.zero) == "0s")
        #expect(formatDuration(.seconds(30 * 86_400)) == "720h")
        #expect(formatDuration(.nanoseconds(3_723_004_005_006)) == "1h2m3s4ms5us6ns")
        #expect(formatDuration(.seconds(-90)) == "-1m30s")
    }

    @Test func formatParsesBack() {
        for duration: Duration in [.zero, .nanoseconds(1), .milliseconds(1500), .seconds(86_399), .seconds(1_000_000)] {
            #expect(parseDuration(formatDuration(duration)) == duration)
        }
    }
}
