import Glibc
import RobitAudit
import RobitSync

/// A request body as sent, with its SHA-256 (what the audit log records of every request but the first).
struct EncodedBody: Sendable {
    var text: String
    var sha256: String
}

/// The request body of a model call, encoded incrementally: the conversation only ever grows, so the
/// wire messages encoded for the previous call are kept, and a call encodes only the messages added
/// since (plus the last group again, which the new messages may extend). The result is byte for byte
/// what `ProviderCodec.encode` writes from scratch. Its SHA-256 is kept the same way: the state after
/// the envelope's head and every group but the last, so only what is new is hashed.
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
        /// SHA-256 of the envelope's head and `bytes[..<hashedEnd]`, where `hashedEnd` is where the
        /// last group (or the one before its comma) ends: bytes before it never change while the
        /// conversation only grows.
        var hashed = AuditHash.Stream()
        var hashedEnd = -1
    }

    private let state = Locked(State())

    func body<Codec: ProviderCodec>(_ request: ModelRequest, codec: Codec) -> EncodedBody {
        state.withLock { s in
            let messages = request.messages
            let common = Self.commonPrefix(s.messages, messages)
            // A group is kept when the message after it is unchanged too: that message decided where it ended.
            var kept = 0
            while kept < s.ends.count, s.ends[kept].message < common { kept += 1 }
            let start = kept > 0 ? s.ends[kept - 1].message : 0
            let keptBytes = kept > 0 ? s.ends[kept - 1].byte : 0
            s.ends.removeSubrange(kept...)
            s.bytes.removeSubrange(keptBytes...)
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
                s.hashedEnd = -1
            }
            let (head, tail) = (s.envelope!.head, s.envelope!.tail)

            // The hash: advance the kept state over bytes that are now final, or start again.
            let stableEnd = s.ends.count >= 2 ? s.ends[s.ends.count - 2].byte : 0
            if s.hashedEnd < 0 || s.hashedEnd > keptBytes || s.hashedEnd > stableEnd {
                s.hashed = AuditHash.Stream()
                s.hashed.update(head)
                s.hashedEnd = 0
            }
            let from = s.hashedEnd
            s.bytes.withUnsafeBytes { s.hashed.update(UnsafeRawBufferPointer(rebasing: $0[from..<stableEnd])) }
            s.hashedEnd = stableEnd
            var final = s.hashed
            s.bytes.withUnsafeBytes { final.update(UnsafeRawBufferPointer(rebasing: $0[stableEnd...])) }
            final.update(tail)

            let total = head.count + s.bytes.count + tail.count
            // One copy, straight into the string that is sent and audited.
            let text = String(unsafeUninitializedCapacity: total) { out in
                var offset = 0
                for part in [head, s.bytes, tail] {
                    part.withUnsafeBufferPointer { bytes in
                        if let base = bytes.baseAddress { (out.baseAddress! + offset).initialize(from: base, count: bytes.count) }
                    }
                    offset += part.count
                }
                return total
            }
            return EncodedBody(text: text, sha256: final.hex())
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
