import Foundation
import GRDB

/// What happened to the messages carrying one tag (a campaign, an A/B
/// variant): recipients by outcome, bounces by category and site, opens and
/// clicks by people and by machines, unique and total, and clicks per link.
/// Unique counts one per message and recipient.
public struct TagReport: Sendable, Equatable {
    public struct Engagement: Sendable, Equatable {
        public var humanUnique = 0
        public var humanTotal = 0
        public var machineUnique = 0
        public var machineTotal = 0
    }

    public struct Bounces: Sendable, Equatable {
        public var category: String
        public var site: String
        public var count: Int
    }

    public struct Link: Sendable, Equatable {
        public var url: String
        public var humanUnique: Int
        public var total: Int
    }

    /// Recipients accepted into the queue.
    public var accepted = 0
    /// Recipients by final or latest outcome: delivered, bounced, deferred, expired, suppressed, cancelled.
    public var outcomes: [String: Int] = [:]
    public var bounces: [Bounces] = []
    public var opens = Engagement()
    public var clicks = Engagement()
    public var links: [Link] = []
    public var unsubscribes = 0
    public var complaints = 0

    public var delivered: Int { outcomes["delivered"] ?? 0 }
}

extension QueueIndex {
    /// The campaigns (tag `campaign:ID` or `campaign:ID:VARIANT`) with mail still to deliver here.
    public func queuedCampaigns() throws -> Set<Int64> {
        try database.read { db in
            let tags = try String.fetchAll(db, sql: """
                SELECT DISTINCT t.tag FROM message_tag t
                WHERE t.tag LIKE 'campaign:%' AND EXISTS (
                    SELECT 1 FROM recipient r WHERE r.message_id = t.message_id AND r.state IN ('queued', 'deferred'))
                """)
            return Set(tags.compactMap { tag in tag.split(separator: ":").dropFirst().first.flatMap { Int64($0) } })
        }
    }

    /// The report of an account's messages tagged `tag`.
    public func tagReport(accountID: Int64, tag: String) throws -> TagReport {
        try database.read { db in
            var report = TagReport()
            let scope = "FROM message_tag t JOIN delivery_event e ON e.message_id = t.message_id WHERE t.tag = ? AND e.account_id = ?"
            let arguments: StatementArguments = [tag, accountID]
            report.accepted = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM message_tag t JOIN recipient r ON r.message_id = t.message_id
                JOIN message m ON m.id = t.message_id WHERE t.tag = ? AND m.account_id = ?
                """, arguments: arguments) ?? 0
            for row in try GRDB.Row.fetchAll(db, sql: "SELECT r.state, COUNT(*) AS n FROM message_tag t JOIN recipient r ON r.message_id = t.message_id "
                                        + "JOIN message m ON m.id = t.message_id WHERE t.tag = ? AND m.account_id = ? GROUP BY r.state",
                                        arguments: arguments) {
                report.outcomes[row["state"]] = row["n"]
            }
            for row in try GRDB.Row.fetchAll(db, sql: """
                SELECT e.type, COALESCE(e.machine, 0) AS machine, COUNT(*) AS total, COUNT(DISTINCT e.message_id || ' ' || e.recipient) AS distinct_count
                \(scope) AND e.type IN ('opened', 'clicked', 'unsubscribed', 'complained') GROUP BY e.type, COALESCE(e.machine, 0)
                """, arguments: arguments) {
                let type: String = row["type"]
                let machine: Bool = row["machine"]
                let total: Int = row["total"]
                let unique: Int = row["distinct_count"]
                switch type {
                case "opened", "clicked":
                    var engagement = type == "opened" ? report.opens : report.clicks
                    if machine {
                        engagement.machineTotal += total
                        engagement.machineUnique += unique
                    } else {
                        engagement.humanTotal += total
                        engagement.humanUnique += unique
                    }
                    if type == "opened" { report.opens = engagement } else { report.clicks = engagement }
                case "unsubscribed": report.unsubscribes += unique
                default: report.complaints += unique
                }
            }
            report.bounces = try GRDB.Row.fetchAll(db, sql: """
                SELECT COALESCE(e.category, 'other') AS category, COALESCE(e.site, '') AS site,
                    COUNT(DISTINCT e.message_id || ' ' || e.recipient) AS n
                \(scope) AND e.type = 'bounced' GROUP BY 1, 2 ORDER BY n DESC LIMIT 200
                """, arguments: arguments).map { TagReport.Bounces(category: $0["category"], site: $0["site"], count: $0["n"]) }
            report.links = try GRDB.Row.fetchAll(db, sql: """
                SELECT e.url, COUNT(DISTINCT CASE WHEN COALESCE(e.machine, 0) = 0 THEN e.message_id || ' ' || e.recipient END) AS human_unique,
                    COUNT(*) AS total
                \(scope) AND e.type = 'clicked' AND e.url IS NOT NULL GROUP BY e.url ORDER BY human_unique DESC, total DESC LIMIT 100
                """, arguments: arguments).map { TagReport.Link(url: $0["url"], humanUnique: $0["human_unique"], total: $0["total"]) }
            return report
        }
    }

    /// Deliveries, opens, clicks and bounces after event `id` (at most `span` ids on), with their account and
    /// recipient, for the contacts' activity; and the last event id looked at. Other events (acceptances,
    /// most of the log) are skipped in SQL, by the primary key's range.
    public func contactActivity(after id: Int64, span: Int64) throws -> (events: [(accountID: Int64, address: String, type: String, at: Date)], last: Int64) {
        try database.read { db in
            let newest = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM delivery_event") ?? id
            let last = min(newest, id + span)
            guard last > id else { return ([], id) }
            let rows = try GRDB.Row.fetchAll(db, sql: """
                SELECT account_id, recipient, type, at FROM delivery_event
                WHERE id > ? AND id <= ? AND type IN ('delivered', 'opened', 'clicked', 'bounced') AND account_id IS NOT NULL
                """, arguments: [id, last])
            return (rows.map { (accountID: $0["account_id"], address: $0["recipient"], type: $0["type"], at: Date(timeIntervalSince1970: $0["at"])) },
                    last)
        }
    }
}
