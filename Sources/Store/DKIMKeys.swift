import Foundation
import GRDB

/// A DKIM key of a sending domain, as stored: the private key only sealed.
public struct DKIMKeyRecord: Sendable, Codable, Equatable {
    public var domain: String
    public var selector: String
    public var accountID: Int64
    /// `rsa` or `ed25519`.
    public var algorithm: String
    /// The `p=` value published in DNS.
    public var publicKey: String
    /// The key new mail is signed with; a domain has at most one.
    public var active: Bool
    public var createdAt: Date
}

public enum DKIMKeyError: Error, Equatable, CustomStringConvertible {
    case domainOfAnotherAccount(String)
    case notFound(String)
    case invalidSelector(String)
    case selectorTaken(String)

    public var description: String {
        switch self {
        case .domainOfAnotherAccount(let domain): return "\(domain) belongs to another account"
        case .notFound(let what): return "no DKIM key \(what)"
        case .invalidSelector(let selector): return "invalid selector \(selector): letters, digits and '-' (1-63)"
        case .selectorTaken(let what): return "there is already a DKIM key \(what): choose another selector"
        }
    }
}

/// The sending domains' DKIM keys: one capability of the store, with an
/// implementation per engine (`SQLiteStore`, `PostgresStore`). Private keys
/// are sealed under the node's `secrets.key` (the same on every node).
public protocol DKIMKeyStore: Sendable {
    /// Stores a new key for an account's domain (adding the domain to the
    /// account); `activate` makes it the one new mail is signed with. Refused
    /// when another account has verified the domain; another account's
    /// unverified claim does not stand in the way.
    func addDKIMKey(accountNamed name: String, domain: String, selector: String, algorithm: String, privateKey: Data,
                    publicKey: String, activate: Bool) throws -> DKIMKeyRecord
    /// Makes `selector` the key of its algorithm that new mail from `domain`
    /// is signed with (rotation without downtime: publish the new selector
    /// first, then activate it); the other algorithm's key stays active.
    func activateDKIMKey(domain: String, selector: String) throws
    func deleteDKIMKey(domain: String, selector: String) throws
    /// By domain, then oldest first; nil matches every domain or account.
    func dkimKeys(domain: String?, accountID: Int64?) throws -> [DKIMKeyRecord]
    /// The active key of every domain with its private key, for signing.
    func activeDKIMKeys() throws -> [(record: DKIMKeyRecord, privateKey: Data)]
}

extension DKIMKeyStore {
    public func dkimKeys(domain: String? = nil, accountID: Int64? = nil) throws -> [DKIMKeyRecord] {
        try dkimKeys(domain: domain, accountID: accountID)
    }
}

enum DKIMSelectors {
    /// Letters, digits and '-', 1 to 63: one DNS label.
    static func check(_ selector: String) throws {
        guard (1...63).contains(selector.count), selector.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw DKIMKeyError.invalidSelector(selector)
        }
    }
}

extension SQLiteStore: DKIMKeyStore {
    public func addDKIMKey(accountNamed name: String, domain: String, selector: String, algorithm: String, privateKey: Data,
                           publicKey: String, activate: Bool) throws -> DKIMKeyRecord {
        let domain = try AccountNames.normaliseDomain(domain)
        try DKIMSelectors.check(selector)
        guard let account = try account(named: name) else { throw AccountStoreError.notFound(name) }
        let sealed = try sealer.seal(privateKey.base64EncodedString())
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded())
        try database.write { db in
            // A claim counts only once DNS proves it: an account that added a domain but never
            // published its key cannot keep the real owner out. One that did can.
            if try Int64.fetchOne(db, sql: """
                SELECT account_id FROM account_domain WHERE domain = ? AND verified_at IS NOT NULL AND account_id != ? LIMIT 1
                """, arguments: [domain, account.id]) != nil {
                throw DKIMKeyError.domainOfAnotherAccount(domain)
            }
            try db.execute(sql: "INSERT OR IGNORE INTO account_domain (account_id, domain) VALUES (?, ?)", arguments: [account.id, domain])
            if activate {
                try db.execute(sql: "UPDATE dkim_key SET active = 0 WHERE domain = ? AND algorithm = ? AND account_id = ?",
                               arguments: [domain, algorithm, account.id])
            }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM dkim_key WHERE domain = ? AND selector = ?", arguments: [domain, selector]) != nil {
                throw DKIMKeyError.selectorTaken("\(selector) for \(domain)")
            }
            try db.execute(sql: """
                INSERT INTO dkim_key (domain, selector, account_id, algorithm, sealed_private_key, public_key, active, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [domain, selector, account.id, algorithm, sealed, publicKey, activate, now.timeIntervalSince1970])
        }
        return DKIMKeyRecord(domain: domain, selector: selector, accountID: account.id, algorithm: algorithm, publicKey: publicKey,
                             active: activate, createdAt: now)
    }

    public func activateDKIMKey(domain: String, selector: String) throws {
        try database.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT algorithm, account_id FROM dkim_key WHERE domain = ? AND selector = ?",
                                             arguments: [domain.lowercased(), selector]) else {
                throw DKIMKeyError.notFound("\(selector) for \(domain)")
            }
            let algorithm: String = row["algorithm"]
            let account: Int64 = row["account_id"]
            // Only the keys of the account holding this selector: another account's claim is its own.
            try db.execute(sql: "UPDATE dkim_key SET active = (selector = ?) WHERE domain = ? AND algorithm = ? AND account_id = ?",
                           arguments: [selector, domain.lowercased(), algorithm, account])
        }
    }

    public func deleteDKIMKey(domain: String, selector: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM dkim_key WHERE domain = ? AND selector = ?", arguments: [domain.lowercased(), selector])
            if db.changesCount == 0 { throw DKIMKeyError.notFound("\(selector) for \(domain)") }
        }
    }

    public func dkimKeys(domain: String?, accountID: Int64?) throws -> [DKIMKeyRecord] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM dkim_key WHERE (? IS NULL OR domain = ?) AND (? IS NULL OR account_id = ?) ORDER BY domain, created_at
                """, arguments: [domain?.lowercased(), domain?.lowercased(), accountID, accountID]).map(SQLiteStore.dkimKey)
        }
    }

    public func activeDKIMKeys() throws -> [(record: DKIMKeyRecord, privateKey: Data)] {
        let rows = try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM dkim_key WHERE active = 1") }
        return try rows.compactMap { row in
            guard let key = Data(base64Encoded: try sealer.open(row["sealed_private_key"])) else { return nil }
            return (SQLiteStore.dkimKey(row), key)
        }
    }

    static func dkimKey(_ row: Row) -> DKIMKeyRecord {
        DKIMKeyRecord(domain: row["domain"], selector: row["selector"], accountID: row["account_id"], algorithm: row["algorithm"],
                      publicKey: row["public_key"], active: row["active"], createdAt: Date(timeIntervalSince1970: row["created_at"]))
    }
}
