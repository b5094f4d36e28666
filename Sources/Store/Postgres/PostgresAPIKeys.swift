import Crypto
import Foundation
import PostgresNIO

extension PostgresStore: APIKeyStore {
    public func derivedKey(_ label: String) -> SymmetricKey { sealer.derived(label) }

    public func createAPIKey(accountNamed name: String, scope: APIKeyScope, label: String?) throws -> NewAPIKey {
        guard let account = try account(named: name) else { throw AccountStoreError.notFound(name) }
        let material = try APIKeyMaterial(accountID: account.id, scope: scope, label: label, sealer: sealer)
        _ = try pool.query("""
            INSERT INTO api_key (key_id, account_id, scope, secret_hash, sealed_secret, created_at, name)
            VALUES (\(material.key.keyID), \(account.id), \(scope.rawValue), \(material.secretHash),
                    \(material.sealedSecret), \(material.key.createdAt), \(label))
            """)
        return material.issued
    }

    public func apiKeys(accountID: Int64?) throws -> [APIKey] {
        try pool.query("""
            SELECT * FROM api_key WHERE \(accountID)::bigint IS NULL OR account_id = \(accountID) ORDER BY created_at, key_id
            """).records.map(PostgresStore.apiKey)
    }

    public func revokeAPIKey(_ keyID: String) throws {
        if try pool.query("UPDATE api_key SET revoked = TRUE WHERE key_id = \(keyID)").changes == 0 {
            throw AccountStoreError.notFound(keyID)
        }
    }

    public func verifyAPIToken(_ token: String) throws -> APIKey? {
        guard let (keyID, secret) = APIKeyMaterial.parse(token: token), let live = try liveKey(keyID) else { return nil }
        return APIKeyMaterial.matches(secret, hash: live.hash) ? live.key : nil
    }

    public func apiKeySecret(accessKeyID: String) throws -> (APIKey, String)? {
        guard let live = try liveKey(accessKeyID) else { return nil }
        return (live.key, try sealer.open(live.sealed))
    }

    private func liveKey(_ keyID: String) throws -> (key: APIKey, hash: Data, sealed: Data)? {
        guard let record = try pool.query("""
            SELECT k.* FROM api_key k JOIN account a ON a.id = k.account_id
            WHERE k.key_id = \(keyID) AND NOT k.revoked AND NOT a.disabled
            """).records.first else { return nil }
        return (try PostgresStore.apiKey(record), try record.decode("secret_hash"), try record.decode("sealed_secret"))
    }

    static func apiKey(_ record: PostgresRecord) throws -> APIKey {
        APIKey(keyID: try record.decode("key_id"), accountID: try record.decode("account_id"),
               scope: APIKeyScope(rawValue: try record.decode("scope")) ?? .send, createdAt: try record.decode("created_at"),
               revoked: try record.decode("revoked"), name: try record.decode("name"))
    }
}
