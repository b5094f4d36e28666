import Foundation
import PostgresNIO

extension PostgresStore: NodeRegistry {
    public func recordHeartbeat(_ status: NodeStatus) throws {
        _ = try pool.query("""
            INSERT INTO node (name, version, started_at, heartbeat_at, pending_recipients, pending_messages)
            VALUES (\(status.name), \(status.version), \(status.startedAt), \(status.heartbeatAt), \(status.pendingRecipients),
                    \(status.pendingMessages))
            ON CONFLICT (name) DO UPDATE SET version = excluded.version, started_at = excluded.started_at,
                heartbeat_at = excluded.heartbeat_at, pending_recipients = excluded.pending_recipients,
                pending_messages = excluded.pending_messages
            """)
    }

    public func nodes() throws -> [NodeStatus] {
        try pool.query("SELECT * FROM node ORDER BY name").records.map { record in
            NodeStatus(name: try record.decode("name"), version: try record.decode("version"), startedAt: try record.decode("started_at"),
                       heartbeatAt: try record.decode("heartbeat_at"), pendingRecipients: try record.decode("pending_recipients"),
                       pendingMessages: try record.decode("pending_messages"))
        }
    }

    public func forgetNode(named name: String) throws -> Bool {
        try pool.query("DELETE FROM node WHERE name = \(name)").changes > 0
    }
}
