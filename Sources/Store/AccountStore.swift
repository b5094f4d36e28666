import Foundation
import GRDB
import Synchronization

/// A tenant: everything later (keys, domains, quotas, events) hangs off it.
public struct Account: Sendable, Codable, Equatable {
    public var id: Int64
    public var name: String
    public var smtpUsername: String
    public var disabled: Bool
    public var createdAt: Date
    /// Lower-cased domains this account may use as envelope sender.
    public var domains: [String]
    /// Those of `domains` whose DKIM record was last found published
    /// (`hikyaku domain verify`): with `domains.requireVerified`, the only
    /// ones it may send from.
    public var verifiedDomains: [String] = []
    /// The egress pool (`delivery.egressPools`) its mail leaves from; nil: `default`.
    public var egressPool: String? = nil
    /// Sending limits, as SES: recipients per second and per rolling 24 hours.
    public var quota = SendQuota()
    /// Which reports put an address on the suppression list by themselves
    /// (SES's SuppressedReasons): `bounce` and `complaint` by default.
    public var suppressedReasons: Set<Suppression.Reason> = [.bounce, .complaint]
}

/// An account's sending limits; a negative value means unlimited.
public struct SendQuota: Sendable, Codable, Equatable {
    public var maxSendRate: Double = -1
    public var max24HourSend: Int = -1
    /// Only recipients in the account's own domains (SES's sandbox).
    public var sandbox = false

    public init(maxSendRate: Double = -1, max24HourSend: Int = -1, sandbox: Bool = false) {
        self.maxSendRate = maxSendRate
        self.max24HourSend = max24HourSend
        self.sandbox = sandbox
    }
}

/// Returned once when an account is created; the password is not stored.
public struct NewAccountCredentials: Sendable, Codable {
    public var account: Account
    public var smtpPassword: String
}

public enum AccountStoreError: Error, Equatable, CustomStringConvertible {
    case duplicateName(String)
    case notFound(String)
    case invalidName(String)
    case invalidDomain(String)
    case domainNotFound(String)

    public var description: String {
        switch self {
        case .duplicateName(let name): return "an account named \(name) already exists"
        case .notFound(let name): return "no account named \(name)"
        case .invalidName(let name): return "invalid account name \(name): use letters, digits, '.', '_' or '-' (1-64)"
        case .invalidDomain(let domain): return "invalid domain \(domain)"
        case .domainNotFound(let domain): return "\(domain) is not one of the account's domains"
        }
    }
}

/// Accounts and their credentials: one capability of the store, with an
/// implementation per engine (`SQLiteStore`, `PostgresStore`).
public protocol AccountStore: Sendable {
    func createAccount(name: String, domains: [String]) throws -> NewAccountCredentials
    func accounts() throws -> [Account]
    func account(named name: String) throws -> Account?
    func account(id: Int64) throws -> Account?
    func setDisabled(_ disabled: Bool, name: String) throws
    func addDomain(_ domain: String, toAccountNamed name: String) throws
    /// Records the outcome of `domain verify`: `at` when its DKIM record was
    /// found published, nil when it was found missing or wrong.
    func setDomainVerified(_ domain: String, accountID: Int64, at date: Date?) throws
    /// Sets an account's sending limits.
    func setQuota(_ quota: SendQuota, name: String) throws
    /// Puts an account's mail on an egress pool (nil: the default pool).
    func setEgressPool(_ pool: String?, name: String) throws
    /// Every account's egress pool, for delivery (accounts on the default pool omitted).
    func egressPools() throws -> [Int64: String]
    /// Which reasons suppress automatically for an account (bounce, complaint).
    func setSuppressedReasons(_ reasons: Set<Suppression.Reason>, accountID: Int64) throws
    /// The enabled account whose SMTP credentials these are, or nil. Takes
    /// the same (slow) time whether or not the username exists.
    func authenticate(username: String, password: String) throws -> Account?
    /// The account's SMTP usernames, the first (made with the account) first.
    func smtpCredentials(accountID: Int64) throws -> [SMTPCredential]
    /// A further username and password for the account (at most 10 live ones).
    func createSMTPCredential(accountID: Int64) throws -> NewSMTPCredential
    /// Revokes one of the account's usernames; the last live one cannot be
    /// revoked (create its successor first). False when the account has no such username.
    @discardableResult
    func revokeSMTPCredential(username: String, accountID: Int64) throws -> Bool
}

/// The rules for names the store keeps, whichever engine keeps them.
enum AccountNames {
    /// Account, egress pool and template names: letters, digits, '.', '_' or '-', 1 to 64.
    static func isValid(_ name: String) -> Bool {
        (1...64).contains(name.count) && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    /// Lower-cases and checks a domain name (LDH labels, at least two labels).
    static func normaliseDomain(_ domain: String) throws -> String {
        let lowered = domain.lowercased().trimmingCharacters(in: .whitespaces)
        let labels = lowered.split(separator: ".", omittingEmptySubsequences: false)
        guard lowered.count <= 253, labels.count >= 2,
              labels.allSatisfy({ label in
                  (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                      && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
              })
        else { throw AccountStoreError.invalidDomain(domain) }
        return lowered
    }

    /// The reasons an account's `suppressed_reasons` column holds, comma-separated.
    static func reasons(_ column: String?) -> Set<Suppression.Reason> {
        Set((column ?? "").split(separator: ",").compactMap { Suppression.Reason(rawValue: String($0)) })
    }

    static func column(_ reasons: Set<Suppression.Reason>) -> String {
        reasons.map(\.rawValue).sorted().joined(separator: ",")
    }
}

/// The embedded store: SQLite via GRDB, one `Sendable` owner of the writer
/// that migrates on open (GRDB's AppDatabase pattern).
public final class SQLiteStore: AccountStore {
    let database: DatabasePool
    let hashParameters: PasswordHash.Parameters
    /// Hash compared against when the username is unknown, so that unknown
    /// users cost as much as wrong passwords (no user enumeration by timing).
    let decoyHash: String
    /// Seals the API secrets that Signature V4 needs back (SecretSealer).
    let sealer: SecretSealer
    /// Whether the writer's connection has the SQL function that makes a claimed row's message id
    /// (`installClaimedMessageID`): registered once, since registering a function again makes SQLite
    /// prepare every cached statement of the connection anew.
    let claimedMessageIDInstalled = Mutex(false)

    /// `path` is the database; the key that seals API secrets is kept beside
    /// it (`secrets.key`, mode 0600) unless `secretsKeyPath` says otherwise.
    public init(path: String, hashParameters: PasswordHash.Parameters = .standard, secretsKeyPath: String? = nil) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        database = try DatabasePool(path: path, configuration: configuration)
        self.hashParameters = hashParameters
        decoyHash = try PasswordHash.make(CredentialGenerator.password(), parameters: hashParameters)
        sealer = try SecretSealer(keyPath: secretsKeyPath
            ?? URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("secrets.key").path)
        let upToDate = try database.read { try SQLiteStore.migrator.hasCompletedMigrations($0) }
        try SQLiteStore.migrator.migrate(database)
        if !upToDate {
            // Migrations write every page several times over into the write-ahead log: fold it into the
            // database once, so that a new data directory starts small (the spool needs its free space).
            try? database.writeWithoutTransaction { try $0.checkpoint(.truncate) }
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-accounts") { db in
            try db.execute(sql: """
                CREATE TABLE account (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    name TEXT NOT NULL UNIQUE,
                    smtp_username TEXT NOT NULL UNIQUE,
                    smtp_password_hash TEXT NOT NULL,
                    disabled INTEGER NOT NULL DEFAULT 0,
                    created_at REAL NOT NULL
                );
                CREATE TABLE account_domain (
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    domain TEXT NOT NULL,
                    PRIMARY KEY (account_id, domain)
                );
                """)
        }
        migrator.registerMigration("v2-egress-pool") { db in
            try db.execute(sql: "ALTER TABLE account ADD COLUMN egress_pool TEXT")
        }
        migrator.registerMigration("v3-api") { db in
            // APIKeys.swift, Templates.swift, Suppressions.swift, SendingMeter.swift.
            try db.execute(sql: """
                ALTER TABLE account ADD COLUMN max_send_rate REAL NOT NULL DEFAULT -1;
                ALTER TABLE account ADD COLUMN max_24h_send INTEGER NOT NULL DEFAULT -1;
                ALTER TABLE account ADD COLUMN sandbox INTEGER NOT NULL DEFAULT 0;
                CREATE TABLE api_key (
                    key_id TEXT PRIMARY KEY NOT NULL,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    scope TEXT NOT NULL,
                    secret_hash BLOB NOT NULL,
                    sealed_secret BLOB NOT NULL,
                    created_at REAL NOT NULL,
                    revoked INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE template (
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    text TEXT,
                    html TEXT,
                    marketing INTEGER NOT NULL DEFAULT 0,
                    defaults TEXT,
                    missing TEXT NOT NULL DEFAULT 'error',
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    PRIMARY KEY (account_id, name)
                );
                CREATE TABLE suppression (
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    address TEXT NOT NULL COLLATE NOCASE,
                    reason TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    source TEXT,
                    PRIMARY KEY (account_id, address)
                );
                CREATE TABLE usage_hour (
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    hour INTEGER NOT NULL,
                    messages INTEGER NOT NULL,
                    recipients INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    PRIMARY KEY (account_id, hour)
                );
                """)
        }
        migrator.registerMigration("v4-dkim") { db in
            // DKIMKeys.swift: signing keys per sending domain, the private key sealed.
            try db.execute(sql: """
                CREATE TABLE dkim_key (
                    domain TEXT NOT NULL,
                    selector TEXT NOT NULL,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    algorithm TEXT NOT NULL,
                    sealed_private_key BLOB NOT NULL,
                    public_key TEXT NOT NULL,
                    active INTEGER NOT NULL DEFAULT 0,
                    created_at REAL NOT NULL,
                    PRIMARY KEY (domain, selector)
                );
                """)
        }
        migrator.registerMigration("v5-suppressed-reasons") { db in
            // Which automatic suppressions an account wants (Suppressions.swift); unsubscribes always apply.
            try db.execute(sql: "ALTER TABLE account ADD COLUMN suppressed_reasons TEXT NOT NULL DEFAULT 'bounce,complaint'")
        }
        migrator.registerMigration("v6-domain-verification") { db in
            // When `domain verify` last found the domain's DKIM record; NULL: not verified.
            try db.execute(sql: "ALTER TABLE account_domain ADD COLUMN verified_at REAL")
        }
        migrator.registerMigration("v7-return-path") { db in
            // ReturnPaths.swift: a sending domain's own bounce domain, used once its MX is found pointing here.
            try db.execute(sql: "ALTER TABLE account_domain ADD COLUMN return_path TEXT")
            try db.execute(sql: "ALTER TABLE account_domain ADD COLUMN return_path_verified_at REAL")
        }
        registerWebhookMigrations(&migrator)
        registerConsoleMigrations(&migrator)
        registerTemplateVersionMigrations(&migrator)
        registerUnsubscribeGroupMigrations(&migrator)
        registerContactMigrations(&migrator)
        registerCampaignMigrations(&migrator)
        registerNodeMigrations(&migrator)
        registerCampaignBatchMigrations(&migrator)
        return migrator
    }

    public func createAccount(name: String, domains: [String]) throws -> NewAccountCredentials {
        guard AccountNames.isValid(name) else { throw AccountStoreError.invalidName(name) }
        let normalisedDomains = try domains.map(AccountNames.normaliseDomain)
        let username = CredentialGenerator.username()
        let password = CredentialGenerator.password()
        let hash = try PasswordHash.make(password, parameters: hashParameters)
        let now = Date()
        let id: Int64 = try database.write { db in
            if try Int.fetchOne(db, sql: "SELECT 1 FROM account WHERE name = ?", arguments: [name]) != nil {
                throw AccountStoreError.duplicateName(name)
            }
            try db.execute(sql: """
                INSERT INTO account (name, smtp_username, smtp_password_hash, created_at) VALUES (?, ?, ?, ?)
                """, arguments: [name, username, hash, now.timeIntervalSince1970])
            let id = db.lastInsertedRowID
            for domain in Set(normalisedDomains) {
                try db.execute(sql: "INSERT INTO account_domain (account_id, domain) VALUES (?, ?)", arguments: [id, domain])
            }
            return id
        }
        let account = Account(id: id, name: name, smtpUsername: username, disabled: false,
                              createdAt: Date(timeIntervalSince1970: now.timeIntervalSince1970),
                              domains: Array(Set(normalisedDomains)).sorted())
        return NewAccountCredentials(account: account, smtpPassword: password)
    }

    public func accounts() throws -> [Account] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM account ORDER BY name").map { try SQLiteStore.account(from: $0, db: db) }
        }
    }

    public func account(named name: String) throws -> Account? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM account WHERE name = ?", arguments: [name])
                .map { try SQLiteStore.account(from: $0, db: db) }
        }
    }

    public func setDisabled(_ disabled: Bool, name: String) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE account SET disabled = ? WHERE name = ?", arguments: [disabled, name])
            if db.changesCount == 0 { throw AccountStoreError.notFound(name) }
        }
    }

    public func setEgressPool(_ pool: String?, name: String) throws {
        if let pool, !AccountNames.isValid(pool) { throw AccountStoreError.invalidName(pool) }
        try database.write { db in
            try db.execute(sql: "UPDATE account SET egress_pool = ? WHERE name = ?", arguments: [pool, name])
            if db.changesCount == 0 { throw AccountStoreError.notFound(name) }
        }
    }

    public func egressPools() throws -> [Int64: String] {
        try database.read { db in
            var pools: [Int64: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, egress_pool FROM account WHERE egress_pool IS NOT NULL") {
                pools[row["id"]] = row["egress_pool"]
            }
            return pools
        }
    }

    public func setQuota(_ quota: SendQuota, name: String) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE account SET max_send_rate = ?, max_24h_send = ?, sandbox = ? WHERE name = ?",
                           arguments: [quota.maxSendRate, quota.max24HourSend, quota.sandbox, name])
            if db.changesCount == 0 { throw AccountStoreError.notFound(name) }
        }
    }

    public func account(id: Int64) throws -> Account? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM account WHERE id = ?", arguments: [id])
                .map { try SQLiteStore.account(from: $0, db: db) }
        }
    }

    public func addDomain(_ domain: String, toAccountNamed name: String) throws {
        let normalised = try AccountNames.normaliseDomain(domain)
        try database.write { db in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM account WHERE name = ?", arguments: [name]) else {
                throw AccountStoreError.notFound(name)
            }
            try db.execute(sql: "INSERT OR IGNORE INTO account_domain (account_id, domain) VALUES (?, ?)",
                           arguments: [id, normalised])
        }
    }

    public func setDomainVerified(_ domain: String, accountID: Int64, at date: Date?) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE account_domain SET verified_at = ? WHERE account_id = ? AND domain = ?",
                           arguments: [date?.timeIntervalSince1970, accountID, domain.lowercased()])
            if db.changesCount == 0 { throw AccountStoreError.domainNotFound(domain) }
        }
    }

    public func authenticate(username: String, password: String) throws -> Account? {
        // The account's first username, unless revoked, else one added by a rotation (SMTPCredentials.swift).
        let (row, credentialHash) = try database.read { db -> (Row?, String?) in
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM account WHERE smtp_username = ? AND smtp_password_revoked_at IS NULL",
                                          arguments: [username]) {
                return (row, row["smtp_password_hash"])
            }
            guard let extra = try extraCredential(username: username, db: db) else { return (nil, nil) }
            return (extra.account, extra.hash)
        }
        let hash: String = credentialHash ?? decoyHash
        let matches = PasswordHash.verify(password, against: hash)
        guard let row, matches else { return nil }
        let account = try database.read { db in try SQLiteStore.account(from: row, db: db) }
        return account.disabled ? nil : account
    }

    static func account(from row: Row, db: Database) throws -> Account {
        let id: Int64 = row["id"]
        let domainRows = try Row.fetchAll(db, sql: "SELECT domain, verified_at FROM account_domain WHERE account_id = ? ORDER BY domain",
                                          arguments: [id])
        return Account(id: id, name: row["name"], smtpUsername: row["smtp_username"], disabled: row["disabled"],
                       createdAt: Date(timeIntervalSince1970: row["created_at"]), domains: domainRows.map { $0["domain"] },
                       verifiedDomains: domainRows.filter { $0["verified_at"] != nil }.map { $0["domain"] },
                       egressPool: row["egress_pool"],
                       quota: SendQuota(maxSendRate: row["max_send_rate"], max24HourSend: row["max_24h_send"],
                                        sandbox: row["sandbox"]),
                       suppressedReasons: AccountNames.reasons(row["suppressed_reasons"]))
    }
}
