import RobitSync

/// Stops calling a provider that keeps failing.
///
/// After `failureThreshold` consecutive failed calls (each after its own retries) the breaker opens:
/// calls fail at once with `.circuitOpen` for `cooldown`. Then one trial call is let through; its
/// success closes the breaker, its failure opens it for another cooldown.
final class CircuitBreaker: Sendable {
    struct Configuration: Sendable, Equatable {
        var failureThreshold: Int
        var cooldown: Duration

        init(failureThreshold: Int = 5, cooldown: Duration = .seconds(60)) {
            self.failureThreshold = max(1, failureThreshold)
            self.cooldown = cooldown
        }
    }

    private struct State {
        var consecutiveFailures = 0
        var openUntil: ContinuousClock.Instant?
        var trialInFlight = false
    }

    let configuration: Configuration
    private let state = Locked(State())

    init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Lets a call through, or fails fast while the breaker is open.
    func admit(provider: String) throws(ProviderError) {
        let refusal: ProviderError? = state.withLock { state in
            guard let openUntil = state.openUntil else { return nil }
            let now = ContinuousClock.now
            if now < openUntil || state.trialInFlight {
                let wait = now < openUntil ? openUntil - now : .zero
                return ProviderError(.circuitOpen, "\(provider) failed \(state.consecutiveFailures) calls in a row; "
                    + "robit stops calling it for \(wait.shortDescription) (circuit breaker open); check the provider's status and the task's model settings",
                    attempts: 0)
            }
            state.trialInFlight = true
            return nil
        }
        if let refusal { throw refusal }
    }

    func record(success: Bool) {
        state.withLock { state in
            state.trialInFlight = false
            if success {
                state.consecutiveFailures = 0
                state.openUntil = nil
            } else {
                state.consecutiveFailures += 1
                if state.consecutiveFailures >= configuration.failureThreshold {
                    state.openUntil = ContinuousClock.now + configuration.cooldown
                }
            }
        }
    }

    var isOpen: Bool {
        state.withLock { state in state.openUntil.map { ContinuousClock.now < $0 } ?? false }
    }
}
