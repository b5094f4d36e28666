import Foundation
import GRDB

/// One SMTP AUTH username of an account. The first is made with the account;
/// more are added to rotate: the new one works beside the old until the old
/// is revoked, so a sender's servers can move over one by one.
public struct SMTPCredential: Sendable, Codable, Equatable {
    public var username: String
    public var accountID: Int64
    public var createdAt: Date
    public var revokedAt: Date?
    /// The one created with the account.
    public var primary: Bool
}

/// Returned once, at creation: the password is not stored.
public struct NewSMTPCredential: Sendable, Codable {
    public var credential: SMTPCredential
    public var password: String
}

extension SQLiteStore {
    public func smtpCredentials(accountID: Int64) throws -> [SMTPCredential] {
        try database.read { db in
            var credentials: [SMTPCredential] = []
            if let row = try Row.fetchOne(db, sql: "SELECT smtp_username, created_at, smtp_password_revoked_at FROM account WHERE id = ?",
                                          arguments: [accountID]) {
                credentials.append(SMTPCredential(username: row["smtp_username"], accountID: accountID,
                                                  createdAt: Date(timeIntervalSince1970: row["created_at"]),
                                                  revokedAt: (row["smtp_password_revoked_at"] as Double?).map(Date.init(timeIntervalSince1970:)),
                                                  primary: true))
            }
            credentials += try Row.fetchAll(db, sql: "SELECT * FROM smtp_credential WHERE account_id = ? ORDER BY created_at, username",
                                            arguments: [accountID]).map { row in
                SMTPCredential(username: row["username"], accountID: accountID, createdAt: Date(timeIntervalSince1970: row["created_at"]),
                               revokedAt: (row["revoked_at"] as Double?).map(Date.init(timeIntervalSince1970:)), primary: false)
            }
            return credentials
        }
    }

    public func createSMTPCredential(accountID: Int64) throws -> NewSMTPCredential {
        let username = CredentialGenerator.username()
        let password = CredentialGenerator.password()
        let hash = try PasswordHash.make(password, parameters: hashParameters)
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded())
        try database.write { db in
            let live = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM smtp_credential WHERE account_id = ? AND revoked_at IS NULL",
                                        arguments: [accountID]) ?? 0
            guard live < 10 else { throw SMTPCredentialError.tooMany }
            try db.execute(sql: "INSERT INTO smtp_credential (username, account_id, password_hash, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [username, accountID, hash, now.timeIntervalSince1970])
        }
        return NewSMTPCredential(credential: SMTPCredential(username: username, accountID: accountID, createdAt: now, revokedAt: nil,
                                                            primary: false), password: password)
    }

    @discardableResult
    public func revokeSMTPCredential(username: String, accountID: Int64) throws -> Bool {
        let now = Date().timeIntervalSince1970
        return try database.write { db in
            let live = (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM smtp_credential WHERE account_id = ? AND revoked_at IS NULL",
                                         arguments: [accountID]) ?? 0)
                + (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM account WHERE id = ? AND smtp_password_revoked_at IS NULL",
                                    arguments: [accountID]) ?? 0)
            let isLive = try Bool.fetchOne(db, sql: """
                SELECT 1 FROM account WHERE id = ? AND smtp_username = ? AND smtp_password_revoked_at IS NULL
                UNION ALL SELECT 1 FROM smtp_credential WHERE account_id = ? AND username = ? AND revoked_at IS NULL
                """, arguments: [accountID, username, accountID, username]) != nil
            if isLive && live <= 1 { throw SMTPCredentialError.lastCredential }
            try db.execute(sql: "UPDATE account SET smtp_password_revoked_at = ? WHERE id = ? AND smtp_username = ? AND smtp_password_revoked_at IS NULL",
                           arguments: [now, accountID, username])
            var changed = db.changesCount
            try db.execute(sql: "UPDATE smtp_credential SET revoked_at = ? WHERE account_id = ? AND username = ? AND revoked_at IS NULL",
                           arguments: [now, accountID, username])
            changed += db.changesCount
            if changed > 0 { return true }
            return try Bool.fetchOne(db, sql: """
                SELECT 1 FROM account WHERE id = ? AND smtp_username = ? UNION ALL
                SELECT 1 FROM smtp_credential WHERE account_id = ? AND username = ?
                """, arguments: [accountID, username, accountID, username]) != nil
        }
    }

    /// The password hash of a live extra username and its account's row, for `authenticate`.
    func extraCredential(username: String, db: Database) throws -> (hash: String, account: Row)? {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT c.password_hash AS credential_hash, a.* FROM smtp_credential c JOIN account a ON a.id = c.account_id
            WHERE c.username = ? AND c.revoked_at IS NULL
            """, arguments: [username]) else { return nil }
        return (row["credential_hash"], row)
    }
}

public enum SMTPCredentialError: Error, Equatable, CustomStringConvertible {
    case tooMany
    case lastCredential

    public var description: String {
        switch self {
        case .tooMany: return "an account has at most 10 extra SMTP credentials; revoke one first"
        case .lastCredential: return "this is the account's last live SMTP credential; create its successor first"
        }
    }
}
