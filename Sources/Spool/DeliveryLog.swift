import Foundation
import GRDB

/// What happened to one recipient of one message, once: an acceptance, a
/// delivery attempt with its result, a state change without an attempt
/// (expiry, cancellation), a report received later, or the recipient's own
/// action (an open, a click). Attempts carry the connection they used.
public struct DeliveryEvent: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case accepted, deferred, delivered, bounced, expired, cancelled, suppressed, complained, unsubscribed
        /// The sender was told the recipient is delayed (the "delayed" DSN).
        case delayed
        /// The tracking image was fetched, a tracked link followed (`TrackingLinks`).
        case opened, clicked
    }

    /// Its place in the log: unique, never reused, increasing (set when read).
    public var id: Int64?
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
    /// For opens and clicks: who fetched, from where, which link, and whether
    /// it looks like a machine (a privacy proxy, a link scanner) rather than the reader.
    public var userAgent: String?
    public var clientIP: String?
    public var url: String?
    public var machine: Bool?

    public init(at: Date, messageID: MessageID, recipient: String, type: Kind, attempt: Int? = nil, replyCode: Int? = nil,
                enhancedCode: String? = nil, replyText: String? = nil, category: String? = nil, hard: Bool? = nil,
                site: String? = nil, mxHost: String? = nil, remoteIP: String? = nil, sourceIP: String? = nil,
                tlsVersion: String? = nil, durationMilliseconds: Int? = nil, userAgent: String? = nil, clientIP: String? = nil,
                url: String? = nil, machine: Bool? = nil) {
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
        self.userAgent = userAgent
        self.clientIP = clientIP
        self.url = url
        self.machine = machine
    }
}

/// Which events to return, newest first. Every condition given must hold.
public struct DeliveryLogFilter: Sendable {
    /// Only the messages of this account (every API query is scoped so).
    public var accountID: Int64?
    public var tag: String?
    /// Only events older than this position (cursor pagination, newest first).
    public var before: DeliveryLogCursor?
    public var recipient: String?
    public var messageID: MessageID?
    public var types: [DeliveryEvent.Kind]
    public var category: String?
    /// The envelope sender, compared without case.
    public var sender: String?
    /// Words in the subject (a substring, without case for ASCII).
    public var subject: String?
    /// The site (provider or carrier) an attempt went to: `gmail`, `docomo`, or an MX domain.
    public var provider: String?
    public var since: Date?
    public var until: Date?
    public var limit: Int

    public init(accountID: Int64? = nil, tag: String? = nil, recipient: String? = nil, messageID: MessageID? = nil,
                types: [DeliveryEvent.Kind] = [], category: String? = nil, sender: String? = nil, subject: String? = nil,
                provider: String? = nil, since: Date? = nil, until: Date? = nil, limit: Int = 1000) {
        self.sender = sender
        self.subject = subject
        self.provider = provider
        self.accountID = accountID
        self.tag = tag
        self.recipient = recipient
        self.messageID = messageID
        self.types = types
        self.category = category
        self.since = since
        self.until = until
        self.limit = limit
    }
}

/// A position in the log's order (newest first), opaque to API callers.
public struct DeliveryLogCursor: Sendable, Equatable {
    public var at: Double
    public var id: Int64

    public init?(_ text: String) {
        let parts = text.split(separator: "_")
        guard parts.count == 2, let at = Double(parts[0]), at.isFinite, let id = Int64(parts[1]) else { return nil }
        self.at = at
        self.id = id
    }

    public init(at: Double, id: Int64) {
        self.at = at
        self.id = id
    }

    public var description: String { "\(at)_\(id)" }
}

/// The delivery log, kept in the queue index's database so that a state
/// change and its event are written in one transaction: an acceptance with
/// the message's index rows, an attempt with the recipient's new state.
///
/// It is also the webhooks' outbox: ids only grow (AUTOINCREMENT, never
/// reused even after retention empties the table), so each endpoint keeps
/// the id it has delivered up to and reads on from there (`eventsAfter`).
enum DeliveryLog {
    static func insert(_ event: DeliveryEvent, _ db: Database) throws {
        // The account is the message's, looked up by primary key.
        let statement = try db.cachedStatement(sql: """
            INSERT INTO delivery_event (at, account_id, message_id, recipient, type, attempt, reply_code, enhanced_code, reply_text,
                                        category, hard, site, mx_host, remote_ip, source_ip, tls_version, duration_ms,
                                        user_agent, client_ip, url, machine)
            VALUES (?, (SELECT account_id FROM message WHERE id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        try statement.execute(arguments: [
            event.at.timeIntervalSince1970, event.messageID.rawValue, event.messageID.rawValue, event.recipient, event.type.rawValue,
            event.attempt, event.replyCode, event.enhancedCode, event.replyText, event.category, event.hard, event.site,
            event.mxHost, event.remoteIP, event.sourceIP, event.tlsVersion, event.durationMilliseconds,
            event.userAgent, event.clientIP, event.url, event.machine,
        ])
    }

    static let columns = """
        id, at, message_id, recipient, type, attempt, reply_code, enhanced_code, reply_text, category, hard,
        site, mx_host, remote_ip, source_ip, tls_version, duration_ms, user_agent, client_ip, url, machine
        """

    /// `columns` of the log's table named `e`, for a statement that joins the message's row.
    static let joinedColumns = columns.split(separator: ",").map { "e." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        .joined(separator: ", ")

    /// A row selected with `columns` first, read by position: a lookup by
    /// name compares lower-cased names and cost the webhook fan-out a tenth of its time.
    static func event(_ row: GRDB.Row) -> DeliveryEvent {
        var event = DeliveryEvent(
            at: Date(timeIntervalSince1970: row[1]), messageID: MessageID(unchecked: row[2]),
            recipient: row[3], type: DeliveryEvent.Kind(rawValue: row[4]) ?? .deferred,
            attempt: row[5], replyCode: row[6], enhancedCode: row[7], replyText: row[8], category: row[9], hard: row[10],
            site: row[11], mxHost: row[12], remoteIP: row[13], sourceIP: row[14], tlsVersion: row[15], durationMilliseconds: row[16],
            userAgent: row[17], clientIP: row[18], url: row[19], machine: row[20])
        event.id = row[0]
        return event
    }
}

/// Where the API, the command line and the console search the log: this
/// node's queue index, or in a cluster the shared log that every node's
/// events are copied into (`SharedDeliveryLog` in the store).
public protocol DeliveryLogReader: Sendable {
    /// Events matching `filter` and the cursor for the next page (nil: no more), newest first.
    func eventPage(_ filter: DeliveryLogFilter) throws -> (events: [DeliveryEvent], next: DeliveryLogCursor?)
    /// An account's events counted by type per period of `interval` seconds (periods start at multiples of
    /// `interval` shifted by `offset`), grouped as asked.
    func stats(accountID: Int64, since: Date, until: Date, interval: Int, groupBy: QueueIndex.StatsGrouping, offset: Int) throws
        -> [DeliveryStats]
    /// An account's bounces: by category and provider, the commonest replies, the latest per recipient.
    func bounceAnalysis(accountID: Int64, since: Date, until: Date, topPerCategory: Int, recipientLimit: Int) throws -> BounceAnalysis
    /// Opens and clicks, total and unique (per message and recipient), of people and of machines apart.
    func engagementCounts(accountID: Int64, since: Date, until: Date) throws -> [String: [String: Int]]
}

extension DeliveryLogReader {
    /// Events matching `filter`, newest first (ties in insertion order).
    public func events(_ filter: DeliveryLogFilter) throws -> [DeliveryEvent] {
        try eventPage(filter).events
    }

    /// Periods aligned on whole multiples of `interval`.
    public func stats(accountID: Int64, since: Date, until: Date, interval: Int, groupBy: QueueIndex.StatsGrouping) throws
        -> [DeliveryStats] {
        try stats(accountID: accountID, since: since, until: until, interval: interval, groupBy: groupBy, offset: 0)
    }

    /// The five commonest replies per category, the latest bounce of at most 1,000 recipients.
    public func bounceAnalysis(accountID: Int64, since: Date, until: Date) throws -> BounceAnalysis {
        try bounceAnalysis(accountID: accountID, since: since, until: until, topPerCategory: 5, recipientLimit: 1000)
    }
}

extension QueueIndex: DeliveryLogReader {
    /// Events matching `filter` and the cursor for the next page (nil: no more).
    public func eventPage(_ filter: DeliveryLogFilter) throws -> (events: [DeliveryEvent], next: DeliveryLogCursor?) {
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
        if let account = filter.accountID {
            // With a recipient or message id, their index is the narrow one: `+` keeps the planner off the account's.
            conditions.append(filter.recipient != nil || filter.messageID != nil ? "+account_id = ?" : "account_id = ?")
            arguments.append(account)
        }
        if let tag = filter.tag {
            conditions.append("message_id IN (SELECT message_id FROM message_tag WHERE tag = ?)")
            arguments.append(tag)
        }
        if let sender = filter.sender {
            conditions.append("message_id IN (SELECT id FROM message WHERE sender = ? COLLATE NOCASE)")
            arguments.append(sender)
        }
        if let subject = filter.subject {
            // LIKE with the caller's text escaped: `%` and `_` are letters here, not patterns.
            let scope = filter.accountID == nil ? "" : " AND account_id = ?"
            conditions.append("message_id IN (SELECT id FROM message WHERE subject LIKE ? ESCAPE '\\'\(scope))")
            arguments.append("%" + QueueIndex.likeEscaped(subject) + "%")
            if let account = filter.accountID { arguments.append(account) }
        }
        if let provider = filter.provider {
            // A site seen from one source address is named `gmail from 192.0.2.1`.
            conditions.append("(site = ? OR site LIKE ? ESCAPE '\\')")
            arguments.append(contentsOf: [provider, QueueIndex.likeEscaped(provider) + " from %"])
        }
        if let cursor = filter.before {
            conditions.append("(at, id) < (?, ?)")
            arguments.append(contentsOf: [cursor.at, cursor.id] as [any DatabaseValueConvertible])
        }
        let condition = conditions.isEmpty ? "1" : conditions.joined(separator: " AND ")
        let sql = "SELECT \(DeliveryLog.columns) FROM delivery_event WHERE \(condition) ORDER BY at DESC, id DESC LIMIT ?"
        arguments.append(filter.limit)
        let rows = try database.read { db in try GRDB.Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)) }
        let next = rows.count == filter.limit ? rows.last.map { DeliveryLogCursor(at: $0["at"], id: $0["id"]) } : nil
        return (rows.map(DeliveryLog.event), next)
    }

    /// Records what a report received later says (an asynchronous bounce, a
    /// complaint): the event, and for a failure the recipient's final state,
    /// even if it was delivered (the remote 250 was not the end of it).
    public func recordFeedback(_ event: DeliveryEvent, failed: Bool) throws {
        try database.write { db in
            try DeliveryLog.insert(event, db)
            if failed {
                try db.execute(sql: """
                    UPDATE recipient SET state = 'bounced', last_reply = ?, updated_at = ?
                    WHERE message_id = ? AND address = ? AND state IN ('queued', 'deferred', 'delivered')
                    """, arguments: [event.replyText, event.at.timeIntervalSince1970, event.messageID.rawValue, event.recipient])
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
            // Whole hours before the cutoff's; the cutoff's own hour keeps its count a little longer than its oldest events.
            try db.execute(sql: "DELETE FROM event_hour WHERE hour < ?", arguments: [Int64(exactly: (time / 3600).rounded(.down)) ?? 0])
            try db.execute(sql: """
                DELETE FROM message WHERE received_at < ? AND NOT EXISTS (
                    SELECT 1 FROM recipient r WHERE r.message_id = message.id AND r.state IN ('queued', 'deferred'))
                """, arguments: [time])
            return (events, db.changesCount)
        }
    }
}

/// Event counts for one period (and one group, when grouped).
public struct DeliveryStats: Sendable, Codable, Equatable {
    public var period: Date
    public var group: String?
    public var counts: [String: Int]

    public init(period: Date, group: String?, counts: [String: Int]) {
        self.period = period
        self.group = group
        self.counts = counts
    }
}

extension QueueIndex {
    public enum StatsGrouping: String, Sendable, CaseIterable {
        case none, tag, provider
    }

    /// Counts of events by type per `interval` seconds, for one account, optionally
    /// per tag or per receiving provider (the delivery site, e.g. `gmail`).
    /// `offset`: seconds east of UTC at which periods start (a day in Tokyo begins at 15:00 UTC); 0: UTC.
    public func stats(accountID: Int64, since: Date, until: Date, interval: Int, groupBy: StatsGrouping,
                      offset: Int) throws -> [DeliveryStats] {
        // A window of whole hours in periods of whole hours, not grouped: the hourly counts answer it exactly.
        let aligned = since.timeIntervalSince1970.truncatingRemainder(dividingBy: 3600) == 0
            && until.timeIntervalSince1970.truncatingRemainder(dividingBy: 3600) == 0
        if groupBy == .none, aligned, interval > 0, interval % 3600 == 0, offset % 3600 == 0 {
            return try hourlyStats(accountID: accountID, since: since, until: until, interval: interval, offset: offset)
        }
        let group: String
        let join: String
        switch groupBy {
        case .none: (group, join) = ("NULL", "")
        case .tag: (group, join) = ("t.tag", "JOIN message_tag t ON t.message_id = e.message_id")
        case .provider: (group, join) = ("e.site", "")
        }
        let sql = """
            SELECT CAST((e.at + ?) / ? AS INTEGER) * ? - ? AS period, \(group) AS grp, e.type AS type, COUNT(*) AS n FROM delivery_event e \(join)
            WHERE e.at >= ? AND e.at < ? AND e.account_id = ?
            GROUP BY period, grp, type ORDER BY period, grp
            """
        let window: [any DatabaseValueConvertible] = [since.timeIntervalSince1970, until.timeIntervalSince1970, accountID]
        let rows = try database.read { db in
            try GRDB.Row.fetchAll(db, sql: sql, arguments: StatementArguments([offset, interval, interval, offset] + window))
        }
        var result: [DeliveryStats] = []
        for row in rows {
            let period = Date(timeIntervalSince1970: Double(row["period"] as Int64))
            let group: String? = groupBy == .none ? nil : (row["grp"] as String? ?? "")
            if result.last?.period != period || result.last?.group != group {
                result.append(DeliveryStats(period: period, group: group, counts: [:]))
            }
            result[result.count - 1].counts[row["type"]] = row["n"]
        }
        return result
    }
}

extension QueueIndex {
    /// `stats` from the per-hour counts (table `event_hour`), for periods of whole hours.
    func hourlyStats(accountID: Int64, since: Date, until: Date, interval: Int, offset: Int) throws -> [DeliveryStats] {
        let first = Int64(exactly: (since.timeIntervalSince1970 / 3600).rounded(.down)) ?? 0
        let last = Int64(exactly: (until.timeIntervalSince1970 / 3600).rounded(.up)) ?? 0
        let rows = try database.read { db in
            try GRDB.Row.fetchAll(db, sql: """
                SELECT ((hour * 3600 + ?) / ?) * ? - ? AS period, type, SUM(n) AS n FROM event_hour
                WHERE account_id = ? AND hour >= ? AND hour < ? GROUP BY period, type ORDER BY period
                """, arguments: [offset, interval, interval, offset, accountID, first, last])
        }
        var result: [DeliveryStats] = []
        for row in rows {
            let period = Date(timeIntervalSince1970: Double(row["period"] as Int64))
            if result.last?.period != period { result.append(DeliveryStats(period: period, group: nil, counts: [:])) }
            result[result.count - 1].counts[row["type"]] = row["n"]
        }
        return result
    }
}

/// The error analysis of bounces for an account over a time range.
public struct BounceAnalysis: Sendable, Codable, Equatable {
    public struct Count: Sendable, Codable, Equatable {
        public var name: String
        public var bounces: Int
        public var hard: Int

        public init(name: String, bounces: Int, hard: Int) {
            self.name = name
            self.bounces = bounces
            self.hard = hard
        }
    }

    public struct ReplyText: Sendable, Codable, Equatable {
        public var category: String
        public var text: String
        public var count: Int

        public init(category: String, text: String, count: Int) {
            self.category = category
            self.text = text
            self.count = count
        }
    }

    public struct Recipient: Sendable, Codable, Equatable {
        public var recipient: String
        public var category: String
        public var at: Date
        public var messageID: MessageID
        public var replyText: String?

        public init(recipient: String, category: String, at: Date, messageID: MessageID, replyText: String?) {
            self.recipient = recipient
            self.category = category
            self.at = at
            self.messageID = messageID
            self.replyText = replyText
        }
    }

    public var total: Int
    public var byCategory: [Count]
    /// By receiving provider: the delivery site (a shaping rule such as `docomo`, or the MX set).
    public var byProvider: [Count]
    /// The most frequent reply texts of each category.
    public var topReplies: [ReplyText]
    /// The latest bounce of each recipient, newest first.
    public var recipients: [Recipient]

    public init(total: Int, byCategory: [Count], byProvider: [Count], topReplies: [ReplyText], recipients: [Recipient]) {
        self.total = total
        self.byCategory = byCategory
        self.byProvider = byProvider
        self.topReplies = topReplies
        self.recipients = recipients
    }
}

extension QueueIndex {
    public func bounceAnalysis(accountID: Int64, since: Date, until: Date, topPerCategory: Int,
                               recipientLimit: Int) throws -> BounceAnalysis {
        let window = "type = 'bounced' AND at >= ? AND at < ? AND account_id = ?"
        let arguments: StatementArguments = [since.timeIntervalSince1970, until.timeIntervalSince1970, accountID]
        return try database.read { db in
            func counts(_ column: String) throws -> [BounceAnalysis.Count] {
                try GRDB.Row.fetchAll(db, sql: """
                    SELECT COALESCE(\(column), 'unknown') AS name, COUNT(*) AS n, SUM(COALESCE(hard, 0)) AS hard
                    FROM delivery_event WHERE \(window) GROUP BY name ORDER BY n DESC, name
                    """, arguments: arguments).map { BounceAnalysis.Count(name: $0["name"], bounces: $0["n"], hard: $0["hard"] ?? 0) }
            }
            let byCategory = try counts("category")
            // A reply text with the recipient's address in it would make every text unique; the
            // address is replaced so that the same reply from one server counts as one.
            let replies = try GRDB.Row.fetchAll(db, sql: """
                SELECT COALESCE(category, 'unknown') AS category, REPLACE(COALESCE(reply_text, ''), recipient, '<recipient>') AS text,
                       COUNT(*) AS n
                FROM delivery_event WHERE \(window) GROUP BY category, text ORDER BY category, n DESC, text
                """, arguments: arguments)
            var top: [BounceAnalysis.ReplyText] = []
            var perCategory: [String: Int] = [:]
            for row in replies {
                let category: String = row["category"]
                guard perCategory[category, default: 0] < topPerCategory else { continue }
                perCategory[category, default: 0] += 1
                top.append(BounceAnalysis.ReplyText(category: category, text: row["text"], count: row["n"]))
            }
            let recipients = try GRDB.Row.fetchAll(db, sql: """
                SELECT recipient, COALESCE(category, 'unknown') AS category, MAX(at) AS at, message_id, reply_text
                FROM delivery_event WHERE \(window) GROUP BY recipient ORDER BY at DESC LIMIT ?
                """, arguments: arguments + [recipientLimit]).map {
                BounceAnalysis.Recipient(recipient: $0["recipient"], category: $0["category"], at: Date(timeIntervalSince1970: $0["at"]),
                                         messageID: MessageID(unchecked: $0["message_id"]), replyText: $0["reply_text"])
            }
            return BounceAnalysis(total: byCategory.reduce(0) { $0 + $1.bounces }, byCategory: byCategory, byProvider: try counts("site"),
                                  topReplies: top, recipients: recipients)
        }
    }
}

extension QueueIndex {
    /// Messages from `sender domain` (the envelope sender's): deliveries since
    /// `since` and how many of them were over TLS.
    public func tlsShare(senderDomain: String, since: Date) throws -> (total: Int, encrypted: Int) {
        try database.read { db in
            let row = try GRDB.Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS n, SUM(tls_version IS NOT NULL) AS tls FROM delivery_event
                WHERE type = 'delivered' AND at >= ? AND message_id IN (SELECT id FROM message WHERE sender LIKE ? ESCAPE '\\')
                """, arguments: [since.timeIntervalSince1970, QueueIndex.senderPattern(senderDomain)])
            return (row?["n"] ?? 0, row?["tls"] ?? 0)
        }
    }

    /// Deliveries and complaints since `since` for mail from a sender domain.
    public func complaintCounts(senderDomain: String, since: Date) throws -> (delivered: Int, complained: Int) {
        try database.read { db in
            let row = try GRDB.Row.fetchOne(db, sql: """
                SELECT SUM(type = 'delivered') AS delivered, SUM(type = 'complained') AS complained FROM delivery_event
                WHERE at >= ? AND message_id IN (SELECT id FROM message WHERE sender LIKE ? ESCAPE '\\')
                """, arguments: [since.timeIntervalSince1970, QueueIndex.senderPattern(senderDomain)])
            return (row?["delivered"] ?? 0, row?["complained"] ?? 0)
        }
    }

    static func senderPattern(_ domain: String) -> String { "%@" + likeEscaped(domain) }

    /// `text` as the literal part of a LIKE pattern with `ESCAPE '\'`.
    static func likeEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_")
    }
}

extension QueueIndex {
    /// Failures of one recipient of an account since `since` whose category is one of `categories`.
    public func failureCount(accountID: Int64, recipient: String, categories: Set<String>, since: Date) throws -> Int {
        guard !categories.isEmpty else { return 0 }
        let values: [any DatabaseValueConvertible] = [recipient, since.timeIntervalSince1970] + categories.sorted() + [accountID]
        return try database.read { db in
            try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM delivery_event
                WHERE recipient = ? COLLATE NOCASE AND at >= ? AND type IN ('bounced', 'expired')
                  AND category IN (\(categories.map { _ in "?" }.joined(separator: ", ")))
                  AND account_id = ?
                """, arguments: StatementArguments(values)) ?? 0
        }
    }
}

/// An event as it leaves by webhook: the log row and what the message
/// carried (sender, tags, custom arguments, configuration set).
public struct OutboxEvent: Sendable {
    public var event: DeliveryEvent
    /// The log id: the event's identity in every webhook format.
    public var id: Int64
    public var accountID: Int64
    public var sender: String?
    public var metadata: MessageMetadata?

    public init(event: DeliveryEvent, id: Int64, accountID: Int64, sender: String?, metadata: MessageMetadata?) {
        self.event = event
        self.id = id
        self.accountID = accountID
        self.sender = sender
        self.metadata = metadata
    }
}

extension QueueIndex {
    /// An account's events with ids after `id` (and at most `last`), oldest
    /// first: what a webhook endpoint has not yet been sent.
    public func eventsAfter(_ id: Int64, accountID: Int64, through last: Int64 = .max, limit: Int) throws -> [OutboxEvent] {
        try database.read { db in
            let statement = try db.cachedStatement(sql: """
                SELECT \(DeliveryLog.joinedColumns), m.sender AS m_sender, m.metadata AS m_metadata
                FROM delivery_event e LEFT JOIN message m ON m.id = e.message_id
                WHERE e.account_id = ? AND e.id > ? AND e.id <= ? ORDER BY e.id LIMIT ?
                """)
            // Decoded once per distinct text: the messages of one send share theirs, and
            // decoding cost the fan-out more than everything else together.
            var decoded: [String: MessageMetadata] = [:]
            let decoder = JSONDecoder()
            return try GRDB.Row.fetchAll(statement, arguments: [accountID, id, last, limit]).map { row in
                let event = DeliveryLog.event(row)
                var metadata: MessageMetadata?
                if let text = row[22] as String? {
                    if let known = decoded[text] {
                        metadata = known
                    } else if let fresh = try? decoder.decode(MessageMetadata.self, from: Data(text.utf8)) {
                        if decoded.count < 10_000 { decoded[text] = fresh }
                        metadata = fresh
                    }
                }
                return OutboxEvent(event: event, id: event.id ?? 0, accountID: accountID, sender: row[21], metadata: metadata)
            }
        }
    }

    /// Up to `limit` events after `id`, oldest first, with what a search of
    /// the shared log filters on (the message's account, sender, subject and
    /// tags): what this node has not yet copied into a cluster's log.
    public func eventsToShare(after id: Int64, limit: Int) throws -> [SharedEvent] {
        try database.read { db in
            let statement = try db.cachedStatement(sql: """
                SELECT \(DeliveryLog.joinedColumns), e.account_id, m.sender, m.subject,
                       (SELECT group_concat(tag, char(31)) FROM message_tag t WHERE t.message_id = e.message_id)
                FROM delivery_event e LEFT JOIN message m ON m.id = e.message_id
                WHERE e.id > ? ORDER BY e.id LIMIT ?
                """)
            return try GRDB.Row.fetchAll(statement, arguments: [id, limit]).map { row in
                let tags = (row[24] as String?).map { $0.split(separator: "\u{1F}").map(String.init) } ?? []
                return SharedEvent(event: DeliveryLog.event(row), accountID: row[21], sender: row[22], subject: row[23], tags: tags)
            }
        }
    }

    /// The newest event id (0: none yet): where a new endpoint starts.
    public func lastEventID() throws -> Int64 {
        try database.read { db in
            try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'delivery_event'") ?? 0
        }
    }

    /// The ids bounding the events of `since..<until` (for a replay): the
    /// last id before the range and the last one in it.
    public func eventIDRange(since: Date, until: Date) throws -> (after: Int64, through: Int64)? {
        try database.read { db in
            guard let first = try Int64.fetchOne(db, sql: "SELECT MIN(id) FROM delivery_event WHERE at >= ? AND at < ?",
                                                 arguments: [since.timeIntervalSince1970, until.timeIntervalSince1970]),
                  let last = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM delivery_event WHERE at >= ? AND at < ?",
                                                arguments: [since.timeIntervalSince1970, until.timeIntervalSince1970])
            else { return nil }
            return (first - 1, last)
        }
    }
}

/// An event as a node copies it into a cluster's shared log: the row (its
/// `id` is this node's log id) and what a search filters on of its message.
public struct SharedEvent: Sendable, Equatable {
    public var event: DeliveryEvent
    public var accountID: Int64?
    public var sender: String?
    public var subject: String?
    public var tags: [String]

    public init(event: DeliveryEvent, accountID: Int64?, sender: String?, subject: String?, tags: [String]) {
        self.event = event
        self.accountID = accountID
        self.sender = sender
        self.subject = subject
        self.tags = tags
    }
}

/// An open or a click as the tracking endpoint saw it, before it is logged.
public struct Engagement: Sendable, Codable, Equatable {
    public var at: Date
    public var clicked: Bool
    public var message: MessageID
    /// The recipient's position in the message (each tracked copy has one).
    public var position: Int
    public var userAgent: String?
    public var clientIP: String?
    public var url: String?
    public var head: Bool

    public init(at: Date, clicked: Bool, message: MessageID, position: Int, userAgent: String?, clientIP: String?, url: String?, head: Bool) {
        self.at = at
        self.clicked = clicked
        self.message = message
        self.position = position
        self.userAgent = userAgent
        self.clientIP = clientIP
        self.url = url
        self.head = head
    }
}

extension QueueIndex {
    /// Logs opens and clicks in one transaction; `isMachine` decides the flag
    /// from the engagement and when the recipient's copy was delivered.
    /// Engagements with messages no longer on record are dropped. Returns how many were logged.
    @discardableResult
    /// Logs the engagements of messages this index holds; returns how many, and those of messages it does not hold
    /// (in a cluster, another node's: `FeedbackForwarder` sends them there).
    public func recordEngagements(_ engagements: [Engagement], isMachine: (Engagement, Date?) -> Bool) throws
        -> (logged: Int, unknown: [Engagement]) {
        try database.write { db in
            let recipient = try db.cachedStatement(sql: "SELECT address FROM recipient WHERE message_id = ? AND position = ?")
            let delivered = try db.cachedStatement(sql: """
                SELECT MAX(at) FROM delivery_event WHERE message_id = ? AND recipient = ? AND type = 'delivered'
                """)
            var logged = 0
            var unknown: [Engagement] = []
            for engagement in engagements {
                guard let address = try String.fetchOne(recipient, arguments: [engagement.message.rawValue, engagement.position]) else {
                    unknown.append(engagement)
                    continue
                }
                let deliveredAt = try Double.fetchOne(delivered, arguments: [engagement.message.rawValue, address])
                    .map(Date.init(timeIntervalSince1970:))
                try DeliveryLog.insert(DeliveryEvent(at: engagement.at, messageID: engagement.message, recipient: address,
                                                     type: engagement.clicked ? .clicked : .opened, site: "tracking",
                                                     userAgent: engagement.userAgent, clientIP: engagement.clientIP, url: engagement.url,
                                                     machine: isMachine(engagement, deliveredAt)), db)
                logged += 1
            }
            return (logged, unknown)
        }
    }

    /// Opens and clicks of an account in a window: total and unique (one per
    /// message and recipient), for people and for machines apart.
    public func engagementCounts(accountID: Int64, since: Date, until: Date) throws -> [String: [String: Int]] {
        try database.read { db in
            var result: [String: [String: Int]] = [:]
            for row in try GRDB.Row.fetchAll(db, sql: """
                SELECT type, COALESCE(machine, 0) AS machine, COUNT(*) AS total, COUNT(DISTINCT message_id || ' ' || recipient) AS unique_count
                FROM delivery_event WHERE account_id = ? AND at >= ? AND at < ? AND type IN ('opened', 'clicked')
                GROUP BY type, COALESCE(machine, 0)
                """, arguments: [accountID, since.timeIntervalSince1970, until.timeIntervalSince1970]) {
                let type: String = row["type"]
                let who = (row["machine"] as Bool) ? "machine" : "human"
                result[type, default: [:]]["\(who)_total"] = row["total"]
                result[type, default: [:]]["\(who)_unique"] = row["unique_count"]
            }
            return result
        }
    }
}
