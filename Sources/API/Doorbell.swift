import NIOConcurrencyHelpers

/// Wakes one waiting loop early: the loop waits with `wait(upTo:)`, anyone `ring`s.
/// A ring while nobody waits is kept, so the next wait returns at once (a ring is
/// never lost between the loop's look at its work and its wait).
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
        /// Which wait a timer belongs to: a timer of a wait already woken does nothing.
        var wait: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    func ring() {
        state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.rung = true
                return nil
            }
            state.waiter = nil
            return waiter
        }?.resume()
    }

    /// Returns when rung (at once if rung since the last wait), after `duration`, or when the task is cancelled.
    func wait(upTo duration: Duration) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let wait = state.withLockedValue { state -> UInt64? in
                    if state.rung {
                        state.rung = false
                        return nil
                    }
                    state.wait &+= 1
                    state.waiter = continuation
                    return state.wait
                }
                guard let wait else { return continuation.resume() }
                Task {
                    try? await Task.sleep(for: duration)
                    self.state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                        guard state.wait == wait, let waiter = state.waiter else { return nil }
                        state.waiter = nil
                        return waiter
                    }?.resume()
                }
            }
        } onCancel: {
            ring()
        }
        // A ring that only ended a cancelled wait is not kept for the next one.
        if Task.isCancelled { state.withLockedValue { $0.rung = false } }
    }
}
