import Crypto
import Foundation
import GRDB

/// What a console user may do. An operator sees every account and the
/// server; an account admin changes one account; a member reads it and sends tests.
public enum ConsoleRole: String, Sendable, Codable, CaseIterable {
    case `operator`
    case admin
    case member

    /// The API scope the same person would need: the console does what such a key could.
    public var scope: APIKeyScope {
        switch self {
        case .operator: return .operator
        case .admin: return .admin
        case .member: return .read
        }
    }
}

/// A person who logs in to the console; never the password itself.
public struct ConsoleUser: Sendable, Codable, Equatable {
    public var id: Int64
    /// Lower-cased; the login name.
    public var email: String
    public var role: ConsoleRole
    /// The account an admin or member belongs to; nil for an operator.
    public var accountID: Int64?
    public var disabled: Bool
    public var createdAt: Date
}

/// Returned once, at creation.
public struct NewConsoleUser: Sendable, Codable {
    public var user: ConsoleUser
    public var password: String
}

/// A logged-in browser. The cookie carries `token`; only its hash is stored,
/// so a copy of the database opens no session.
public struct ConsoleSession: Sendable, Equatable {
    public var user: ConsoleUser
    /// Sent with every state-changing form (the synchroniser-token pattern).
    public var csrfToken: String
    public var createdAt: Date
    public var lastSeenAt: Date
}

public enum ConsoleUserError: Error, Equatable, CustomStringConvertible {
    case invalidEmail(String)
    case duplicateEmail(String)
    case accountRequired
    case operatorHasNoAccount
    case weakPassword

    public var description: String {
        switch self {
        case .invalidEmail(let email): return "not an email address: \(email)"
        case .duplicateEmail(let email): return "a user \(email) already exists"
        case .accountRequired: return "an admin or member belongs to an account (--account)"
        case .operatorHasNoAccount: return "an operator sees every account: give no account"
        case .weakPassword: return "a password needs at least 12 characters"
        }
    }
}

extension SQLiteStore {
    static func registerConsoleMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v9-console") { db in
            // ConsoleUsers.swift: console users and their sessions; SMTPCredentials.swift: extra SMTP
            // credentials (a rotation keeps two valid until the old one is revoked).
            try db.execute(sql: """
                CREATE TABLE console_user (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    email TEXT NOT NULL UNIQUE,
                    role TEXT NOT NULL,
                    account_id INTEGER REFERENCES account(id) ON DELETE CASCADE,
                    password_hash TEXT NOT NULL,
                    disabled INTEGER NOT NULL DEFAULT 0,
                    created_at REAL NOT NULL
                );
                CREATE TABLE console_session (
                    token_hash BLOB PRIMARY KEY NOT NULL,
                    user_id INTEGER NOT NULL REFERENCES console_user(id) ON DELETE CASCADE,
                    csrf_token TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    last_seen_at REAL NOT NULL
                );
                CREATE INDEX console_session_user ON console_session(user_id);
                CREATE TABLE smtp_credential (
                    username TEXT PRIMARY KEY NOT NULL,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    password_hash TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    revoked_at REAL
                );
                ALTER TABLE account ADD COLUMN smtp_password_revoked_at REAL;
                ALTER TABLE api_key ADD COLUMN name TEXT;
                ALTER TABLE console_user ADD COLUMN totp_secret BLOB;
                ALTER TABLE console_user ADD COLUMN totp_pending BLOB;
                ALTER TABLE console_user ADD COLUMN totp_last_step INTEGER;
                """)
        }
    }

    /// Creates a console user with a generated first password, returned here only.
    public func createConsoleUser(email: String, role: ConsoleRole, accountID: Int64?) throws -> NewConsoleUser {
        let email = email.lowercased().trimmingCharacters(in: .whitespaces)
        guard email.count <= 254, let at = email.firstIndex(of: "@"), at != email.startIndex, email.index(after: at) != email.endIndex,
              !email.contains(where: { $0.isWhitespace || $0.isNewline }) else { throw ConsoleUserError.invalidEmail(email) }
        switch (role, accountID) {
        case (.operator, .some): throw ConsoleUserError.operatorHasNoAccount
        case (.admin, nil), (.member, nil): throw ConsoleUserError.accountRequired
        default: break
        }
        let password = CredentialGenerator.password()
        let hash = try PasswordHash.make(password, parameters: hashParameters)
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded())
        let id = try database.write { db -> Int64 in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM console_user WHERE email = ?", arguments: [email]) != nil {
                throw ConsoleUserError.duplicateEmail(email)
            }
            try db.execute(sql: "INSERT INTO console_user (email, role, account_id, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [email, role.rawValue, accountID, hash, now.timeIntervalSince1970])
            return db.lastInsertedRowID
        }
        return NewConsoleUser(user: ConsoleUser(id: id, email: email, role: role, accountID: accountID, disabled: false, createdAt: now),
                              password: password)
    }

    public func consoleUsers(accountID: Int64? = nil) throws -> [ConsoleUser] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM console_user WHERE ? IS NULL OR account_id = ? ORDER BY email",
                             arguments: [accountID, accountID]).map(SQLiteStore.consoleUser)
        }
    }

    public func consoleUser(id: Int64) throws -> ConsoleUser? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM console_user WHERE id = ?", arguments: [id]).map(SQLiteStore.consoleUser)
        }
    }

    /// The enabled user (of an enabled account) with this email and password, or nil.
    /// An unknown email costs the same scrypt as a wrong password.
    public func authenticateConsoleUser(email: String, password: String) throws -> ConsoleUser? {
        let row = try database.read { db in
            try Row.fetchOne(db, sql: """
                SELECT u.* FROM console_user u LEFT JOIN account a ON a.id = u.account_id
                WHERE u.email = ? AND u.disabled = 0 AND (u.account_id IS NULL OR a.disabled = 0)
                """, arguments: [email.lowercased()])
        }
        let matches = PasswordHash.verify(password, against: row?["password_hash"] ?? decoyHash)
        guard let row, matches else { return nil }
        return try SQLiteStore.consoleUser(row)
    }

    /// Sets a new password (at least 12 characters) and ends every session of the user.
    public func setConsolePassword(userID: Int64, password: String) throws {
        guard password.count >= 12 else { throw ConsoleUserError.weakPassword }
        let hash = try PasswordHash.make(password, parameters: hashParameters)
        try database.write { db in
            try db.execute(sql: "UPDATE console_user SET password_hash = ? WHERE id = ?", arguments: [hash, userID])
            if db.changesCount == 0 { throw AccountStoreError.notFound("user \(userID)") }
            try db.execute(sql: "DELETE FROM console_session WHERE user_id = ?", arguments: [userID])
        }
    }

    public func setConsoleUserDisabled(_ disabled: Bool, userID: Int64) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE console_user SET disabled = ? WHERE id = ?", arguments: [disabled, userID])
            if db.changesCount == 0 { throw AccountStoreError.notFound("user \(userID)") }
            if disabled { try db.execute(sql: "DELETE FROM console_session WHERE user_id = ?", arguments: [userID]) }
        }
    }

    public func deleteConsoleUser(id: Int64) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM console_user WHERE id = ?", arguments: [id])
            if db.changesCount == 0 { throw AccountStoreError.notFound("user \(id)") }
        }
    }

    // MARK: Sessions

    /// A new session for `user`: the cookie value, returned only here.
    public func openConsoleSession(userID: Int64, now: Date = Date()) throws -> String {
        let token = CredentialGenerator.random(43, from: CredentialGenerator.mixedAlphabet)
        let csrf = CredentialGenerator.random(32, from: CredentialGenerator.mixedAlphabet)
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO console_session (token_hash, user_id, csrf_token, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)
                """, arguments: [SQLiteStore.sessionHash(token), userID, csrf, now.timeIntervalSince1970, now.timeIntervalSince1970])
        }
        return token
    }

    /// The live session for a cookie value, its last use moved to `now`; nil
    /// (and the row gone) when it has been idle longer than `idle` or lived
    /// longer than `absolute`, or its user or account was disabled.
    public func consoleSession(token: String, idle: TimeInterval, absolute: TimeInterval, now: Date = Date()) throws -> ConsoleSession? {
        guard (16...128).contains(token.utf8.count) else { return nil }
        let hash = SQLiteStore.sessionHash(token)
        // A read on every page view; a write only when the session ends or its last use is a minute old,
        // so that concurrent page views do not queue for the one writer.
        guard let row = try database.read({ db in
            try Row.fetchOne(db, sql: """
                SELECT s.csrf_token, s.created_at AS s_created, s.last_seen_at, u.* FROM console_session s
                JOIN console_user u ON u.id = s.user_id LEFT JOIN account a ON a.id = u.account_id
                WHERE s.token_hash = ? AND u.disabled = 0 AND (u.account_id IS NULL OR a.disabled = 0)
                """, arguments: [hash])
        }) else { return nil }
        let created = Date(timeIntervalSince1970: row["s_created"])
        let lastSeen = Date(timeIntervalSince1970: row["last_seen_at"])
        guard now.timeIntervalSince(lastSeen) <= idle, now.timeIntervalSince(created) <= absolute else {
            try database.write { db in try db.execute(sql: "DELETE FROM console_session WHERE token_hash = ?", arguments: [hash]) }
            return nil
        }
        if now.timeIntervalSince(lastSeen) > 60 {
            try database.write { db in
                try db.execute(sql: "UPDATE console_session SET last_seen_at = ? WHERE token_hash = ?",
                               arguments: [now.timeIntervalSince1970, hash])
            }
        }
        return ConsoleSession(user: try SQLiteStore.consoleUser(row), csrfToken: row["csrf_token"], createdAt: created, lastSeenAt: now)
    }

    public func closeConsoleSession(token: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM console_session WHERE token_hash = ?", arguments: [SQLiteStore.sessionHash(token)])
        }
    }

    /// Logs a user out everywhere; returns how many sessions ended.
    @discardableResult
    public func closeConsoleSessions(userID: Int64) throws -> Int {
        try database.write { db in
            try db.execute(sql: "DELETE FROM console_session WHERE user_id = ?", arguments: [userID])
            return db.changesCount
        }
    }

    static func sessionHash(_ token: String) -> Data { Data(SHA256.hash(data: Data(token.utf8))) }

    static func consoleUser(_ row: Row) throws -> ConsoleUser {
        ConsoleUser(id: row["id"], email: row["email"], role: ConsoleRole(rawValue: row["role"]) ?? .member, accountID: row["account_id"],
                    disabled: row["disabled"], createdAt: Date(timeIntervalSince1970: row["created_at"]))
    }
}
