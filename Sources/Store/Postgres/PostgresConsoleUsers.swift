import Foundation
import PostgresNIO

extension PostgresStore: ConsoleUserStore {
    public func createConsoleUser(email: String, role: ConsoleRole, accountID: Int64?) throws -> NewConsoleUser {
        let email = try ConsoleUser.checkedEmail(email, role: role, accountID: accountID)
        let password = CredentialGenerator.password()
        let hash = try PasswordHash.make(password, parameters: hashParameters)
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded())
        do {
            guard let id: Int64 = try pool.query("""
                INSERT INTO console_user (email, role, account_id, password_hash, created_at)
                VALUES (\(email), \(role.rawValue), \(accountID), \(hash), \(now)) RETURNING id
                """).records.first?.decode("id") else { throw PostgresStoreError.missingColumn("id") }
            return NewConsoleUser(user: ConsoleUser(id: id, email: email, role: role, accountID: accountID, disabled: false, createdAt: now),
                                  password: password)
        } catch let error as PostgresStoreError where error.isUniqueViolation(of: "console_user_email_key") {
            throw ConsoleUserError.duplicateEmail(email)
        }
    }

    public func consoleUsers(accountID: Int64?) throws -> [ConsoleUser] {
        try pool.query("""
            SELECT * FROM console_user WHERE \(accountID)::bigint IS NULL OR account_id = \(accountID) ORDER BY email
            """).records.map(PostgresStore.consoleUser)
    }

    public func consoleUser(id: Int64) throws -> ConsoleUser? {
        try pool.query("SELECT * FROM console_user WHERE id = \(id)").records.first.map(PostgresStore.consoleUser)
    }

    public func authenticateConsoleUser(email: String, password: String) throws -> ConsoleUser? {
        let found = try pool.query("""
            SELECT u.* FROM console_user u LEFT JOIN account a ON a.id = u.account_id
            WHERE u.email = \(email.lowercased()) AND NOT u.disabled AND (u.account_id IS NULL OR NOT a.disabled)
            """).records.first
        let matches = PasswordHash.verify(password, against: try found?.decode("password_hash") ?? decoyHash)
        guard let found, matches else { return nil }
        return try PostgresStore.consoleUser(found)
    }

    public func setConsolePassword(userID: Int64, password: String) throws {
        guard password.count >= 12 else { throw ConsoleUserError.weakPassword }
        let hash = try PasswordHash.make(password, parameters: hashParameters)
        try pool.transaction { transaction in
            if try transaction.query("UPDATE console_user SET password_hash = \(hash) WHERE id = \(userID)").changes == 0 {
                throw AccountStoreError.notFound("user \(userID)")
            }
            _ = try transaction.query("DELETE FROM console_session WHERE user_id = \(userID)")
        }
    }

    public func setConsoleUserDisabled(_ disabled: Bool, userID: Int64) throws {
        try pool.transaction { transaction in
            if try transaction.query("UPDATE console_user SET disabled = \(disabled) WHERE id = \(userID)").changes == 0 {
                throw AccountStoreError.notFound("user \(userID)")
            }
            if disabled { _ = try transaction.query("DELETE FROM console_session WHERE user_id = \(userID)") }
        }
    }

    public func deleteConsoleUser(id: Int64) throws {
        if try pool.query("DELETE FROM console_user WHERE id = \(id)").changes == 0 { throw AccountStoreError.notFound("user \(id)") }
    }

    public func openConsoleSession(userID: Int64, now: Date) throws -> String {
        let token = ConsoleSession.newToken()
        _ = try pool.query("""
            INSERT INTO console_session (token_hash, user_id, csrf_token, created_at, last_seen_at)
            VALUES (\(ConsoleSession.hash(token)), \(userID), \(ConsoleSession.newCSRFToken()), \(now), \(now))
            """)
        return token
    }

    public func consoleSession(token: String, idle: TimeInterval, absolute: TimeInterval, now: Date) throws -> ConsoleSession? {
        guard ConsoleSession.plausible(token) else { return nil }
        let hash = ConsoleSession.hash(token)
        guard let found = try pool.query("""
            SELECT s.csrf_token, s.created_at AS s_created, s.last_seen_at, u.* FROM console_session s
            JOIN console_user u ON u.id = s.user_id LEFT JOIN account a ON a.id = u.account_id
            WHERE s.token_hash = \(hash) AND NOT u.disabled AND (u.account_id IS NULL OR NOT a.disabled)
            """).records.first else { return nil }
        let created: Date = try found.decode("s_created")
        let lastSeen: Date = try found.decode("last_seen_at")
        guard now.timeIntervalSince(lastSeen) <= idle, now.timeIntervalSince(created) <= absolute else {
            _ = try pool.query("DELETE FROM console_session WHERE token_hash = \(hash)")
            return nil
        }
        // A write only when its last use is a minute old, as on the embedded store.
        if now.timeIntervalSince(lastSeen) > 60 {
            _ = try pool.query("UPDATE console_session SET last_seen_at = \(now) WHERE token_hash = \(hash)")
        }
        return ConsoleSession(user: try PostgresStore.consoleUser(found), csrfToken: try found.decode("csrf_token"), createdAt: created,
                              lastSeenAt: now)
    }

    public func closeConsoleSession(token: String) throws {
        _ = try pool.query("DELETE FROM console_session WHERE token_hash = \(ConsoleSession.hash(token))")
    }

    @discardableResult
    public func closeConsoleSessions(userID: Int64) throws -> Int {
        try pool.query("DELETE FROM console_session WHERE user_id = \(userID)").changes
    }

    public func beginTOTP(userID: Int64, issuer: String) throws -> TOTPEnrollment {
        guard let user = try consoleUser(id: userID) else { throw AccountStoreError.notFound("user \(userID)") }
        let enrollment = TOTPEnrollment(email: user.email, issuer: issuer)
        _ = try pool.query("UPDATE console_user SET totp_pending = \(try sealer.seal(enrollment.secret)) WHERE id = \(userID)")
        return enrollment
    }

    public func confirmTOTP(userID: Int64, code: String, now: Date) throws -> Bool {
        guard let sealed: Data = try pool.query("SELECT totp_pending FROM console_user WHERE id = \(userID)").records.first?
                .decode("totp_pending"),
              let secret = TOTP.base32Decode(try sealer.open(sealed)),
              let step = TOTP.matchingStep(code, secret: secret, at: now) else { return false }
        // Never over a factor already on (that one is turned off first, with a code from it), and only the secret checked.
        return try pool.query("""
            UPDATE console_user SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = \(Int64(truncatingIfNeeded: step))
            WHERE id = \(userID) AND totp_secret IS NULL AND totp_pending = \(sealed)
            """).changes == 1
    }

    public func disableTOTP(userID: Int64) throws {
        _ = try pool.query("UPDATE console_user SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = \(userID)")
    }

    public func hasTOTP(userID: Int64) throws -> Bool {
        try pool.query("SELECT totp_secret IS NOT NULL AS enrolled FROM console_user WHERE id = \(userID)").records.first?
            .decode("enrolled") ?? false
    }

    public func checkTOTP(userID: Int64, code: String?, now: Date) throws -> Bool {
        guard let found = try pool.query("SELECT totp_secret FROM console_user WHERE id = \(userID)").records.first,
              let sealed: Data = try found.decode("totp_secret") else { return true }
        guard let code, let secret = TOTP.base32Decode(try sealer.open(sealed)),
              let step = TOTP.matchingStep(code, secret: secret, at: now) else { return false }
        // A code works once, on whichever node it is presented: the step moves forward in one statement.
        let step64 = Int64(truncatingIfNeeded: step)
        return try pool.query("""
            UPDATE console_user SET totp_last_step = \(step64)
            WHERE id = \(userID) AND (totp_last_step IS NULL OR totp_last_step < \(step64))
            """).changes == 1
    }

    static func consoleUser(_ record: PostgresRecord) throws -> ConsoleUser {
        ConsoleUser(id: try record.decode("id"), email: try record.decode("email"),
                    role: ConsoleRole(rawValue: try record.decode("role")) ?? .member, accountID: try record.decode("account_id"),
                    disabled: try record.decode("disabled"), createdAt: try record.decode("created_at"))
    }
}
