import Foundation
import GRDB

/// A Hikyaku process serving from this store, as it last said: who, which
/// version, since when, and how much mail its spool holds.
public struct NodeStatus: Sendable, Codable, Equatable {
    public var name: String
    public var version: String
    public var startedAt: Date
    public var heartbeatAt: Date
    /// Recipients waiting in the node's own spool (queued or deferred).
    public var pendingRecipients: Int
    /// The messages they belong to.
    public var pendingMessages: Int

    public init(name: String, version: String, startedAt: Date, heartbeatAt: Date, pendingRecipients: Int, pendingMessages: Int) {
        self.name = name
        self.version = version
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.pendingRecipients = pendingRecipients
        self.pendingMessages = pendingMessages
    }

    /// Heard from within three heartbeat intervals of `now`; a node silent longer is stopped or cut off.
    public func isAlive(now: Date, heartbeatSeconds: Int) -> Bool {
        now.timeIntervalSince(heartbeatAt) <= Double(heartbeatSeconds) * 3
    }
}

/// The nodes serving from one store: each writes its status every few
/// seconds, and any of them (or the command line) lists them all. On the
/// embedded store that is the one node; nodes sharing a store see each other.
public protocol NodeRegistry: Sendable {
    /// Adds or replaces the node's row.
    func recordHeartbeat(_ status: NodeStatus) throws
    /// Every node that has ever written, by name.
    func nodes() throws -> [NodeStatus]
    /// Forgets a node (one retired for good); false when there was none of that name.
    func forgetNode(named name: String) throws -> Bool
}

extension SQLiteStore: NodeRegistry {
    static func registerNodeMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v15-nodes") { db in
            try db.execute(sql: """
                CREATE TABLE node (
                    name TEXT PRIMARY KEY,
                    version TEXT NOT NULL,
                    started_at REAL NOT NULL,
                    heartbeat_at REAL NOT NULL,
                    pending_recipients INTEGER NOT NULL,
                    pending_messages INTEGER NOT NULL
                );
                """)
        }
    }

    public func recordHeartbeat(_ status: NodeStatus) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO node (name, version, started_at, heartbeat_at, pending_recipients, pending_messages) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET version = excluded.version, started_at = excluded.started_at,
                    heartbeat_at = excluded.heartbeat_at, pending_recipients = excluded.pending_recipients,
                    pending_messages = excluded.pending_messages
                """, arguments: [status.name, status.version, status.startedAt.timeIntervalSince1970, status.heartbeatAt.timeIntervalSince1970,
                                 status.pendingRecipients, status.pendingMessages])
        }
    }

    public func nodes() throws -> [NodeStatus] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM node ORDER BY name").map { row in
                NodeStatus(name: row["name"], version: row["version"], startedAt: Date(timeIntervalSince1970: row["started_at"]),
                           heartbeatAt: Date(timeIntervalSince1970: row["heartbeat_at"]),
                           pendingRecipients: row["pending_recipients"], pendingMessages: row["pending_messages"])
            }
        }
    }

    public func forgetNode(named name: String) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "DELETE FROM node WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }
}
