import Foundation
import GRDB

/// Which contacts a segment holds: a typed expression over their fields,
/// their activity and their lists, stored as JSON and compiled to
/// parameterised SQL (`SegmentQuery`): no text a user wrote ever becomes SQL.
///
/// JSON form (docs/campaigns.md):
/// `{"all":[…]}`, `{"any":[…]}`, `{"not":…}`,
/// `{"field":"ポイント","op":"gte","value":1000}`,
/// `{"field":"誕生日","part":"month","op":"eq","value":"this_month"}`,
/// `{"field":"created_at","op":"within_last_days","value":30}`,
/// `{"activity":"opened","within_days":30}`, `{"activity":"bounced"}` (ever),
/// `{"list":3}`.
public indirect enum SegmentExpression: Sendable, Equatable {
    case all([SegmentExpression])
    case any([SegmentExpression])
    case not(SegmentExpression)
    case condition(SegmentCondition)
    /// Mail to the contact was delivered, opened, clicked or bounced, in the last `withinDays` days (nil: ever).
    case activity(ContactActivity.Kind, withinDays: Int?)
    case list(Int64)

    public static let maximumDepth = 12
    public static let maximumNodes = 200
    public static let maximumValues = 1000
    /// Values of all `in` conditions together: every one is a bound argument, and SQLite takes at most 32,766.
    public static let maximumTotalValues = 5000

    /// Reads the JSON form; the error names the part at fault (`all[1].value`).
    public init(json: JSONValue) throws(SegmentError) {
        var nodes = 0
        self = try SegmentExpression.parse(json, path: "segment", depth: 0, nodes: &nodes)
        guard valueCount <= SegmentExpression.maximumTotalValues else {
            throw SegmentError(path: "segment", message: "at most \(SegmentExpression.maximumTotalValues) values in all in conditions together")
        }
    }

    static func parse(_ json: JSONValue, path: String, depth: Int, nodes: inout Int) throws(SegmentError) -> SegmentExpression {
        nodes += 1
        guard depth < maximumDepth, nodes <= maximumNodes else {
            throw SegmentError(path: path, message: "at most \(maximumNodes) conditions, nested at most \(maximumDepth) deep")
        }
        guard case .object(let object) = json else { throw SegmentError(path: path, message: "must be an object") }
        func children(_ key: String) throws(SegmentError) -> [SegmentExpression] {
            guard case .array(let items)? = object[key], !items.isEmpty else {
                throw SegmentError(path: path + "." + key, message: "must be a non-empty array")
            }
            var parsed: [SegmentExpression] = []
            for (index, item) in items.enumerated() {
                parsed.append(try parse(item, path: "\(path).\(key)[\(index)]", depth: depth + 1, nodes: &nodes))
            }
            return parsed
        }
        if object["all"] != nil { return .all(try children("all")) }
        if object["any"] != nil { return .any(try children("any")) }
        if let inner = object["not"] { return .not(try parse(inner, path: path + ".not", depth: depth + 1, nodes: &nodes)) }
        if let list = object["list"] {
            guard case .number(let number) = list, let id = Int64(exactly: number) else {
                throw SegmentError(path: path + ".list", message: "must be a list id")
            }
            return .list(id)
        }
        if let activity = object["activity"] {
            guard case .string(let name) = activity, let kind = ContactActivity.Kind(rawValue: name) else {
                throw SegmentError(path: path + ".activity", message: "must be delivered, opened, clicked or bounced")
            }
            var days: Int?
            if let within = object["within_days"] {
                guard case .number(let number) = within, let whole = Int(exactly: number), (1...3650).contains(whole) else {
                    throw SegmentError(path: path + ".within_days", message: "must be a whole number of days, 1 to 3650")
                }
                days = whole
            }
            return .activity(kind, withinDays: days)
        }
        guard case .string(let field)? = object["field"] else {
            throw SegmentError(path: path, message: "must have all, any, not, field, activity or list")
        }
        guard case .string(let opName)? = object["op"], let op = SegmentCondition.Operator(rawValue: opName) else {
            throw SegmentError(path: path + ".op", message: "must be one of "
                               + SegmentCondition.Operator.allCases.map(\.rawValue).joined(separator: ", "))
        }
        var part: SegmentCondition.DatePart?
        if let partValue = object["part"] {
            guard case .string(let name) = partValue, let value = SegmentCondition.DatePart(rawValue: name) else {
                throw SegmentError(path: path + ".part", message: "must be year, month, day or month_day")
            }
            part = value
        }
        let operand = try SegmentOperand.parse(object["value"], op: op, path: path + ".value")
        return .condition(SegmentCondition(field: field, part: part, op: op, value: operand))
    }
}

extension SegmentExpression {
    /// The values of its `in` conditions, all together.
    var valueCount: Int {
        switch self {
        case .all(let items), .any(let items): return items.reduce(0) { $0 + $1.valueCount }
        case .not(let inner): return inner.valueCount
        case .condition(let condition):
            if case .values(let values) = condition.value { return values.count }
            return 1
        case .activity, .list: return 1
        }
    }
}

public struct SegmentCondition: Sendable, Equatable {
    public enum Operator: String, Sendable, CaseIterable {
        case eq, ne, lt, lte, gt, gte, `in`, contains, startsWith = "starts_with", exists, missing
        /// Dates and times: on or after the day `value` days ago / before it.
        case withinLastDays = "within_last_days", beforeLastDays = "before_last_days"
    }

    /// A part of a date field, compared as a number (`month_day` as MMDD).
    public enum DatePart: String, Sendable {
        case year, month, day, monthDay = "month_day"
    }

    public var field: String
    public var part: DatePart?
    public var op: Operator
    public var value: SegmentOperand
}

public enum SegmentOperand: Sendable, Equatable {
    case none
    case number(Double)
    case text(String)
    case boolean(Bool)
    case values([SegmentOperand])
    /// Resolved when the segment is evaluated, in the account's time zone.
    case today, thisMonth, thisYear

    static func parse(_ json: JSONValue?, op: SegmentCondition.Operator, path: String) throws(SegmentError) -> SegmentOperand {
        switch op {
        case .exists, .missing:
            return .none
        case .in:
            guard case .array(let items)? = json, !items.isEmpty, items.count <= SegmentExpression.maximumValues else {
                throw SegmentError(path: path, message: "must be an array of 1 to \(SegmentExpression.maximumValues) values")
            }
            var values: [SegmentOperand] = []
            for (index, item) in items.enumerated() { values.append(try scalar(item, path: "\(path)[\(index)]")) }
            return .values(values)
        case .withinLastDays, .beforeLastDays:
            guard case .number(let number)? = json, let days = Int(exactly: number), (0...36_500).contains(days) else {
                throw SegmentError(path: path, message: "must be a whole number of days")
            }
            return .number(Double(days))
        default:
            guard let json else { throw SegmentError(path: path, message: "is required") }
            return try scalar(json, path: path)
        }
    }

    static func scalar(_ json: JSONValue, path: String) throws(SegmentError) -> SegmentOperand {
        switch json {
        case .number(let value) where value.isFinite: return .number(value)
        case .bool(let value): return .boolean(value)
        case .string("today"): return .today
        case .string("this_month"): return .thisMonth
        case .string("this_year"): return .thisYear
        case .string(let text) where text.count <= 1000: return .text(text)
        default: throw SegmentError(path: path, message: "must be a number, a string, true or false")
        }
    }
}

public struct SegmentError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path) \(message)" }
}

/// The SQL a segment compiles to: the two engines' contact tables differ
/// (SQLite's slot columns take any type; PostgreSQL's are a text and a
/// number column per slot), and so do their placeholders and date functions.
public enum SegmentDialect: Sendable {
    case sqlite
    /// Placeholders `$1`…: a statement puts the condition's arguments first.
    case postgres
}

/// A value bound to a compiled segment.
public enum SegmentArgument: Sendable, Equatable {
    case integer(Int64)
    case real(Double)
    case text(String)

    var databaseValue: DatabaseValue {
        switch self {
        case .integer(let value): return value.databaseValue
        case .real(let value): return value.databaseValue
        case .text(let value): return value.databaseValue
        }
    }
}

/// A segment as SQL over `contact c`: a condition and its arguments, every
/// value an argument. Built for one account, its fields and its time zone, at one moment.
public struct SegmentQuery: Sendable {
    public var condition: String
    public var arguments: [SegmentArgument]
    public let dialect: SegmentDialect

    public init(_ expression: SegmentExpression, fields: [ContactField], accountID: Int64, now: Date, timeZone: TimeZone,
                dialect: SegmentDialect = .sqlite) throws(SegmentError) {
        var compiler = Compiler(fields: Dictionary(fields.map { ($0.name, $0) }) { first, _ in first }, accountID: accountID,
                                now: now, timeZone: timeZone, dialect: dialect)
        condition = try compiler.compile(expression, path: "segment")
        arguments = compiler.arguments
        self.dialect = dialect
    }

    /// Throws unless the query was compiled for `dialect`: another engine's SQL is never run.
    func check(_ dialect: SegmentDialect) throws {
        guard self.dialect == dialect else { throw SegmentError(path: "segment", message: "was compiled for another engine") }
    }

    /// The arguments as GRDB binds them (SQLite).
    var databaseValues: [DatabaseValue] { arguments.map(\.databaseValue) }

    struct Compiler {
        let fields: [String: ContactField]
        let accountID: Int64
        let now: Date
        let timeZone: TimeZone
        let dialect: SegmentDialect
        var arguments: [SegmentArgument] = []

        /// The built-in columns a condition can name, and what they hold.
        static let columns: [String: (sql: String, kind: ContactField.Kind)] = [
            "email": ("c.address", .text), "address": ("c.address", .text),
            "created_at": ("c.created_at", .date), "updated_at": ("c.updated_at", .date),
            "last_delivered_at": ("c.last_delivered_at", .date), "last_opened_at": ("c.last_opened_at", .date),
            "last_clicked_at": ("c.last_clicked_at", .date), "last_bounced_at": ("c.last_bounced_at", .date),
        ]

        mutating func bind(_ value: SegmentArgument) -> String {
            arguments.append(value)
            return dialect == .sqlite ? "?" : "$\(arguments.count)"
        }

        /// A whole number: an integer, or on PostgreSQL's number columns a double (so that it compares as one).
        func number(_ value: Int64) -> SegmentArgument { dialect == .sqlite ? .integer(value) : .real(Double(value)) }

        func number(_ value: Int) -> SegmentArgument { number(Int64(clamping: value)) }

        mutating func compile(_ expression: SegmentExpression, path: String) throws(SegmentError) -> String {
            switch expression {
            case .all(let items):
                var parts: [String] = []
                for (index, item) in items.enumerated() { parts.append(try compile(item, path: "\(path).all[\(index)]")) }
                return "(" + parts.joined(separator: " AND ") + ")"
            case .any(let items):
                var parts: [String] = []
                for (index, item) in items.enumerated() { parts.append(try compile(item, path: "\(path).any[\(index)]")) }
                return "(" + parts.joined(separator: " OR ") + ")"
            case .not(let inner):
                // A missing value makes a comparison NULL; NOT of it must still hold (SQL's three values made two).
                let inner = try compile(inner, path: path + ".not")
                return dialect == .sqlite ? "NOT COALESCE(\(inner), 0)" : "NOT COALESCE(\(inner), FALSE)"
            case .list(let id):
                return "EXISTS (SELECT 1 FROM contact_list_member m JOIN contact_list l ON l.id = m.list_id "
                    + "WHERE m.contact_id = c.id AND l.id = \(bind(.integer(id))) AND l.account_id = \(bind(.integer(accountID))))"
            case .activity(let kind, let days):
                let column = "c.last_\(kind.rawValue)_at"
                guard let days else { return "(\(column) IS NOT NULL)" }
                return "(\(column) >= \(bind(.real(now.timeIntervalSince1970 - Double(days) * 86_400))))"
            case .condition(let condition):
                return try compile(condition, path: path)
            }
        }

        mutating func compile(_ condition: SegmentCondition, path: String) throws(SegmentError) -> String {
            let column: String
            let kind: ContactField.Kind
            let timestamp: Bool
            if let builtIn = Compiler.columns[condition.field] {
                column = builtIn.sql
                kind = builtIn.kind
                timestamp = builtIn.kind == .date
            } else if let field = fields[condition.field], (1...SQLiteStore.maximumContactFields).contains(field.slot) {
                // The slot is the store's number, never text from the request.
                column = switch dialect {
                case .sqlite: "c.s\(field.slot)"
                case .postgres: field.kind == .text ? "c.t\(field.slot)" : "c.n\(field.slot)"
                }
                kind = field.kind
                timestamp = false
            } else {
                throw SegmentError(path: path + ".field", message: "\(condition.field) is not a contact field")
            }
            switch condition.op {
            case .exists: return "(\(column) IS NOT NULL)"
            case .missing: return "(\(column) IS NULL)"
            default: break
            }
            if let part = condition.part {
                guard kind == .date else { throw SegmentError(path: path + ".part", message: "applies to date fields only") }
                return try comparison(datePart(column, part, timestamp: timestamp), condition, as: .number, path: path)
            }
            switch condition.op {
            case .withinLastDays, .beforeLastDays:
                guard kind == .date, case .number(let days) = condition.value else {
                    throw SegmentError(path: path + ".op", message: "applies to date fields only")
                }
                let start = now.addingTimeInterval(-days * 86_400)
                let bound = timestamp ? bind(.real(start.timeIntervalSince1970)) : bind(number(CalendarDate(start, in: timeZone).number))
                return condition.op == .withinLastDays ? "(\(column) >= \(bound))" : "(\(column) < \(bound))"
            default:
                return try comparison(column, condition, as: kind, path: path, timestamp: timestamp)
            }
        }

        /// `column` compared with the operand as `kind`; a value of another kind is refused by name.
        mutating func comparison(_ column: String, _ condition: SegmentCondition, as kind: ContactField.Kind, path: String,
                                 timestamp: Bool = false) throws(SegmentError) -> String {
            func operand(_ value: SegmentOperand, path: String) throws(SegmentError) -> SegmentArgument {
                switch (kind, value) {
                case (.number, .number(let value)): return .real(value)
                case (.number, .thisMonth): return number(CalendarDate(now, in: timeZone).month)
                case (.number, .thisYear): return number(CalendarDate(now, in: timeZone).year)
                case (.number, .today):
                    // As a month_day: today's MMDD.
                    let today = CalendarDate(now, in: timeZone)
                    return number(today.month * 100 + today.day)
                // The address is kept lower-cased: compared as such on both engines.
                case (.text, .text(let text)): return .text(column == "c.address" ? text.lowercased() : text)
                case (.boolean, .boolean(let flag)): return number(flag ? 1 : 0)
                case (.date, .text(let text)):
                    guard let date = CalendarDate(parsing: text) else {
                        throw SegmentError(path: path, message: "must be a date YYYY-MM-DD")
                    }
                    if timestamp {
                        var calendar = Calendar(identifier: .gregorian)
                        calendar.timeZone = timeZone
                        let start = calendar.date(from: DateComponents(year: date.year, month: date.month, day: date.day))
                        return .real(start?.timeIntervalSince1970 ?? 0)
                    }
                    return number(date.number)
                case (.date, .today):
                    if timestamp {
                        var calendar = Calendar(identifier: .gregorian)
                        calendar.timeZone = timeZone
                        return .real(calendar.startOfDay(for: now).timeIntervalSince1970)
                    }
                    return number(CalendarDate(now, in: timeZone).number)
                default:
                    throw SegmentError(path: path, message: "must be a \(kind.rawValue) for \(condition.field)")
                }
            }
            let valuePath = path + ".value"
            switch condition.op {
            case .in:
                guard case .values(let values) = condition.value else { throw SegmentError(path: valuePath, message: "must be an array") }
                var placeholders: [String] = []
                for (index, value) in values.enumerated() { placeholders.append(bind(try operand(value, path: "\(valuePath)[\(index)]"))) }
                return "(\(column) IN (\(placeholders.joined(separator: ", "))))"
            case .contains, .startsWith:
                guard kind == .text, case .text(let text) = condition.value else {
                    throw SegmentError(path: path + ".op", message: "\(condition.op.rawValue) applies to text")
                }
                // The address is kept lower-cased: searched as such on both engines.
                let searched = column == "c.address" ? text.lowercased() : text
                let pattern = (condition.op == .contains ? "%" : "") + SegmentQuery.likeEscaped(searched) + "%"
                // SQLite's LIKE ignores the case of ASCII letters; PostgreSQL's ILIKE does the same for them.
                let like = dialect == .sqlite ? "LIKE" : "ILIKE"
                return "(\(column) \(like) \(bind(.text(pattern))) ESCAPE '\\')"
            default:
                let sqlOperator = switch condition.op {
                case .eq: "="
                case .ne: "<>"
                case .lt: "<"
                case .lte: "<="
                case .gt: ">"
                default: ">="
                }
                let value = try operand(condition.value, path: valuePath)
                if kind == .date, timestamp, condition.op == .eq {
                    // A timestamp "equals" a day when it falls on it.
                    return "(\(column) >= \(bind(value)) AND \(column) < \(bind(value)) + 86400)"
                }
                return "(\(column) \(sqlOperator) \(bind(value)))"
            }
        }

        /// A part of a date as a number: a date field's YYYYMMDD by arithmetic, a timestamp in the account's
        /// zone. The column is written once, so its arguments stay in order.
        mutating func datePart(_ column: String, _ part: SegmentCondition.DatePart, timestamp: Bool) -> String {
            switch (dialect, timestamp) {
            case (.sqlite, false):
                switch part {
                case .year: return "(\(column) / 10000)"
                case .month: return "(\(column) / 100 % 100)"
                case .day: return "(\(column) % 100)"
                case .monthDay: return "(\(column) % 10000)"
                }
            case (.postgres, false):
                // The number column holds YYYYMMDD as a double: whole-number arithmetic on it as a bigint,
                // truncated as SQLite's integer division does (a cast alone would round).
                switch part {
                case .year: return "(trunc(\(column))::bigint / 10000)"
                case .month: return "(trunc(\(column))::bigint / 100 % 100)"
                case .day: return "(trunc(\(column))::bigint % 100)"
                case .monthDay: return "(trunc(\(column))::bigint % 10000)"
                }
            case (.sqlite, true):
                let format = switch part {
                case .year: "%Y"
                case .month: "%m"
                case .day: "%d"
                case .monthDay: "%m%d"
                }
                return "CAST(strftime('\(format)', \(column) + \(bind(.integer(Int64(clamping: timeZone.secondsFromGMT(for: now))))), 'unixepoch') AS INTEGER)"
            case (.postgres, true):
                let format = switch part {
                case .year: "YYYY"
                case .month: "MM"
                case .day: "DD"
                case .monthDay: "MMDD"
                }
                let offset = bind(.real(Double(timeZone.secondsFromGMT(for: now))))
                return "CAST(to_char(to_timestamp(\(column) + \(offset)) AT TIME ZONE 'UTC', '\(format)') AS INTEGER)"
            }
        }
    }

    static func likeEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
    }
}

/// A saved segment of an account.
public struct Segment: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var expression: JSONValue
}

/// Saved segments and the counting and listing of a segment's contacts: one
/// capability of the store, with an implementation per engine (`SQLiteStore`,
/// `PostgresStore`), each compiling segments in its own `SegmentDialect`.
public protocol SegmentStore: Sendable {
    /// The query for `expression` in this account, now.
    func segmentQuery(_ expression: SegmentExpression, accountID: Int64, now: Date) throws -> SegmentQuery
    /// How many contacts of the account the segment holds; with `sendable`, only those marketing may reach
    /// (not suppressed for marketing).
    func segmentCount(_ query: SegmentQuery, accountID: Int64, sendable: Bool) throws -> Int
    /// Every contact the segment holds, and those of them marketing may reach, in one pass.
    func segmentCounts(_ query: SegmentQuery, accountID: Int64) throws -> (all: Int, sendable: Int)
    /// The segment's contacts after `afterID`, in id order (a preview, an export).
    func segmentContacts(_ query: SegmentQuery, accountID: Int64, after afterID: Int64, limit: Int) throws -> [Contact]
    /// Saves a new segment, or with `id` changes that one. At most `Segment.maximumPerAccount` per account.
    func saveSegment(name: String, expression: JSONValue, accountID: Int64, id: Int64?) throws -> Segment
    /// By id.
    func segments(accountID: Int64) throws -> [Segment]
    func segment(id: Int64, accountID: Int64) throws -> Segment?
    func deleteSegment(id: Int64, accountID: Int64) throws
}

extension SegmentStore {
    public func segmentCount(_ query: SegmentQuery, accountID: Int64) throws -> Int {
        try segmentCount(query, accountID: accountID, sendable: false)
    }

    public func saveSegment(name: String, expression: JSONValue, accountID: Int64) throws -> Segment {
        try saveSegment(name: name, expression: expression, accountID: accountID, id: nil)
    }
}

extension Segment {
    public static let maximumPerAccount = 500

    /// A stored expression back; one that no longer reads (none is written so) as an empty object.
    static func expression(_ json: String) -> JSONValue {
        (try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))) ?? .object([:])
    }

    static func json(_ expression: JSONValue) throws -> String {
        String(decoding: try JSONEncoder().encode(expression), as: UTF8.self)
    }
}

extension SQLiteStore: SegmentStore {

    public func segmentQuery(_ expression: SegmentExpression, accountID: Int64, now: Date) throws -> SegmentQuery {
        try SegmentQuery(expression, fields: try contactFields(accountID: accountID), accountID: accountID, now: now,
                         timeZone: try timeZone(accountID: accountID))
    }

    public func segmentCount(_ query: SegmentQuery, accountID: Int64, sendable: Bool) throws -> Int {
        try query.check(.sqlite)
        return try database.read { db in
            let suppressed = sendable ? " AND NOT EXISTS (SELECT 1 FROM suppression s WHERE s.account_id = c.account_id AND s.address = c.address "
                + "AND s.scope IN ('all', 'marketing'))" : ""
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM contact c INDEXED BY contact_account WHERE c.account_id = ? AND \(query.condition)\(suppressed)",
                                    arguments: StatementArguments([accountID.databaseValue] + query.databaseValues)) ?? 0
        }
    }

    public func segmentCounts(_ query: SegmentQuery, accountID: Int64) throws -> (all: Int, sendable: Int) {
        try query.check(.sqlite)
        return try database.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS all_count, COALESCE(SUM(NOT EXISTS (SELECT 1 FROM suppression s WHERE s.account_id = c.account_id
                    AND s.address = c.address AND s.scope IN ('all', 'marketing'))), 0) AS sendable
                FROM contact c INDEXED BY contact_account WHERE c.account_id = ? AND \(query.condition)
                """, arguments: StatementArguments([accountID.databaseValue] + query.databaseValues))
            return ((row?["all_count"] as Int?) ?? 0, (row?["sendable"] as Int?) ?? 0)
        }
    }

    public func segmentContacts(_ query: SegmentQuery, accountID: Int64, after afterID: Int64, limit: Int) throws -> [Contact] {
        try query.check(.sqlite)
        return try database.read { db in
            let fields = try SQLiteStore.contactFields(accountID: accountID, db)
            return try Row.fetchAll(db, sql: "SELECT c.* FROM contact c INDEXED BY contact_account WHERE c.account_id = ? AND c.id > ? AND \(query.condition) ORDER BY c.id LIMIT ?",
                                    arguments: StatementArguments([accountID.databaseValue, afterID.databaseValue] + query.databaseValues
                                                                  + [limit.databaseValue])).map { SQLiteStore.contact($0, fields: fields) }
        }
    }

    public func saveSegment(name: String, expression: JSONValue, accountID: Int64, id: Int64?) throws -> Segment {
        let text = try Segment.json(expression)
        return try database.write { db in
            if let id {
                try db.execute(sql: "UPDATE segment SET name = ?, expression = ? WHERE id = ? AND account_id = ?",
                               arguments: [name, text, id, accountID])
                guard db.changesCount > 0 else { throw ContactError.notFound("segment \(id)") }
                return Segment(id: id, name: name, expression: expression)
            }
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM segment WHERE account_id = ?", arguments: [accountID]) ?? 0
            guard count < Segment.maximumPerAccount else { throw ContactError.notFound("room for another segment (at most 500)") }
            try db.execute(sql: "INSERT INTO segment (account_id, name, expression, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [accountID, name, text, Date().timeIntervalSince1970])
            return Segment(id: db.lastInsertedRowID, name: name, expression: expression)
        }
    }

    public func segments(accountID: Int64) throws -> [Segment] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM segment WHERE account_id = ? ORDER BY id", arguments: [accountID]).map(SQLiteStore.segment)
        }
    }

    public func segment(id: Int64, accountID: Int64) throws -> Segment? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM segment WHERE id = ? AND account_id = ?", arguments: [id, accountID]).map(SQLiteStore.segment)
        }
    }

    public func deleteSegment(id: Int64, accountID: Int64) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM segment WHERE id = ? AND account_id = ?", arguments: [id, accountID])
            guard db.changesCount > 0 else { throw ContactError.notFound("segment \(id)") }
        }
    }

    static func segment(_ row: Row) -> Segment {
        Segment(id: row["id"], name: row["name"], expression: Segment.expression(row["expression"]))
    }
}
