import Foundation

/// Constants of audit log format version 1 (docs/audit-format.md).
public enum AuditFormat {
    /// The log file a command-line argument names: a run's audit directory means its audit.jsonl.
    public static func logPath(_ argument: String) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory), isDirectory.boolValue {
            return argument + "/" + logFileName
        }
        return argument
    }

    public static let version = 1
    public static let logFileName = "audit.jsonl"
    public static let blobDirectoryName = "blobs"
    /// Payloads larger than this go to `blobs/<sha256>`.
    public static let blobThreshold = 64 * 1024
    /// A checkpoint is written at least every this many records.
    public static let checkpointInterval = 256
    public static let zeroHash = String(repeating: "0", count: 64)
    public static let signaturePrefix = "robit-audit-v1"
}
