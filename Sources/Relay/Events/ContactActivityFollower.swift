import Foundation
import Spool
import Store

/// Follows the delivery log and writes on each contact when mail to it was
/// last delivered, opened, clicked or bounced, so that segments can ask
/// "opened in the last 30 days" or "never bounced" of the contact table
/// alone. Only events flow here: nothing reaches back into delivery.
/// The cursor is stored with the activity, in the same transaction.
public struct ContactActivityFollower: Sendable {
    let index: QueueIndex
    let store: any ContactActivityLog
    let batchSize: Int

    public init(index: QueueIndex, store: any ContactActivityLog, batchSize: Int = 50_000) {
        self.index = index
        self.store = store
        self.batchSize = batchSize
    }

    /// Reads what the log gained since the last call; returns how many events were looked at.
    /// A first run starts at the log's end: earlier events are the log's, not the contacts'.
    @discardableResult
    public func catchUp() throws -> Int {
        guard let cursor = try store.contactActivityCursor() else {
            try store.recordContactActivity([], through: try index.lastEventID())
            return 0
        }
        let (events, last) = try index.contactActivity(after: cursor, span: Int64(clamping: batchSize))
        guard last > cursor else { return 0 }
        let activity = events.compactMap { event in
            ContactActivity.Kind(rawValue: event.type).map {
                ContactActivity(accountID: event.accountID, address: event.address.lowercased(), kind: $0, at: event.at)
            }
        }
        try store.recordContactActivity(activity, through: last)
        return Int(clamping: last - cursor)
    }
}
