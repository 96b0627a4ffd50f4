import Foundation
import RobitSync

/// Threads for blocking work (a child process's I/O loop, a libcurl transfer), kept for reuse: an agent
/// step ran two such jobs, and starting a thread for each cost about 50 µs plus a wait for the
/// scheduler. A job goes to an idle thread if there is one, else to a new thread, so jobs never wait
/// for each other; a thread idle for 30 s ends.
public enum BlockingThreads {
    private static let pool = WorkerPool()

    /// Runs `work` on a pool thread (never on the cooperative pool) and returns its result.
    public static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            pool.submit { continuation.resume(returning: work()) }
        }
    }

    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            pool.submit { continuation.resume(with: Result { try work() }) }
        }
    }
}

private final class WorkerPool: Sendable {
    typealias Job = @Sendable () -> Void

    /// One thread: it waits on its own condition for the job handed to it.
    final class Worker: @unchecked Sendable {
        let condition = NSCondition()
        var job: Job?  // guarded by `condition`
    }

    private let idle = Locked<[Worker]>([])
    static let idleTimeout: TimeInterval = 30

    func submit(_ job: @escaping Job) {
        if let worker = idle.withLock({ $0.popLast() }) {
            worker.condition.lock()
            worker.job = job
            worker.condition.signal()
            worker.condition.unlock()
            return
        }
        let worker = Worker()
        worker.job = job
        let thread = Thread { [self] in self.loop(worker) }
        thread.name = "robit-blocking"
        thread.stackSize = 2 << 20
        thread.start()
    }

    private func loop(_ worker: Worker) {
        while true {
            worker.condition.lock()
            var job = worker.job
            worker.job = nil
            worker.condition.unlock()
            while let current = job {
                current()
                job = nil
            }
            idle.withLock { $0.append(worker) }
            worker.condition.lock()
            let deadline = Date(timeIntervalSinceNow: Self.idleTimeout)
            while worker.job == nil {
                if !worker.condition.wait(until: deadline) {
                    // Timed out: leave, unless a job is being handed over right now.
                    let removed = idle.withLock { list -> Bool in
                        guard let index = list.firstIndex(where: { $0 === worker }) else { return false }
                        list.remove(at: index)
                        return true
                    }
                    if removed {
                        worker.condition.unlock()
                        return
                    }
                    // Taken off the idle list by `submit`, which is about to hand over a job.
                    while worker.job == nil { worker.condition.wait() }
                }
            }
            worker.condition.unlock()
        }
    }
}
