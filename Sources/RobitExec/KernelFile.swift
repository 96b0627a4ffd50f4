import Foundation

/// Reads the small files of /proc, /sys and cgroupfs. They report a size of 0, and Foundation's
/// `String(contentsOfFile:)` leaks its buffer for every such read (found under AddressSanitizer's
/// leak checker), which a long-lived robit does thousands of times.
enum KernelFile {
    /// The file's text (invalid UTF-8 repaired), at most `limit` bytes; nil if it cannot be opened or read.
    static func read(_ path: String, limit: Int = 1 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, min($0.count, limit - bytes.count)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
