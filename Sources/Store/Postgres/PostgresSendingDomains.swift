import Foundation
import PostgresNIO

extension PostgresStore: DKIMKeyStore {
    public func addDKIMKey(accountNamed name: String, domain: String, selector: String, algorithm: String, privateKey: Data,
                           publicKey: String, activate: Bool) throws -> DKIMKeyRecord {
        let domain = try AccountNames.normaliseDomain(domain)
        try DKIMSelectors.check(selector)
        guard let account = try account(named: name) else { throw AccountStoreError.notFound(name) }
        let sealed = try sealer.seal(privateKey.base64EncodedString())
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded())
        do {
            try pool.transaction { transaction in
                // A claim counts only once DNS proves it: an account that added a domain but never
                // published its key cannot keep the real owner out. One that did can.
                if try !transaction.query("""
                    SELECT 1 FROM account_domain WHERE domain = \(domain) AND verified_at IS NOT NULL AND account_id <> \(account.id) LIMIT 1
                    """).rows.isEmpty {
                    throw DKIMKeyError.domainOfAnotherAccount(domain)
                }
                _ = try transaction.query("""
                    INSERT INTO account_domain (account_id, domain) VALUES (\(account.id), \(domain)) ON CONFLICT DO NOTHING
                    """)
                if activate {
                    // The account's row, locked, serialises the change of the active key with another node's.
                    _ = try transaction.query("SELECT id FROM account WHERE id = \(account.id) FOR UPDATE")
                    _ = try transaction.query("""
                        UPDATE dkim_key SET active = FALSE WHERE domain = \(domain) AND algorithm = \(algorithm) AND account_id = \(account.id)
                        """)
                }
                _ = try transaction.query("""
                    INSERT INTO dkim_key (domain, selector, account_id, algorithm, sealed_private_key, public_key, active, created_at)
                    VALUES (\(domain), \(selector), \(account.id), \(algorithm), \(sealed), \(publicKey), \(activate), \(now))
                    """)
            }
        } catch let error as PostgresStoreError where error.isUniqueViolation(of: "dkim_key_pkey") {
            throw DKIMKeyError.selectorTaken("\(selector) for \(domain)")
        }
        return DKIMKeyRecord(domain: domain, selector: selector, accountID: account.id, algorithm: algorithm, publicKey: publicKey,
                             active: activate, createdAt: now)
    }

    public func activateDKIMKey(domain: String, selector: String) throws {
        let domain = domain.lowercased()
        try pool.transaction { transaction in
            guard let key = try transaction.query("""
                SELECT algorithm, account_id FROM dkim_key WHERE domain = \(domain) AND selector = \(selector)
                """).records.first else {
                throw DKIMKeyError.notFound("\(selector) for \(domain)")
            }
            let algorithm: String = try key.decode("algorithm")
            let account: Int64 = try key.decode("account_id")
            // The account's row, locked, serialises the change of the active key with another node's.
            _ = try transaction.query("SELECT id FROM account WHERE id = \(account) FOR UPDATE")
            // Only the keys of the account holding this selector: another account's claim is its own. Two
            // statements, so that the one-active-key index never sees two at once.
            _ = try transaction.query("""
                UPDATE dkim_key SET active = FALSE WHERE domain = \(domain) AND algorithm = \(algorithm) AND account_id = \(account) AND active
                """)
            _ = try transaction.query("UPDATE dkim_key SET active = TRUE WHERE domain = \(domain) AND selector = \(selector)")
        }
    }

    public func deleteDKIMKey(domain: String, selector: String) throws {
        if try pool.query("DELETE FROM dkim_key WHERE domain = \(domain.lowercased()) AND selector = \(selector)").changes == 0 {
            throw DKIMKeyError.notFound("\(selector) for \(domain)")
        }
    }

    public func dkimKeys(domain: String?, accountID: Int64?) throws -> [DKIMKeyRecord] {
        let domain = domain?.lowercased()
        return try pool.query("""
            SELECT * FROM dkim_key WHERE (\(domain)::text IS NULL OR domain = \(domain)) AND (\(accountID)::bigint IS NULL OR account_id = \(accountID))
            ORDER BY domain, created_at
            """).records.map(PostgresStore.dkimKey)
    }

    public func activeDKIMKeys() throws -> [(record: DKIMKeyRecord, privateKey: Data)] {
        try pool.query("SELECT * FROM dkim_key WHERE active").records.compactMap { record in
            guard let key = Data(base64Encoded: try sealer.open(try record.decode("sealed_private_key"))) else { return nil }
            return (try PostgresStore.dkimKey(record), key)
        }
    }

    static func dkimKey(_ record: PostgresRecord) throws -> DKIMKeyRecord {
        DKIMKeyRecord(domain: try record.decode("domain"), selector: try record.decode("selector"), accountID: try record.decode("account_id"),
                      algorithm: try record.decode("algorithm"), publicKey: try record.decode("public_key"),
                      active: try record.decode("active"), createdAt: try record.decode("created_at"))
    }
}

extension PostgresStore: ReturnPathStore {
    public func setReturnPath(_ returnPath: String?, domain: String, accountID: Int64) throws {
        let domain = domain.lowercased()
        let normalised = try returnPath.map { try ReturnPathSetting.check($0, for: domain) }
        if try pool.query("""
            UPDATE account_domain SET return_path = \(normalised), return_path_verified_at = NULL
            WHERE account_id = \(accountID) AND domain = \(domain)
            """).changes == 0 {
            throw AccountStoreError.domainNotFound(domain)
        }
    }

    public func setReturnPathVerified(domain: String, accountID: Int64, at date: Date?) throws {
        _ = try pool.query("""
            UPDATE account_domain SET return_path_verified_at = \(date)
            WHERE account_id = \(accountID) AND domain = \(domain.lowercased()) AND return_path IS NOT NULL
            """)
    }

    public func returnPath(domain: String, accountID: Int64) throws -> ReturnPathSetting? {
        try pool.query("""
            SELECT return_path, return_path_verified_at IS NOT NULL AS verified FROM account_domain
            WHERE account_id = \(accountID) AND domain = \(domain.lowercased()) AND return_path IS NOT NULL
            """).records.first.map { ReturnPathSetting(domain: try $0.decode("return_path"), verified: try $0.decode("verified")) }
    }

    public func verifiedReturnPaths() throws -> [String: String] {
        var paths: [String: String] = [:]
        for record in try pool.query("""
            SELECT domain, return_path FROM account_domain WHERE return_path IS NOT NULL AND return_path_verified_at IS NOT NULL
            """).records {
            paths[try record.decode("domain")] = try record.decode("return_path", as: String.self)
        }
        return paths
    }
}
