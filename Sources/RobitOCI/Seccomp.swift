// The OCI `linux.seccomp` object.

public struct Seccomp: Codable, Sendable, Equatable {
    public var defaultAction: Action
    public var defaultErrnoRet: UInt32?
    public var architectures: [String]?
    public var flags: [String]?
    public var syscalls: [Syscall]?

    public init(defaultAction: Action, defaultErrnoRet: UInt32? = nil, architectures: [String]? = nil,
                flags: [String]? = nil, syscalls: [Syscall]? = nil) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.flags = flags
        self.syscalls = syscalls
    }

    public enum Action: String, Codable, Sendable, CaseIterable {
        case kill = "SCMP_ACT_KILL"
        case killProcess = "SCMP_ACT_KILL_PROCESS"
        case killThread = "SCMP_ACT_KILL_THREAD"
        case trap = "SCMP_ACT_TRAP"
        case errno = "SCMP_ACT_ERRNO"
        case trace = "SCMP_ACT_TRACE"
        case allow = "SCMP_ACT_ALLOW"
        case log = "SCMP_ACT_LOG"
        case notify = "SCMP_ACT_NOTIFY"
    }

    public struct Syscall: Codable, Sendable, Equatable {
        public var names: [String]
        public var action: Action
        public var errnoRet: UInt32?
        public var args: [Arg]?

        public init(names: [String], action: Action, errnoRet: UInt32? = nil, args: [Arg]? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
        }
    }

    public struct Arg: Codable, Sendable, Hashable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64?
        public var op: Operator

        public init(index: UInt32, value: UInt64, valueTwo: UInt64? = nil, op: Operator) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }

    public enum Operator: String, Codable, Sendable, CaseIterable {
        case notEqual = "SCMP_CMP_NE"
        case lessThan = "SCMP_CMP_LT"
        case lessEqual = "SCMP_CMP_LE"
        case equal = "SCMP_CMP_EQ"
        case greaterEqual = "SCMP_CMP_GE"
        case greaterThan = "SCMP_CMP_GT"
        case maskedEqual = "SCMP_CMP_MASKED_EQ"
    }
}
