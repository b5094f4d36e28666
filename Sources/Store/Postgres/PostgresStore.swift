import Crypto
import Foundation
import PostgresNIO
import Synchronization

/// The shared store: PostgreSQL, for nodes that work as one service
/// (docs/cluster.md). It implements the same capability protocols as the
/// embedded `SQLiteStore`, and the store's contract tests run against both.
public final class PostgresStore: Sendable {
    let pool: PostgresPool
    let hashParameters: PasswordHash.Parameters
    /// Hash compared against when the username is unknown, as `SQLiteStore.decoyHash`.
    let decoyHash: String
    /// Seals the API secrets; every node of a cluster has the same `secrets.key`.
    let sealer: SecretSealer
    /// This node's name (`cluster.nodeName`): work a node owns, such as a running import, is marked with it,
    /// so that a node starting up abandons its own unfinished work and not another's.
    public let nodeName: String
    /// The last day (since 1970, by this node's clock) the shared log's partitions were made ready for.
    let sharedLogDay = Mutex<Int>(.min)

    /// Connects and brings the schema up to date (`PostgresSchema.migrate`).
    /// `secretsKeyPath` is the key that seals API secrets, made there if missing.
    public init(location: PostgresLocation, secretsKeyPath: String, nodeName: String = ProcessInfo.processInfo.hostName,
                hashParameters: PasswordHash.Parameters = .standard) throws {
        self.nodeName = nodeName
        pool = try PostgresPool(location: location)
        self.hashParameters = hashParameters
        sealer = try SecretSealer(keyPath: secretsKeyPath)
        decoyHash = try PasswordHash.make(CredentialGenerator.password(), parameters: hashParameters)
        try PostgresSchema.migrate(pool)
        try checkSecretsKey()
    }

    /// Every node must seal with the same key. The first node to start writes a MAC under its key; a node
    /// whose key gives another refuses to start, with the remedy, rather than seal what the others cannot open.
    func checkSecretsKey() throws {
        let mac = Data(HMAC<SHA256>.authenticationCode(for: Data("hikyaku secrets check".utf8), using: sealer.derived("secrets check")))
        _ = try pool.query("INSERT INTO secrets_check (id, mac) VALUES (1, \(mac)) ON CONFLICT (id) DO NOTHING")
        let stored: Data? = try pool.query("SELECT mac FROM secrets_check WHERE id = 1").records.first?.decode("mac")
        guard stored == mac else { throw PostgresStoreError.secretsKeyDiffers }
    }
}

extension PostgresStore: AccountStore {
    public func createAccount(name: String, domains: [String]) throws -> NewAccountCredentials {
        guard AccountNames.isValid(name) else { throw AccountStoreError.invalidName(name) }
        let normalisedDomains = Array(Set(try domains.map(AccountNames.normaliseDomain))).sorted()
        let username = CredentialGenerator.username()
        let password = CredentialGenerator.password()
        let hash = try PasswordHash.make(password, parameters: hashParameters)
        // As the database keeps it, so that the account returned equals the one read back.
        let now = StoredTime(Date()).date
        let id: Int64
        do {
            id = try pool.transaction { transaction in
                let inserted = try transaction.query("""
                    INSERT INTO account (name, smtp_username, smtp_password_hash, created_at)
                    VALUES (\(name), \(username), \(hash), \(now)) RETURNING id
                    """).records
                guard let id = try inserted.first?.decode("id", as: Int64.self) else { throw PostgresStoreError.missingColumn("id") }
                if !normalisedDomains.isEmpty {
                    _ = try transaction.query("""
                        INSERT INTO account_domain (account_id, domain) SELECT \(id), unnest(\(normalisedDomains)::text[])
                        """)
                }
                return id
            }
        } catch let error as PostgresStoreError where error.isUniqueViolation(of: "account_name_key") {
            throw AccountStoreError.duplicateName(name)
        }
        let account = Account(id: id, name: name, smtpUsername: username, disabled: false, createdAt: now, domains: normalisedDomains)
        return NewAccountCredentials(account: account, smtpPassword: password)
    }

    public func accounts() throws -> [Account] {
        let rows = try pool.query("SELECT * FROM account ORDER BY name").records
        return try accounts(rows)
    }

    public func account(named name: String) throws -> Account? {
        try accounts(pool.query("SELECT * FROM account WHERE name = \(name)").records).first
    }

    public func account(id: Int64) throws -> Account? {
        try accounts(pool.query("SELECT * FROM account WHERE id = \(id)").records).first
    }

    public func setDisabled(_ disabled: Bool, name: String) throws {
        try updateAccount(named: name, pool.query("UPDATE account SET disabled = \(disabled) WHERE name = \(name)"))
    }

    public func setEgressPool(_ egressPool: String?, name: String) throws {
        if let egressPool, !AccountNames.isValid(egressPool) { throw AccountStoreError.invalidName(egressPool) }
        try updateAccount(named: name, pool.query("UPDATE account SET egress_pool = \(egressPool) WHERE name = \(name)"))
    }

    public func egressPools() throws -> [Int64: String] {
        var pools: [Int64: String] = [:]
        for record in try pool.query("SELECT id, egress_pool FROM account WHERE egress_pool IS NOT NULL").records {
            pools[try record.decode("id")] = try record.decode("egress_pool", as: String.self)
        }
        return pools
    }

    public func setQuota(_ quota: SendQuota, name: String) throws {
        try updateAccount(named: name, pool.query("""
            UPDATE account SET max_send_rate = \(quota.maxSendRate), max_24h_send = \(quota.max24HourSend),
                sandbox = \(quota.sandbox) WHERE name = \(name)
            """))
    }

    public func setSuppressedReasons(_ reasons: Set<Suppression.Reason>, accountID: Int64) throws {
        _ = try pool.query("UPDATE account SET suppressed_reasons = \(AccountNames.column(reasons)) WHERE id = \(accountID)")
    }

    public func addDomain(_ domain: String, toAccountNamed name: String) throws {
        let normalised = try AccountNames.normaliseDomain(domain)
        let added = try pool.query("""
            INSERT INTO account_domain (account_id, domain) SELECT id, \(normalised) FROM account WHERE name = \(name)
            ON CONFLICT DO NOTHING RETURNING account_id
            """)
        if added.rows.isEmpty, try account(named: name) == nil { throw AccountStoreError.notFound(name) }
    }

    public func setDomainVerified(_ domain: String, accountID: Int64, at date: Date?) throws {
        let changed = try pool.query("""
            UPDATE account_domain SET verified_at = \(date) WHERE account_id = \(accountID) AND domain = \(domain.lowercased())
            """).changes
        if changed == 0 { throw AccountStoreError.domainNotFound(domain) }
    }

    public func authenticate(username: String, password: String) throws -> Account? {
        // The account's first username, unless revoked, else one added by a rotation.
        var found = try pool.query("""
            SELECT *, smtp_password_hash AS credential_hash FROM account
            WHERE smtp_username = \(username) AND smtp_password_revoked_at IS NULL
            """).records.first
        if found == nil {
            found = try pool.query("""
                SELECT a.*, c.password_hash AS credential_hash FROM smtp_credential c JOIN account a ON a.id = c.account_id
                WHERE c.username = \(username) AND c.revoked_at IS NULL
                """).records.first
        }
        let hash: String = try found?.decode("credential_hash") ?? decoyHash
        let matches = PasswordHash.verify(password, against: hash)
        guard let found, matches, let account = try accounts([found]).first else { return nil }
        return account.disabled ? nil : account
    }

    public func smtpCredentials(accountID: Int64) throws -> [SMTPCredential] {
        var credentials: [SMTPCredential] = []
        for record in try pool.query("""
            SELECT smtp_username, created_at, smtp_password_revoked_at FROM account WHERE id = \(accountID)
            """).records {
            credentials.append(SMTPCredential(username: try record.decode("smtp_username"), accountID: accountID,
                                              createdAt: try record.decode("created_at"),
                                              revokedAt: try record.decode("smtp_password_revoked_at"), primary: true))
        }
        for record in try pool.query("""
            SELECT * FROM smtp_credential WHERE account_id = \(accountID) ORDER BY created_at, username
            """).records {
            credentials.append(SMTPCredential(username: try record.decode("username"), accountID: accountID,
                                              createdAt: try record.decode("created_at"), revokedAt: try record.decode("revoked_at"),
                                              primary: false))
        }
        return credentials
    }

    public func createSMTPCredential(accountID: Int64) throws -> NewSMTPCredential {
        let username = CredentialGenerator.username()
        let password = CredentialGenerator.password()
        let hash = try PasswordHash.make(password, parameters: hashParameters)
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded())
        try pool.transaction { transaction in
            // The account's row, locked, serialises this count with another node's.
            _ = try transaction.query("SELECT id FROM account WHERE id = \(accountID) FOR UPDATE")
            let live: Int64 = try transaction.query("""
                SELECT count(*) AS live FROM smtp_credential WHERE account_id = \(accountID) AND revoked_at IS NULL
                """).records.first?.decode("live") ?? 0
            guard live < 10 else { throw SMTPCredentialError.tooMany }
            _ = try transaction.query("""
                INSERT INTO smtp_credential (username, account_id, password_hash, created_at)
                VALUES (\(username), \(accountID), \(hash), \(now))
                """)
        }
        return NewSMTPCredential(credential: SMTPCredential(username: username, accountID: accountID, createdAt: now, revokedAt: nil,
                                                            primary: false), password: password)
    }

    @discardableResult
    public func revokeSMTPCredential(username: String, accountID: Int64) throws -> Bool {
        let now = Date()
        return try pool.transaction { transaction in
            guard let account = try transaction.query("""
                SELECT smtp_username, smtp_password_revoked_at IS NULL AS primary_live FROM account WHERE id = \(accountID) FOR UPDATE
                """).records.first else { return false }
            let extras = try transaction.query("""
                SELECT username, revoked_at IS NULL AS live FROM smtp_credential WHERE account_id = \(accountID)
                """).records
            let primaryLive: Bool = try account.decode("primary_live")
            let isPrimary = try account.decode("smtp_username", as: String.self) == username
            var live = primaryLive ? 1 : 0
            var isLive = isPrimary && primaryLive
            var exists = isPrimary
            for extra in extras {
                let extraLive: Bool = try extra.decode("live")
                if extraLive { live += 1 }
                if try extra.decode("username", as: String.self) == username {
                    exists = true
                    isLive = isLive || extraLive
                }
            }
            if isLive && live <= 1 { throw SMTPCredentialError.lastCredential }
            guard isLive else { return exists }
            if isPrimary {
                _ = try transaction.query("UPDATE account SET smtp_password_revoked_at = \(now) WHERE id = \(accountID)")
            } else {
                _ = try transaction.query("""
                    UPDATE smtp_credential SET revoked_at = \(now) WHERE account_id = \(accountID) AND username = \(username)
                    """)
            }
            return true
        }
    }

    /// Throws `notFound` when an update by name changed no account.
    private func updateAccount(named name: String, _ result: PostgresQueryResult) throws {
        if result.changes == 0 { throw AccountStoreError.notFound(name) }
    }

    /// Accounts from their rows, with their domains read in one query.
    private func accounts(_ rows: [PostgresRecord]) throws -> [Account] {
        guard !rows.isEmpty else { return [] }
        let ids: [Int64] = try rows.map { try $0.decode("id") }
        var domains: [Int64: [(domain: String, verified: Bool)]] = [:]
        for record in try pool.query("""
            SELECT account_id, domain, verified_at IS NOT NULL AS verified FROM account_domain
            WHERE account_id = ANY(\(ids)) ORDER BY domain
            """).records {
            domains[try record.decode("account_id"), default: []].append((try record.decode("domain"), try record.decode("verified")))
        }
        return try rows.map { row in
            let id: Int64 = try row.decode("id")
            let own = domains[id] ?? []
            return Account(id: id, name: try row.decode("name"), smtpUsername: try row.decode("smtp_username"),
                           disabled: try row.decode("disabled"), createdAt: try row.decode("created_at"),
                           domains: own.map(\.domain), verifiedDomains: own.filter(\.verified).map(\.domain),
                           egressPool: try row.decode("egress_pool"),
                           quota: SendQuota(maxSendRate: try row.decode("max_send_rate"), max24HourSend: try row.decode("max_24h_send"),
                                            sandbox: try row.decode("sandbox")),
                           suppressedReasons: AccountNames.reasons(try row.decode("suppressed_reasons")))
        }
    }
}
