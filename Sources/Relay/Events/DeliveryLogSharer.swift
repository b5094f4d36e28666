import Foundation
import Spool
import Store
import Synchronization

/// Copies this node's delivery log into a cluster's shared log, in batches,
/// from where the last copy ended: the log then answers searches on every
/// node. The queue index is written first (with each state change) and is
/// the buffer while the database is away; nothing is copied twice, because
/// the position moves in the transaction that copies.
public final class DeliveryLogSharer: Sendable {
    let index: QueueIndex
    let log: any SharedDeliveryLog
    let batchSize: Int
    /// The shared position as last read or written: one read at start, none while nothing is new.
    private let position = Mutex<Int64?>(nil)

    public init(index: QueueIndex, log: any SharedDeliveryLog, batchSize: Int = 5000) {
        self.index = index
        self.log = log
        self.batchSize = batchSize
    }

    /// Copies one batch; returns how many events it copied (0: nothing new).
    @discardableResult
    public func catchUp() throws -> Int {
        let known: Int64
        if let cached = position.withLock({ $0 }) {
            known = cached
        } else {
            known = try log.sharedLogPosition() ?? 0
            position.withLock { $0 = known }
        }
        guard try index.lastEventID() > known else { return 0 }
        let events = try index.eventsToShare(after: known, limit: batchSize)
        guard let last = events.last?.event.id else { return 0 }
        do {
            try log.share(events, through: last)
        } catch {
            // The commit may have happened unheard: read the position again before the next copy.
            position.withLock { $0 = nil }
            throw error
        }
        position.withLock { $0 = last }
        return events.count
    }
}
