import Foundation

/// An OCI bundle on disk: `config.json` and, for rootfs `host`, the skeleton root filesystem robit
/// writes (mount points, the host's /bin-style symlinks and a curated /etc).
public struct OCIBundle: Sendable {
    public let path: String
    public var configPath: String { path + "/config.json" }
    public var rootfsPath: String { path + "/rootfs" }

    public init(path: String) { self.path = path }

    /// Deterministic, diffable JSON: sorted keys, two-space indentation, `/` not escaped.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// Compact JSON with sorted keys: the same content as `encode`, quicker to write and parse.
    public static func encodeCompact<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    /// The whole of /etc inside a `host` sandbox, apart from the read-only CA certificate and
    /// alternatives directories: no host accounts, no host DNS servers.
    public static func curatedEtc(user: User, hostname: String, hosts: [(String, String)] = []) -> [(String, String)] {
        var hostsFile = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t\(hostname)\n"
        for (address, name) in hosts { hostsFile += "\(address)\t\(name)\n" }
        return [
            ("passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\nrobit:x:\(user.uid):\(user.gid):robit sandbox:/work:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
            ("group", "root:x:0:\nrobit:x:\(user.gid):\nnogroup:x:65534:\n"),
            ("hosts", hostsFile),
            ("hostname", hostname + "\n"),
            // No nameserver: names the sandbox may reach are pinned in /etc/hosts.
            ("resolv.conf", "# robit: no DNS inside the sandbox; allowed names are pinned in /etc/hosts\noptions attempts:1 timeout:1\n"),
            ("nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\nprotocols: files\nservices: files\n"),
        ]
    }
}
