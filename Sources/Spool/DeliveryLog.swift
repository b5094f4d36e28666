import Foundation
import GRDB

/// What happened to one recipient of one message, once: an acceptance, a
/// delivery attempt with its result, or a state change without an attempt
/// (expiry, cancellation). Attempts carry the connection they used.
public struct DeliveryEvent: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case accepted, deferred, delivered, bounced, expired, cancelled
    }

    public var at: Date
    public var messageID: MessageID
    public var recipient: String
    public var type: Kind
    /// 1 for the first attempt; nil for events that are not attempts.
    public var attempt: Int?
    public var replyCode: Int?
    public var enhancedCode: String?
    public var replyText: String?
    /// Failure classification (`BounceCategory` raw values) and whether it is final.
    public var category: String?
    public var hard: Bool?
    /// The destination site (traffic-shaping rule or MX set) and the connection.
    public var site: String?
    public var mxHost: String?
    public var remoteIP: String?
    public var sourceIP: String?
    public var tlsVersion: String?
    public var durationMilliseconds: Int?

    public init(at: Date, messageID: MessageID, recipient: String, type: Kind, attempt: Int? = nil, replyCode: Int? = nil,
                enhancedCode: String? = nil, replyText: String? = nil, category: String? = nil, hard: Bool? = nil,
                site: String? = nil, mxHost: String? = nil, remoteIP: String? = nil, sourceIP: String? = nil,
                tlsVersion: String? = nil, durationMilliseconds: Int? = nil) {
        self.at = at
        self.messageID = messageID
        self.recipient = recipient
        self.type = type
        self.attempt = attempt
        self.replyCode = replyCode
        self.enhancedCode = enhancedCode
        self.replyText = replyText
        self.category = category
        self.hard = hard
        self.site = site
        self.mxHost = mxHost
        self.remoteIP = remoteIP
        self.sourceIP = sourceIP
        self.tlsVersion = tlsVersion
        self.durationMilliseconds = durationMilliseconds
    }
}

/// Which events to return, newest first. Every condition given must hold.
public struct DeliveryLogFilter: Sendable {
    public var recipient: String?
    public var messageID: MessageID?
    public var types: [DeliveryEvent.Kind]
    public var category: String?
    public var since: Date?
    public var until: Date?
    public var limit: Int

    public init(recipient: String? = nil, messageID: MessageID? = nil, types: [DeliveryEvent.Kind] = [], category: String? = nil,
                since: Date? = nil, until: Date? = nil, limit: Int = 1000) {
        self.recipient = recipient
        self.messageID = messageID
        self.types = types
        self.category = category
        self.since = since
        self.until = until
        self.limit = limit
    }
}

/// The delivery log, kept in the queue index's database so that an
/// attempt's outcome and its event are written in one transaction.
///
/// `accepted` events are not stored: every message row already records
/// when, from whom and for whom it was accepted, so they are read from
/// there and intake pays nothing for them.
enum DeliveryLog {
    static func insert(_ event: DeliveryEvent, _ db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            INSERT INTO delivery_event (at, message_id, recipient, type, attempt, reply_code, enhanced_code, reply_text,
                                        category, hard, site, mx_host, remote_ip, source_ip, tls_version, duration_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        try statement.execute(arguments: [
            event.at.timeIntervalSince1970, event.messageID.rawValue, event.recipient, event.type.rawValue, event.attempt,
            event.replyCode, event.enhancedCode, event.replyText, event.category, event.hard, event.site, event.mxHost,
            event.remoteIP, event.sourceIP, event.tlsVersion, event.durationMilliseconds,
        ])
    }
}

extension QueueIndex {
    /// Events matching `filter`, newest first (ties in insertion order).
    public func events(_ filter: DeliveryLogFilter) throws -> [DeliveryEvent] {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let recipient = filter.recipient {
            conditions.append("recipient = ? COLLATE NOCASE")
            arguments.append(recipient)
        }
        if let id = filter.messageID {
            conditions.append("message_id = ?")
            arguments.append(id.rawValue)
        }
        if !filter.types.isEmpty {
            conditions.append("type IN (\(filter.types.map { _ in "?" }.joined(separator: ", ")))")
            arguments.append(contentsOf: filter.types.map(\.rawValue))
        }
        if let category = filter.category {
            conditions.append("category = ?")
            arguments.append(category)
        }
        if let since = filter.since {
            conditions.append("at >= ?")
            arguments.append(since.timeIntervalSince1970)
        }
        if let until = filter.until {
            conditions.append("at < ?")
            arguments.append(until.timeIntervalSince1970)
        }
        let condition = conditions.isEmpty ? "1" : conditions.joined(separator: " AND ")
        // Accepted events come from the message rows (see DeliveryLog).
        let sql = """
            SELECT * FROM (
                SELECT at, message_id, recipient, type, attempt, reply_code, enhanced_code, reply_text, category, hard,
                       site, mx_host, remote_ip, source_ip, tls_version, duration_ms, 1 AS ord, id AS seq
                FROM delivery_event
                UNION ALL
                SELECT m.received_at, m.id, r.address, 'accepted', NULL, 250, '2.0.0',
                       'from <' || m.sender || '> by ' || m.client_address || ' (' || m.helo || ')', NULL, NULL,
                       NULL, NULL, NULL, NULL, NULL, NULL, 0 AS ord, r.position AS seq
                FROM message m JOIN recipient r ON r.message_id = m.id
            ) WHERE \(condition)
            ORDER BY at DESC, ord DESC, seq DESC LIMIT ?
            """
        arguments.append(filter.limit)
        return try database.read { db in
            try GRDB.Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map { row in
                DeliveryEvent(
                    at: Date(timeIntervalSince1970: row["at"]), messageID: MessageID(unchecked: row["message_id"]),
                    recipient: row["recipient"], type: DeliveryEvent.Kind(rawValue: row["type"]) ?? .deferred,
                    attempt: row["attempt"], replyCode: row["reply_code"], enhancedCode: row["enhanced_code"],
                    replyText: row["reply_text"], category: row["category"], hard: row["hard"], site: row["site"],
                    mxHost: row["mx_host"], remoteIP: row["remote_ip"], sourceIP: row["source_ip"],
                    tlsVersion: row["tls_version"], durationMilliseconds: row["duration_ms"])
            }
        }
    }

    /// Appends one event outside an attempt (an expiry found without a
    /// delivery, say).
    public func append(_ event: DeliveryEvent) throws {
        try database.write { db in try DeliveryLog.insert(event, db) }
    }

    /// Retention: forgets events older than `cutoff`, and messages received
    /// before it whose recipients are all final. Returns (events, messages) removed.
    @discardableResult
    public func purge(before cutoff: Date) throws -> (events: Int, messages: Int) {
        try database.write { db in
            let time = cutoff.timeIntervalSince1970
            try db.execute(sql: "DELETE FROM delivery_event WHERE at < ?", arguments: [time])
            let events = db.changesCount
            try db.execute(sql: """
                DELETE FROM message WHERE received_at < ? AND NOT EXISTS (
                    SELECT 1 FROM recipient r WHERE r.message_id = message.id AND r.state IN ('queued', 'deferred'))
                """, arguments: [time])
            return (events, db.changesCount)
        }
    }
}
