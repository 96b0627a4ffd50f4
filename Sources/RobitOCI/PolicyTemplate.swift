/// A sandbox's policy text (config.json, the nft ruleset) with the values that belong to that one
/// sandbox replaced by fixed placeholders: its id, bundle directory, workspace path and address. Two
/// sandboxes built from the same task and policy on the same host have the same template, so its
/// hash tells whether a replay runs under the policy a run recorded.
public enum PolicyTemplate {
    /// The placeholders, in the order they are replaced (longer values first, so that a path holding
    /// the id is replaced whole).
    public struct Values: Sendable {
        public var sandboxID: String
        public var bundleDirectory: String
        public var workspace: String
        public var address: String?
        public var hostAddress: String?

        public init(sandboxID: String, bundleDirectory: String, workspace: String, address: String? = nil, hostAddress: String? = nil) {
            self.sandboxID = sandboxID
            self.bundleDirectory = bundleDirectory
            self.workspace = workspace
            self.address = address
            self.hostAddress = hostAddress
        }

        var substitutions: [(String, String)] {
            var list: [(String, String)] = [(bundleDirectory, "<bundle>"), (workspace, "<workspace>"), (sandboxID, "<sandbox>")]
            // The id's hex names the nft table and the veth (`robit_<hex>`, `rb<hex>`).
            let suffix = EgressRuleset.suffix(sandboxID)
            if suffix.utf8.count >= 8 { list.append((suffix, "<id>")) }
            if let address { list.append((address, "<address>")) }
            if let hostAddress { list.append((hostAddress, "<host-address>")) }
            return list.filter { !$0.0.isEmpty }
        }
    }

    /// `text` with every occurrence of each value replaced by its placeholder.
    public static func text(_ text: String, values: Values) -> String {
        var out = text
        for (value, placeholder) in values.substitutions {
            out = out.replacingAll(value, with: placeholder, wholeAddress: placeholder.hasSuffix("address>"))
        }
        return out
    }
}

extension String {
    /// Every occurrence of `target` (non-empty) replaced, scanning left to right without overlaps.
    /// `wholeAddress`: only where the match is not part of a longer address or number (198.18.0.2 in 198.18.0.21).
    func replacingAll(_ target: String, with replacement: String, wholeAddress: Bool = false) -> String {
        let t = Array(target.utf8)
        guard !t.isEmpty else { return self }
        let s = Array(utf8)
        guard s.count >= t.count else { return self }
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            func isAddressByte(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46) || b == 0x2E || b == 0x3A }
            if s[i] == t[0], i + t.count <= s.count, s[i..<(i + t.count)].elementsEqual(t),
               !wholeAddress || ((i == 0 || !isAddressByte(s[i - 1])) && (i + t.count == s.count || !isAddressByte(s[i + t.count]))) {
                out += replacement.utf8
                i += t.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
