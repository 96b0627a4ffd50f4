import Crypto
import Foundation

/// An Ed25519 key that signs audit checkpoints. On disk the private key is one line, `robit-ed25519-private
/// <base64 of the 32-byte seed>`, mode 0600; the public key is `robit-ed25519 <base64 of 32 bytes>`.
public struct AuditSigningKey: Sendable {
    private let seed: [UInt8]
    var key: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: seed) }

    public static let privateKeyPrefix = "robit-ed25519-private "
    public static let publicKeyPrefix = "robit-ed25519 "

    public init() { seed = Array(Curve25519.Signing.PrivateKey().rawRepresentation) }

    public init(seed: [UInt8]) throws(AuditError) {
        guard seed.count == 32, (try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)) != nil else {
            throw AuditError(.key, "an Ed25519 private key is 32 bytes; this one is \(seed.count)")
        }
        self.seed = seed
    }

    public var publicKey: AuditPublicKey { AuditPublicKey(validated: Array(key.publicKey.rawRepresentation)) }

    public func sign(_ message: [UInt8]) -> [UInt8] {
        // Signing only fails on allocation failure inside BoringSSL.
        Array((try? key.signature(for: message)) ?? Data())
    }

    /// Loads a private key file, refusing one that others may read (as ssh does).
    public static func load(path: String) throws(AuditError) -> AuditSigningKey {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw AuditError(.key, "cannot read the signing key \(path): \(String(cString: strerror(errno))); create one with `robit keygen`")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw AuditError(.key, "signing key \(path) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))); run `chmod 600 \(path)`")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AuditError(.key, "cannot read the signing key \(path)")
        }
        let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard line.hasPrefix(privateKeyPrefix), let seed = Data(base64Encoded: String(line.dropFirst(privateKeyPrefix.count))) else {
            if line.hasPrefix(publicKeyPrefix) {
                throw AuditError(.key, "\(path) is a public key; signing needs the private key (the file without .pub)")
            }
            throw AuditError(.key, "\(path) is not a robit private key (expected a line `\(privateKeyPrefix)<base64>`)")
        }
        return try AuditSigningKey(seed: Array(seed))
    }

    public var fileContents: String { Self.privateKeyPrefix + Data(seed).base64EncodedString() + "\n" }
}

/// The public half of an audit key, as recorded in `run.start` and pinned with `robit audit verify --key`.
public struct AuditPublicKey: Sendable, Equatable {
    public let raw: [UInt8]
    var key: Curve25519.Signing.PublicKey { try! Curve25519.Signing.PublicKey(rawRepresentation: raw) }

    init(validated raw: [UInt8]) { self.raw = raw }

    public init(raw: [UInt8]) throws(AuditError) {
        guard raw.count == 32, (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil else {
            throw AuditError(.key, "an Ed25519 public key is 32 bytes; this one is \(raw.count)")
        }
        self.raw = raw
    }

    public var base64: String { Data(raw).base64EncodedString() }
    /// The first 16 hex digits of the SHA-256 of the raw 32 bytes.
    public var keyID: String { String(Digest.sha256Hex(raw).prefix(16)) }
    public var fileContents: String { AuditSigningKey.publicKeyPrefix + base64 + "\n" }

    public func isValid(signature: [UInt8], for message: [UInt8]) -> Bool {
        key.isValidSignature(signature, for: message)
    }

    /// Reads `--key`: a public key file (`robit-ed25519 <base64>`), a private key file (its public half), or the
    /// base64 of the 32 raw bytes given directly.
    public static func load(_ argument: String) throws(AuditError) -> AuditPublicKey {
        var text = argument
        if FileManager.default.fileExists(atPath: argument) {
            guard let contents = try? String(contentsOfFile: argument, encoding: .utf8) else {
                throw AuditError(.key, "cannot read the public key \(argument)")
            }
            text = contents
        }
        let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if line.hasPrefix(AuditSigningKey.privateKeyPrefix) {
            guard let seed = Data(base64Encoded: String(line.dropFirst(AuditSigningKey.privateKeyPrefix.count))) else {
                throw AuditError(.key, "\(argument): malformed private key")
            }
            return try AuditSigningKey(seed: Array(seed)).publicKey
        }
        let body = line.hasPrefix(AuditSigningKey.publicKeyPrefix) ? String(line.dropFirst(AuditSigningKey.publicKeyPrefix.count)) : line
        guard let raw = Data(base64Encoded: body) else {
            throw AuditError(.key, "\(argument) is neither a key file nor the base64 of a 32-byte Ed25519 public key")
        }
        return try AuditPublicKey(raw: Array(raw))
    }
}

/// Where keys live by default: `$ROBIT_AUDIT_KEY`, else `$XDG_CONFIG_HOME/robit/audit.key` (~/.config/robit/audit.key).
public enum AuditKeyLocation {
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/robit" }
        return (environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/root") + "/.config/robit"
    }

    public static let privateKeyName = "audit.key"
    public static let publicKeyName = "audit.key.pub"

    /// The signing key to use: `explicit` (from `--key`), then `ROBIT_AUDIT_KEY`, then the default file if it
    /// exists; nil = unsigned. An explicitly named key that cannot be loaded is an error, never "unsigned".
    public static func resolve(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(AuditError) -> (key: AuditSigningKey, path: String)? {
        if let path = explicit ?? environment["ROBIT_AUDIT_KEY"].flatMap({ $0.isEmpty ? nil : $0 }) {
            return (try AuditSigningKey.load(path: path), path)
        }
        let path = defaultDirectory(environment: environment) + "/" + privateKeyName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return (try AuditSigningKey.load(path: path), path)
    }

    /// Writes a new key pair into `directory` (created 0700 if missing); refuses to overwrite.
    public static func generate(into directory: String) throws(AuditError) -> (privatePath: String, publicPath: String, key: AuditPublicKey) {
        let privatePath = directory + "/" + privateKeyName
        let publicPath = directory + "/" + publicKeyName
        for path in [privatePath, publicPath] where FileManager.default.fileExists(atPath: path) {
            throw AuditError(.key, "\(path) already exists; remove it first or choose another --out")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw AuditError(.io, "cannot create \(directory): \(error.localizedDescription)")
        }
        let key = AuditSigningKey()
        try writeNew(path: privatePath, contents: key.fileContents, mode: 0o600)
        try writeNew(path: publicPath, contents: key.publicKey.fileContents, mode: 0o644)
        return (privatePath, publicPath, key.publicKey)
    }

    private static func writeNew(path: String, contents: String, mode: mode_t) throws(AuditError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw AuditError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fchmod(fd, mode)
        let bytes = Array(contents.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count, fsync(fd) == 0 else {
            throw AuditError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

enum Digest {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in digest {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func sha256Hex(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }
    static func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String { hex(SHA256.hash(data: bytes)) }
}
