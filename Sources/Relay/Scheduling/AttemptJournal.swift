import NIOConcurrencyHelpers
import Spool

/// Records delivery outcomes in the queue index, many deliveries per
/// transaction: while one transaction is written, the outcomes that arrive
/// wait and go together into the next (group commit, as the spool does for
/// messages). A caller returns once its outcomes are recorded.
final class AttemptJournal: Sendable {
    private typealias Waiter = (records: [AttemptRecord], continuation: CheckedContinuation<Void, any Error>)
    private struct State {
        var pending: [Waiter] = []
        var writing = false
    }

    private let index: QueueIndex
    private let state = NIOLockedValueBox(State())

    init(index: QueueIndex) {
        self.index = index
    }

    func record(_ records: [AttemptRecord]) async throws {
        guard !records.isEmpty else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let startWriter = state.withLockedValue { state in
                state.pending.append((records, continuation))
                guard !state.writing else { return false }
                state.writing = true
                return true
            }
            if startWriter { Task { self.writeAll() } }
        }
    }

    private func writeAll() {
        while true {
            let batch = state.withLockedValue { state in
                let batch = state.pending
                state.pending = []
                if batch.isEmpty { state.writing = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                try index.recordAttempts(batch.flatMap(\.records))
                for waiter in batch { waiter.continuation.resume() }
            } catch {
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
        }
    }
}
