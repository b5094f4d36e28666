import Foundation
import PostgresNIO

extension PostgresStore: ClusterInbox {
    public func post(message: String, payload: Data) throws {
        _ = try pool.query("INSERT INTO cluster_inbox (message_id, payload, from_node) VALUES (\(message), \(payload), \(nodeName))")
    }

    public func inboxItems(after id: Int64, limit: Int) throws -> [InboxItem] {
        try pool.query("""
            SELECT id, message_id, payload FROM cluster_inbox WHERE id > \(id) ORDER BY id LIMIT \(Int64(clamping: limit))
            """).records.map { record in
            InboxItem(id: try record.decode("id"), message: try record.decode("message_id"), payload: try record.decode("payload"))
        }
    }

    public func firstInboxItem(postedSince time: Date) throws -> Int64? {
        try pool.query("SELECT min(id) AS id FROM cluster_inbox WHERE posted_at >= \(time)").records.first?.decode("id")
    }

    public func removeInboxItems(_ ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        _ = try pool.query("DELETE FROM cluster_inbox WHERE id = ANY(\(ids)::bigint[])")
    }

    public func expireInboxItems(before cutoff: Date) throws -> Int {
        try pool.query("DELETE FROM cluster_inbox WHERE posted_at < \(cutoff)").changes
    }
}
