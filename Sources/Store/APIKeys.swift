import Crypto
import Foundation
import GRDB

/// What an API key may do. Each scope includes the ones before it.
public enum APIKeyScope: String, Sendable, Codable, CaseIterable, Comparable {
    /// Send mail and read its own templates.
    case send
    /// Also read messages, events, statistics, suppressions and usage.
    case read
    /// Also change the account: templates, suppressions, keys, credentials, webhooks, its queue.
    case admin
    /// Also every other account and the server: create, disable and limit
    /// accounts, act for any of them (`?account=NAME`), the whole queue.
    case `operator`

    /// Each scope allows what the ones before it do.
    var rank: Int {
        switch self {
        case .send: return 0
        case .read: return 1
        case .admin: return 2
        case .operator: return 3
        }
    }

    public static func < (lhs: APIKeyScope, rhs: APIKeyScope) -> Bool { lhs.rank < rhs.rank }
}

/// An API key as stored: never the secret itself.
public struct APIKey: Sendable, Codable, Equatable {
    /// The public half: also the AWS access key id.
    public var keyID: String
    public var accountID: Int64
    public var scope: APIKeyScope
    public var createdAt: Date
    public var revoked: Bool
    /// A label for people (SendGrid's `name`); nil when none was given.
    public var name: String? = nil
}

/// Returned once, at creation.
public struct NewAPIKey: Sendable, Codable {
    public var key: APIKey
    /// `hk_<keyID>_<secret>`: the bearer token for the native and SendGrid APIs.
    public var token: String
    /// The AWS secret access key (boto3 signs with it; the access key id is `keyID`).
    public var secret: String
}

/// Seals secrets with ChaCha20-Poly1305 under a key file readable only by
/// the service: AWS Signature V4 is an HMAC keyed with the caller's secret,
/// so the server must be able to recover it, but it is never stored in clear.
struct SecretSealer: Sendable {
    let key: SymmetricKey

    init(keyPath: String) throws {
        let manager = FileManager.default
        if let data = manager.contents(atPath: keyPath), data.count == 32 {
            key = SymmetricKey(data: data)
            return
        }
        let fresh = SymmetricKey(size: .bits256)
        let bytes = fresh.withUnsafeBytes { Data($0) }
        // Created 0600 from the start (no window in which it is world-readable).
        guard manager.createFile(atPath: keyPath, contents: bytes, attributes: [.posixPermissions: 0o600]) else {
            throw AccountStoreError.invalidName("cannot create \(keyPath)")
        }
        key = fresh
    }

    func seal(_ secret: String) throws -> Data {
        try ChaChaPoly.seal(Data(secret.utf8), using: key).combined
    }

    /// A key for another purpose, derived so that the two never coincide (HKDF, RFC 5869).
    func derived(_ label: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Data(label.utf8), outputByteCount: 32)
    }

    func open(_ sealed: Data) throws -> String {
        String(decoding: try ChaChaPoly.open(ChaChaPoly.SealedBox(combined: sealed), using: key), as: UTF8.self)
    }
}

/// API keys: one capability of the store, with an implementation per engine
/// (`SQLiteStore`, `PostgresStore`). A key's secret is kept as a SHA-256
/// hash (bearer tokens) and sealed (Signature V4 needs it back); the sealing
/// key is the node's `secrets.key`, the same file on every node of a cluster.
public protocol APIKeyStore: Sendable {
    /// Creates a key for an account; the secret is returned here and only here.
    func createAPIKey(accountNamed name: String, scope: APIKeyScope, label: String?) throws -> NewAPIKey
    /// Oldest first; every account's when `accountID` is nil.
    func apiKeys(accountID: Int64?) throws -> [APIKey]
    /// Throws `AccountStoreError.notFound` for an unknown key.
    func revokeAPIKey(_ keyID: String) throws
    /// The live key (of an enabled account) for a bearer token, or nil. The
    /// secret's hash is compared in constant time.
    func verifyAPIToken(_ token: String) throws -> APIKey?
    /// The live key and its secret for an AWS access key id, to check a
    /// Signature V4 with; nil when unknown, revoked or the account is disabled.
    func apiKeySecret(accessKeyID: String) throws -> (APIKey, String)?
    /// A key derived from the secrets key for `label` (the return-path MAC, say): stable across restarts.
    func derivedKey(_ label: String) -> SymmetricKey
}

extension APIKeyStore {
    public func createAPIKey(accountNamed name: String, scope: APIKeyScope) throws -> NewAPIKey {
        try createAPIKey(accountNamed: name, scope: scope, label: nil)
    }

    public func apiKeys() throws -> [APIKey] {
        try apiKeys(accountID: nil)
    }
}

/// A key about to be stored: what both engines write, made one way.
struct APIKeyMaterial {
    let key: APIKey
    let secret: String
    let secretHash: Data
    let sealedSecret: Data

    init(accountID: Int64, scope: APIKeyScope, label: String?, sealer: SecretSealer) throws {
        let keyID = "HK" + CredentialGenerator.random(18, from: CredentialGenerator.upperAlphabet)
        secret = CredentialGenerator.random(40, from: CredentialGenerator.mixedAlphabet)
        key = APIKey(keyID: keyID, accountID: accountID, scope: scope,
                     createdAt: Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded()), revoked: false, name: label)
        secretHash = Data(SHA256.hash(data: Data(secret.utf8)))
        sealedSecret = try sealer.seal(secret)
    }

    var issued: NewAPIKey { NewAPIKey(key: key, token: "hk_\(key.keyID)_\(secret)", secret: secret) }

    /// The key id and secret of a bearer token `hk_<keyID>_<secret>`, or nil.
    static func parse(token: String) -> (keyID: String, secret: Substring)? {
        let parts = token.split(separator: "_", maxSplits: 2)
        guard parts.count == 3, parts[0] == "hk" else { return nil }
        return (String(parts[1]), parts[2])
    }

    /// Whether `secret` is the one whose hash was stored, compared in constant time.
    static func matches(_ secret: Substring, hash: Data) -> Bool {
        constantTimeEqual(Data(SHA256.hash(data: Data(secret.utf8))), hash)
    }
}

extension SQLiteStore: APIKeyStore {
    public func derivedKey(_ label: String) -> SymmetricKey { sealer.derived(label) }

    public func createAPIKey(accountNamed name: String, scope: APIKeyScope, label: String?) throws -> NewAPIKey {
        guard let account = try account(named: name) else { throw AccountStoreError.notFound(name) }
        let material = try APIKeyMaterial(accountID: account.id, scope: scope, label: label, sealer: sealer)
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO api_key (key_id, account_id, scope, secret_hash, sealed_secret, created_at, name) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [material.key.keyID, account.id, scope.rawValue, material.secretHash, material.sealedSecret,
                                 material.key.createdAt.timeIntervalSince1970, label])
        }
        return material.issued
    }

    public func apiKeys(accountID: Int64?) throws -> [APIKey] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM api_key WHERE ? IS NULL OR account_id = ? ORDER BY created_at, key_id",
                             arguments: [accountID, accountID]).map(SQLiteStore.apiKey)
        }
    }

    public func revokeAPIKey(_ keyID: String) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE api_key SET revoked = 1 WHERE key_id = ?", arguments: [keyID])
            if db.changesCount == 0 { throw AccountStoreError.notFound(keyID) }
        }
    }

    public func verifyAPIToken(_ token: String) throws -> APIKey? {
        guard let (keyID, secret) = APIKeyMaterial.parse(token: token), let (key, hash, _) = try liveKey(keyID) else { return nil }
        return APIKeyMaterial.matches(secret, hash: hash) ? key : nil
    }

    public func apiKeySecret(accessKeyID: String) throws -> (APIKey, String)? {
        guard let (key, _, sealed) = try liveKey(accessKeyID) else { return nil }
        return (key, try sealer.open(sealed))
    }

    private func liveKey(_ keyID: String) throws -> (APIKey, Data, Data)? {
        try database.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT k.* FROM api_key k JOIN account a ON a.id = k.account_id
                WHERE k.key_id = ? AND k.revoked = 0 AND a.disabled = 0
                """, arguments: [keyID]) else { return nil }
            return (try SQLiteStore.apiKey(row), row["secret_hash"], row["sealed_secret"])
        }
    }

    static func apiKey(_ row: Row) throws -> APIKey {
        APIKey(keyID: row["key_id"], accountID: row["account_id"], scope: APIKeyScope(rawValue: row["scope"]) ?? .send,
               createdAt: Date(timeIntervalSince1970: row["created_at"]), revoked: row["revoked"], name: row["name"])
    }
}

/// Compares without stopping at the first difference.
public func constantTimeEqual<A: DataProtocol, B: DataProtocol>(_ lhs: A, _ rhs: B) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for (a, b) in zip(lhs, rhs) { difference |= a ^ b }
    return difference == 0
}
