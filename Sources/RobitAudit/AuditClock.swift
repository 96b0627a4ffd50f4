import Foundation

/// `2026-11-25T17:03:36.123456789Z`: UTC, always nine fraction digits.
enum AuditClock {
    static func now() -> String {
        var out: [UInt8] = []
        appendNow(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the current time's 30 bytes without allocating.
    static func appendNow(to out: inout [UInt8]) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        append(seconds: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec), to: &out)
    }

    static func format(seconds: Int64, nanoseconds: Int64) -> String {
        var out: [UInt8] = []
        append(seconds: seconds, nanoseconds: nanoseconds, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func append(seconds: Int64, nanoseconds: Int64, to out: inout [UInt8]) {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func put(_ value: Int64, _ width: Int) {
            var divisor: Int64 = 1
            for _ in 1..<width { divisor *= 10 }
            var v = value
            while divisor > 0 {
                out.append(UInt8(truncatingIfNeeded: (v / divisor) % 10) + 0x30)
                v %= divisor
                divisor /= 10
            }
        }
        put(year, 4); out.append(0x2D); put(month, 2); out.append(0x2D); put(day, 2); out.append(0x54)
        put(secondOfDay / 3600, 2); out.append(0x3A); put(secondOfDay / 60 % 60, 2); out.append(0x3A); put(secondOfDay % 60, 2)
        out.append(0x2E); put(nanoseconds, 9); out.append(0x5A)
    }

    /// Whether bytes have the exact timestamp shape (digits and separators in place).
    static func isWellFormed(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let shape = Array("0000-00-00T00:00:00.000000000Z".utf8)
        guard bytes.count == shape.count else { return false }
        for (i, s) in shape.enumerated() {
            if s == 0x30 { guard bytes[i] >= 0x30 && bytes[i] <= 0x39 else { return false } } else if bytes[i] != s { return false }
        }
        return true
    }
}
