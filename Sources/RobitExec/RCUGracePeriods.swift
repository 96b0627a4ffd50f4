import Foundation

/// The kernel's RCU grace periods, as `robit doctor` reports them.
///
/// Creating and removing a sandbox waits for many of them: the runtimes' mounts and namespaces, and
/// under runsc with an egress allowlist the AF_PACKET socket that gVisor's network stack binds and
/// maps (two `synchronize_net()` calls, 22-30 ms here). With normal grace periods each wait lasts a
/// few scheduler ticks; expedited ones (`/sys/kernel/rcu_expedited` = 1) end in microseconds, at the
/// price of an interrupt to every CPU for each. That trade is the host's, so robit only reports it;
/// `scripts/setup` turns expedited grace periods on for the machine it prepares.
public enum RCUGracePeriods {
    public static let expeditedPath = "/sys/kernel/rcu_expedited"
    public static let normalPath = "/sys/kernel/rcu_normal"
    public static let fix = "echo 1 > \(expeditedPath)  (host-wide until reboot; scripts/setup does it)"

    public static func report(expeditedPath: String = expeditedPath, normalPath: String = normalPath) -> Finding {
        func read(_ path: String) -> String? {
            KernelFile.read(path)?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let expedited = read(expeditedPath) else {
            return Finding(level: .ok, subject: "rcu", message: "\(expeditedPath) is not there: grace periods are the kernel's default")
        }
        if read(normalPath) == "1" {
            return Finding(level: .ok, subject: "rcu", message: "rcu_normal = 1: the host asks for normal grace periods only (sandbox starts wait for them)")
        }
        if expedited == "0" {
            return Finding(level: .warn, subject: "rcu",
                           message: "normal grace periods (rcu_expedited = 0): sandbox starts and stops wait for them; measured on a 2-CPU host, runsc's cold start took about 220 ms instead of 125 and an egress allowlist added about 30 ms instead of 9 under runsc",
                           fix: fix)
        }
        return Finding(level: .ok, subject: "rcu", message: "expedited grace periods (rcu_expedited = \(expedited)): sandbox starts do not wait for normal ones")
    }
}
