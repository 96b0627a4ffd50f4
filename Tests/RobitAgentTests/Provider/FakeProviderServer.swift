import Foundation
import RobitSync
#if canImport(Glibc)
import Glibc
#endif

/// A scripted HTTP/1.1 server on 127.0.0.1 (ephemeral port) that plays a model provider: each
/// request gets the next scripted response, written in chunks with optional delays, stalls and a
/// cut connection. It records what it received.
final class FakeProviderServer: Sendable {
    enum Framing: Sendable {
        case contentLength
        case chunked
        /// No length: the body ends when the server closes.
        case close
    }

    enum Body: Sendable {
        case chunks([[UInt8]])
        /// `count` copies of `unit`, generated as sent (for huge bodies).
        case repeating(unit: [UInt8], count: Int)
    }

    struct Response: Sendable {
        var status: Int = 200
        var headers: [(String, String)] = [("Content-Type", "text/event-stream")]
        var body: Body = .chunks([])
        var framing: Framing = .chunked
        /// Wait before each body chunk.
        var delay: Duration = .zero
        /// After this many chunks, wait `stall` before the rest.
        var stallAfter: Int?
        var stall: Duration = .zero
        /// After this many chunks, close the connection without finishing the body.
        var cutAfter: Int?

        static func sse(_ text: String, split: Int? = nil, status: Int = 200, headers: [(String, String)] = []) -> Response {
            let bytes = Array(text.utf8)
            let chunks: [[UInt8]]
            if let split {
                chunks = stride(from: 0, to: bytes.count, by: split).map { Array(bytes[$0..<min($0 + split, bytes.count)]) }
            } else {
                chunks = [bytes]
            }
            return Response(status: status, headers: [("Content-Type", "text/event-stream")] + headers, body: .chunks(chunks))
        }

        static func json(_ status: Int, _ text: String, headers: [(String, String)] = []) -> Response {
            Response(status: status, headers: [("Content-Type", "application/json")] + headers, body: .chunks([Array(text.utf8)]), framing: .contentLength)
        }
    }

    struct Received: Sendable {
        var requestLine: String
        var headers: [(String, String)]
        var body: String
        var at: ContinuousClock.Instant
        /// Which TCP connection (0-based, in accept order) carried the request.
        var connection = 0

        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    let port: Int
    private let listener: Int32
    private let script: @Sendable (Int) -> Response
    /// Keep connections open between responses (HTTP/1.1 persistent connections), as real providers do.
    private let keepAlive: Bool
    /// After this many responses on one kept-alive connection, close it (a server's idle or request limit).
    private let closeAfter: Int?
    /// ... without saying so in the last response (no `Connection: close`), as an idle timeout does.
    private let closeSilently: Bool
    private let state = Locked<(received: [Received], bytesSent: [Int])>(([], []))

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var received: [Received] { state.withLock { $0.received } }
    var bytesSent: [Int] { state.withLock { $0.bytesSent } }

    /// - Parameter script: the response to request number n (0-based).
    init(keepAlive: Bool = false, closeAfter: Int? = nil, closeSilently: Bool = false, _ script: @escaping @Sendable (Int) -> Response) throws {
        self.script = script
        self.keepAlive = keepAlive
        self.closeAfter = closeAfter
        self.closeSilently = closeSilently
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Stops accepting; connections in progress finish on their own.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
    }

    deinit {
        close(listener)
    }

    private func acceptLoop() {
        var index = 0
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR { continue }
                return
            }
            let number = index
            index += 1
            let thread = Thread { [self] in serve(connection, number: number) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32, number: Int) {
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var served = 0
        while var request = readRequest(fd) {
            request.connection = number
            served += 1
            let last = !keepAlive || closeAfter.map { served >= $0 } ?? false
            guard respond(fd, to: request, connectionNumber: number, last: last), !last else { return }
        }
    }

    /// Writes the scripted answer; false when the connection cannot be used any more.
    private func respond(_ fd: Int32, to request: Received, connectionNumber: Int, last: Bool) -> Bool {
        let slot: Int = state.withLock { state in
            state.received.append(request)
            state.bytesSent.append(0)
            return state.bytesSent.count - 1
        }
        // Without keep-alive every request has a connection of its own, numbered as accepted.
        let response = script(keepAlive ? slot : connectionNumber)
        var head = "HTTP/1.1 \(response.status) Scripted\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        switch response.framing {
        case .contentLength:
            let total: Int
            switch response.body {
            case .chunks(let chunks): total = chunks.reduce(0) { $0 + $1.count }
            case .repeating(let unit, let count): total = unit.count * count
            }
            head += "Content-Length: \(total)\r\n"
        case .chunked: head += "Transfer-Encoding: chunked\r\n"
        case .close: break
        }
        let closes = last || response.framing == .close || response.cutAfter != nil
        head += closes && !(keepAlive && closeSilently) ? "Connection: close\r\n\r\n" : "\r\n"
        guard send(fd, Array(head.utf8)) else { return false }

        let count: Int
        switch response.body {
        case .chunks(let chunks): count = chunks.count
        case .repeating(_, let repeats): count = repeats
        }
        for index in 0..<count {
            if response.cutAfter == index { return false }
            if response.stallAfter == index { sleep(response.stall) }
            if response.delay > .zero { sleep(response.delay) }
            let chunk: [UInt8]
            switch response.body {
            case .chunks(let chunks): chunk = chunks[index]
            case .repeating(let unit, _): chunk = unit
            }
            if chunk.isEmpty { continue }
            let framed = response.framing == .chunked ? Array((String(chunk.count, radix: 16) + "\r\n").utf8) + chunk + Array("\r\n".utf8) : chunk
            guard send(fd, framed) else { return false }
            state.withLock { $0.bytesSent[slot] += chunk.count }
        }
        if response.cutAfter == count { return false }
        if response.framing == .chunked { _ = send(fd, Array("0\r\n\r\n".utf8)) }
        return !closes
    }

    private func sleep(_ duration: Duration) {
        Thread.sleep(forTimeInterval: duration.fakeSeconds)
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }

    private func readRequest(_ fd: Int32) -> Received? {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            if headerEnd == nil, let range = buffer.firstRange(of: Array("\r\n\r\n".utf8)) {
                headerEnd = range.upperBound
                let headText = String(decoding: buffer[..<range.lowerBound], as: UTF8.self)
                for line in headText.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let headerEnd, buffer.count >= headerEnd + contentLength { break }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<count])
        }
        guard let headerEnd else { return nil }
        let lines = String(decoding: buffer[..<(headerEnd - 4)], as: UTF8.self).split(separator: "\r\n").map(String.init)
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return Received(requestLine: lines.first ?? "", headers: headers,
                        body: String(decoding: buffer[headerEnd..<(headerEnd + contentLength)], as: UTF8.self), at: .now)
    }
}

extension Duration {
    var fakeSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
