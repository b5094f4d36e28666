import Foundation
import GRDB

/// A custom field an account defines for its contacts (氏名, 誕生日, ポイント…).
public struct ContactField: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case text, number, date, boolean
    }

    public var name: String
    public var kind: Kind
    /// The column (`s1`…`s100` of `contact`) that holds this field's values, given by the store.
    public var slot: Int

    public init(name: String, kind: Kind, slot: Int = 0) {
        self.name = name
        self.kind = kind
        self.slot = slot
    }

    /// Names are shown to marketers and written in CSV headers and templates: any letters
    /// (Japanese too), digits, space, `_` and `-`, 1–64 characters; never a reserved name.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.count) && !reservedNames.contains(name.lowercased())
            && name.unicodeScalars.allSatisfy { CharacterSet.letters.contains($0) || CharacterSet.decimalDigits.contains($0) || " _-".unicodeScalars.contains($0) }
            && name.first != " " && name.last != " "
    }

    /// The contact's own columns: a custom field of these names would be ambiguous in a segment.
    public static let reservedNames: Set<String> = ["email", "address", "id", "created_at", "updated_at", "lists",
                                                   "last_delivered_at", "last_opened_at", "last_clicked_at", "last_bounced_at"]
}

/// A field's value, typed by the field's kind.
public enum ContactValue: Sendable, Equatable {
    case text(String)
    case number(Double)
    /// A calendar date, `YYYY-MM-DD` (no time, no zone: a birthday is the same day everywhere).
    case date(String)
    case boolean(Bool)

    /// The value of `kind` written in `text` (as a CSV cell or a JSON string holds it), or nil when it is not one.
    public static func parse(_ text: String, as kind: ContactField.Kind) -> ContactValue? {
        let trimmed = ContactValue.trimmed(text)
        switch kind {
        case .text:
            return text.count <= 1000 ? .text(text) : nil
        case .number:
            let normalised = trimmed.contains(",") ? String(trimmed.unicodeScalars.filter { $0 != "," }) : trimmed
            guard let value = Double(normalised), value.isFinite, abs(value) < 1e15 else { return nil }
            return .number(value)
        case .date:
            return CalendarDate(parsing: trimmed).map { .date($0.text) }
        case .boolean:
            switch trimmed.lowercased() {
            case "true", "1", "yes", "y", "はい", "true()": return .boolean(true)
            case "false", "0", "no", "n", "いいえ": return .boolean(false)
            default: return nil
            }
        }
    }

    /// `text` without the blanks around it: spaces, tabs and the ideographic space (U+3000) that
    /// Japanese spreadsheets leave. Plain Swift: Foundation's trimming bridges through NSString, a third
    /// of an import's time.
    public static func trimmed(_ text: String) -> String {
        let scalars = text.unicodeScalars
        func blank(_ scalar: Unicode.Scalar) -> Bool { scalar == " " || scalar == "\t" || scalar == "\u{3000}" }
        guard let first = scalars.first, let last = scalars.last, blank(first) || blank(last) else { return text }
        guard let start = scalars.firstIndex(where: { !blank($0) }), let end = scalars.lastIndex(where: { !blank($0) }) else { return "" }
        return String(scalars[start...end])
    }

    /// As a slot column stores it: text as TEXT, numbers as REAL, dates as the integer YYYYMMDD (so that
    /// they compare, and their parts are arithmetic), booleans as 0 or 1.
    public var databaseValue: DatabaseValue {
        switch self {
        case .text(let text): return text.databaseValue
        case .number(let value): return value.databaseValue
        case .date(let text): return (CalendarDate(parsing: text)?.number ?? 0).databaseValue
        case .boolean(let value): return (value ? 1 : 0).databaseValue
        }
    }

    /// A slot column's value read back as `kind`; nil when it holds nothing (or something else).
    static func stored(_ value: DatabaseValue, as kind: ContactField.Kind) -> ContactValue? {
        switch (kind, value.storage) {
        case (.text, .string(let text)): return .text(text)
        case (.number, .double(let number)): return .number(number)
        case (.number, .int64(let number)): return .number(Double(number))
        case (.date, .int64(let number)): return CalendarDate(number: number).map { .date($0.text) }
        case (.boolean, .int64(let number)): return .boolean(number != 0)
        default: return nil
        }
    }

}

/// A day of the calendar, read from the spellings spreadsheets write:
/// `1990-04-01`, `1990/4/1`, `19900401`.
public struct CalendarDate: Sendable, Equatable, Comparable {
    public var year: Int
    public var month: Int
    public var day: Int

    public init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month), (1...CalendarDate.days(in: month, year: year)).contains(day) else {
            return nil
        }
        self.year = year
        self.month = month
        self.day = day
    }

    public init?(parsing text: String) {
        // Digits in up to three groups split by -, / or . (1990-04-01, 1990/4/1), or eight digits (19900401).
        var groups: [Int] = []
        var digits: [Int] = []
        var value = 0
        var count = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                guard count < 8 else { return nil }
                value = value * 10 + Int(byte &- UInt8(ascii: "0"))
                count += 1
            case UInt8(ascii: "-"), UInt8(ascii: "/"), UInt8(ascii: "."):
                guard count > 0, groups.count < 2 else { return nil }
                groups.append(value)
                digits.append(count)
                value = 0
                count = 0
            default:
                return nil
            }
        }
        guard count > 0 else { return nil }
        groups.append(value)
        digits.append(count)
        if groups.count == 1, digits[0] == 8 {
            self.init(year: value / 10_000, month: value / 100 % 100, day: value % 100)
        } else if groups.count == 3, digits[0] == 4, digits[1] <= 2, digits[2] <= 2 {
            self.init(year: groups[0], month: groups[1], day: groups[2])
        } else {
            return nil
        }
    }

    /// The day `date` falls on in `timeZone`.
    public init(_ date: Date, in timeZone: TimeZone) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        year = parts.year ?? 1970
        month = parts.month ?? 1
        day = parts.day ?? 1
    }

    /// YYYYMMDD as a number.
    public var number: Int64 { Int64(year) * 10_000 + Int64(month) * 100 + Int64(day) }

    public init?(number: Int64) {
        guard (10_101...99_991_231).contains(number) else { return nil }
        self.init(year: Int(number / 10_000), month: Int(number / 100 % 100), day: Int(number % 100))
    }

    public var text: String {
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    static func days(in month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    public static func < (lhs: CalendarDate, rhs: CalendarDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }
}

/// One contact of an account: an address and its fields, and when mail to it
/// was last delivered, opened, clicked or bounced (from the delivery log).
public struct Contact: Sendable, Equatable {
    public var id: Int64
    public var address: String
    public var fields: [String: ContactValue]
    public var createdAt: Date
    public var updatedAt: Date
    public var lastDeliveredAt: Date?
    public var lastOpenedAt: Date?
    public var lastClickedAt: Date?
    public var lastBouncedAt: Date?
    public var lists: [Int64]
}

/// A static list of contacts.
public struct ContactList: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var members: Int
}

public enum ContactError: Error, Equatable, CustomStringConvertible {
    case invalidFieldName(String)
    case fieldExists(String)
    case unknownField(String)
    case invalidValue(field: String, kind: ContactField.Kind)
    case tooManyFields
    case notFound(String)
    /// An import of this account (or too many in all) is running.
    case importRunning(thisAccount: Bool)

    public var description: String {
        switch self {
        case .invalidFieldName(let name): return "invalid field name \(name): 1-64 letters, digits, space, _ or -; not a reserved name"
        case .fieldExists(let name): return "a field named \(name) already exists"
        case .unknownField(let name): return "no contact field named \(name)"
        case .invalidValue(let field, let kind): return "\(field) must be a \(kind.rawValue)"
        case .tooManyFields: return "at most \(SQLiteStore.maximumContactFields) contact fields per account"
        case .notFound(let what): return "no \(what)"
        case .importRunning(let mine):
            return mine ? "an import of this account is still running" : "too many imports are running; try again shortly"
        }
    }
}

/// Contacts, their fields and lists, per account (the marketer's customer data).
public protocol ContactBook: Sendable {
    func contactFields(accountID: Int64) throws -> [ContactField]
    func addContactField(_ field: ContactField, accountID: Int64) throws
    func deleteContactField(named name: String, accountID: Int64) throws
    /// Creates or changes the contact of `address`: the fields given replace those values, others stay.
    @discardableResult
    func upsertContact(address: String, fields: [String: ContactValue], accountID: Int64) throws -> Contact
    func contact(address: String, accountID: Int64) throws -> Contact?
    /// Deletes the contact and its data (list memberships and campaign recipient rows keep no copy of its fields).
    func deleteContact(address: String, accountID: Int64) throws -> Bool
    func contacts(accountID: Int64, after id: Int64, limit: Int) throws -> [Contact]
    func contactCount(accountID: Int64) throws -> Int
    /// The account's time zone: what "today", "this month" and a campaign's 9:00 mean.
    func timeZone(accountID: Int64) throws -> TimeZone
    /// At most `ContactList.maximumPerAccount` per account.
    func createContactList(name: String, accountID: Int64) throws -> ContactList
    /// By id, with their member counts.
    func contactLists(accountID: Int64) throws -> [ContactList]
    func deleteContactList(id: Int64, accountID: Int64) throws
    /// Adds (or with `remove`, takes out) the contacts of these addresses; returns how many addresses were contacts.
    func changeListMembers(listID: Int64, addresses: [String], remove: Bool, accountID: Int64) throws -> Int
}

extension ContactList {
    public static let maximumPerAccount = 1000
}

extension ContactField {
    /// Slots per account: the most fields an account may define.
    public static let maximumPerAccount = 100
}

/// The contacts' activity (last delivered, opened, clicked, bounced), as the
/// follower of a node's delivery log writes it: one capability of the store,
/// with an implementation per engine. Each node follows its own log, so the
/// position is this node's (on the embedded store, the only one).
public protocol ContactActivityLog: Sendable {
    /// Where this node's activity follower stopped in its delivery log.
    func contactActivityCursor() throws -> Int64?
    /// Records deliveries, opens, clicks and bounces on the contacts they were to, and the new cursor, in one
    /// transaction. A time only ever moves a contact's activity forward.
    func recordContactActivity(_ activity: [ContactActivity], through lastEvent: Int64) throws
}

extension SQLiteStore: ContactActivityLog {}

extension SQLiteStore: ContactBook {
    static let maximumContactFields = ContactField.maximumPerAccount
    /// `s1, s2, … s100`: no declared type, so a value keeps the type it was written with.
    static let slotColumns = (1...maximumContactFields).map { "s\($0)" }.joined(separator: ", ")

    static func registerContactMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v12-contacts") { db in
            try db.execute(sql: """
                ALTER TABLE account ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
                CREATE TABLE contact_field (
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    slot INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    PRIMARY KEY (account_id, name),
                    UNIQUE (account_id, slot)
                ) WITHOUT ROWID;
                -- A field's values are in the column of its slot: plain columns, so that a segment over a
                -- million contacts compares columns instead of parsing a document per row.
                CREATE TABLE contact (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    address TEXT NOT NULL COLLATE NOCASE,
                    \(SQLiteStore.slotColumns),
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    last_delivered_at REAL,
                    last_opened_at REAL,
                    last_clicked_at REAL,
                    last_bounced_at REAL
                );
                CREATE UNIQUE INDEX contact_address ON contact(account_id, address);
                -- Segments scan an account's contacts in row order: sequential reads, not one seek per contact.
                CREATE INDEX contact_account ON contact(account_id, id);
                CREATE TABLE contact_list (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    created_at REAL NOT NULL
                );
                CREATE INDEX contact_list_account ON contact_list(account_id);
                CREATE TABLE contact_list_member (
                    list_id INTEGER NOT NULL REFERENCES contact_list(id) ON DELETE CASCADE,
                    contact_id INTEGER NOT NULL REFERENCES contact(id) ON DELETE CASCADE,
                    PRIMARY KEY (list_id, contact_id)
                ) WITHOUT ROWID;
                CREATE INDEX contact_list_member_contact ON contact_list_member(contact_id);
                -- Where the contacts' activity follower is in the delivery log (ContactActivity).
                CREATE TABLE contact_activity_cursor (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    last_event INTEGER NOT NULL
                );
                -- An import's rows are staged here, then applied in one transaction (ContactImport).
                CREATE TABLE contact_import (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    state TEXT NOT NULL,
                    rows_read INTEGER NOT NULL DEFAULT 0,
                    rows_valid INTEGER NOT NULL DEFAULT 0,
                    rows_invalid INTEGER NOT NULL DEFAULT 0,
                    applied INTEGER NOT NULL DEFAULT 0,
                    errors TEXT NOT NULL DEFAULT '[]',
                    list_id INTEGER,
                    started_at REAL NOT NULL,
                    finished_at REAL
                );
                CREATE TABLE contact_import_row (
                    import_id INTEGER NOT NULL REFERENCES contact_import(id) ON DELETE CASCADE,
                    address TEXT NOT NULL,
                    \(SQLiteStore.slotColumns)
                );
                CREATE INDEX contact_import_row_import ON contact_import_row(import_id);
                """)
        }
    }

    // MARK: Time zone

    public func timeZone(accountID: Int64) throws -> TimeZone {
        try database.read { db in
            let name = try String.fetchOne(db, sql: "SELECT time_zone FROM account WHERE id = ?", arguments: [accountID])
            return name.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC") ?? .current
        }
    }

    public func setTimeZone(_ zone: TimeZone, accountID: Int64, now: Date) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE account SET time_zone = ? WHERE id = ?", arguments: [zone.identifier, accountID])
            for row in try Row.fetchAll(db, sql: "SELECT * FROM campaign WHERE account_id = ? AND state = 'scheduled'", arguments: [accountID]) {
                guard let campaign = SQLiteStore.campaign(row), let daily = campaign.definition.dailyAt, campaign.definition.sendAt == nil,
                      let next = Campaign.nextDailyRun(at: daily, after: now, in: zone) else { continue }
                try db.execute(sql: "UPDATE campaign SET next_run_at = ? WHERE id = ?", arguments: [next.timeIntervalSince1970, campaign.id])
            }
        }
    }

    // MARK: Fields

    public func contactFields(accountID: Int64) throws -> [ContactField] {
        try database.read { db in try SQLiteStore.contactFields(accountID: accountID, db) }
    }

    static func contactFields(accountID: Int64, _ db: Database) throws -> [ContactField] {
        try Row.fetchAll(db, sql: "SELECT name, kind, slot FROM contact_field WHERE account_id = ? ORDER BY created_at, name",
                         arguments: [accountID]).compactMap { row in
            ContactField.Kind(rawValue: row["kind"]).map { ContactField(name: row["name"], kind: $0, slot: row["slot"]) }
        }
    }

    public func addContactField(_ field: ContactField, accountID: Int64) throws {
        guard ContactField.isValidName(field.name) else { throw ContactError.invalidFieldName(field.name) }
        try database.write { db in
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM contact_field WHERE account_id = ?", arguments: [accountID]) ?? 0
            guard count < SQLiteStore.maximumContactFields else { throw ContactError.tooManyFields }
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM contact_field WHERE account_id = ? AND name = ?",
                                    arguments: [accountID, field.name]) == nil else { throw ContactError.fieldExists(field.name) }
            let used = Set(try Int.fetchAll(db, sql: "SELECT slot FROM contact_field WHERE account_id = ?", arguments: [accountID]))
            guard let slot = (1...SQLiteStore.maximumContactFields).first(where: { !used.contains($0) }) else { throw ContactError.tooManyFields }
            try db.execute(sql: "INSERT INTO contact_field (account_id, name, kind, slot, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [accountID, field.name, field.kind.rawValue, slot, Date().timeIntervalSince1970])
        }
    }

    /// Removes the field and its value from every contact of the account.
    public func deleteContactField(named name: String, accountID: Int64) throws {
        try database.write { db in
            guard let slot = try Int.fetchOne(db, sql: "SELECT slot FROM contact_field WHERE account_id = ? AND name = ?",
                                              arguments: [accountID, name]) else { throw ContactError.unknownField(name) }
            try db.execute(sql: "DELETE FROM contact_field WHERE account_id = ? AND name = ?", arguments: [accountID, name])
            // An import running now staged this field's values in its slot, which another field may take next:
            // it ends, applying nothing, rather than give them to that field.
            for id in try Int64.fetchAll(db, sql: "SELECT id FROM contact_import WHERE account_id = ? AND state = 'running'", arguments: [accountID]) {
                try db.execute(sql: "DELETE FROM contact_import_row WHERE import_id = ?", arguments: [id])
                try db.execute(sql: """
                    UPDATE contact_import SET state = 'failed', finished_at = ?,
                        errors = json_insert(errors, '$[#]', json_object('line', 0, 'message', 'a field was deleted while the import ran; nothing was applied'))
                    WHERE id = ?
                    """, arguments: [Date().timeIntervalSince1970, id])
            }
            // The slot is free for another field: its values go with this one.
            try db.execute(sql: "UPDATE contact SET s\(slot) = NULL WHERE account_id = ? AND s\(slot) IS NOT NULL", arguments: [accountID])
        }
    }

    // MARK: Contacts

    @discardableResult
    public func upsertContact(address: String, fields: [String: ContactValue], accountID: Int64) throws -> Contact {
        try database.write { db in
            let known = Dictionary(try SQLiteStore.contactFields(accountID: accountID, db).map { ($0.name, $0) }) { first, _ in first }
            var columns: [String] = []
            var values: [DatabaseValue] = []
            for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
                guard let field = known[name] else { throw ContactError.unknownField(name) }
                guard value.matches(field.kind) else { throw ContactError.invalidValue(field: name, kind: field.kind) }
                columns.append("s\(field.slot)")
                values.append(value.databaseValue)
            }
            let now = Date().timeIntervalSince1970
            let names = (["account_id", "address", "created_at", "updated_at"] + columns).joined(separator: ", ")
            let placeholders = Array(repeating: "?", count: 4 + columns.count).joined(separator: ", ")
            let updates = (["updated_at = excluded.updated_at"] + columns.map { "\($0) = excluded.\($0)" }).joined(separator: ", ")
            try db.execute(sql: """
                INSERT INTO contact (\(names)) VALUES (\(placeholders))
                ON CONFLICT(account_id, address) DO UPDATE SET \(updates)
                """, arguments: StatementArguments([accountID.databaseValue, address.lowercased().databaseValue, now.databaseValue,
                                                   now.databaseValue] + values))
            guard let contact = try SQLiteStore.contact(address: address, accountID: accountID, db) else {
                throw ContactError.notFound("contact \(address)")
            }
            return contact
        }
    }

    public func contact(address: String, accountID: Int64) throws -> Contact? {
        try database.read { db in try SQLiteStore.contact(address: address, accountID: accountID, db) }
    }

    static func contact(address: String, accountID: Int64, _ db: Database) throws -> Contact? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM contact WHERE account_id = ? AND address = ?",
                                         arguments: [accountID, address.lowercased()]) else { return nil }
        let fields = try contactFields(accountID: accountID, db)
        var contact = SQLiteStore.contact(row, fields: fields)
        contact.lists = try Int64.fetchAll(db, sql: "SELECT list_id FROM contact_list_member WHERE contact_id = ? ORDER BY list_id",
                                           arguments: [contact.id])
        return contact
    }

    public func deleteContact(address: String, accountID: Int64) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "DELETE FROM contact WHERE account_id = ? AND address = ?", arguments: [accountID, address.lowercased()])
            return db.changesCount > 0
        }
    }

    public func contacts(accountID: Int64, after id: Int64, limit: Int) throws -> [Contact] {
        try database.read { db in
            let fields = try SQLiteStore.contactFields(accountID: accountID, db)
            return try Row.fetchAll(db, sql: "SELECT * FROM contact WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
                                    arguments: [accountID, id, limit]).map { SQLiteStore.contact($0, fields: fields) }
        }
    }

    public func contactCount(accountID: Int64) throws -> Int {
        try database.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM contact WHERE account_id = ?", arguments: [accountID]) ?? 0
        }
    }

    /// A row's contact: the values of the account's fields, from their slots.
    static func contact(_ row: Row, fields: [ContactField]) -> Contact {
        var values: [String: ContactValue] = [:]
        for field in fields {
            if let value = ContactValue.stored(row["s\(field.slot)"], as: field.kind) { values[field.name] = value }
        }
        let date = { (name: String) -> Date? in (row[name] as Double?).map(Date.init(timeIntervalSince1970:)) }
        return Contact(id: row["id"], address: row["address"], fields: values, createdAt: date("created_at") ?? Date(timeIntervalSince1970: 0),
                       updatedAt: date("updated_at") ?? Date(timeIntervalSince1970: 0), lastDeliveredAt: date("last_delivered_at"),
                       lastOpenedAt: date("last_opened_at"), lastClickedAt: date("last_clicked_at"), lastBouncedAt: date("last_bounced_at"),
                       lists: [])
    }

    // MARK: Lists

    public func createContactList(name: String, accountID: Int64) throws -> ContactList {
        try database.write { db in
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM contact_list WHERE account_id = ?", arguments: [accountID]) ?? 0
            guard count < ContactList.maximumPerAccount else { throw ContactError.notFound("room for another list (at most 1000)") }
            try db.execute(sql: "INSERT INTO contact_list (account_id, name, created_at) VALUES (?, ?, ?)",
                           arguments: [accountID, name, Date().timeIntervalSince1970])
            return ContactList(id: db.lastInsertedRowID, name: name, members: 0)
        }
    }

    public func contactLists(accountID: Int64) throws -> [ContactList] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT l.id, l.name, (SELECT COUNT(*) FROM contact_list_member m WHERE m.list_id = l.id) AS members
                FROM contact_list l WHERE l.account_id = ? ORDER BY l.id
                """, arguments: [accountID]).map { ContactList(id: $0["id"], name: $0["name"], members: $0["members"]) }
        }
    }

    public func deleteContactList(id: Int64, accountID: Int64) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM contact_list WHERE id = ? AND account_id = ?", arguments: [id, accountID])
            guard db.changesCount > 0 else { throw ContactError.notFound("list \(id)") }
        }
    }

    public func changeListMembers(listID: Int64, addresses: [String], remove: Bool, accountID: Int64) throws -> Int {
        try database.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM contact_list WHERE id = ? AND account_id = ?",
                                    arguments: [listID, accountID]) != nil else { throw ContactError.notFound("list \(listID)") }
            let statement = try db.cachedStatement(sql: remove ? """
                DELETE FROM contact_list_member WHERE list_id = ? AND contact_id = (SELECT id FROM contact WHERE account_id = ? AND address = ?)
                """ : """
                INSERT OR IGNORE INTO contact_list_member (list_id, contact_id)
                SELECT ?, id FROM contact WHERE account_id = ? AND address = ?
                """)
            var found = 0
            for address in addresses.map({ $0.lowercased() }) {
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM contact WHERE account_id = ? AND address = ?",
                                        arguments: [accountID, address]) != nil else { continue }
                try statement.execute(arguments: [listID, accountID, address])
                found += 1
            }
            return found
        }
    }

    // MARK: Activity

    public func contactActivityCursor() throws -> Int64? {
        try database.read { db in try Int64.fetchOne(db, sql: "SELECT last_event FROM contact_activity_cursor WHERE id = 1") }
    }

    public func recordContactActivity(_ activity: [ContactActivity], through lastEvent: Int64) throws {
        try database.write { db in
            for item in activity {
                let column = switch item.kind {
                case .delivered: "last_delivered_at"
                case .opened: "last_opened_at"
                case .clicked: "last_clicked_at"
                case .bounced: "last_bounced_at"
                }
                try db.cachedStatement(sql: """
                    UPDATE contact SET \(column) = MAX(COALESCE(\(column), 0), ?) WHERE account_id = ? AND address = ?
                    """).execute(arguments: [item.at.timeIntervalSince1970, item.accountID, item.address])
            }
            try db.execute(sql: """
                INSERT INTO contact_activity_cursor (id, last_event) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET last_event = excluded.last_event
                """, arguments: [lastEvent])
        }
    }
}

/// One event of the delivery log as it concerns a contact.
public struct ContactActivity: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case delivered, opened, clicked, bounced
    }

    public var accountID: Int64
    public var address: String
    public var kind: Kind
    public var at: Date

    public init(accountID: Int64, address: String, kind: Kind, at: Date) {
        self.accountID = accountID
        self.address = address
        self.kind = kind
        self.at = at
    }
}

extension ContactValue {
    func matches(_ kind: ContactField.Kind) -> Bool {
        switch (self, kind) {
        case (.text, .text), (.number, .number), (.date, .date), (.boolean, .boolean): return true
        default: return false
        }
    }
}
