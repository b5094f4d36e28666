import Foundation
import GRDB

/// An address an account no longer sends to, and why.
public struct Suppression: Sendable, Codable, Equatable {
    public enum Reason: String, Sendable, Codable, CaseIterable {
        case bounce, complaint, unsubscribe, manual
    }

    /// Which mail it stops: marketing only, or everything.
    public enum Scope: String, Sendable, Codable, CaseIterable {
        case transactional, marketing, all

        /// Whether a message of this kind is stopped by a suppression of this scope.
        public func covers(marketing: Bool) -> Bool {
            switch self {
            case .all: return true
            case .marketing: return marketing
            case .transactional: return !marketing
            }
        }
    }

    public var address: String
    public var reason: Reason
    public var scope: Scope
    public var createdAt: Date
    /// The evidence: the event or message that caused it, or who added it.
    public var source: String?

    public init(address: String, reason: Reason, scope: Scope = .all, createdAt: Date = Date(), source: String? = nil) {
        self.address = address
        self.reason = reason
        self.scope = scope
        self.createdAt = createdAt
        self.source = source
    }
}

/// The suppression list: one capability of the store, with an
/// implementation per engine (`SQLiteStore`, `PostgresStore`). Addresses are
/// kept lower-cased and found whatever their case.
public protocol SuppressionList: Sendable {
    /// Adds or replaces many at once, in one transaction (an import).
    func suppress(_ suppressions: [Suppression], accountID: Int64) throws
    func suppression(accountID: Int64, address: String) throws -> Suppression?
    /// Newest first. `containing`: only addresses with this text in them (a
    /// search box's query, bound, never SQL).
    func suppressions(accountID: Int64, reasons: [Suppression.Reason], since: Date?, until: Date?,
                      containing: String?, offset: Int, limit: Int) throws -> [Suppression]
    /// Throws `AccountStoreError.notFound` when there was none.
    func unsuppress(accountID: Int64, address: String) throws
    /// Every suppression, per account and lower-cased address, for delivery.
    func suppressionsByAccount() throws -> [Int64: [String: Suppression]]
    /// Suppresses as `suppress` does if the account wants suppressions for
    /// this reason (`suppressedReasons`), and never narrows an existing one
    /// (an entry for all mail stays as it is). Returns whether it did.
    @discardableResult
    func suppressAutomatically(_ suppression: Suppression, accountID: Int64) throws -> Bool
}

extension SuppressionList {
    /// Adds or replaces the suppression of `address` for an account.
    public func suppress(_ suppression: Suppression, accountID: Int64) throws {
        try suppress([suppression], accountID: accountID)
    }

    public func suppressions(accountID: Int64, reasons: [Suppression.Reason] = [], since: Date? = nil, until: Date? = nil,
                             containing: String? = nil, offset: Int = 0, limit: Int = 100) throws -> [Suppression] {
        try suppressions(accountID: accountID, reasons: reasons, since: since, until: until, containing: containing,
                         offset: offset, limit: limit)
    }

    /// A LIKE pattern matching addresses that contain `text`, with `\\` as its escape character.
    static func likePattern(containing text: String) -> String {
        "%" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }
}

extension SQLiteStore: SuppressionList {
    @discardableResult
    public func suppressAutomatically(_ suppression: Suppression, accountID: Int64) throws -> Bool {
        guard let account = try account(id: accountID), account.suppressedReasons.contains(suppression.reason) else { return false }
        // The check and the write in one transaction: an entry for all mail is never narrowed.
        return try database.write { db in
            try db.execute(sql: """
                INSERT INTO suppression (account_id, address, reason, scope, created_at, source) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(account_id, address) DO UPDATE SET reason = excluded.reason, scope = excluded.scope,
                    created_at = excluded.created_at, source = excluded.source
                    WHERE suppression.scope <> 'all'
                """, arguments: [accountID, suppression.address.lowercased(), suppression.reason.rawValue, suppression.scope.rawValue,
                                 suppression.createdAt.timeIntervalSince1970, suppression.source])
            return db.changesCount > 0
        }
    }

    public func suppress(_ suppressions: [Suppression], accountID: Int64) throws {
        try database.write { db in
            let statement = try db.cachedStatement(sql: """
                INSERT INTO suppression (account_id, address, reason, scope, created_at, source) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(account_id, address) DO UPDATE SET reason = excluded.reason, scope = excluded.scope,
                    created_at = excluded.created_at, source = excluded.source
                """)
            for suppression in suppressions {
                try statement.execute(arguments: [accountID, suppression.address.lowercased(), suppression.reason.rawValue,
                                                  suppression.scope.rawValue, suppression.createdAt.timeIntervalSince1970, suppression.source])
            }
        }
    }

    public func setSuppressedReasons(_ reasons: Set<Suppression.Reason>, accountID: Int64) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE account SET suppressed_reasons = ? WHERE id = ?",
                           arguments: [AccountNames.column(reasons), accountID])
        }
    }

    public func suppression(accountID: Int64, address: String) throws -> Suppression? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM suppression WHERE account_id = ? AND address = ?",
                             arguments: [accountID, address.lowercased()]).map(SQLiteStore.suppression)
        }
    }

    public func suppressions(accountID: Int64, reasons: [Suppression.Reason], since: Date?, until: Date?,
                             containing: String?, offset: Int, limit: Int) throws -> [Suppression] {
        var sql = "SELECT * FROM suppression WHERE account_id = ?"
        var arguments: [any DatabaseValueConvertible] = [accountID]
        if let containing, !containing.isEmpty {
            sql += " AND address LIKE ? ESCAPE '\\'"
            arguments.append(Self.likePattern(containing: containing))
        }
        if !reasons.isEmpty {
            sql += " AND reason IN (\(reasons.map { _ in "?" }.joined(separator: ", ")))"
            arguments += reasons.map(\.rawValue)
        }
        if let since { sql += " AND created_at >= ?"; arguments.append(since.timeIntervalSince1970) }
        if let until { sql += " AND created_at < ?"; arguments.append(until.timeIntervalSince1970) }
        sql += " ORDER BY created_at DESC, address LIMIT ? OFFSET ?"
        arguments += [limit, offset]
        return try database.read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map(SQLiteStore.suppression)
        }
    }

    public func unsuppress(accountID: Int64, address: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM suppression WHERE account_id = ? AND address = ?", arguments: [accountID, address.lowercased()])
            if db.changesCount == 0 { throw AccountStoreError.notFound(address) }
        }
    }

    public func suppressionsByAccount() throws -> [Int64: [String: Suppression]] {
        try database.read { db in
            var result: [Int64: [String: Suppression]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM suppression") {
                let suppression = SQLiteStore.suppression(row)
                result[row["account_id"], default: [:]][suppression.address.lowercased()] = suppression
            }
            return result
        }
    }

    static func suppression(_ row: Row) -> Suppression {
        Suppression(address: row["address"], reason: Suppression.Reason(rawValue: row["reason"]) ?? .manual,
                    scope: Suppression.Scope(rawValue: row["scope"]) ?? .all,
                    createdAt: Date(timeIntervalSince1970: row["created_at"]), source: row["source"])
    }
}
