import NIOConcurrencyHelpers

/// Wakes a waiting loop early: the loop waits with `wait(upTo:)`, anyone `ring`s.
/// A ring while nobody waits is kept, so the next wait returns at once (a ring is
/// never lost between the loop's look at its work and its wait). Meant for one
/// waiter at a time: a second wait begun meanwhile ends the first one at once.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
        /// The waiter's timer, cancelled when the waiter is woken before its time.
        var timer: Task<Void, Never>?
        /// Which wait a timer belongs to: a timer of a wait already woken does nothing.
        var wait: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    func ring() {
        let woken = state.withLockedValue { state -> (CheckedContinuation<Void, Never>, Task<Void, Never>?)? in
            guard let waiter = state.waiter else {
                state.rung = true
                return nil
            }
            defer { (state.waiter, state.timer) = (nil, nil) }
            return (waiter, state.timer)
        }
        woken?.1?.cancel()
        woken?.0.resume()
    }

    /// Returns when rung (at once if rung since the last wait), after `duration`, or when the task is cancelled.
    func wait(upTo duration: Duration) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let begun = state.withLockedValue { state -> (wait: UInt64, displaced: (CheckedContinuation<Void, Never>, Task<Void, Never>?)?)? in
                    if state.rung {
                        state.rung = false
                        return nil
                    }
                    let displaced = state.waiter.map { ($0, state.timer) }
                    state.wait &+= 1
                    state.waiter = continuation
                    state.timer = nil
                    return (state.wait, displaced)
                }
                guard let begun else { return continuation.resume() }
                begun.displaced?.1?.cancel()
                begun.displaced?.0.resume()
                let timer = Task {
                    try? await Task.sleep(for: duration)
                    self.state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                        guard state.wait == begun.wait, let waiter = state.waiter else { return nil }
                        (state.waiter, state.timer) = (nil, nil)
                        return waiter
                    }?.resume()
                }
                // Kept for a ring to cancel, unless the wait already ended.
                let running = state.withLockedValue { state -> Bool in
                    guard state.wait == begun.wait, state.waiter != nil else { return false }
                    state.timer = timer
                    return true
                }
                if !running { timer.cancel() }
            }
        } onCancel: {
            ring()
        }
        // A ring that only ended a cancelled wait is not kept for the next one.
        if Task.isCancelled { state.withLockedValue { $0.rung = false } }
    }
}
