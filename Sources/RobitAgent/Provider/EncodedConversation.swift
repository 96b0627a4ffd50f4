import Glibc
import Synchronization

/// The request body of a model call, encoded incrementally: the conversation only ever grows, so the
/// wire messages encoded for the previous call are kept, and a call encodes only the messages added
/// since (plus the last group again, which the new messages may extend). The result is byte for byte
/// what `ProviderCodec.encode` writes from scratch.
final class EncodedConversation: Sendable {
    private struct Envelope {
        var model: String
        var system: String?
        var tools: [ToolSpec]
        var maxOutputTokens: Int?
        var emptyConversation: Bool
        var head: [UInt8]
        var tail: [UInt8]

        func fits(_ request: ModelRequest, emptyConversation: Bool) -> Bool {
            self.emptyConversation == emptyConversation && model == request.model && system == request.system
                && maxOutputTokens == request.maxOutputTokens && tools == request.tools
        }
    }

    private struct State {
        /// The messages encoded so far (a copy the cache owns, so the loop's appends never copy it).
        var messages: [Message] = []
        /// Per wire group: the index just past its last message, and the byte offset just past it in `bytes`.
        var ends: [(message: Int, byte: Int)] = []
        /// The wire groups, comma-separated.
        var bytes: [UInt8] = []
        var envelope: Envelope?
    }

    private let state = Mutex(State())

    func body<Codec: ProviderCodec>(_ request: ModelRequest, codec: Codec) -> String {
        state.withLock { s in
            let messages = request.messages
            let common = Self.commonPrefix(s.messages, messages)
            // A group is kept when the message after it is unchanged too: that message decided where it ended.
            var kept = 0
            while kept < s.ends.count, s.ends[kept].message < common { kept += 1 }
            let start = kept > 0 ? s.ends[kept - 1].message : 0
            s.ends.removeSubrange(kept...)
            s.bytes.removeSubrange((kept > 0 ? s.ends[kept - 1].byte : 0)...)
            s.messages.removeSubrange(start...)
            s.messages.append(contentsOf: messages[start...])
            for group in codec.wireMessages(messages, from: start) {
                if !s.bytes.isEmpty { s.bytes.append(UInt8(ascii: ",")) }
                group.json.write(into: &s.bytes)
                s.ends.append((group.end, s.bytes.count))
            }
            let empty = s.bytes.isEmpty
            if s.envelope?.fits(request, emptyConversation: empty) != true {
                let (head, tail) = codec.envelope(request, emptyConversation: empty)
                s.envelope = Envelope(model: request.model, system: request.system, tools: request.tools, maxOutputTokens: request.maxOutputTokens,
                                      emptyConversation: empty, head: head, tail: tail)
            }
            let (head, tail) = (s.envelope!.head, s.envelope!.tail)
            let total = head.count + s.bytes.count + tail.count
            // One copy, straight into the string that is sent and audited.
            return String(unsafeUninitializedCapacity: total) { out in
                var offset = 0
                for part in [head, s.bytes, tail] {
                    part.withUnsafeBufferPointer { bytes in
                        if let base = bytes.baseAddress { (out.baseAddress! + offset).initialize(from: base, count: bytes.count) }
                    }
                    offset += part.count
                }
                return total
            }
        }
    }

    /// How many leading messages two conversations share. Most calls share all but the newest few, so
    /// equal elements are first recognised by their bytes (the same strings and arrays, shared: a
    /// plain memory compare); only where the bytes differ does it fall back to `==`.
    static func commonPrefix(_ a: [Message], _ b: [Message]) -> Int {
        let limit = min(a.count, b.count)
        let size = MemoryLayout<Message>.size, stride = MemoryLayout<Message>.stride
        return a.withUnsafeBytes { left in
            b.withUnsafeBytes { right in
                var index = 0
                while index < limit {
                    let offset = index * stride
                    if memcmp(left.baseAddress! + offset, right.baseAddress! + offset, size) != 0, a[index] != b[index] { break }
                    index += 1
                }
                return index
            }
        }
    }
}
