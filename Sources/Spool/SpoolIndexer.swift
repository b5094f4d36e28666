import Foundation
import Logging
import NIOConcurrencyHelpers

/// Writes acknowledged records to the queue index on a thread of its own.
///
/// The index is derived data (a record past its segment's mark is indexed
/// again on start-up), so the spool answers as soon as a batch is synced and
/// hands the rows over here. An index transaction — a thousand rows, now and
/// then a WAL checkpoint — takes tens of milliseconds; on the committer's
/// thread it held up every sync behind it, here it runs beside the next one.
/// Rows that arrive while a transaction runs go into the next, so batches
/// grow with the load. The backlog is bounded while the index works: past
/// `backlogLimit` rows the committer waits (and with it the answers), so a
/// slow index cannot grow memory without end. While the index fails, or once
/// the spool is closing, nobody waits: the spool keeps answering (the records
/// are durable, and indexed again on the next start) as it did before.
final class SpoolIndexer: @unchecked Sendable {
    private let index: QueueIndex
    private let logger: Logger
    private let backlogLimit: Int
    /// Pause before a failed transaction is tried again.
    private static let retryDelay: useconds_t = 50_000

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var waiting: [QueueIndex.Row] = []
    /// How far each segment's records are among `waiting` (and everything handed over before).
    private var marks: [Int64: Int64] = [:]
    private var stopping = false
    private var finished = false
    /// The last transaction failed: `add` does not wait for room that may never come.
    private var failing = false
    /// The spool is closing: `add` does not wait either.
    private var draining = false

    /// Messages acknowledged and messages indexed since start (counted before their completions run),
    /// and who waits for the index to reach a count (`barrier`).
    private let progress = NIOLockedValueBox<(acknowledged: UInt64, indexed: UInt64, nextWaiter: UInt64,
                                              waiters: [(id: UInt64, target: UInt64, resume: @Sendable () -> Void)])>((0, 0, 0, []))
    private let indexedHandler = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)

    /// Called on the index thread after new messages reach the index.
    var onIndexed: (@Sendable () -> Void)? {
        get { indexedHandler.withLockedValue { $0 } }
        set { indexedHandler.withLockedValue { $0 = newValue } }
    }

    init(index: QueueIndex, backlogLimit: Int = 16_384, logger: Logger) {
        self.index = index
        self.logger = logger
        self.backlogLimit = backlogLimit
        let thread = Thread { [self] in run() }
        thread.name = "spool-index"
        thread.start()
    }

    /// `count` more messages are acknowledged: counted before their completions run, so that whoever
    /// has an answer and then asks for a `barrier` waits for them too.
    func acknowledged(_ count: Int) {
        progress.withLockedValue { $0.acknowledged &+= UInt64(truncatingIfNeeded: count) }
    }

    /// Rows of one synced batch, which ends at `end` in `segment`. Waits while the backlog is full.
    func add(_ rows: [QueueIndex.Row], segment: Int64, end: Int64) {
        condition.lock()
        while waiting.count >= backlogLimit && !finished && !failing && !draining { condition.wait() }
        waiting.append(contentsOf: rows)
        marks[segment] = max(marks[segment] ?? 0, end)
        condition.broadcast()
        condition.unlock()
    }

    /// From now on `add` never waits (the spool is closing; its committer must finish).
    func stopWaiting() {
        condition.lock()
        draining = true
        condition.broadcast()
        condition.unlock()
    }

    /// Indexes what was handed over (once more if it fails: the rest waits for the next start), then stops.
    func close() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while waiting.isEmpty && !stopping { condition.wait() }
            let rows = waiting
            let marks = self.marks
            let last = stopping
            condition.unlock()
            if !rows.isEmpty || !marks.isEmpty {
                do {
                    try index.insert(rows, marks: marks)
                    condition.lock()
                    waiting.removeFirst(rows.count)
                    failing = false
                    // A mark handed over meanwhile is further on and stays for the next transaction.
                    for (segment, end) in marks where self.marks[segment] == end { self.marks[segment] = nil }
                    condition.broadcast()
                    condition.unlock()
                    if !rows.isEmpty { indexed(rows.count) }
                } catch {
                    // The records are durable; the index catches up on the next try, or at the latest on the next start.
                    logger.error("queue index update failed; will retry", metadata: ["error": "\(error)", "messages": "\(rows.count)"])
                    condition.lock()
                    failing = true
                    condition.broadcast()
                    condition.unlock()
                    if !last { usleep(SpoolIndexer.retryDelay) }
                }
            }
            if last {
                condition.lock()
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }

    /// `rows` more acknowledged messages are in the index: whoever waited for them goes on.
    private func indexed(_ rows: Int) {
        let ready = progress.withLockedValue { progress -> [@Sendable () -> Void] in
            progress.indexed &+= UInt64(truncatingIfNeeded: rows)
            let indexed = progress.indexed
            let ready = progress.waiters.filter { $0.target <= indexed }.map(\.resume)
            progress.waiters.removeAll { $0.target <= indexed }
            return ready
        }
        for resume in ready { resume() }
        onIndexed?()
    }

    /// Returns once every message acknowledged before the call is in the index — what a
    /// withdrawal by index (a cancelled campaign) must wait for, as acknowledgement comes first —
    /// or after `timeout` (false), so that a failing index cannot hold a caller forever.
    func barrier(timeout: Duration) async -> Bool {
        // Resumed once: by the index reaching the target, or by the timer, which the other cancels.
        let state = NIOLockedValueBox<(resumed: Bool, timer: Task<Void, Never>?)>((false, nil))
        let waiter = progress.withLockedValue { progress -> UInt64? in
            guard progress.indexed < progress.acknowledged else { return nil }
            progress.nextWaiter &+= 1
            return progress.nextWaiter
        }
        guard let waiter else { return true }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let once: @Sendable (Bool) -> Void = { value in
                let (first, timer) = state.withLockedValue { state -> (Bool, Task<Void, Never>?) in
                    defer { state.resumed = true }
                    return (!state.resumed, state.timer)
                }
                guard first else { return }
                timer?.cancel()
                continuation.resume(returning: value)
            }
            let queued = progress.withLockedValue { progress -> Bool in
                // Indexed meanwhile: nothing to wait for.
                guard progress.indexed < progress.acknowledged else { return false }
                progress.waiters.append((waiter, progress.acknowledged, { once(true) }))
                return true
            }
            guard queued else { return once(true) }
            let timer = Task { [progress] in
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return }
                progress.withLockedValue { $0.waiters.removeAll { $0.id == waiter } }
                once(false)
            }
            let resumedAlready = state.withLockedValue { state -> Bool in
                state.timer = timer
                return state.resumed
            }
            if resumedAlready { timer.cancel() }
        }
    }
}
