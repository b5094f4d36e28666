import Foundation
import PostgresNIO
import Spool

extension PostgresStore: SharedDeliveryLog {
    public func sharedLogPosition() throws -> Int64? {
        try pool.query("SELECT last_event FROM delivery_log_position WHERE node = \(nodeName)").records.first?.decode("last_event")
    }

    public func share(_ events: [SharedEvent], through last: Int64) throws {
        let today = Int(exactly: (Date().timeIntervalSince1970 / 86400).rounded(.down)) ?? 0
        if sharedLogDay.withLock({ $0 }) != today { try makePartitions(thisNodesDay: today) }
        do {
            try copy(events, through: last)
        } catch let error as PostgresStoreError where error.isMissingPartition {
            // The database's day turned before this node's did.
            try makePartitions(thisNodesDay: today)
            try copy(events, through: last)
        }
    }

    private func copy(_ events: [SharedEvent], through last: Int64) throws {
        let rows = try String(decoding: JSONEncoder().encode(events.map(SharedLogRow.init)), as: UTF8.self)
        try pool.transaction { transaction in
            if !events.isEmpty {
                // One statement for the batch. The unique (node, event, day) makes a batch whose commit was
                // not heard of, and that is sent again, count once.
                _ = try transaction.query("""
                    INSERT INTO delivery_event (node, node_event_id, at, account_id, message_id, recipient, type, attempt, reply_code,
                        enhanced_code, reply_text, category, hard, site, mx_host, remote_ip, source_ip, tls_version, duration_ms,
                        user_agent, client_ip, url, machine, sender, subject, tags)
                    SELECT \(nodeName), r.n, r.at, r.account, r.message, r.recipient, r.type, r.attempt, r.code, r.enhanced, r.reply,
                        r.category, r.hard, r.site, r.mx, r.remote, r.source, r.tls, r.ms, r.agent, r.client, r.url, r.machine,
                        r.sender, r.subject, coalesce(r.tags, '{}')
                    FROM jsonb_to_recordset(\(rows)::jsonb) AS r(n BIGINT, at DOUBLE PRECISION, account BIGINT, message TEXT,
                        recipient TEXT, type TEXT, attempt INTEGER, code INTEGER, enhanced TEXT, reply TEXT, category TEXT,
                        hard BOOLEAN, site TEXT, mx TEXT, remote TEXT, source TEXT, tls TEXT, ms INTEGER, agent TEXT, client TEXT,
                        url TEXT, machine BOOLEAN, sender TEXT, subject TEXT, tags TEXT[])
                    ORDER BY r.n
                    ON CONFLICT (node, node_event_id, day) DO NOTHING
                    """)
            }
            _ = try transaction.query("""
                INSERT INTO delivery_log_position (node, last_event) VALUES (\(nodeName), \(last))
                ON CONFLICT (node) DO UPDATE SET last_event = greatest(delivery_log_position.last_event, excluded.last_event)
                """)
        }
    }

    /// Today's and tomorrow's partitions by the database's clock, made by whichever node comes first.
    private func makePartitions(thisNodesDay: Int) throws {
        try pool.transaction { transaction in
            _ = try transaction.query("SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey + 3))")
            let read = try transaction.query("SELECT floor(extract(epoch FROM now()) / 86400)::bigint AS day").records.first?
                .decode("day", as: Int64.self)
            let day = read.flatMap { Int(exactly: $0) } ?? thisNodesDay
            for next in [day, day + 1] {
                _ = try transaction.query(PostgresQuery(unsafeSQL: """
                    CREATE TABLE IF NOT EXISTS \(PostgresStore.partitionName(day: next)) PARTITION OF delivery_event
                    FOR VALUES FROM (\(next)) TO (\(next + 1))
                    """))
            }
        }
        sharedLogDay.withLock { $0 = thisNodesDay }
    }

    static func partitionName(day: Int) -> String { "delivery_event_d\(day)" }

    public func messageEnvelope(_ id: MessageID, accountID: Int64) throws -> (sender: String?, tags: [String])? {
        guard let record = try pool.query("""
            SELECT sender, tags FROM delivery_event WHERE message_id = \(id.rawValue) AND account_id = \(accountID)
            ORDER BY (sender IS NULL), id LIMIT 1
            """).records.first else { return nil }
        return (try record.decode("sender"), try record.decode("tags"))
    }

    public func dropSharedLog(before cutoff: Date) throws -> Int {
        let cutoffDay = Int(exactly: (min(max(cutoff.timeIntervalSince1970, 0), 1e12) / 86400).rounded(.down)) ?? 0
        return try pool.transaction { transaction in
            _ = try transaction.query("SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey + 3))")
            // Dropping a partition locks the whole log: behind a long search it would make every copy and search
            // wait too. It gives up after 2 s instead, and retention tries again at its next turn.
            _ = try transaction.query("SET LOCAL lock_timeout = '2s'")
            let names = try transaction.query("""
                SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'delivery_event'::regclass
                """).records.map { try $0.decode("name", as: String.self) }
            var dropped = 0
            for name in names {
                // A day's partition holds rows copied that day: gone once the whole day is before the cutoff.
                guard name.hasPrefix("delivery_event_d"), let day = Int(name.dropFirst("delivery_event_d".count)),
                      day + 1 <= cutoffDay, name == PostgresStore.partitionName(day: day) else { continue }
                _ = try transaction.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(name)"))
                dropped += 1
            }
            return dropped
        }
    }

    public func eventPage(_ filter: DeliveryLogFilter) throws -> (events: [DeliveryEvent], next: DeliveryLogCursor?) {
        var conditions: [String] = []
        var bindings = PostgresBindings()
        func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
            bindings.append(value)
            return "$\(bindings.count)"
        }
        if let recipient = filter.recipient { conditions.append("lower(recipient) = lower(\(bind(recipient)))") }
        if let id = filter.messageID { conditions.append("message_id = \(bind(id.rawValue))") }
        if !filter.types.isEmpty { conditions.append("type = ANY(\(bind(filter.types.map(\.rawValue)))::text[])") }
        if let category = filter.category { conditions.append("category = \(bind(category))") }
        if let since = filter.since { conditions.append("at >= \(bind(since.timeIntervalSince1970))") }
        if let until = filter.until { conditions.append("at < \(bind(until.timeIntervalSince1970))") }
        if let account = filter.accountID { conditions.append("account_id = \(bind(account))") }
        if let tag = filter.tag { conditions.append("\(bind(tag)) = ANY(tags)") }
        if let sender = filter.sender { conditions.append("lower(sender) = lower(\(bind(sender)))") }
        if let subject = filter.subject { conditions.append("strpos(lower(subject), lower(\(bind(subject)))) > 0") }
        if let provider = filter.provider {
            // A site seen from one source address is named `gmail from 192.0.2.1`.
            let name = bind(provider)
            conditions.append("(site = \(name) OR starts_with(site, \(name) || ' from '))")
        }
        if let cursor = filter.before { conditions.append("(at, id) < (\(bind(cursor.at)), \(bind(cursor.id)))") }
        let condition = conditions.isEmpty ? "true" : conditions.joined(separator: " AND ")
        let limit = bind(filter.limit)
        let records = try pool.query(PostgresQuery(unsafeSQL: """
            SELECT id, at, message_id, recipient, type, attempt, reply_code, enhanced_code, reply_text, category, hard, site, mx_host,
                   remote_ip, source_ip, tls_version, duration_ms, user_agent, client_ip, url, machine
            FROM delivery_event WHERE \(condition) ORDER BY at DESC, id DESC LIMIT \(limit)
            """, binds: bindings)).records
        let next = try records.count == filter.limit ? records.last.map {
            DeliveryLogCursor(at: try $0.decode("at"), id: try $0.decode("id"))
        } : nil
        return (try records.compactMap(PostgresStore.event), next)
    }

    /// A row as an event; nil for a message id no node could have written.
    static func event(_ record: PostgresRecord) throws -> DeliveryEvent? {
        guard let message = MessageID(try record.decode("message_id", as: String.self)) else { return nil }
        var event = DeliveryEvent(
            at: Date(timeIntervalSince1970: try record.decode("at")), messageID: message,
            recipient: try record.decode("recipient"),
            type: DeliveryEvent.Kind(rawValue: try record.decode("type")) ?? .deferred,
            attempt: try record.decode("attempt", as: Int32?.self).map(Int.init),
            replyCode: try record.decode("reply_code", as: Int32?.self).map(Int.init), enhancedCode: try record.decode("enhanced_code"),
            replyText: try record.decode("reply_text"), category: try record.decode("category"), hard: try record.decode("hard"),
            site: try record.decode("site"), mxHost: try record.decode("mx_host"), remoteIP: try record.decode("remote_ip"),
            sourceIP: try record.decode("source_ip"), tlsVersion: try record.decode("tls_version"),
            durationMilliseconds: try record.decode("duration_ms", as: Int32?.self).map(Int.init),
            userAgent: try record.decode("user_agent"), clientIP: try record.decode("client_ip"), url: try record.decode("url"),
            machine: try record.decode("machine"))
        event.id = try record.decode("id")
        return event
    }
}

/// One event as the batch's JSON carries it into `jsonb_to_recordset`: short keys, NULs dropped
/// (PostgreSQL's text cannot hold U+0000), a time that JSON can write.
private struct SharedLogRow: Encodable {
    var n: Int64
    var at: Double
    var account: Int64?
    var message: String
    var recipient: String
    var type: String
    var attempt: Int?
    var code: Int?
    var enhanced: String?
    var reply: String?
    var category: String?
    var hard: Bool?
    var site: String?
    var mx: String?
    var remote: String?
    var source: String?
    var tls: String?
    var ms: Int?
    var agent: String?
    var client: String?
    var url: String?
    var machine: Bool?
    var sender: String?
    var subject: String?
    var tags: [String]

    /// The largest value an `INTEGER` column holds.
    static let int32Max = 2_147_483_647

    init(_ shared: SharedEvent) {
        let event = shared.event
        func clean(_ text: String?) -> String? { text.map { $0.contains("\u{0}") ? $0.replacingOccurrences(of: "\u{0}", with: "") : $0 } }
        n = event.id ?? 0
        let seconds = event.at.timeIntervalSince1970
        at = seconds.isFinite ? seconds : 0
        account = shared.accountID
        message = event.messageID.rawValue
        recipient = clean(event.recipient) ?? ""
        type = event.type.rawValue
        attempt = event.attempt.map { min(max($0, 0), SharedLogRow.int32Max) }
        code = event.replyCode.map { min(max($0, 0), SharedLogRow.int32Max) }
        enhanced = clean(event.enhancedCode)
        reply = clean(event.replyText)
        category = clean(event.category)
        hard = event.hard
        site = clean(event.site)
        mx = clean(event.mxHost)
        remote = clean(event.remoteIP)
        source = clean(event.sourceIP)
        tls = clean(event.tlsVersion)
        ms = event.durationMilliseconds.map { min(max($0, 0), SharedLogRow.int32Max) }
        agent = clean(event.userAgent)
        client = clean(event.clientIP)
        url = clean(event.url)
        machine = event.machine
        sender = clean(shared.sender)
        subject = clean(shared.subject)
        tags = shared.tags.compactMap { clean($0) }
    }
}

extension PostgresStoreError {
    /// SQLSTATE 23514 from the log's insert, which has no check of its own: a row no partition takes,
    /// the day's partition is not made yet. (The message is not read: it is in the server's language.)
    var isMissingPartition: Bool {
        guard case .server("23514", _, _) = self else { return false }
        return true
    }
}

/// Statistics over the shared log: every node's events, as the SQLite index counts its own.
extension PostgresStore {
    public func stats(accountID: Int64, since: Date, until: Date, interval: Int, groupBy: QueueIndex.StatsGrouping,
                      offset: Int) throws -> [DeliveryStats] {
        let group: String
        let join: String
        switch groupBy {
        case .none: (group, join) = ("NULL::text", "")
        case .tag: (group, join) = ("t.tag", "CROSS JOIN LATERAL unnest(e.tags) AS t(tag)")
        case .provider: (group, join) = ("e.site", "")
        }
        let step = Int64(truncatingIfNeeded: max(1, interval))
        let shift = Int64(truncatingIfNeeded: offset)
        let records = try pool.query(PostgresQuery(unsafeSQL: """
            SELECT (floor((e.at + $1) / $2)::bigint * $2 - $1) AS period, \(group) AS grp, e.type AS type, count(*) AS n
            FROM delivery_event e \(join)
            WHERE e.at >= $3 AND e.at < $4 AND e.account_id = $5
            GROUP BY period, grp, type ORDER BY period, grp
            """, binds: PostgresStore.binds(shift, step, since.timeIntervalSince1970, until.timeIntervalSince1970, accountID))).records
        var result: [DeliveryStats] = []
        for record in records {
            let period = Date(timeIntervalSince1970: Double(try record.decode("period", as: Int64.self)))
            let group: String? = groupBy == .none ? nil : (try record.decode("grp", as: String?.self) ?? "")
            if result.last?.period != period || result.last?.group != group {
                result.append(DeliveryStats(period: period, group: group, counts: [:]))
            }
            result[result.count - 1].counts[try record.decode("type")] = try record.decode("n", as: Int.self)
        }
        return result
    }

    public func bounceAnalysis(accountID: Int64, since: Date, until: Date, topPerCategory: Int, recipientLimit: Int) throws
        -> BounceAnalysis {
        let window = "type = 'bounced' AND at >= $1 AND at < $2 AND account_id = $3"
        let arguments = PostgresStore.binds(since.timeIntervalSince1970, until.timeIntervalSince1970, accountID)
        func counts(_ column: String) throws -> [BounceAnalysis.Count] {
            try pool.query(PostgresQuery(unsafeSQL: """
                SELECT coalesce(\(column), 'unknown') AS name, count(*) AS n, count(*) FILTER (WHERE hard) AS hard
                FROM delivery_event WHERE \(window) GROUP BY name ORDER BY n DESC, name
                """, binds: arguments)).records.map {
                BounceAnalysis.Count(name: try $0.decode("name"), bounces: try $0.decode("n", as: Int.self),
                                     hard: try $0.decode("hard", as: Int.self))
            }
        }
        let byCategory = try counts("category")
        // The recipient's address replaced, so that one server's reply counts as one text.
        let replies = try pool.query(PostgresQuery(unsafeSQL: """
            SELECT coalesce(category, 'unknown') AS category, replace(coalesce(reply_text, ''), recipient, '<recipient>') AS text,
                   count(*) AS n
            FROM delivery_event WHERE \(window) GROUP BY 1, 2 ORDER BY 1, n DESC, 2
            """, binds: arguments)).records
        var top: [BounceAnalysis.ReplyText] = []
        var perCategory: [String: Int] = [:]
        for record in replies {
            let category: String = try record.decode("category")
            guard perCategory[category, default: 0] < topPerCategory else { continue }
            perCategory[category, default: 0] += 1
            top.append(BounceAnalysis.ReplyText(category: category, text: try record.decode("text"),
                                                count: try record.decode("n", as: Int.self)))
        }
        let latest = try pool.query(PostgresQuery(unsafeSQL: """
            SELECT * FROM (
                SELECT DISTINCT ON (recipient) recipient, coalesce(category, 'unknown') AS category, at, message_id, reply_text
                FROM delivery_event WHERE \(window) ORDER BY recipient, at DESC
            ) latest ORDER BY at DESC LIMIT $4
            """, binds: arguments.appending(Int64(clamping: recipientLimit)))).records
        let recipients = try latest.compactMap { record -> BounceAnalysis.Recipient? in
            guard let message = MessageID(try record.decode("message_id", as: String.self)) else { return nil }
            return BounceAnalysis.Recipient(recipient: try record.decode("recipient"), category: try record.decode("category"),
                                            at: Date(timeIntervalSince1970: try record.decode("at")), messageID: message,
                                            replyText: try record.decode("reply_text"))
        }
        return BounceAnalysis(total: byCategory.reduce(0) { $0 + $1.bounces }, byCategory: byCategory, byProvider: try counts("site"),
                              topReplies: top, recipients: recipients)
    }

    public func engagementCounts(accountID: Int64, since: Date, until: Date) throws -> [String: [String: Int]] {
        var result: [String: [String: Int]] = [:]
        for record in try pool.query("""
            SELECT type, coalesce(machine, FALSE) AS machine, count(*) AS total,
                   count(DISTINCT message_id || ' ' || recipient) AS unique_count
            FROM delivery_event
            WHERE account_id = \(accountID) AND at >= \(since.timeIntervalSince1970) AND at < \(until.timeIntervalSince1970)
              AND type IN ('opened', 'clicked')
            GROUP BY type, coalesce(machine, FALSE)
            """).records {
            let type: String = try record.decode("type")
            let who = try record.decode("machine", as: Bool.self) ? "machine" : "human"
            result[type, default: [:]]["\(who)_total"] = try record.decode("total", as: Int.self)
            result[type, default: [:]]["\(who)_unique"] = try record.decode("unique_count", as: Int.self)
        }
        return result
    }
}
