import Foundation
import GRDB

/// A custom field an account defines for its contacts (氏名, 誕生日, ポイント…).
public struct ContactField: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case text, number, date, boolean
    }

    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
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
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch kind {
        case .text:
            return text.count <= 1000 ? .text(text) : nil
        case .number:
            let normalised = trimmed.replacingOccurrences(of: ",", with: "")
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

    /// As JSON (the contact's `data` column).
    var json: String {
        switch self {
        case .text(let text), .date(let text): return ContactValue.quote(text)
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15, let whole = Int64(exactly: value) { return String(whole) }
            return String(value)
        case .boolean(let value): return value ? "true" : "false"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
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
        let parts: [Substring]
        if text.count == 8, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) {
            parts = [text.prefix(4), text.dropFirst(4).prefix(2), text.suffix(2)]
        } else {
            parts = text.split(whereSeparator: { $0 == "-" || $0 == "/" || $0 == "." }).map { $0 }
        }
        guard parts.count == 3, parts.allSatisfy({ (1...4).contains($0.count) && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              parts[0].count == 4, let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]) else { return nil }
        self.init(year: year, month: month, day: day)
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

    public var description: String {
        switch self {
        case .invalidFieldName(let name): return "invalid field name \(name): 1-64 letters, digits, space, _ or -; not a reserved name"
        case .fieldExists(let name): return "a field named \(name) already exists"
        case .unknownField(let name): return "no contact field named \(name)"
        case .invalidValue(let field, let kind): return "\(field) must be a \(kind.rawValue)"
        case .tooManyFields: return "at most \(SQLiteStore.maximumContactFields) contact fields per account"
        case .notFound(let what): return "no \(what)"
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
}

extension SQLiteStore: ContactBook {
    static let maximumContactFields = 100
    static let maximumContactLists = 1000

    static func registerContactMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v12-contacts") { db in
            try db.execute(sql: """
                ALTER TABLE account ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
                CREATE TABLE contact_field (
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    PRIMARY KEY (account_id, name)
                ) WITHOUT ROWID;
                CREATE TABLE contact (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    address TEXT NOT NULL COLLATE NOCASE,
                    data TEXT NOT NULL DEFAULT '{}',
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    last_delivered_at REAL,
                    last_opened_at REAL,
                    last_clicked_at REAL,
                    last_bounced_at REAL
                );
                CREATE UNIQUE INDEX contact_address ON contact(account_id, address);
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
                    data TEXT NOT NULL
                );
                CREATE INDEX contact_import_row_import ON contact_import_row(import_id);
                """)
        }
    }

    // MARK: Time zone

    /// The account's time zone: what "today", "this month" and a campaign's 9:00 mean.
    public func timeZone(accountID: Int64) throws -> TimeZone {
        try database.read { db in
            let name = try String.fetchOne(db, sql: "SELECT time_zone FROM account WHERE id = ?", arguments: [accountID])
            return name.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC") ?? .current
        }
    }

    /// Sets the zone; daily campaigns waiting for their next run are rescheduled in it.
    public func setTimeZone(_ zone: TimeZone, accountID: Int64, now: Date = Date()) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE account SET time_zone = ? WHERE id = ?", arguments: [zone.identifier, accountID])
            for row in try Row.fetchAll(db, sql: "SELECT * FROM campaign WHERE account_id = ? AND state = 'scheduled'", arguments: [accountID]) {
                guard let campaign = SQLiteStore.campaign(row), let daily = campaign.definition.dailyAt, campaign.definition.sendAt == nil,
                      let next = SQLiteStore.nextDailyRun(at: daily, after: now, in: zone) else { continue }
                try db.execute(sql: "UPDATE campaign SET next_run_at = ? WHERE id = ?", arguments: [next.timeIntervalSince1970, campaign.id])
            }
        }
    }

    // MARK: Fields

    public func contactFields(accountID: Int64) throws -> [ContactField] {
        try database.read { db in try SQLiteStore.contactFields(accountID: accountID, db) }
    }

    static func contactFields(accountID: Int64, _ db: Database) throws -> [ContactField] {
        try Row.fetchAll(db, sql: "SELECT name, kind FROM contact_field WHERE account_id = ? ORDER BY created_at, name",
                         arguments: [accountID]).compactMap { row in
            ContactField.Kind(rawValue: row["kind"]).map { ContactField(name: row["name"], kind: $0) }
        }
    }

    public func addContactField(_ field: ContactField, accountID: Int64) throws {
        guard ContactField.isValidName(field.name) else { throw ContactError.invalidFieldName(field.name) }
        try database.write { db in
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM contact_field WHERE account_id = ?", arguments: [accountID]) ?? 0
            guard count < SQLiteStore.maximumContactFields else { throw ContactError.tooManyFields }
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM contact_field WHERE account_id = ? AND name = ?",
                                    arguments: [accountID, field.name]) == nil else { throw ContactError.fieldExists(field.name) }
            try db.execute(sql: "INSERT INTO contact_field (account_id, name, kind, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [accountID, field.name, field.kind.rawValue, Date().timeIntervalSince1970])
        }
    }

    /// Removes the field and its value from every contact of the account.
    public func deleteContactField(named name: String, accountID: Int64) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM contact_field WHERE account_id = ? AND name = ?", arguments: [accountID, name])
            guard db.changesCount > 0 else { throw ContactError.unknownField(name) }
            try db.execute(sql: "UPDATE contact SET data = json_remove(data, ?) WHERE account_id = ?",
                           arguments: [SQLiteStore.jsonPath(name), accountID])
        }
    }

    /// The JSON path of a field in `data`; names hold no quote or backslash (`ContactField.isValidName`).
    static func jsonPath(_ name: String) -> String { "$.\"" + name + "\"" }

    // MARK: Contacts

    public static func dataJSON(_ fields: [String: ContactValue]) -> String {
        "{" + fields.sorted { $0.key < $1.key }.map { ContactValue.quote($0.key) + ":" + $0.value.json }.joined(separator: ",") + "}"
    }

    @discardableResult
    public func upsertContact(address: String, fields: [String: ContactValue], accountID: Int64) throws -> Contact {
        try database.write { db in
            let known = Dictionary(try SQLiteStore.contactFields(accountID: accountID, db).map { ($0.name, $0.kind) }) { first, _ in first }
            for (name, value) in fields {
                guard let kind = known[name] else { throw ContactError.unknownField(name) }
                guard value.matches(kind) else { throw ContactError.invalidValue(field: name, kind: kind) }
            }
            let now = Date().timeIntervalSince1970
            try db.execute(sql: """
                INSERT INTO contact (account_id, address, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(account_id, address) DO UPDATE SET data = json_patch(contact.data, excluded.data), updated_at = excluded.updated_at
                """, arguments: [accountID, address.lowercased(), SQLiteStore.dataJSON(fields), now, now])
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

    /// A row's contact; values of fields no longer defined (or of another kind) are left out.
    static func contact(_ row: Row, fields: [ContactField]) -> Contact {
        let data = (try? JSONDecoder().decode([String: StoredScalar].self, from: Data((row["data"] as String).utf8))) ?? [:]
        var values: [String: ContactValue] = [:]
        for field in fields {
            guard let value = data[field.name] else { continue }
            switch (field.kind, value) {
            case (.text, .string(let text)): values[field.name] = .text(text)
            case (.date, .string(let text)): values[field.name] = .date(text)
            case (.boolean, .bool(let flag)): values[field.name] = .boolean(flag)
            case (.number, .number(let number)): values[field.name] = .number(number)
            default: continue
            }
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
            guard count < SQLiteStore.maximumContactLists else { throw ContactError.notFound("room for another list (at most 1000)") }
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

    /// Adds (or with `remove`, takes out) the contacts of these addresses; returns how many addresses were contacts.
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

    /// Where the activity follower stopped in the delivery log.
    public func contactActivityCursor() throws -> Int64? {
        try database.read { db in try Int64.fetchOne(db, sql: "SELECT last_event FROM contact_activity_cursor WHERE id = 1") }
    }

    /// Records deliveries, opens, clicks and bounces on the contacts they were to, and the new cursor, in one transaction.
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

/// A value as the `data` column stores it.
enum StoredScalar: Decodable {
    case bool(Bool), number(Double), string(String), other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let flag = try? container.decode(Bool.self) { self = .bool(flag) }
        else if let number = try? container.decode(Double.self) { self = .number(number) }
        else if let text = try? container.decode(String.self) { self = .string(text) }
        else { self = .other }
    }
}
