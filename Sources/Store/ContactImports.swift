import Foundation
import GRDB

/// A CSV import of contacts as it runs and once it ended.
///
/// Rows are staged as they are read (in short transactions, so a large file
/// never sits in memory and never holds the writer for long), then applied
/// in one transaction at the end. An import that fails or is interrupted
/// part-way (a bad upload, a restart) applies nothing: its staged rows are
/// dropped and it is reported `failed`; run it again.
public struct ContactImport: Sendable, Equatable {
    public enum State: String, Sendable {
        case running, applying, done, failed
    }

    public struct RowError: Sendable, Equatable, Codable {
        /// The line the record starts on (1 is the header row).
        public var line: Int
        public var message: String

        public init(line: Int, message: String) {
            self.line = line
            self.message = message
        }
    }

    public var id: Int64
    public var state: State
    public var rowsRead: Int
    public var rowsValid: Int
    public var rowsInvalid: Int
    /// Contacts created or changed, once applied.
    public var applied: Int
    public var errors: [RowError]
    public var startedAt: Date
    public var finishedAt: Date?
}

/// CSV imports of contacts, staged and applied: one capability of the store,
/// with an implementation per engine (`SQLiteStore`, `PostgresStore`).
public protocol ContactImportStore: Sendable {
    /// Starts an import, unless one of the account's is running or `maximumRunning` are in all: the count
    /// and the new row in one transaction, so that uploads made at once cannot all pass.
    func beginContactImport(accountID: Int64, listID: Int64?, maximumRunning: Int) throws -> Int64
    /// Stages a chunk of good rows (address, and a value or NULL for each of `slots`) and the errors found
    /// since the last chunk, `invalid` of them rows left out (others are about the header).
    func stageContactRows(importID: Int64, slots: [Int], rows: [(address: String, values: [ContactValue?])],
                          errors: [ContactImport.RowError], invalid: Int, rowsRead: Int) throws
    /// Applies every staged row in one transaction (a later row of the same address wins: its values over
    /// the earlier's, an empty cell keeping what was there), adds them to the import's list if it has one,
    /// and drops the staging. Returns the import as it ended.
    func finishContactImport(importID: Int64, accountID: Int64) throws -> ContactImport
    /// Ends an import without applying anything; `reason` is added to its errors.
    func failContactImport(importID: Int64, reason: String, line: Int) throws
    /// Imports left running by this node's process when it stopped: failed, nothing applied. Run once at start.
    func abandonUnfinishedContactImports() throws -> Int
    /// One import; another account's is nil, any account's with nil.
    func contactImport(id: Int64, accountID: Int64?) throws -> ContactImport?
    /// Newest first.
    func contactImports(accountID: Int64, limit: Int) throws -> [ContactImport]
}

extension ContactImportStore {
    public func beginContactImport(accountID: Int64, listID: Int64?) throws -> Int64 {
        try beginContactImport(accountID: accountID, listID: listID, maximumRunning: .max)
    }

    public func contactImport(id: Int64) throws -> ContactImport? { try contactImport(id: id, accountID: nil) }

    public func contactImports(accountID: Int64) throws -> [ContactImport] { try contactImports(accountID: accountID, limit: 50) }
}

extension ContactImport {
    /// Errors kept with an import; more are counted, not listed.
    public static let maximumErrors = 1000

    /// What a restart tells of an import it interrupted.
    static let interrupted = RowError(line: 0, message: "interrupted by a restart; nothing was applied")

    /// `stored` with `added` after it, up to `maximumErrors`.
    static func errors(_ stored: String?, adding added: [RowError]) throws -> String {
        var list = stored.flatMap { try? JSONDecoder().decode([RowError].self, from: Data($0.utf8)) } ?? []
        list += added.prefix(max(0, maximumErrors - list.count))
        return String(decoding: try JSONEncoder().encode(list), as: UTF8.self)
    }

    /// `stored` with the message that ends an import after it, even past `maximumErrors`: the reason it
    /// failed is always told.
    static func errors(_ stored: String?, ending: RowError) throws -> String {
        let list = (stored.flatMap { try? JSONDecoder().decode([RowError].self, from: Data($0.utf8)) } ?? []) + [ending]
        return String(decoding: try JSONEncoder().encode(list), as: UTF8.self)
    }

    static func errors(_ stored: String?) -> [RowError] {
        stored.flatMap { try? JSONDecoder().decode([RowError].self, from: Data($0.utf8)) } ?? []
    }
}

extension SQLiteStore: ContactImportStore {
    public func beginContactImport(accountID: Int64, listID: Int64?, maximumRunning: Int) throws -> Int64 {
        try database.write { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS total, COALESCE(SUM(account_id = ?), 0) AS mine FROM contact_import WHERE state IN ('running', 'applying')
                """, arguments: [accountID])
            let mine: Int = row?["mine"] ?? 0
            let total: Int = row?["total"] ?? 0
            guard mine == 0 else { throw ContactError.importRunning(thisAccount: true) }
            guard total < maximumRunning else { throw ContactError.importRunning(thisAccount: false) }
            if let listID, try Bool.fetchOne(db, sql: "SELECT 1 FROM contact_list WHERE id = ? AND account_id = ?",
                                             arguments: [listID, accountID]) == nil {
                throw ContactError.notFound("list \(listID)")
            }
            try db.execute(sql: "INSERT INTO contact_import (account_id, state, list_id, started_at) VALUES (?, 'running', ?, ?)",
                           arguments: [accountID, listID, Date().timeIntervalSince1970])
            return db.lastInsertedRowID
        }
    }

    public func stageContactRows(importID: Int64, slots: [Int], rows: [(address: String, values: [ContactValue?])],
                                 errors: [ContactImport.RowError], invalid: Int, rowsRead: Int) throws {
        try database.write { db in
            // An import failed meanwhile (a restart's clean-up) takes nothing more.
            guard try String.fetchOne(db, sql: "SELECT state FROM contact_import WHERE id = ?", arguments: [importID]) == "running" else {
                throw ContactError.notFound("running import \(importID)")
            }
            let columns = (["import_id", "address"] + slots.map { "s\($0)" }).joined(separator: ", ")
            // Made per chunk, not cached: its text follows the file's header, and the cache would keep every one.
            let insert = try db.makeStatement(sql: "INSERT INTO contact_import_row (\(columns)) VALUES ("
                                                + Array(repeating: "?", count: 2 + slots.count).joined(separator: ", ") + ")")
            let rows = rows.filter { $0.values.count == slots.count }
            for row in rows {
                try insert.execute(arguments: StatementArguments([importID.databaseValue, row.address.lowercased().databaseValue]
                                                                 + row.values.map { $0?.databaseValue ?? .null }))
            }
            if !errors.isEmpty {
                let stored = try String.fetchOne(db, sql: "SELECT errors FROM contact_import WHERE id = ?", arguments: [importID])
                try db.execute(sql: "UPDATE contact_import SET errors = ? WHERE id = ?",
                               arguments: [try ContactImport.errors(stored, adding: errors), importID])
            }
            try db.execute(sql: """
                UPDATE contact_import SET rows_read = ?, rows_valid = rows_valid + ?, rows_invalid = rows_invalid + ? WHERE id = ?
                """, arguments: [rowsRead, rows.count, invalid, importID])
        }
    }

    public func finishContactImport(importID: Int64, accountID: Int64) throws -> ContactImport {
        try database.write { db in
            try db.execute(sql: "UPDATE contact_import SET state = 'applying' WHERE id = ? AND state = 'running'", arguments: [importID])
            guard db.changesCount > 0 else { throw ContactError.notFound("running import \(importID)") }
            let now = Date().timeIntervalSince1970
            // An empty cell (NULL) keeps the value the contact had.
            let slots = try SQLiteStore.contactFields(accountID: accountID, db).map { "s\($0.slot)" }
            let updates = (["updated_at = excluded.updated_at"] + slots.map { "\($0) = COALESCE(excluded.\($0), contact.\($0))" })
                .joined(separator: ", ")
            let extra = slots.map { ", " + $0 }.joined()
            try db.execute(sql: """
                INSERT INTO contact (account_id, address, created_at, updated_at\(extra))
                SELECT ?, address, ?, ?\(extra) FROM contact_import_row WHERE import_id = ? ORDER BY rowid
                ON CONFLICT(account_id, address) DO UPDATE SET \(updates)
                """, arguments: [accountID, now, now, importID])
            let applied = try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT address) FROM contact_import_row WHERE import_id = ?",
                                           arguments: [importID]) ?? 0
            if let listID = try Int64.fetchOne(db, sql: "SELECT list_id FROM contact_import WHERE id = ?", arguments: [importID]) {
                try db.execute(sql: """
                    INSERT OR IGNORE INTO contact_list_member (list_id, contact_id)
                    SELECT ?, c.id FROM contact_import_row r JOIN contact c ON c.account_id = ? AND c.address = r.address
                    WHERE r.import_id = ?
                    """, arguments: [listID, accountID, importID])
            }
            try db.execute(sql: "DELETE FROM contact_import_row WHERE import_id = ?", arguments: [importID])
            try db.execute(sql: "UPDATE contact_import SET state = 'done', applied = ?, finished_at = ? WHERE id = ?",
                           arguments: [applied, now, importID])
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM contact_import WHERE id = ?", arguments: [importID]) else {
                throw ContactError.notFound("import \(importID)")
            }
            return SQLiteStore.contactImport(row)
        }
    }

    public func failContactImport(importID: Int64, reason: String, line: Int) throws {
        try database.write { db in
            // Only an import still under way: one applied a moment ago stays done.
            guard let stored = try String.fetchOne(db, sql: """
                SELECT errors FROM contact_import WHERE id = ? AND state IN ('running', 'applying')
                """, arguments: [importID]) else { return }
            try db.execute(sql: "DELETE FROM contact_import_row WHERE import_id = ?", arguments: [importID])
            try db.execute(sql: "UPDATE contact_import SET state = 'failed', finished_at = ?, errors = ? WHERE id = ?",
                           arguments: [Date().timeIntervalSince1970,
                                       try ContactImport.errors(stored, ending: ContactImport.RowError(line: line, message: reason)), importID])
        }
    }

    public func abandonUnfinishedContactImports() throws -> Int {
        try database.write { db in
            let ids = try Int64.fetchAll(db, sql: "SELECT id FROM contact_import WHERE state IN ('running', 'applying')")
            for id in ids {
                try db.execute(sql: "DELETE FROM contact_import_row WHERE import_id = ?", arguments: [id])
                try db.execute(sql: """
                    UPDATE contact_import SET state = 'failed', finished_at = ?,
                        errors = json_insert(errors, '$[#]', json_object('line', 0, 'message', 'interrupted by a restart; nothing was applied'))
                    WHERE id = ?
                    """, arguments: [Date().timeIntervalSince1970, id])
            }
            return ids.count
        }
    }

    public func contactImport(id: Int64, accountID: Int64?) throws -> ContactImport? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM contact_import WHERE id = ? AND (? IS NULL OR account_id = ?)",
                             arguments: [id, accountID, accountID]).map(SQLiteStore.contactImport)
        }
    }

    public func contactImports(accountID: Int64, limit: Int) throws -> [ContactImport] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM contact_import WHERE account_id = ? ORDER BY id DESC LIMIT ?",
                             arguments: [accountID, limit]).map(SQLiteStore.contactImport)
        }
    }

    static func contactImport(_ row: Row) -> ContactImport {
        let errors = ContactImport.errors(row["errors"])
        return ContactImport(id: row["id"], state: ContactImport.State(rawValue: row["state"]) ?? .failed, rowsRead: row["rows_read"],
                             rowsValid: row["rows_valid"], rowsInvalid: row["rows_invalid"], applied: row["applied"], errors: errors,
                             startedAt: Date(timeIntervalSince1970: row["started_at"]),
                             finishedAt: (row["finished_at"] as Double?).map(Date.init(timeIntervalSince1970:)))
    }
}
