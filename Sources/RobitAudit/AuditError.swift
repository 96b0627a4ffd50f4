/// A failure to write, open or read an audit log. Messages say what to do.
public struct AuditError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The log is locked by another writer.
        case locked
        /// A value cannot be stored in the format (fractional or too large number, too deep nesting).
        case invalidValue
        /// A key file is missing, malformed, or too permissive.
        case key
        /// The log on disk is not a valid log to continue.
        case corrupt
        case io
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
