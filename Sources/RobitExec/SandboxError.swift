/// A sandbox could not be set up or used as asked. robit never falls back to running anything
/// outside a sandbox: every one of these ends a run with exit 5, or exit 2 for `.invalidInput`.
public struct SandboxError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Equatable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let invalidInput = Code("invalid input")
        public static let runtimeMissing = Code("runtime missing")
        public static let hostNotReady = Code("host not ready")
        public static let createFailed = Code("create failed")
        public static let execFailed = Code("exec failed")
        public static let sandboxLost = Code("sandbox lost")
        public static let interrupted = Code("interrupted")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
