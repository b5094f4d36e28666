import Foundation
import PostgresNIO

extension PostgresStore: ContactBook {
    public func contactFields(accountID: Int64) throws -> [ContactField] {
        try pool.query("""
            SELECT name, kind, slot FROM contact_field WHERE account_id = \(accountID) ORDER BY created_at, name
            """).records.compactMap { record -> ContactField? in
            guard let kind = ContactField.Kind(rawValue: try record.decode("kind")) else { return nil }
            return ContactField(name: try record.decode("name"), kind: kind, slot: try record.decode("slot"))
        }
    }

    public func addContactField(_ field: ContactField, accountID: Int64) throws {
        guard ContactField.isValidName(field.name) else { throw ContactError.invalidFieldName(field.name) }
        try pool.transaction { transaction in
            // The account's row, locked, serialises the choice of a free slot with another node's.
            _ = try transaction.query("SELECT id FROM account WHERE id = \(accountID) FOR UPDATE")
            let existing = try transaction.query("SELECT name, slot FROM contact_field WHERE account_id = \(accountID)").records
            guard existing.count < ContactField.maximumPerAccount else { throw ContactError.tooManyFields }
            guard try !existing.contains(where: { try $0.decode("name", as: String.self) == field.name }) else {
                throw ContactError.fieldExists(field.name)
            }
            let used = Set(try existing.map { try $0.decode("slot", as: Int.self) })
            guard let slot = (1...ContactField.maximumPerAccount).first(where: { !used.contains($0) }) else { throw ContactError.tooManyFields }
            _ = try transaction.query("""
                INSERT INTO contact_field (account_id, name, kind, slot, created_at)
                VALUES (\(accountID), \(field.name), \(field.kind.rawValue), \(slot), now())
                """)
        }
    }

    public func deleteContactField(named name: String, accountID: Int64) throws {
        try pool.transaction { transaction in
            guard let slot: Int = try transaction.query("""
                DELETE FROM contact_field WHERE account_id = \(accountID) AND name = \(name) RETURNING slot
                """).records.first?.decode("slot"),
                (1...ContactField.maximumPerAccount).contains(slot) else { throw ContactError.unknownField(name) }
            // The slot is free for another field: its values go with this one. (The slot is the store's number.)
            // A million contacts' values are one long statement, by design.
            _ = try transaction.query("SET LOCAL statement_timeout = 0")
            _ = try transaction.queryWithoutDeadline(PostgresQuery(unsafeSQL: """
                UPDATE contact SET t\(slot) = NULL, n\(slot) = NULL WHERE account_id = $1 AND (t\(slot) IS NOT NULL OR n\(slot) IS NOT NULL)
                """, binds: PostgresStore.binds(accountID)))
        }
    }

    @discardableResult
    public func upsertContact(address: String, fields: [String: ContactValue], accountID: Int64) throws -> Contact {
        let known = Dictionary(try contactFields(accountID: accountID).map { ($0.name, $0) }) { first, _ in first }
        var binds = PostgresStore.binds(accountID, address.lowercased(), Date().timeIntervalSince1970)
        var columns: [String] = []
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
            guard let field = known[name], (1...ContactField.maximumPerAccount).contains(field.slot) else {
                throw ContactError.unknownField(name)
            }
            guard value.matches(field.kind) else { throw ContactError.invalidValue(field: name, kind: field.kind) }
            switch value.postgresColumnValue {
            case .text(let text):
                columns.append("t\(field.slot)")
                binds.append(text)
            case .number(let number):
                columns.append("n\(field.slot)")
                binds.append(number)
            }
        }
        let names = (["account_id", "address", "created_at", "updated_at"] + columns).joined(separator: ", ")
        let values = (["$1", "$2", "$3", "$3"] + columns.indices.map { "$\($0 + 4)" }).joined(separator: ", ")
        let updates = (["updated_at = excluded.updated_at"] + columns.map { "\($0) = excluded.\($0)" }).joined(separator: ", ")
        _ = try pool.query(PostgresQuery(unsafeSQL: """
            INSERT INTO contact (\(names)) VALUES (\(values)) ON CONFLICT (account_id, address) DO UPDATE SET \(updates)
            """, binds: binds))
        guard let contact = try contact(address: address, accountID: accountID) else { throw ContactError.notFound("contact \(address)") }
        return contact
    }

    public func contact(address: String, accountID: Int64) throws -> Contact? {
        guard let record = try pool.query("""
            SELECT * FROM contact WHERE account_id = \(accountID) AND address = \(address.lowercased())
            """).records.first else { return nil }
        var contact = try PostgresStore.contact(record, fields: try contactFields(accountID: accountID))
        contact.lists = try pool.query("""
            SELECT list_id FROM contact_list_member WHERE contact_id = \(contact.id) ORDER BY list_id
            """).records.map { try $0.decode("list_id") }
        return contact
    }

    public func deleteContact(address: String, accountID: Int64) throws -> Bool {
        try pool.query("DELETE FROM contact WHERE account_id = \(accountID) AND address = \(address.lowercased())").changes > 0
    }

    public func contacts(accountID: Int64, after id: Int64, limit: Int) throws -> [Contact] {
        let fields = try contactFields(accountID: accountID)
        return try pool.query("""
            SELECT * FROM contact WHERE account_id = \(accountID) AND id > \(id) ORDER BY id LIMIT \(max(0, limit))
            """).records.map { try PostgresStore.contact($0, fields: fields) }
    }

    public func contactCount(accountID: Int64) throws -> Int {
        try pool.query("SELECT count(*)::bigint AS contacts FROM contact WHERE account_id = \(accountID)").records.first?.decode("contacts") ?? 0
    }

    public func timeZone(accountID: Int64) throws -> TimeZone {
        let name: String? = try pool.query("SELECT time_zone FROM account WHERE id = \(accountID)").records.first?.decode("time_zone")
        return name.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC") ?? .current
    }

    public func createContactList(name: String, accountID: Int64) throws -> ContactList {
        try pool.transaction { transaction in
            _ = try transaction.query("SELECT id FROM account WHERE id = \(accountID) FOR UPDATE")
            let count: Int = try transaction.query("""
                SELECT count(*)::bigint AS lists FROM contact_list WHERE account_id = \(accountID)
                """).records.first?.decode("lists") ?? 0
            guard count < ContactList.maximumPerAccount else { throw ContactError.notFound("room for another list (at most 1000)") }
            guard let id: Int64 = try transaction.query("""
                INSERT INTO contact_list (account_id, name, created_at) VALUES (\(accountID), \(name), now()) RETURNING id
                """).records.first?.decode("id") else { throw PostgresStoreError.missingColumn("id") }
            return ContactList(id: id, name: name, members: 0)
        }
    }

    public func contactLists(accountID: Int64) throws -> [ContactList] {
        try pool.query("""
            SELECT l.id, l.name, (SELECT count(*) FROM contact_list_member m WHERE m.list_id = l.id)::bigint AS members
            FROM contact_list l WHERE l.account_id = \(accountID) ORDER BY l.id
            """).records.map { ContactList(id: try $0.decode("id"), name: try $0.decode("name"), members: try $0.decode("members")) }
    }

    public func deleteContactList(id: Int64, accountID: Int64) throws {
        if try pool.query("DELETE FROM contact_list WHERE id = \(id) AND account_id = \(accountID)").changes == 0 {
            throw ContactError.notFound("list \(id)")
        }
    }

    public func changeListMembers(listID: Int64, addresses: [String], remove: Bool, accountID: Int64) throws -> Int {
        try pool.transaction { transaction in
            guard try !transaction.query("""
                SELECT 1 FROM contact_list WHERE id = \(listID) AND account_id = \(accountID)
                """).rows.isEmpty else { throw ContactError.notFound("list \(listID)") }
            let lowered = Array(Set(addresses.map { $0.lowercased() }))
            var found = 0
            for start in stride(from: 0, to: lowered.count, by: 1000) {
                let chunk = Array(lowered[start..<min(start + 1000, lowered.count)])
                let ids: [Int64] = try transaction.query("""
                    SELECT id FROM contact WHERE account_id = \(accountID) AND address = ANY(\(chunk)::text[])
                    """).records.map { try $0.decode("id") }
                found += ids.count
                if remove {
                    _ = try transaction.query("DELETE FROM contact_list_member WHERE list_id = \(listID) AND contact_id = ANY(\(ids))")
                } else {
                    _ = try transaction.query("""
                        INSERT INTO contact_list_member (list_id, contact_id) SELECT \(listID), unnest(\(ids)::bigint[]) ON CONFLICT DO NOTHING
                        """)
                }
            }
            return found
        }
    }

    /// A row's contact: the values of the account's fields, from their slots' columns.
    static func contact(_ record: PostgresRecord, fields: [ContactField]) throws -> Contact {
        var values: [String: ContactValue] = [:]
        for field in fields where (1...ContactField.maximumPerAccount).contains(field.slot) {
            let stored: ContactValue.PostgresColumnValue?
            if field.kind == .text {
                stored = try record.decode("t\(field.slot)", as: String?.self).map { .text($0) }
            } else {
                stored = try record.decode("n\(field.slot)", as: Double?.self).map { .number($0) }
            }
            if let value = stored.flatMap({ ContactValue.fromPostgres($0, as: field.kind) }) { values[field.name] = value }
        }
        let date = { (name: String) throws -> Date? in try record.decode(name, as: Double?.self).map(Date.init(timeIntervalSince1970:)) }
        return Contact(id: try record.decode("id"), address: try record.decode("address"), fields: values,
                       createdAt: try date("created_at") ?? Date(timeIntervalSince1970: 0),
                       updatedAt: try date("updated_at") ?? Date(timeIntervalSince1970: 0), lastDeliveredAt: try date("last_delivered_at"),
                       lastOpenedAt: try date("last_opened_at"), lastClickedAt: try date("last_clicked_at"),
                       lastBouncedAt: try date("last_bounced_at"), lists: [])
    }

    /// Values bound in order, for statements whose SQL is built (`$1`, `$2`…).
    static func binds(_ values: any PostgresDynamicTypeEncodable...) -> PostgresBindings {
        var bindings = PostgresBindings()
        for value in values { bindings.append(value) }
        return bindings
    }
}

extension ContactValue {
    /// Which of a slot's two PostgreSQL columns holds a value, and as what.
    enum PostgresColumnValue {
        case text(String)
        case number(Double)
    }

    /// Text in the text column; numbers, dates (YYYYMMDD) and booleans (0 or 1) in the number column.
    var postgresColumnValue: PostgresColumnValue {
        switch self {
        // PostgreSQL's text holds no NUL (U+0000), which SQLite keeps: it is dropped rather than fail the statement.
        case .text(let text): return .text(text.contains("\u{0}") ? text.replacingOccurrences(of: "\u{0}", with: "") : text)
        case .number(let value): return .number(value)
        case .date(let text): return .number(Double(CalendarDate(parsing: text)?.number ?? 0))
        case .boolean(let value): return .number(value ? 1 : 0)
        }
    }

    /// A column's value read back as `kind`; nil when it holds something else.
    static func fromPostgres(_ stored: PostgresColumnValue, as kind: ContactField.Kind) -> ContactValue? {
        switch (kind, stored) {
        case (.text, .text(let text)): return .text(text)
        case (.number, .number(let number)): return .number(number)
        case (.date, .number(let number)): return Int64(exactly: number).flatMap(CalendarDate.init(number:)).map { .date($0.text) }
        case (.boolean, .number(let number)): return .boolean(number != 0)
        default: return nil
        }
    }
}

extension PostgresStore: SegmentStore {
    public func segmentQuery(_ expression: SegmentExpression, accountID: Int64, now: Date) throws -> SegmentQuery {
        try SegmentQuery(expression, fields: try contactFields(accountID: accountID), accountID: accountID, now: now,
                         timeZone: try timeZone(accountID: accountID), dialect: .postgres)
    }

    public func segmentCount(_ query: SegmentQuery, accountID: Int64, sendable: Bool) throws -> Int {
        let (binds, next) = try PostgresStore.binds(query)
        let suppressed = sendable ? " AND NOT \(PostgresStore.suppressedForMarketing)" : ""
        return try pool.query(PostgresQuery(unsafeSQL: """
            SELECT count(*)::bigint AS contacts FROM contact c WHERE c.account_id = $\(next) AND \(query.condition)\(suppressed)
            """, binds: binds.appending(accountID))).records.first?.decode("contacts") ?? 0
    }

    public func segmentCounts(_ query: SegmentQuery, accountID: Int64) throws -> (all: Int, sendable: Int) {
        let (binds, next) = try PostgresStore.binds(query)
        guard let record = try pool.query(PostgresQuery(unsafeSQL: """
            SELECT count(*)::bigint AS all_count, count(*) FILTER (WHERE NOT \(PostgresStore.suppressedForMarketing))::bigint AS sendable
            FROM contact c WHERE c.account_id = $\(next) AND \(query.condition)
            """, binds: binds.appending(accountID))).records.first else { return (0, 0) }
        return (try record.decode("all_count"), try record.decode("sendable"))
    }

    public func segmentContacts(_ query: SegmentQuery, accountID: Int64, after afterID: Int64, limit: Int) throws -> [Contact] {
        let fields = try contactFields(accountID: accountID)
        let (binds, next) = try PostgresStore.binds(query)
        return try pool.query(PostgresQuery(unsafeSQL: """
            SELECT c.* FROM contact c WHERE c.account_id = $\(next) AND c.id > $\(next + 1) AND \(query.condition)
            ORDER BY c.id LIMIT $\(next + 2)
            """, binds: binds.appending(accountID).appending(afterID).appending(max(0, limit)))).records
            .map { try PostgresStore.contact($0, fields: fields) }
    }

    public func saveSegment(name: String, expression: JSONValue, accountID: Int64, id: Int64?) throws -> Segment {
        let text = try Segment.json(expression)
        if let id {
            if try pool.query("""
                UPDATE segment SET name = \(name), expression = \(text) WHERE id = \(id) AND account_id = \(accountID)
                """).changes == 0 {
                throw ContactError.notFound("segment \(id)")
            }
            return Segment(id: id, name: name, expression: expression)
        }
        return try pool.transaction { transaction in
            _ = try transaction.query("SELECT id FROM account WHERE id = \(accountID) FOR UPDATE")
            let count: Int = try transaction.query("""
                SELECT count(*)::bigint AS segments FROM segment WHERE account_id = \(accountID)
                """).records.first?.decode("segments") ?? 0
            guard count < Segment.maximumPerAccount else { throw ContactError.notFound("room for another segment (at most 500)") }
            guard let id: Int64 = try transaction.query("""
                INSERT INTO segment (account_id, name, expression, created_at) VALUES (\(accountID), \(name), \(text), now()) RETURNING id
                """).records.first?.decode("id") else { throw PostgresStoreError.missingColumn("id") }
            return Segment(id: id, name: name, expression: expression)
        }
    }

    public func segments(accountID: Int64) throws -> [Segment] {
        try pool.query("SELECT * FROM segment WHERE account_id = \(accountID) ORDER BY id").records.map(PostgresStore.segment)
    }

    public func segment(id: Int64, accountID: Int64) throws -> Segment? {
        try pool.query("SELECT * FROM segment WHERE id = \(id) AND account_id = \(accountID)").records.first.map(PostgresStore.segment)
    }

    public func deleteSegment(id: Int64, accountID: Int64) throws {
        if try pool.query("DELETE FROM segment WHERE id = \(id) AND account_id = \(accountID)").changes == 0 {
            throw ContactError.notFound("segment \(id)")
        }
    }

    /// A contact suppressed for marketing mail (the sendable counts leave these out).
    static let suppressedForMarketing = """
        EXISTS (SELECT 1 FROM suppression s WHERE s.account_id = c.account_id AND s.address = c.address AND s.scope IN ('all', 'marketing'))
        """

    /// A compiled segment's arguments, bound first; and the number of the next placeholder.
    static func binds(_ query: SegmentQuery) throws -> (PostgresBindings, Int) {
        try query.check(.postgres)
        var bindings = PostgresBindings()
        for argument in query.arguments {
            switch argument {
            case .integer(let value): bindings.append(value)
            case .real(let value): bindings.append(value)
            case .text(let value): bindings.append(value)
            }
        }
        return (bindings, query.arguments.count + 1)
    }

    static func segment(_ record: PostgresRecord) throws -> Segment {
        Segment(id: try record.decode("id"), name: try record.decode("name"), expression: Segment.expression(try record.decode("expression")))
    }
}

extension PostgresBindings {
    func appending<Value: PostgresDynamicTypeEncodable>(_ value: Value) -> PostgresBindings {
        var copy = self
        copy.append(value)
        return copy
    }
}

extension PostgresStore: ContactActivityLog {
    public func contactActivityCursor() throws -> Int64? {
        try pool.query("SELECT last_event FROM contact_activity_cursor WHERE node = \(nodeName)").records.first?.decode("last_event")
    }

    public func recordContactActivity(_ activity: [ContactActivity], through lastEvent: Int64) throws {
        // Per kind, one statement for the batch: each contact's latest time of the kind, never moved back.
        var byKind: [ContactActivity.Kind: [ContactActivity]] = [:]
        for item in activity { byKind[item.kind, default: []].append(item) }
        try pool.transaction { transaction in
            for kind in ContactActivity.Kind.allCases {
                guard let items = byKind[kind], !items.isEmpty else { continue }
                let column = "last_\(kind.rawValue)_at"
                _ = try transaction.query(PostgresQuery(unsafeSQL: """
                    UPDATE contact c SET \(column) = greatest(coalesce(c.\(column), 0), latest.at)
                    FROM (SELECT account_id, address, max(at) AS at
                          FROM unnest($1::bigint[], $2::text[], $3::float8[]) AS item(account_id, address, at)
                          GROUP BY account_id, address) latest
                    WHERE c.account_id = latest.account_id AND c.address = latest.address
                    """, binds: PostgresStore.binds(items.map(\.accountID), items.map { $0.address.lowercased() },
                                                    items.map(\.at.timeIntervalSince1970))))
            }
            _ = try transaction.query("""
                INSERT INTO contact_activity_cursor (node, last_event) VALUES (\(nodeName), \(lastEvent))
                ON CONFLICT (node) DO UPDATE SET last_event = excluded.last_event
                """)
        }
    }
}
