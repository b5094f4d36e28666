import Foundation
import Testing
@testable import Store

/// The engines a capability's contract runs on. PostgreSQL needs a server:
/// scripts/test.sh starts a private one and names it in
/// HIKYAKU_TEST_POSTGRES_URL; under CI a missing server fails, never skips.
enum StoreEngine: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgres

    static var available: [StoreEngine] {
        let environment = ProcessInfo.processInfo.environment
        return environment["HIKYAKU_TEST_POSTGRES_URL"] != nil || environment["CI"] != nil ? allCases : [.sqlite]
    }

    var testDescription: String { rawValue }

    /// Cheap hashing parameters keep the tests fast; production uses .standard.
    static let hashing = PasswordHash.Parameters(rounds: 1 << 10, blockSize: 8, parallelism: 1)

    /// A new, empty store on this engine.
    func makeStore() throws -> any AccountStore & SuppressionList & APIKeyStore {
        switch self {
        case .sqlite:
            return try SQLiteStore(path: NSTemporaryDirectory() + "hikyaku-store-" + UUID().uuidString + ".sqlite",
                                   hashParameters: Self.hashing)
        case .postgres:
            return try PostgresStore(location: PostgresTestDatabase.make(), secretsKeyPath: Self.secretsKeyPath(),
                                     hashParameters: Self.hashing)
        }
    }

    /// A secrets key of its own, as a node's data directory holds one.
    static func secretsKeyPath() -> String {
        NSTemporaryDirectory() + "hikyaku-secrets-" + UUID().uuidString + ".key"
    }
}

/// A database of its own per test, on the server scripts/test.sh started.
enum PostgresTestDatabase {
    struct NoServer: Error, CustomStringConvertible {
        var description: String { "HIKYAKU_TEST_POSTGRES_URL is not set: run the tests through scripts/test.sh" }
    }

    static func make() throws -> PostgresLocation {
        guard let url = ProcessInfo.processInfo.environment["HIKYAKU_TEST_POSTGRES_URL"] else { throw NoServer() }
        var location = try PostgresLocation(url: url)
        location.poolSize = 2
        let name = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let server = try PostgresPool(location: location)
        // A database name cannot be bound; this one is made of hex digits above.
        _ = try server.query(.init(unsafeSQL: "CREATE DATABASE \(name)"))
        location.database = name
        return location
    }
}

struct StoreContractTests {
    @Test(arguments: StoreEngine.available)
    func accountsAreCreatedFoundAndChanged(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let created = try store.createAccount(name: "acme", domains: ["Acme.Example", "mail.acme.example", "acme.example"])
        #expect(created.account.domains == ["acme.example", "mail.acme.example"])
        _ = try store.createAccount(name: "beta", domains: [])
        #expect(try store.accounts().map(\.name) == ["acme", "beta"])
        let found = try #require(try store.account(named: "acme"))
        #expect(found.id == created.account.id && found.smtpUsername == created.account.smtpUsername)
        #expect(found.domains == ["acme.example", "mail.acme.example"] && found.verifiedDomains.isEmpty)
        #expect(found.quota == SendQuota() && found.egressPool == nil && found.suppressedReasons == [.bounce, .complaint])
        #expect(abs(found.createdAt.timeIntervalSince(created.account.createdAt)) < 0.001)
        #expect(try store.account(id: created.account.id)?.name == "acme")
        #expect(try store.account(named: "nobody") == nil && store.account(id: 987_654) == nil)

        try store.addDomain("Other.Example", toAccountNamed: "acme")
        try store.addDomain("other.example", toAccountNamed: "acme")
        try store.setDomainVerified("OTHER.example", accountID: created.account.id, at: Date())
        try store.setQuota(SendQuota(maxSendRate: 2.5, max24HourSend: 100, sandbox: true), name: "acme")
        try store.setEgressPool("bulk", name: "acme")
        try store.setSuppressedReasons([.complaint], accountID: created.account.id)
        let changed = try #require(try store.account(id: created.account.id))
        #expect(changed.domains == ["acme.example", "mail.acme.example", "other.example"])
        #expect(changed.verifiedDomains == ["other.example"])
        #expect(changed.quota == SendQuota(maxSendRate: 2.5, max24HourSend: 100, sandbox: true))
        #expect(changed.egressPool == "bulk" && changed.suppressedReasons == [.complaint])
        #expect(try store.egressPools() == [created.account.id: "bulk"])
        try store.setEgressPool(nil, name: "acme")
        #expect(try store.egressPools().isEmpty)
        try store.setDomainVerified("other.example", accountID: created.account.id, at: nil)
        #expect(try store.account(id: created.account.id)?.verifiedDomains == [])
    }

    @Test(arguments: StoreEngine.available)
    func accountRefusalsAreTyped(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: []).account
        #expect(throws: AccountStoreError.duplicateName("acme")) { try store.createAccount(name: "acme", domains: []) }
        #expect(throws: AccountStoreError.invalidName("bad name")) { try store.createAccount(name: "bad name", domains: []) }
        #expect(throws: AccountStoreError.invalidDomain("no_dots")) { try store.createAccount(name: "x", domains: ["no_dots"]) }
        #expect(throws: AccountStoreError.notFound("ghost")) { try store.setDisabled(true, name: "ghost") }
        #expect(throws: AccountStoreError.notFound("ghost")) { try store.setQuota(SendQuota(), name: "ghost") }
        #expect(throws: AccountStoreError.notFound("ghost")) { try store.setEgressPool("bulk", name: "ghost") }
        #expect(throws: AccountStoreError.invalidName("no pool")) { try store.setEgressPool("no pool", name: "acme") }
        #expect(throws: AccountStoreError.notFound("ghost")) { try store.addDomain("ghost.example", toAccountNamed: "ghost") }
        #expect(throws: AccountStoreError.domainNotFound("nobody.example")) {
            try store.setDomainVerified("nobody.example", accountID: acme.id, at: Date())
        }
        // A refused name leaves nothing behind: the failed transaction is rolled back whole.
        #expect(try store.accounts().map(\.name) == ["acme"])
    }

    @Test(arguments: StoreEngine.available)
    func credentialsAuthenticateRotateAndRevoke(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let created = try store.createAccount(name: "acme", domains: ["acme.example"])
        let id = created.account.id
        let first = created.account.smtpUsername
        #expect(try store.authenticate(username: first, password: created.smtpPassword)?.name == "acme")
        #expect(try store.authenticate(username: first, password: created.smtpPassword + "x") == nil)
        #expect(try store.authenticate(username: "nobody", password: created.smtpPassword) == nil)
        try store.setDisabled(true, name: "acme")
        #expect(try store.authenticate(username: first, password: created.smtpPassword) == nil, "a disabled account signs in with nothing")
        try store.setDisabled(false, name: "acme")

        #expect(throws: SMTPCredentialError.lastCredential) { try store.revokeSMTPCredential(username: first, accountID: id) }
        let second = try store.createSMTPCredential(accountID: id)
        #expect(try store.authenticate(username: second.credential.username, password: second.password)?.domains == ["acme.example"])
        #expect(try store.authenticate(username: second.credential.username, password: created.smtpPassword) == nil)
        #expect(try store.revokeSMTPCredential(username: first, accountID: id))
        #expect(try store.authenticate(username: first, password: created.smtpPassword) == nil, "a revoked username is refused")
        #expect(try store.revokeSMTPCredential(username: first, accountID: id), "revoking again is no error")
        #expect(try !store.revokeSMTPCredential(username: "nobody", accountID: id))
        #expect(throws: SMTPCredentialError.lastCredential) {
            try store.revokeSMTPCredential(username: second.credential.username, accountID: id)
        }
        let listed = try store.smtpCredentials(accountID: id)
        #expect(listed.map(\.username) == [first, second.credential.username])
        #expect(listed.map(\.primary) == [true, false] && listed[0].revokedAt != nil && listed[1].revokedAt == nil)
        for _ in 0..<9 { _ = try store.createSMTPCredential(accountID: id) }
        #expect(throws: SMTPCredentialError.tooMany) { try store.createSMTPCredential(accountID: id) }
    }

    @Test(arguments: StoreEngine.available)
    func suppressionsAreKeptFoundAndRemoved(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: []).account.id
        let beta = try store.createAccount(name: "beta", domains: []).account.id
        let day = Date(timeIntervalSince1970: 1_780_000_000)
        try store.suppress([
            Suppression(address: "Old@Example.com", reason: .bounce, createdAt: day, source: "reply"),
            Suppression(address: "a_b@example.com", reason: .complaint, scope: .marketing, createdAt: day.addingTimeInterval(60)),
            Suppression(address: "a%b@example.com", reason: .manual, createdAt: day.addingTimeInterval(120)),
            // The same address twice in one call: the later entry is the one kept.
            Suppression(address: "old@example.com", reason: .unsubscribe, scope: .marketing, createdAt: day.addingTimeInterval(180)),
        ], accountID: acme)
        try store.suppress(Suppression(address: "old@example.com", reason: .bounce, createdAt: day), accountID: beta)

        let old = try #require(try store.suppression(accountID: acme, address: "OLD@example.COM"))
        #expect(old.address == "old@example.com" && old.reason == .unsubscribe && old.scope == .marketing && old.source == nil)
        #expect(old.createdAt == day.addingTimeInterval(180))
        #expect(try store.suppression(accountID: acme, address: "new@example.com") == nil)

        func addresses(_ reasons: [Suppression.Reason] = [], since: Date? = nil, until: Date? = nil, containing: String? = nil,
                       offset: Int = 0, limit: Int = 100) throws -> [String] {
            try store.suppressions(accountID: acme, reasons: reasons, since: since, until: until, containing: containing,
                                   offset: offset, limit: limit).map(\.address)
        }
        #expect(try addresses() == ["old@example.com", "a%b@example.com", "a_b@example.com"], "newest first")
        #expect(try addresses([.complaint, .manual]) == ["a%b@example.com", "a_b@example.com"])
        #expect(try addresses(since: day.addingTimeInterval(60), until: day.addingTimeInterval(180)) == ["a%b@example.com", "a_b@example.com"])
        // A search's text is matched as text: '%' and '_' are no wildcards.
        #expect(try addresses(containing: "a_b") == ["a_b@example.com"])
        #expect(try addresses(containing: "%") == ["a%b@example.com"])
        #expect(try addresses(containing: "OLD") == ["old@example.com"])
        #expect(try addresses(containing: "' OR 1=1 --").isEmpty)
        #expect(try addresses(offset: 1, limit: 1) == ["a%b@example.com"])

        let all = try store.suppressionsByAccount()
        #expect(Set(all[acme]?.keys.map { $0 } ?? []) == ["old@example.com", "a_b@example.com", "a%b@example.com"])
        #expect(all[beta]?["old@example.com"]?.reason == .bounce)

        try store.unsuppress(accountID: acme, address: "Old@Example.com")
        #expect(try store.suppression(accountID: acme, address: "old@example.com") == nil)
        #expect(try store.suppression(accountID: beta, address: "old@example.com") != nil, "another account's list is its own")
        #expect(throws: AccountStoreError.notFound("old@example.com")) { try store.unsuppress(accountID: acme, address: "old@example.com") }
    }

    @Test(arguments: StoreEngine.available)
    func automaticSuppressionFollowsTheAccountAndNeverNarrows(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: []).account.id
        try store.setSuppressedReasons([.complaint], accountID: acme)
        #expect(try !store.suppressAutomatically(Suppression(address: "x@example.com", reason: .bounce), accountID: acme))
        #expect(try store.suppression(accountID: acme, address: "x@example.com") == nil)
        try store.suppress(Suppression(address: "x@example.com", reason: .manual), accountID: acme)
        #expect(try !store.suppressAutomatically(Suppression(address: "x@example.com", reason: .complaint, scope: .marketing),
                                                 accountID: acme), "an entry for all mail is not narrowed to marketing")
        #expect(try store.suppression(accountID: acme, address: "x@example.com")?.scope == .all)
        #expect(try store.suppressAutomatically(Suppression(address: "y@example.com", reason: .complaint), accountID: acme))
        #expect(try !store.suppressAutomatically(Suppression(address: "z@example.com", reason: .complaint), accountID: 987_654))
    }

    @Test(arguments: StoreEngine.available)
    func aLargeImportIsOneCall(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: []).account.id
        let entries = (0..<2_500).map { Suppression(address: "user\($0)@example.com", reason: .manual, source: $0 % 2 == 0 ? "import" : nil) }
        try store.suppress(entries, accountID: acme)
        let kept = try store.suppressionsByAccount()[acme] ?? [:]
        #expect(kept.count == 2_500)
        #expect(kept["user2@example.com"]?.source == "import" && kept["user3@example.com"]?.source == nil)
    }

    @Test(arguments: StoreEngine.available)
    func apiKeysVerifyUntilRevokedAndKeepNoSecretInClear(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: []).account
        let created = try store.createAPIKey(accountNamed: "acme", scope: .read, label: "deploy")
        #expect(created.token == "hk_\(created.key.keyID)_\(created.secret)")
        #expect(try store.verifyAPIToken(created.token) == created.key)
        #expect(try store.verifyAPIToken(created.token + "x") == nil)
        #expect(try store.verifyAPIToken("hk_\(created.key.keyID)_") == nil)
        #expect(try store.verifyAPIToken("hk_NOSUCHKEY_\(created.secret)") == nil)
        #expect(try store.verifyAPIToken("not a token") == nil)
        #expect(try store.apiKeySecret(accessKeyID: created.key.keyID)?.1 == created.secret)
        let second = try store.createAPIKey(accountNamed: "acme", scope: .send)
        #expect(try store.apiKeys(accountID: acme.id).map(\.keyID).sorted() == [created.key.keyID, second.key.keyID].sorted())
        #expect(try store.apiKeys().count == 2 && store.apiKeys(accountID: 987_654).isEmpty)
        #expect(try store.apiKeys(accountID: acme.id).first { $0.keyID == created.key.keyID }?.name == "deploy")

        try store.revokeAPIKey(created.key.keyID)
        #expect(try store.verifyAPIToken(created.token) == nil && store.apiKeySecret(accessKeyID: created.key.keyID) == nil)
        #expect(try store.apiKeys(accountID: acme.id).first { $0.keyID == created.key.keyID }?.revoked == true)
        #expect(throws: AccountStoreError.notFound("HKNONE")) { try store.revokeAPIKey("HKNONE") }
        #expect(throws: AccountStoreError.notFound("ghost")) { try store.createAPIKey(accountNamed: "ghost", scope: .send) }
        try store.setDisabled(true, name: "acme")
        #expect(try store.verifyAPIToken(second.token) == nil, "a disabled account's keys stop working")
    }
}
