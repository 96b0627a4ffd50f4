/// One server-sent event: its `event:` name (nil = the default "message") and its `data:` lines
/// joined with "\n".
struct SSEEvent: Sendable, Equatable {
    var event: String?
    var data: String
    var id: String?
}

/// An incremental parser for `text/event-stream` (WHATWG HTML, "Server-sent events").
///
/// Bytes may be split anywhere, including inside a UTF-8 sequence or between the CR and LF of a line
/// end: the parser buffers bytes and decodes one complete line at a time (invalid UTF-8 becomes U+FFFD).
/// Lines end at LF, CRLF or CR. `:` lines are comments; `data:` lines of one event are joined with LF;
/// an event is dispatched at a blank line.
struct SSEParser: Sendable {
    private var line: [UInt8] = []
    private var afterCR = false
    private var atStart = true
    private var eventName: String?
    private var eventID: String?
    private var dataLines: [String] = []

    /// Feeds bytes; returns the events completed by them, in order.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [SSEEvent] {
        var events: [SSEEvent] = []
        var index = bytes.startIndex
        let end = bytes.endIndex
        while index < end {
            if afterCR {
                afterCR = false
                if bytes[index] == 0x0A {
                    index += 1
                    continue
                }
            }
            var stop = index
            while stop < end, bytes[stop] != 0x0A, bytes[stop] != 0x0D { stop += 1 }
            if stop > index { line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<stop])) }
            if stop == end { break }
            afterCR = bytes[stop] == 0x0D
            index = stop + 1
            if let event = endLine() { events.append(event) }
        }
        return events
    }

    mutating func feed(_ text: String) -> [SSEEvent] {
        var copy = text
        return copy.withUTF8 { feed(UnsafeRawBufferPointer($0)) }
    }

    /// The end of the stream: an event whose lines are complete but whose closing blank line is
    /// missing is still dispatched (servers that close right after `data: [DONE]\n` exist); a last
    /// line without its line end is dropped.
    mutating func finish() -> [SSEEvent] {
        var events: [SSEEvent] = []
        // A last line without its line end may be cut short: it is dropped, as the standard says.
        line.removeAll()
        if let event = dispatch() { events.append(event) }
        return events
    }

    private mutating func endLine() -> SSEEvent? {
        var bytes = line[...]
        line.removeAll(keepingCapacity: true)
        if atStart {
            atStart = false
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        }
        if bytes.isEmpty { return dispatch() }
        if bytes.first == UInt8(ascii: ":") { return nil }
        let field: String
        let value: String
        if let colon = bytes.firstIndex(of: UInt8(ascii: ":")) {
            field = String(decoding: bytes[..<colon], as: UTF8.self)
            var valueStart = bytes.index(after: colon)
            if valueStart < bytes.endIndex, bytes[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
            value = String(decoding: bytes[valueStart...], as: UTF8.self)
        } else {
            field = String(decoding: bytes, as: UTF8.self)
            value = ""
        }
        switch field {
        case "data": dataLines.append(value)
        case "event": eventName = value
        case "id": if !value.contains("\0") { eventID = value }
        default: break  // `retry` and unknown fields are ignored
        }
        return nil
    }

    private mutating func dispatch() -> SSEEvent? {
        defer {
            dataLines.removeAll()
            eventName = nil
        }
        guard !dataLines.isEmpty else { return nil }
        return SSEEvent(event: eventName, data: dataLines.joined(separator: "\n"), id: eventID)
    }
}
