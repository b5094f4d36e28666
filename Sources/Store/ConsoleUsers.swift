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

/// Console users, their sessions and second factors: one capability of the
/// store, with an implementation per engine (`SQLiteStore`, `PostgresStore`).
public protocol ConsoleUserStore: Sendable {
    /// Creates a console user with a generated first password, returned here only.
    func createConsoleUser(email: String, role: ConsoleRole, accountID: Int64?) throws -> NewConsoleUser
    /// By email; every account's when `accountID` is nil.
    func consoleUsers(accountID: Int64?) throws -> [ConsoleUser]
    func consoleUser(id: Int64) throws -> ConsoleUser?
    /// The enabled user (of an enabled account) with this email and password, or nil.
    /// An unknown email costs the same scrypt as a wrong password.
    func authenticateConsoleUser(email: String, password: String) throws -> ConsoleUser?
    /// Sets a new password (at least 12 characters) and ends every session of the user.
    func setConsolePassword(userID: Int64, password: String) throws
    /// Disabling also ends the user's sessions.
    func setConsoleUserDisabled(_ disabled: Bool, userID: Int64) throws
    func deleteConsoleUser(id: Int64) throws
    /// A new session for `user`: the cookie value, returned only here.
    func openConsoleSession(userID: Int64, now: Date) throws -> String
    /// The live session for a cookie value, its last use moved to `now`; nil
    /// (and the row gone) when it has been idle longer than `idle` or lived
    /// longer than `absolute`, or its user or account was disabled.
    func consoleSession(token: String, idle: TimeInterval, absolute: TimeInterval, now: Date) throws -> ConsoleSession?
    func closeConsoleSession(token: String) throws
    /// Logs a user out everywhere; returns how many sessions ended.
    @discardableResult
    func closeConsoleSessions(userID: Int64) throws -> Int
    /// Starts (or restarts) setting up a second factor: a new secret, kept
    /// sealed and pending until a code from it is confirmed.
    func beginTOTP(userID: Int64, issuer: String) throws -> TOTPEnrollment
    /// Turns the pending secret on if `code` is from it; false otherwise.
    func confirmTOTP(userID: Int64, code: String, now: Date) throws -> Bool
    func disableTOTP(userID: Int64) throws
    func hasTOTP(userID: Int64) throws -> Bool
    /// Whether `code` is this user's current one and was not used before (a user without a second factor passes).
    func checkTOTP(userID: Int64, code: String?, now: Date) throws -> Bool
}

extension ConsoleUserStore {
    public func consoleUsers() throws -> [ConsoleUser] { try consoleUsers(accountID: nil) }

    public func openConsoleSession(userID: Int64) throws -> String { try openConsoleSession(userID: userID, now: Date()) }

    public func consoleSession(token: String, idle: TimeInterval, absolute: TimeInterval) throws -> ConsoleSession? {
        try consoleSession(token: token, idle: idle, absolute: absolute, now: Date())
    }

    public func beginTOTP(userID: Int64) throws -> TOTPEnrollment { try beginTOTP(userID: userID, issuer: "Hikyaku") }

    public func confirmTOTP(userID: Int64, code: String) throws -> Bool { try confirmTOTP(userID: userID, code: code, now: Date()) }

    public func checkTOTP(userID: Int64, code: String?) throws -> Bool { try checkTOTP(userID: userID, code: code, now: Date()) }
}

extension ConsoleUser {
    /// The login name lower-cased, checked, with the role's rule on accounts.
    static func checkedEmail(_ email: String, role: ConsoleRole, accountID: Int64?) throws -> String {
        let email = email.lowercased().trimmingCharacters(in: .whitespaces)
        guard email.count <= 254, let at = email.firstIndex(of: "@"), at != email.startIndex, email.index(after: at) != email.endIndex,
              !email.contains(where: { $0.isWhitespace || $0.isNewline }) else { throw ConsoleUserError.invalidEmail(email) }
        switch (role, accountID) {
        case (.operator, .some): throw ConsoleUserError.operatorHasNoAccount
        case (.admin, nil), (.member, nil): throw ConsoleUserError.accountRequired
        default: return email
        }
    }
}

extension ConsoleSession {
    /// A cookie value's form in the store.
    static func hash(_ token: String) -> Data { Data(SHA256.hash(data: Data(token.utf8))) }

    /// Whether a cookie value is of a length a session's can be (longer ones are not hashed).
    static func plausible(_ token: String) -> Bool { (16...128).contains(token.utf8.count) }

    static func newToken() -> String { CredentialGenerator.random(43, from: CredentialGenerator.mixedAlphabet) }

    static func newCSRFToken() -> String { CredentialGenerator.random(32, from: CredentialGenerator.mixedAlphabet) }
}

extension SQLiteStore: ConsoleUserStore {
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

    public func createConsoleUser(email: String, role: ConsoleRole, accountID: Int64?) throws -> NewConsoleUser {
        let email = try ConsoleUser.checkedEmail(email, role: role, accountID: accountID)
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

    public func consoleUsers(accountID: Int64?) throws -> [ConsoleUser] {
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

    public func openConsoleSession(userID: Int64, now: Date) throws -> String {
        let token = ConsoleSession.newToken()
        let csrf = ConsoleSession.newCSRFToken()
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO console_session (token_hash, user_id, csrf_token, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)
                """, arguments: [ConsoleSession.hash(token), userID, csrf, now.timeIntervalSince1970, now.timeIntervalSince1970])
        }
        return token
    }

    public func consoleSession(token: String, idle: TimeInterval, absolute: TimeInterval, now: Date) throws -> ConsoleSession? {
        guard ConsoleSession.plausible(token) else { return nil }
        let hash = ConsoleSession.hash(token)
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
            try db.execute(sql: "DELETE FROM console_session WHERE token_hash = ?", arguments: [ConsoleSession.hash(token)])
        }
    }

    @discardableResult
    public func closeConsoleSessions(userID: Int64) throws -> Int {
        try database.write { db in
            try db.execute(sql: "DELETE FROM console_session WHERE user_id = ?", arguments: [userID])
            return db.changesCount
        }
    }

    static func consoleUser(_ row: Row) throws -> ConsoleUser {
        ConsoleUser(id: row["id"], email: row["email"], role: ConsoleRole(rawValue: row["role"]) ?? .member, accountID: row["account_id"],
                    disabled: row["disabled"], createdAt: Date(timeIntervalSince1970: row["created_at"]))
    }
}
