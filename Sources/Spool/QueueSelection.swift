import Foundation
import GRDB

/// Which queued messages an operation applies to: one account's (or every
/// account's, for an operator), narrowed by ids, recipient domain, sender or
/// held state. Every part becomes a bound parameter, never SQL text.
public struct QueueSelection: Sendable, Equatable {
    /// nil: every account (operators only).
    public var accountID: Int64?
    public var ids: [MessageID]?
    /// Messages with a pending recipient at this domain (lower-cased).
    public var recipientDomain: String?
    public var sender: String?
    public var held: Bool?

    public init(accountID: Int64?, ids: [MessageID]? = nil, recipientDomain: String? = nil, sender: String? = nil, held: Bool? = nil) {
        self.accountID = accountID
        self.ids = ids
        self.recipientDomain = recipientDomain?.lowercased()
        self.sender = sender
        self.held = held
    }

    /// A condition on `message m` (and the arguments it binds).
    var condition: (String, StatementArguments) {
        var parts = ["EXISTS (SELECT 1 FROM recipient p WHERE p.message_id = m.id AND p.state IN ('queued', 'deferred')"
                     + (recipientDomain == nil ? ")" : " AND lower(substr(p.address, instr(p.address, '@') + 1)) = ?)")]
        var arguments: StatementArguments = []
        if let recipientDomain { arguments += [recipientDomain] }
        if let accountID {
            parts.append("m.account_id = ?")
            arguments += [accountID]
        }
        if let ids {
            parts.append("m.id IN (" + ids.map { _ in "?" }.joined(separator: ",") + ")")
            arguments += StatementArguments(ids.map(\.rawValue))
        }
        if let sender {
            parts.append("m.sender = ? COLLATE NOCASE")
            arguments += [sender]
        }
        if let held {
            parts.append("m.held = ?")
            arguments += [held]
        }
        return (parts.joined(separator: " AND "), arguments)
    }
}

/// Pending recipients of one destination domain (a "site" as the console shows it).
public struct QueueSite: Sendable, Codable, Equatable {
    public var domain: String
    public var queued: Int
    public var deferred: Int
    public var held: Int
    public var oldest: Date?
}

extension QueueIndex {
    /// At most this many messages are changed by one queue operation.
    public static let maximumSelection = 100_000

    /// The queued messages of a selection, oldest first.
    public func summaries(_ selection: QueueSelection, limit: Int) throws -> [QueuedMessageSummary] {
        let (condition, arguments) = selection.condition
        return try database.read { db in
            try GRDB.Row.fetchAll(db, sql: """
                SELECT m.id, m.received_at, m.sender, m.size, m.held, m.account_id,
                       (SELECT COUNT(*) FROM recipient r WHERE r.message_id = m.id) AS recipients,
                       (SELECT COUNT(*) FROM recipient r WHERE r.message_id = m.id AND r.state IN ('queued', 'deferred')) AS pending
                FROM message m WHERE \(condition) ORDER BY m.id LIMIT ?
                """, arguments: arguments + [max(1, min(limit, 10_000))]).map { row in
                QueuedMessageSummary(id: MessageID(unchecked: row["id"]), receivedAt: Date(timeIntervalSince1970: row["received_at"]),
                                     sender: row["sender"], size: row["size"], held: row["held"], accountID: row["account_id"],
                                     recipientCount: row["recipients"], pendingCount: row["pending"])
            }
        }
    }

    /// Pending recipients by destination domain, busiest first.
    public func sites(accountID: Int64?, limit: Int = 200) throws -> [QueueSite] {
        try database.read { db in
            try GRDB.Row.fetchAll(db, sql: """
                SELECT lower(substr(r.address, instr(r.address, '@') + 1)) AS domain,
                       SUM(r.state = 'queued' AND m.held = 0) AS queued, SUM(r.state = 'deferred' AND m.held = 0) AS deferred,
                       SUM(m.held) AS held, MIN(m.received_at) AS oldest
                FROM recipient r JOIN message m ON m.id = r.message_id
                WHERE r.state IN ('queued', 'deferred') AND (? IS NULL OR m.account_id = ?)
                GROUP BY domain ORDER BY COUNT(*) DESC, domain LIMIT ?
                """, arguments: [accountID, accountID, limit]).map { row in
                QueueSite(domain: row["domain"], queued: row["queued"] ?? 0, deferred: row["deferred"] ?? 0, held: row["held"] ?? 0,
                          oldest: (row["oldest"] as Double?).map(Date.init(timeIntervalSince1970:)))
            }
        }
    }

    /// Holds or releases the selected messages; returns how many changed.
    @discardableResult
    public func setHeld(_ selection: QueueSelection, _ held: Bool) throws -> Int {
        let (condition, arguments) = selection.condition
        return try database.write { db in
            try db.execute(sql: "UPDATE message AS m SET held = ? WHERE m.held != ? AND \(condition)",
                           arguments: [held, held] + arguments)
            return db.changesCount
        }
    }

    /// Makes the selected messages' deferred recipients due now; returns how many recipients.
    @discardableResult
    public func retryNow(_ selection: QueueSelection) throws -> Int {
        let (condition, arguments) = selection.condition
        return try database.write { db in
            try db.execute(sql: """
                UPDATE recipient SET next_attempt_at = 0 WHERE state = 'deferred'
                AND message_id IN (SELECT m.id FROM message m WHERE \(condition))
                """, arguments: arguments)
            return db.changesCount
        }
    }

    /// Cancels the selected messages' pending recipients, each with a `cancelled` event; returns how many recipients.
    @discardableResult
    public func cancel(_ selection: QueueSelection, reason: String) throws -> Int {
        let (condition, arguments) = selection.condition
        return try database.write { db in
            let ids = try String.fetchAll(db, sql: "SELECT m.id FROM message m WHERE \(condition) LIMIT ?",
                                          arguments: arguments + [QueueIndex.maximumSelection])
            var cancelled = 0
            // In slices: SQLite binds at most 32,766 parameters.
            for start in stride(from: 0, to: ids.count, by: 500) {
                let slice = Array(ids[start..<min(start + 500, ids.count)])
                cancelled += try QueueIndex.cancel(db, where: "message_id IN (" + slice.map { _ in "?" }.joined(separator: ",") + ")",
                                                   arguments: StatementArguments(slice), reason: reason)
            }
            return cancelled
        }
    }
}
