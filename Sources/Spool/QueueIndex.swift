import Foundation
import GRDB

/// The queue index in SQLite (WAL): one row per message, one per recipient,
/// and per segment how far its records have been indexed.
///
/// Opened by the server and, concurrently, by the `hikyaku queue` commands;
/// SQLite's locking makes both safe. The index is not what makes a message
/// durable — its segment record is — so commits use `synchronous=NORMAL`:
/// they survive a crash of the process; after a crash of the machine, the
/// spool re-indexes every record past its segment's mark.
public struct QueueIndex: Sendable {
    let database: DatabasePool

    public init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        database = try DatabasePool(path: path, configuration: configuration)
        try QueueIndex.migrator.migrate(database)
        // The writer's statement journals in memory: inserting a message with its counting trigger opens
        // one, and on a file it cost a write system call per page (15 % of the CPU while a million-recipient
        // campaign was enqueued). Readers keep temporary files for their sorts, which may be large.
        // Its page cache is 32 MB rather than SQLite's 2 MB: a million messages' ids, tags and events are indexed
        // in several B-trees at once, and a smaller cache reads their pages back for every batch.
        try database.writeWithoutTransaction {
            try $0.execute(sql: "PRAGMA temp_store = MEMORY")
            try $0.execute(sql: "PRAGMA cache_size = -32768")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-queue") { db in
            try db.execute(sql: """
                CREATE TABLE message (
                    id TEXT PRIMARY KEY NOT NULL,
                    received_at REAL NOT NULL,
                    account_id INTEGER,
                    sender TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    segment INTEGER NOT NULL,
                    offset INTEGER NOT NULL,
                    length INTEGER NOT NULL,
                    smtputf8 INTEGER NOT NULL,
                    client_address TEXT NOT NULL,
                    helo TEXT NOT NULL,
                    held INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX message_segment ON message(segment);
                CREATE TABLE segment_mark (
                    segment INTEGER PRIMARY KEY NOT NULL,
                    indexed_end INTEGER NOT NULL
                );
                CREATE TABLE recipient (
                    message_id TEXT NOT NULL REFERENCES message(id) ON DELETE CASCADE,
                    position INTEGER NOT NULL,
                    address TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'queued',
                    attempts INTEGER NOT NULL DEFAULT 0,
                    last_reply TEXT,
                    updated_at REAL,
                    next_attempt_at REAL NOT NULL DEFAULT 0,
                    PRIMARY KEY (message_id, position)
                );
                CREATE INDEX recipient_due ON recipient(next_attempt_at) WHERE state IN ('queued', 'deferred');
                """)
        }
        migrator.registerMigration("v2-delivery-log") { db in
            // DeliveryLog.swift: one row per attempt and per state change.
            // No foreign key: the log outlives `queue delete` and retention
            // of message rows is decided separately.
            try db.execute(sql: """
                CREATE TABLE delivery_event (
                    id INTEGER PRIMARY KEY,
                    at REAL NOT NULL,
                    message_id TEXT NOT NULL,
                    recipient TEXT NOT NULL,
                    type TEXT NOT NULL,
                    attempt INTEGER,
                    reply_code INTEGER,
                    enhanced_code TEXT,
                    reply_text TEXT,
                    category TEXT,
                    hard INTEGER,
                    site TEXT,
                    mx_host TEXT,
                    remote_ip TEXT,
                    source_ip TEXT,
                    tls_version TEXT,
                    duration_ms INTEGER
                );
                CREATE INDEX delivery_event_at ON delivery_event(at);
                CREATE INDEX delivery_event_message ON delivery_event(message_id);
                CREATE INDEX delivery_event_recipient ON delivery_event(recipient, at);
                """)
        }
        migrator.registerMigration("v3-delay-notice") { db in
            // A recipient's sender has been told it is delayed (at most once).
            try db.execute(sql: "ALTER TABLE recipient ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v4-message-metadata") { db in
            // API metadata (MessageMetadata as JSON) and its tags, searchable.
            try db.execute(sql: """
                ALTER TABLE message ADD COLUMN metadata TEXT;
                CREATE TABLE message_tag (
                    message_id TEXT NOT NULL REFERENCES message(id) ON DELETE CASCADE,
                    tag TEXT NOT NULL,
                    PRIMARY KEY (tag, message_id)
                ) WITHOUT ROWID;
                CREATE INDEX message_tag_message ON message_tag(message_id);
                CREATE INDEX message_account ON message(account_id, received_at);
                """)
        }
        migrator.registerMigration("v5-event-outbox") { db in
            // The log becomes the webhooks' outbox (DeliveryLog): ids that are never
            // reused, the account on each row, opens and clicks, and acceptances
            // stored like every other event (they were read from the message rows).
            try db.execute(sql: """
                CREATE TABLE event_v5 (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at REAL NOT NULL,
                    account_id INTEGER,
                    message_id TEXT NOT NULL,
                    recipient TEXT NOT NULL,
                    type TEXT NOT NULL,
                    attempt INTEGER,
                    reply_code INTEGER,
                    enhanced_code TEXT,
                    reply_text TEXT,
                    category TEXT,
                    hard INTEGER,
                    site TEXT,
                    mx_host TEXT,
                    remote_ip TEXT,
                    source_ip TEXT,
                    tls_version TEXT,
                    duration_ms INTEGER,
                    user_agent TEXT,
                    client_ip TEXT,
                    url TEXT,
                    machine INTEGER
                );
                INSERT INTO event_v5 (at, account_id, message_id, recipient, type, attempt, reply_code, enhanced_code, reply_text,
                                      category, hard, site, mx_host, remote_ip, source_ip, tls_version, duration_ms)
                SELECT at, account_id, message_id, recipient, type, attempt, reply_code, enhanced_code, reply_text,
                       category, hard, site, mx_host, remote_ip, source_ip, tls_version, duration_ms FROM (
                    SELECT e.at, m.account_id, e.message_id, e.recipient, e.type, e.attempt, e.reply_code, e.enhanced_code,
                           e.reply_text, e.category, e.hard, e.site, e.mx_host, e.remote_ip, e.source_ip, e.tls_version,
                           e.duration_ms, 1 AS ord, e.id AS seq
                    FROM delivery_event e LEFT JOIN message m ON m.id = e.message_id
                    UNION ALL
                    SELECT m.received_at, m.account_id, m.id, r.address, 'accepted', NULL, 250, '2.0.0',
                           'from <' || m.sender || '> by ' || m.client_address || ' (' || m.helo || ')', NULL, NULL,
                           NULL, NULL, NULL, NULL, NULL, NULL, 0, r.position
                    FROM message m JOIN recipient r ON r.message_id = m.id
                ) ORDER BY at, ord, seq;
                DROP TABLE delivery_event;
                ALTER TABLE event_v5 RENAME TO delivery_event;
                CREATE INDEX delivery_event_at ON delivery_event(at);
                CREATE INDEX delivery_event_message ON delivery_event(message_id);
                CREATE INDEX delivery_event_recipient ON delivery_event(recipient, at);
                CREATE INDEX delivery_event_account ON delivery_event(account_id);
                """)
        }
        migrator.registerMigration("v6-log-search") { db in
            // Log search compares recipients without case: the index must too, or every search scans the log.
            // An account's events by time (and type, so that statistics read the index alone).
            try db.execute(sql: """
                DROP INDEX delivery_event_recipient;
                CREATE INDEX delivery_event_recipient ON delivery_event(recipient COLLATE NOCASE, at);
                DROP INDEX delivery_event_account;
                CREATE INDEX delivery_event_account ON delivery_event(account_id, at, type);
                """)
            // Counts per account, hour and type, kept by the database itself as events are written, so that
            // statistics over days read a few hundred rows instead of every event (the console's overview).
            try db.execute(sql: """
                CREATE TABLE event_hour (
                    account_id INTEGER NOT NULL,
                    hour INTEGER NOT NULL,
                    type TEXT NOT NULL,
                    n INTEGER NOT NULL,
                    PRIMARY KEY (account_id, hour, type)
                ) WITHOUT ROWID;
                INSERT INTO event_hour (account_id, hour, type, n)
                    SELECT account_id, CAST(at / 3600 AS INTEGER), type, COUNT(*) FROM delivery_event
                    WHERE account_id IS NOT NULL GROUP BY 1, 2, 3;
                CREATE TRIGGER delivery_event_counted AFTER INSERT ON delivery_event WHEN NEW.account_id IS NOT NULL BEGIN
                    INSERT INTO event_hour (account_id, hour, type, n) VALUES (NEW.account_id, CAST(NEW.at / 3600 AS INTEGER), NEW.type, 1)
                    ON CONFLICT (account_id, hour, type) DO UPDATE SET n = n + 1;
                END;
                """)
        }
        migrator.registerMigration("v7-sender-subject-search") { db in
            // Log search by envelope sender and by subject: the message row lives as long as the log keeps its events.
            try db.execute(sql: """
                ALTER TABLE message ADD COLUMN subject TEXT;
                CREATE INDEX message_sender ON message(sender COLLATE NOCASE);
                """)
        }
        migrator.registerMigration("v8-acceptances-counted-per-transaction") { db in
            // Acceptances arrive a thousand to a transaction (`insert`), which counts them per account and hour
            // itself: one upsert per transaction instead of one per recipient (a sixth of the index's work while
            // a campaign is enqueued). Every other event is still counted by the trigger, as it is written.
            try db.execute(sql: """
                DROP TRIGGER delivery_event_counted;
                CREATE TRIGGER delivery_event_counted AFTER INSERT ON delivery_event
                WHEN NEW.account_id IS NOT NULL AND NEW.type <> 'accepted' BEGIN
                    INSERT INTO event_hour (account_id, hour, type, n) VALUES (NEW.account_id, CAST(NEW.at / 3600 AS INTEGER), NEW.type, 1)
                    ON CONFLICT (account_id, hour, type) DO UPDATE SET n = n + 1;
                END;
                """)
        }
        return migrator
    }

    /// One message as indexed: its envelope and where its bytes are.
    struct Row {
        var record: SegmentRecord
        var segment: Int64
        /// Offset and length of the message bytes (the record's body).
        var offset: Int64
        var length: Int
        /// Known when the message comes from the intake; a record recovered from a segment has none.
        var subject: String?
        /// The metadata as JSON when already made (for the segment record); else made from `record`.
        var metadataJSON: [UInt8]?

        init(_ record: SegmentRecord, segment: Int64, offset: Int64, length: Int, subject: String? = nil, metadataJSON: [UInt8]? = nil) {
            self.record = record
            self.segment = segment
            self.offset = offset
            self.length = length
            self.subject = subject
            self.metadataJSON = metadataJSON
        }
    }

    /// Inserts rows and advances segment marks in one transaction: a record
    /// at or before its segment's mark is always in the index (or was
    /// deleted from it), one after the mark never is.
    func insert(_ rows: [Row], marks: [Int64: Int64]) throws {
        try database.write { db in
            let insertMessage = try db.cachedStatement(sql: """
                INSERT OR IGNORE INTO message (id, received_at, account_id, sender, size, segment, offset, length,
                                     smtputf8, client_address, helo, metadata, subject)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            // A message's recipients, acceptances and tags go a hundred rows to a statement (`BulkInsert`).
            var recipients = BulkInsert(db, "INSERT OR IGNORE INTO recipient (message_id, position, address, next_attempt_at)", columns: 4)
            var acceptedEvents = BulkInsert(db, """
                INSERT INTO delivery_event (at, account_id, message_id, recipient, reply_text, type, reply_code, enhanced_code)
                """, columns: 5, constants: "'accepted', 250, '2.0.0'")
            var tags = BulkInsert(db, "INSERT OR IGNORE INTO message_tag (message_id, tag)", columns: 2)
            // Acceptances per account and hour (`CAST(at / 3600 AS INTEGER)`, as the trigger counts the rest).
            var acceptances: [AcceptanceHour: Int] = [:]
            for row in rows {
                let record = row.record
                let metadata = (row.metadataJSON ?? record.metadata?.json).map { String(decoding: $0, as: UTF8.self) }
                try insertMessage.execute(bound: [
                    record.id.rawValue.databaseValue, record.receivedAt.timeIntervalSince1970.databaseValue, record.accountID.databaseValue,
                    record.sender.databaseValue, row.length.databaseValue, row.segment.databaseValue, row.offset.databaseValue,
                    row.length.databaseValue, record.smtpUTF8.databaseValue, record.clientAddress.databaseValue,
                    record.heloName.databaseValue, metadata.databaseValue, row.subject.databaseValue,
                ])
                // Indexed once: a record indexed again (after a crash) is ignored above and logs nothing here.
                guard db.changesCount > 0 else { continue }
                // A scheduled send is simply not due before its time.
                let due = (record.metadata?.notBefore?.timeIntervalSince1970 ?? 0).databaseValue
                let id = record.id.rawValue.databaseValue, at = record.receivedAt.timeIntervalSince1970.databaseValue
                let account = record.accountID.databaseValue
                let accepted = "from <\(record.sender)> by \(record.clientAddress) (\(record.heloName))".databaseValue
                for (position, address) in record.recipients.enumerated() {
                    try recipients.append([id, position.databaseValue, address.databaseValue, due])
                    try acceptedEvents.append([at, account, id, address.databaseValue, accepted])
                }
                if let account = record.accountID, let hour = AcceptanceHour(account: account, at: record.receivedAt) {
                    acceptances[hour, default: 0] += record.recipients.count
                }
                for tag in Set(record.metadata?.tags ?? []) {
                    try tags.append([id, tag.databaseValue])
                }
            }
            try recipients.finish()
            try acceptedEvents.finish()
            try tags.finish()
            for (hour, count) in acceptances {
                try db.execute(sql: """
                    INSERT INTO event_hour (account_id, hour, type, n) VALUES (?, ?, 'accepted', ?)
                    ON CONFLICT (account_id, hour, type) DO UPDATE SET n = n + excluded.n
                    """, arguments: [hour.account, hour.hour, count])
            }
            for (segment, end) in marks {
                // Marks only move forward, whoever indexes (the server or a CLI catching up).
                try db.execute(sql: """
                    INSERT INTO segment_mark (segment, indexed_end) VALUES (?, ?)
                    ON CONFLICT(segment) DO UPDATE SET indexed_end = MAX(indexed_end, excluded.indexed_end)
                    """, arguments: [segment, end])
            }
        }
    }

    /// Rows of one table inserted `rowsPerStatement` to a statement: preparing, binding and ending a
    /// statement cost about as much as inserting a small row, and the index writes three or four such rows
    /// per message (a third less work for the index of a campaign's mail).
    struct BulkInsert {
        static let rowsPerStatement = 100

        let db: Database
        /// `INSERT … (columns)`, the first `columns` of them bound, the rest `constants` (SQL literals).
        let head: String
        let columns: Int
        /// One row's `(?, …, constants)`.
        let tuple: String
        /// The statement for a full `rowsPerStatement` rows, made once.
        let full: String
        private var values: [DatabaseValue] = []

        init(_ db: Database, _ head: String, columns: Int, constants: String? = nil) {
            self.db = db
            self.head = head
            self.columns = columns
            tuple = "(" + (Array(repeating: "?", count: columns) + (constants.map { [$0] } ?? [])).joined(separator: ", ") + ")"
            full = BulkInsert.sql(head, tuple, rows: BulkInsert.rowsPerStatement)
            values.reserveCapacity(BulkInsert.rowsPerStatement * columns)
        }

        static func sql(_ head: String, _ tuple: String, rows: Int) -> String {
            head + " VALUES " + Array(repeating: tuple, count: rows).joined(separator: ", ")
        }

        /// One row's `columns` values; written once a statement's worth has come.
        mutating func append(_ row: [DatabaseValue]) throws {
            values.append(contentsOf: row)
            if values.count >= BulkInsert.rowsPerStatement * columns { try write(cached: true) }
        }

        /// Writes what is left.
        mutating func finish() throws {
            if !values.isEmpty { try write(cached: false) }
        }

        private mutating func write(cached: Bool) throws {
            // A full statement is the same each time; what is left at the end has any length, and is not kept.
            let statement = cached ? try db.cachedStatement(sql: full)
                : try db.makeStatement(sql: BulkInsert.sql(head, tuple, rows: values.count / columns))
            try statement.execute(bound: values)
            values.removeAll(keepingCapacity: true)
        }
    }

    /// An account's hour in `event_hour`: seconds since 1970 / 3600, truncated as SQLite's `CAST(… AS INTEGER)` does.
    struct AcceptanceHour: Hashable {
        var account: Int64
        var hour: Int64

        init?(account: Int64, at date: Date) {
            guard let hour = Int64(exactly: (date.timeIntervalSince1970 / 3600).rounded(.towardZero)) else { return nil }
            self.account = account
            self.hour = hour
        }
    }

    /// How far each segment's records are in the index.
    func segmentMarks() throws -> [Int64: Int64] {
        try database.read { db in
            var result: [Int64: Int64] = [:]
            for row in try GRDB.Row.fetchAll(db, sql: "SELECT segment, indexed_end FROM segment_mark") {
                result[row["segment"]] = row["indexed_end"]
            }
            return result
        }
    }

    /// The messages on record whose bytes are in `segment`, in order.
    func messages(inSegment segment: Int64) throws -> [(id: MessageID, offset: Int64, length: Int)] {
        try database.read { db in
            try GRDB.Row.fetchAll(db, sql: "SELECT id, offset, length FROM message WHERE segment = ? ORDER BY offset", arguments: [segment])
                .map { (MessageID(unchecked: $0["id"]), $0["offset"], $0["length"]) }
        }
    }

    func forgetSegment(_ segment: Int64) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM segment_mark WHERE segment = ?", arguments: [segment])
        }
    }

    // MARK: Queue inspection and control

    /// Messages still in the queue (with a recipient not yet final), or
    /// with `includeFinished` every message still on record.
    public func summaries(limit: Int = 1000, includeFinished: Bool = false) throws -> [QueuedMessageSummary] {
        try database.read { db in
            let rows = try GRDB.Row.fetchAll(db, sql: """
                SELECT m.id, m.received_at, m.sender, m.size, m.held, m.account_id,
                       COUNT(r.position) AS recipients,
                       SUM(CASE WHEN r.state IN ('queued', 'deferred') THEN 1 ELSE 0 END) AS pending
                FROM message m LEFT JOIN recipient r ON r.message_id = m.id
                GROUP BY m.id HAVING pending > 0 OR ? ORDER BY m.id LIMIT ?
                """, arguments: [includeFinished, limit])
            return rows.map { row in
                QueuedMessageSummary(
                    id: MessageID(unchecked: row["id"]),
                    receivedAt: Date(timeIntervalSince1970: row["received_at"]),
                    sender: row["sender"], size: row["size"], held: row["held"],
                    accountID: row["account_id"], recipientCount: row["recipients"], pendingCount: row["pending"] ?? 0)
            }
        }
    }

    /// Recipients not yet final, by state, and the messages they belong to
    /// (held ones apart), for metrics.
    public func pendingCounts() throws -> PendingCounts {
        try database.read { db in
            let row = try GRDB.Row.fetchOne(db, sql: """
                SELECT SUM(r.state = 'queued' AND m.held = 0) AS queued, SUM(r.state = 'deferred' AND m.held = 0) AS deferred,
                       SUM(m.held) AS held, COUNT(DISTINCT r.message_id) AS messages
                FROM recipient r JOIN message m ON m.id = r.message_id
                WHERE r.state IN ('queued', 'deferred')
                """)
            return PendingCounts(queued: row?["queued"] ?? 0, deferred: row?["deferred"] ?? 0, held: row?["held"] ?? 0,
                                 messages: row?["messages"] ?? 0)
        }
    }

    public func count() throws -> Int {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM message") ?? 0 }
    }

    public func details(of id: MessageID) throws -> QueuedMessageDetails? {
        try database.read { db in try QueueIndex.details(of: id, db) }
    }

    static func details(of id: MessageID, _ db: Database) throws -> QueuedMessageDetails? {
        // Cached statements: this runs for every delivery attempt.
        let message = try db.cachedStatement(sql: "SELECT * FROM message WHERE id = ?")
        guard let row = try GRDB.Row.fetchOne(message, arguments: [id.rawValue]) else { return nil }
        let recipientRows = try db.cachedStatement(sql:
            "SELECT address, state, attempts, last_reply, delay_notified FROM recipient WHERE message_id = ? ORDER BY position")
        let recipients = try GRDB.Row.fetchAll(recipientRows, arguments: [id.rawValue])
        let metadata = (row["metadata"] as String?).flatMap { try? JSONDecoder().decode(MessageMetadata.self, from: Data($0.utf8)) }
        return QueuedMessageDetails(
            id: id,
            receivedAt: Date(timeIntervalSince1970: row["received_at"]),
            accountID: row["account_id"], sender: row["sender"], size: row["size"],
            smtpUTF8: row["smtputf8"], clientAddress: row["client_address"], heloName: row["helo"],
            held: row["held"], segment: row["segment"], offset: row["offset"], length: row["length"],
            recipients: recipients.map {
                QueuedRecipient(address: $0["address"], state: $0["state"], attempts: $0["attempts"], lastReply: $0["last_reply"],
                                delayNotified: $0["delay_notified"])
            }, metadata: metadata)
    }

    /// Cancels every recipient of a message not yet in a final state
    /// (`hikyaku queue delete`), each with a `cancelled` event; the bytes are
    /// reclaimed once its segment has no other live message. Returns how
    /// many recipients were cancelled, nil when there is no such message.
    @discardableResult
    public func cancel(_ id: MessageID, reason: String = "deleted by the operator") throws -> Int? {
        try database.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM message WHERE id = ?", arguments: [id.rawValue]) != nil else { return nil }
            return try QueueIndex.cancel(db, where: "message_id = ?", arguments: [id.rawValue], reason: reason)
        }
    }

    /// Cancels every pending recipient of every message (Postfix's
    /// `postsuper -d ALL`); returns how many messages were affected.
    @discardableResult
    public func cancelAll(reason: String = "deleted by the operator") throws -> Int {
        try database.write { db in
            let messages = try Int.fetchOne(db, sql:
                "SELECT COUNT(DISTINCT message_id) FROM recipient WHERE state IN ('queued', 'deferred')") ?? 0
            try QueueIndex.cancel(db, where: "1", arguments: [], reason: reason)
            return messages
        }
    }

    @discardableResult
    static func cancel(_ db: Database, where condition: String, arguments: StatementArguments, reason: String) throws -> Int {
        let now = Date()
        let pending = try GRDB.Row.fetchAll(db, sql: """
            SELECT message_id, address FROM recipient WHERE state IN ('queued', 'deferred') AND \(condition)
            """, arguments: arguments)
        for row in pending {
            try DeliveryLog.insert(DeliveryEvent(at: now, messageID: MessageID(unchecked: row["message_id"]),
                                                 recipient: row["address"], type: .cancelled, replyText: reason), db)
        }
        try db.execute(sql: """
            UPDATE recipient SET state = 'cancelled', last_reply = ?, updated_at = ?
            WHERE state IN ('queued', 'deferred') AND \(condition)
            """, arguments: [reason, now.timeIntervalSince1970] + arguments)
        return pending.count
    }

    /// Records the outcome of a delivery attempt for one recipient and its
    /// event in the delivery log, in one transaction; a deferred recipient
    /// is due again at `nextAttempt`.
    public func recordAttempt(_ id: MessageID, recipient: String, state: RecipientState, reply: String,
                              nextAttempt: Date? = nil, event: DeliveryEvent? = nil) throws {
        try recordAttempts([AttemptRecord(message: id, recipient: recipient, state: state, reply: reply,
                                          nextAttempt: nextAttempt, event: event)])
    }

    /// Records many outcomes (of concurrent deliveries) in one transaction.
    public func recordAttempts(_ records: [AttemptRecord]) throws {
        try database.write { db in
            let update = try db.cachedStatement(sql: """
                UPDATE recipient SET state = ?, attempts = attempts + ?, last_reply = ?, updated_at = ?,
                                     next_attempt_at = COALESCE(?, next_attempt_at), delay_notified = MAX(delay_notified, ?)
                WHERE message_id = ? AND address = ?
                """)
            let now = Date().timeIntervalSince1970
            for record in records {
                // The first "delayed" notice of a recipient is an event of its own.
                let firstDelayNotice = try record.delayNotified && Bool.fetchOne(db, sql: """
                    SELECT delay_notified = 0 FROM recipient WHERE message_id = ? AND address = ?
                    """, arguments: [record.message.rawValue, record.recipient]) == true
                try update.execute(arguments: [record.state.rawValue, record.countsAsAttempt ? 1 : 0, record.reply, now, record.nextAttempt?.timeIntervalSince1970,
                                               record.delayNotified, record.message.rawValue, record.recipient])
                if let event = record.event { try DeliveryLog.insert(event, db) }
                if firstDelayNotice {
                    try DeliveryLog.insert(DeliveryEvent(at: Date(timeIntervalSince1970: now), messageID: record.message,
                                                         recipient: record.recipient, type: .delayed,
                                                         replyText: "the sender was told that delivery is delayed; last reply: \(record.reply)",
                                                         category: record.event?.category), db)
                }
            }
        }
    }

    /// Recipients a remote server accepted just before a crash, from the
    /// `AcceptanceLog`: delivered, unless the index already has a final state
    /// for them (then the delivery log got there first). Returns how many changed.
    @discardableResult
    public func recordAcceptedBeforeRestart(_ entries: [(message: MessageID, recipients: [String])], at date: Date = Date()) throws -> Int {
        try database.write { db in
            var changed = 0
            let reply = "250 accepted by the remote server (recorded as it arrived; the attempt's details were lost in a restart)"
            for (message, recipients) in entries {
                for recipient in recipients {
                    try db.execute(sql: """
                        UPDATE recipient SET state = 'delivered', attempts = attempts + 1, last_reply = ?, updated_at = ?
                        WHERE message_id = ? AND address = ? AND state IN ('queued', 'deferred')
                        """, arguments: [reply, date.timeIntervalSince1970, message.rawValue, recipient])
                    guard db.changesCount > 0 else { continue }
                    changed += 1
                    try DeliveryLog.insert(DeliveryEvent(at: date, messageID: message, recipient: recipient, type: .delivered,
                                                         replyCode: 250, replyText: reply), db)
                }
            }
            return changed
        }
    }

    /// Puts recipients back without an attempt (a site's connection or rate
    /// limit was reached): due again at `until`, attempts unchanged.
    public func postpone(_ id: MessageID, recipients: [String], until: Date) throws {
        try database.write { db in
            for recipient in recipients {
                try db.execute(sql: """
                    UPDATE recipient SET next_attempt_at = ?
                    WHERE message_id = ? AND address = ? AND state IN ('queued', 'deferred')
                    """, arguments: [until.timeIntervalSince1970, id.rawValue, recipient])
            }
        }
    }

    /// Messages with a recipient due for an attempt at `now`, oldest due
    /// first. Walks the partial index `recipient_due` in order, so the cost
    /// grows with `limit`, not with the size of the queue.
    public func dueMessages(now: Date, limit: Int) throws -> [MessageID] {
        try database.read { db in try QueueIndex.dueMessages(now: now, limit: limit, excluding: [], db) }
    }

    /// The same, with each message's row, in one read.
    public func dueMessageDetails(now: Date, limit: Int, excluding: Set<MessageID>) throws -> [QueuedMessageDetails] {
        try database.read { db in
            try QueueIndex.dueMessages(now: now, limit: limit, excluding: excluding, db).compactMap { try QueueIndex.details(of: $0, db) }
        }
    }

    static func dueMessages(now: Date, limit: Int, excluding: Set<MessageID>, _ db: Database) throws -> [MessageID] {
        let statement = try db.cachedStatement(sql: """
            SELECT r.message_id FROM recipient r JOIN message m ON m.id = r.message_id
            WHERE r.state IN ('queued', 'deferred') AND r.next_attempt_at <= ? AND m.held = 0
            ORDER BY r.next_attempt_at LIMIT ?
            """)
        var seen = Set<String>()
        var result: [MessageID] = []
        // A message with several due recipients appears once per recipient;
        // messages being delivered are still due until their outcome is in.
        let rows = try String.fetchAll(statement, arguments: [now.timeIntervalSince1970, (limit + excluding.count) * 2])
        for id in rows where seen.insert(id).inserted {
            let messageID = MessageID(unchecked: id)
            guard !excluding.contains(messageID) else { continue }
            result.append(messageID)
            if result.count == limit { break }
        }
        return result
    }

    /// Makes every deferred recipient due now (`hikyaku queue retry`); returns how many.
    @discardableResult
    public func retryDeferredNow() throws -> Int {
        try database.write { db in
            try db.execute(sql: "UPDATE recipient SET next_attempt_at = 0 WHERE state = 'deferred'")
            return db.changesCount
        }
    }

    /// Holds or releases a message; a held message is never scheduled for delivery.
    @discardableResult
    public func setHeld(_ id: MessageID, _ held: Bool) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE message SET held = ? WHERE id = ?", arguments: [held, id.rawValue])
            return db.changesCount > 0
        }
    }

    /// Segments holding a message that still has a recipient to deliver to.
    /// A message whose recipients are all final keeps its index rows (the
    /// record of what happened) but no longer needs its bytes.
    func liveSegments() throws -> Set<Int64> {
        try database.read { db in
            Set(try Int64.fetchAll(db, sql: """
                SELECT DISTINCT m.segment FROM message m
                WHERE EXISTS (SELECT 1 FROM recipient r WHERE r.message_id = m.id AND r.state IN ('queued', 'deferred'))
                """))
        }
    }
}

public struct QueuedMessageSummary: Sendable, Codable, Equatable {
    public var id: MessageID
    public var receivedAt: Date
    public var sender: String
    public var size: Int
    public var held: Bool
    public var accountID: Int64?
    public var recipientCount: Int
    public var pendingCount: Int
}

public struct QueuedRecipient: Sendable, Codable, Equatable {
    public var address: String
    public var state: String
    public var attempts: Int = 0
    public var lastReply: String?
    /// The sender has had the "delayed" DSN for this recipient.
    public var delayNotified = false
}

public struct PendingCounts: Sendable, Equatable {
    public var queued: Int
    public var deferred: Int
    public var held: Int
    public var messages: Int
}

/// One delivery outcome to record (`QueueIndex.recordAttempts`).
public struct AttemptRecord: Sendable {
    public var message: MessageID
    public var recipient: String
    public var state: RecipientState
    public var reply: String
    public var nextAttempt: Date?
    public var event: DeliveryEvent?
    /// The sender is being told that this recipient is delayed.
    public var delayNotified = false
    /// False for outcomes reached without contacting anyone (a suppression).
    public var countsAsAttempt = true

    public init(message: MessageID, recipient: String, state: RecipientState, reply: String, nextAttempt: Date? = nil,
                event: DeliveryEvent? = nil) {
        self.message = message
        self.recipient = recipient
        self.state = state
        self.reply = reply
        self.nextAttempt = nextAttempt
        self.event = event
    }
}

/// Where a recipient stands (DESIGN.md invariant 4: every recipient ends in
/// exactly one final state).
public enum RecipientState: String, Sendable, Codable {
    /// `suppressed`: dropped unsent, the address being on the account's suppression list.
    case queued, deferred, delivered, bounced, expired, cancelled, suppressed

    public var isFinal: Bool { self != .queued && self != .deferred }
}

public struct QueuedMessageDetails: Sendable, Codable, Equatable {
    public var id: MessageID
    public var receivedAt: Date
    public var accountID: Int64?
    public var sender: String
    public var size: Int
    public var smtpUTF8: Bool
    public var clientAddress: String
    public var heloName: String
    public var held: Bool
    public var segment: Int64
    public var offset: Int64
    public var length: Int
    public var recipients: [QueuedRecipient]
    public var metadata: MessageMetadata? = nil
}
