import RobitOCI

/// A problem with a task file: RobitOCI's `ConfigFileError`, the one diagnostic of robit's input files
/// (a policy file's problems are the same type).
public typealias TaskFileError = ConfigFileError
