import Foundation

/// Where robit keeps its state and reads its configuration (XDG base directories).
enum RobitPaths {
    /// `$XDG_STATE_HOME/robit`, i.e. `~/.local/state/robit`.
    static func state(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") { return xdg + "/robit" }
        return home(environment) + "/.local/state/robit"
    }

    /// `$XDG_CONFIG_HOME/robit`, i.e. `~/.config/robit`.
    static func config(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/robit" }
        return home(environment) + "/.config/robit"
    }

    static func home(_ environment: [String: String]) -> String {
        if let home = environment["HOME"], home.hasPrefix("/") { return home }
        if let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir { return String(cString: dir) }
        return "/root"
    }
}
