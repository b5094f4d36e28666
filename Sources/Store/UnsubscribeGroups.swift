import Foundation
import GRDB

/// An unsubscribe group (SendGrid's "suppression group", a topic): mail
/// sent in a group is not sent to the group's unsubscribed addresses, while
/// other mail still is. An account's suppression list stops everything;
/// a group's list stops only that group's mail.
public struct UnsubscribeGroup: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var description: String
    /// SendGrid's default group: nothing here depends on it, it is kept and shown.
    public var isDefault: Bool
    public var unsubscribes: Int

    public init(id: Int64, name: String, description: String, isDefault: Bool, unsubscribes: Int = 0) {
        self.id = id
        self.name = name
        self.description = description
        self.isDefault = isDefault
        self.unsubscribes = unsubscribes
    }
}

public enum UnsubscribeGroupError: Error, Equatable {
    case notFound(Int64)
    case tooMany
}

/// Unsubscribe groups and who left them: one capability of the store, with
/// an implementation per engine (`SQLiteStore`, `PostgresStore`).
public protocol UnsubscribeGroupStore: Sendable {
    /// At most `UnsubscribeGroup.maximumPerAccount` per account; a new default one replaces the old default.
    func createUnsubscribeGroup(accountID: Int64, name: String, description: String, isDefault: Bool) throws -> UnsubscribeGroup
    func unsubscribeGroups(accountID: Int64) throws -> [UnsubscribeGroup]
    /// A group of this account (another account's is not found).
    func unsubscribeGroup(accountID: Int64, id: Int64) throws -> UnsubscribeGroup?
    /// Changes what is given (nil: kept).
    func updateUnsubscribeGroup(accountID: Int64, id: Int64, name: String?, description: String?, isDefault: Bool?) throws
    func deleteUnsubscribeGroup(accountID: Int64, id: Int64) throws
    /// Adds addresses (lower-cased) to a group of the account.
    func unsubscribe(_ addresses: [String], fromGroup id: Int64, accountID: Int64, source: String?) throws
    func resubscribe(_ address: String, toGroup id: Int64, accountID: Int64) throws
    /// The group's unsubscribed addresses, in order.
    func groupUnsubscribes(accountID: Int64, group id: Int64, limit: Int) throws -> [String]
    /// Every group an address has left, of this account.
    func groupsUnsubscribed(accountID: Int64, address: String) throws -> Set<Int64>
    /// Every group's unsubscribed addresses (lower-cased), for delivery.
    func groupUnsubscribesByGroup() throws -> [Int64: Set<String>]
    /// What a recipient chose on the preference page, saved in one transaction: the groups of the account
    /// in `staying` are rejoined, the others left; `leaveAll` (or no group ticked) also stops all marketing
    /// mail. Only a suppression the recipient made (one-click or this page, scope marketing) is ever lifted,
    /// never a bounce, a complaint, or one the sender added. Returns whether anything was left, and whether
    /// anything changed at all.
    func saveTopicPreferences(accountID: Int64, address: String, staying: Set<Int64>, leaveAll requested: Bool,
                              source: String, now: Date) throws -> (left: Bool, changed: Bool)
}

extension UnsubscribeGroupStore {
    public func groupUnsubscribes(accountID: Int64, group id: Int64, limit: Int = 100_000) throws -> [String] {
        try groupUnsubscribes(accountID: accountID, group: id, limit: limit)
    }

    public func saveTopicPreferences(accountID: Int64, address: String, staying: Set<Int64>, leaveAll requested: Bool,
                                     source: String, now: Date = Date()) throws -> (left: Bool, changed: Bool) {
        try saveTopicPreferences(accountID: accountID, address: address, staying: staying, leaveAll: requested, source: source, now: now)
    }
}

extension UnsubscribeGroup {
    /// SendGrid's limit of groups per account.
    public static let maximumPerAccount = 200
}

extension SQLiteStore: UnsubscribeGroupStore {

    static func registerUnsubscribeGroupMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v11-unsubscribe-groups") { db in
            try db.execute(sql: """
                CREATE TABLE unsubscribe_group (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    description TEXT NOT NULL DEFAULT '',
                    is_default INTEGER NOT NULL DEFAULT 0,
                    created_at REAL NOT NULL
                );
                CREATE INDEX unsubscribe_group_account ON unsubscribe_group(account_id);
                CREATE TABLE group_unsubscribe (
                    group_id INTEGER NOT NULL REFERENCES unsubscribe_group(id) ON DELETE CASCADE,
                    address TEXT NOT NULL COLLATE NOCASE,
                    created_at REAL NOT NULL,
                    source TEXT,
                    PRIMARY KEY (group_id, address)
                ) WITHOUT ROWID;
                """)
        }
    }

    public func createUnsubscribeGroup(accountID: Int64, name: String, description: String, isDefault: Bool) throws -> UnsubscribeGroup {
        try database.write { db in
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM unsubscribe_group WHERE account_id = ?", arguments: [accountID]) ?? 0
            guard count < UnsubscribeGroup.maximumPerAccount else { throw UnsubscribeGroupError.tooMany }
            if isDefault { try db.execute(sql: "UPDATE unsubscribe_group SET is_default = 0 WHERE account_id = ?", arguments: [accountID]) }
            try db.execute(sql: """
                INSERT INTO unsubscribe_group (account_id, name, description, is_default, created_at) VALUES (?, ?, ?, ?, ?)
                """, arguments: [accountID, name, description, isDefault, Date().timeIntervalSince1970])
            return UnsubscribeGroup(id: db.lastInsertedRowID, name: name, description: description, isDefault: isDefault)
        }
    }

    public func unsubscribeGroups(accountID: Int64) throws -> [UnsubscribeGroup] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT g.*, (SELECT COUNT(*) FROM group_unsubscribe u WHERE u.group_id = g.id) AS unsubscribes
                FROM unsubscribe_group g WHERE g.account_id = ? ORDER BY g.id
                """, arguments: [accountID]).map(SQLiteStore.group)
        }
    }

    public func unsubscribeGroup(accountID: Int64, id: Int64) throws -> UnsubscribeGroup? {
        try database.read { db in
            try Row.fetchOne(db, sql: """
                SELECT g.*, (SELECT COUNT(*) FROM group_unsubscribe u WHERE u.group_id = g.id) AS unsubscribes
                FROM unsubscribe_group g WHERE g.account_id = ? AND g.id = ?
                """, arguments: [accountID, id]).map(SQLiteStore.group)
        }
    }

    public func updateUnsubscribeGroup(accountID: Int64, id: Int64, name: String?, description: String?, isDefault: Bool?) throws {
        try database.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM unsubscribe_group WHERE account_id = ? AND id = ?",
                                    arguments: [accountID, id]) != nil else { throw UnsubscribeGroupError.notFound(id) }
            if isDefault == true { try db.execute(sql: "UPDATE unsubscribe_group SET is_default = 0 WHERE account_id = ?", arguments: [accountID]) }
            try db.execute(sql: """
                UPDATE unsubscribe_group SET name = COALESCE(?, name), description = COALESCE(?, description),
                    is_default = COALESCE(?, is_default) WHERE account_id = ? AND id = ?
                """, arguments: [name, description, isDefault, accountID, id])
        }
    }

    public func deleteUnsubscribeGroup(accountID: Int64, id: Int64) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM unsubscribe_group WHERE account_id = ? AND id = ?", arguments: [accountID, id])
            if db.changesCount == 0 { throw UnsubscribeGroupError.notFound(id) }
        }
    }

    public func unsubscribe(_ addresses: [String], fromGroup id: Int64, accountID: Int64, source: String?) throws {
        try database.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM unsubscribe_group WHERE account_id = ? AND id = ?",
                                    arguments: [accountID, id]) != nil else { throw UnsubscribeGroupError.notFound(id) }
            let statement = try db.cachedStatement(sql: """
                INSERT INTO group_unsubscribe (group_id, address, created_at, source) VALUES (?, ?, ?, ?)
                ON CONFLICT(group_id, address) DO NOTHING
                """)
            let now = Date().timeIntervalSince1970
            for address in addresses { try statement.execute(arguments: [id, address.lowercased(), now, source]) }
        }
    }

    public func resubscribe(_ address: String, toGroup id: Int64, accountID: Int64) throws {
        try database.write { db in
            try db.execute(sql: """
                DELETE FROM group_unsubscribe WHERE address = ? AND group_id IN (SELECT id FROM unsubscribe_group WHERE account_id = ? AND id = ?)
                """, arguments: [address.lowercased(), accountID, id])
            if db.changesCount == 0 { throw UnsubscribeGroupError.notFound(id) }
        }
    }

    public func groupUnsubscribes(accountID: Int64, group id: Int64, limit: Int) throws -> [String] {
        try database.read { db in
            try String.fetchAll(db, sql: """
                SELECT u.address FROM group_unsubscribe u JOIN unsubscribe_group g ON g.id = u.group_id
                WHERE g.account_id = ? AND g.id = ? ORDER BY u.address LIMIT ?
                """, arguments: [accountID, id, limit])
        }
    }

    public func groupsUnsubscribed(accountID: Int64, address: String) throws -> Set<Int64> {
        try database.read { db in
            Set(try Int64.fetchAll(db, sql: """
                SELECT u.group_id FROM group_unsubscribe u JOIN unsubscribe_group g ON g.id = u.group_id
                WHERE g.account_id = ? AND u.address = ?
                """, arguments: [accountID, address.lowercased()]))
        }
    }

    public func groupUnsubscribesByGroup() throws -> [Int64: Set<String>] {
        try database.read { db in
            var result: [Int64: Set<String>] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT group_id, address FROM group_unsubscribe") {
                result[row["group_id"], default: []].insert((row["address"] as String).lowercased())
            }
            return result
        }
    }

    public func saveTopicPreferences(accountID: Int64, address: String, staying: Set<Int64>, leaveAll requested: Bool,
                                     source: String, now: Date) throws -> (left: Bool, changed: Bool) {
        try database.write { db in
            let address = address.lowercased()
            let groups = try Int64.fetchAll(db, sql: "SELECT id FROM unsubscribe_group WHERE account_id = ?", arguments: [accountID])
            let leaveAll = requested || (!groups.isEmpty && staying.isDisjoint(with: groups))
            var left = false
            var changed = false
            for group in groups {
                if staying.contains(group) && !leaveAll {
                    try db.execute(sql: "DELETE FROM group_unsubscribe WHERE group_id = ? AND address = ?", arguments: [group, address])
                    changed = changed || db.changesCount > 0
                } else {
                    try db.execute(sql: """
                        INSERT INTO group_unsubscribe (group_id, address, created_at, source) VALUES (?, ?, ?, ?)
                        ON CONFLICT(group_id, address) DO NOTHING
                        """, arguments: [group, address, now.timeIntervalSince1970, source])
                    left = left || db.changesCount > 0
                }
            }
            if leaveAll {
                // A suppression already there stays as it is, widened to everything if it covered transactional mail only.
                try db.execute(sql: """
                    INSERT INTO suppression (account_id, address, reason, scope, created_at, source) VALUES (?, ?, 'unsubscribe', 'marketing', ?, ?)
                    ON CONFLICT(account_id, address) DO UPDATE SET scope = 'all' WHERE suppression.scope = 'transactional'
                    """, arguments: [accountID, address, now.timeIntervalSince1970, source])
                left = left || db.changesCount > 0
            } else {
                try db.execute(sql: """
                    DELETE FROM suppression WHERE account_id = ? AND address = ? AND reason = 'unsubscribe' AND scope = 'marketing'
                        AND (source LIKE 'preference page%' OR source LIKE '% unsubscribe from message %')
                    """, arguments: [accountID, address])
                changed = changed || db.changesCount > 0
            }
            return (left, changed || left)
        }
    }

    static func group(_ row: Row) -> UnsubscribeGroup {
        UnsubscribeGroup(id: row["id"], name: row["name"], description: row["description"], isDefault: row["is_default"],
                         unsubscribes: row["unsubscribes"] ?? 0)
    }
}
