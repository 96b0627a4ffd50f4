import CRobitSys

/// How robit's own process uses memory over a long run.
public enum ProcessMemory {
    /// Called once at start, before any thread is made: one malloc arena per two threads of the
    /// default would otherwise each keep the peak of what its threads once used, and buffers over
    /// 128 KiB (request bodies grow with the conversation) are mapped on their own and returned.
    public static func tuneForLongRun() {
        robit_tune_malloc(2, 128 << 10)
    }

    /// Gives free heap memory back to the kernel (after a step; it costs tens of microseconds).
    public static func trim() {
        robit_trim_malloc()
    }
}
