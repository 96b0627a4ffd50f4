import Synchronization

/// The request body of a model call, encoded incrementally: the conversation only ever grows, so the
/// wire messages encoded for the previous call are kept, and a call encodes only the messages added
/// since (plus the last group again, which the new messages may extend). The result is byte for byte
/// what `ProviderCodec.encode` writes from scratch.
final class EncodedConversation: Sendable {
    private struct State {
        /// The messages encoded so far (a copy the cache owns, so the loop's appends never copy it).
        var messages: [Message] = []
        /// Per wire group: the index just past its last message, and the byte offset just past it in `bytes`.
        var ends: [(message: Int, byte: Int)] = []
        /// The wire groups, comma-separated.
        var bytes: [UInt8] = []
    }

    private let state = Mutex(State())

    func body<Codec: ProviderCodec>(_ request: ModelRequest, codec: Codec) -> [UInt8] {
        state.withLock { s in
            let messages = request.messages
            var common = 0
            let limit = min(s.messages.count, messages.count)
            while common < limit, s.messages[common] == messages[common] { common += 1 }
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
            var out: [UInt8] = []
            out.reserveCapacity(s.bytes.count + 4096)
            codec.writeBody(request, conversation: s.bytes, into: &out)
            return out
        }
    }
}
