import Foundation
import Testing
@testable import Store

/// Every capability both engines implement.
typealias SharedStore = AccountStore & SuppressionList & APIKeyStore & DKIMKeyStore & ReturnPathStore & NodeRegistry & UsageLedger & TemplateStore
    & UnsubscribeGroupStore & ConsoleUserStore & WebhookStore & ConfigurationSetStore

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
    func makeStore() throws -> any SharedStore {
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

    /// Two nodes, "a" and "b", sharing one new database.
    static func twoNodes() throws -> (PostgresStore, PostgresStore) {
        let location = try make()
        let secrets = StoreEngine.secretsKeyPath()
        return (try PostgresStore(location: location, secretsKeyPath: secrets, nodeName: "a", hashParameters: StoreEngine.hashing),
                try PostgresStore(location: location, secretsKeyPath: secrets, nodeName: "b", hashParameters: StoreEngine.hashing))
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
        _ = try store.createAccount(name: "Zeta", domains: [])
        _ = try store.createAccount(name: "_ops", domains: [])
        // Byte order on both engines, whatever the database's locale: upper case, then '_', then lower case.
        #expect(try store.accounts().map(\.name) == ["Zeta", "_ops", "acme", "beta"])
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
        // Another account cannot revoke it.
        let other = try store.createAccount(name: "other", domains: []).account
        #expect(try !store.revokeSMTPCredential(username: second.credential.username, accountID: other.id))
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
        // A marketing-only entry (an unsubscribe) is widened by a complaint to all mail.
        try store.suppress(Suppression(address: "u@example.com", reason: .unsubscribe, scope: .marketing), accountID: acme)
        #expect(try store.suppressAutomatically(Suppression(address: "U@example.com", reason: .complaint), accountID: acme))
        #expect(try store.suppression(accountID: acme, address: "u@example.com").map { ($0.reason, $0.scope) } ?? (.manual, .marketing)
            == (.complaint, .all))
        #expect(Suppression.Scope.marketing.covers(marketing: true) && !Suppression.Scope.marketing.covers(marketing: false))
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

    @Test(arguments: StoreEngine.available)
    func returnPathsAreTheDomainsOwnAndUsedOnlyOnceVerified(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let account = try store.createAccount(name: "acme", domains: ["acme.example"]).account
        #expect(throws: AccountStoreError.self) {
            try store.setReturnPath("bounce.other.example", domain: "acme.example", accountID: account.id)
        }
        #expect(throws: AccountStoreError.domainNotFound("nobody.example")) {
            try store.setReturnPath("bounce.nobody.example", domain: "nobody.example", accountID: account.id)
        }
        try store.setReturnPath("Bounce.Acme.example", domain: "acme.example", accountID: account.id)
        #expect(try store.returnPath(domain: "acme.example", accountID: account.id) == ReturnPathSetting(domain: "bounce.acme.example", verified: false))
        #expect(try store.verifiedReturnPaths().isEmpty)
        try store.setReturnPathVerified(domain: "acme.example", accountID: account.id, at: Date())
        #expect(try store.verifiedReturnPaths() == ["acme.example": "bounce.acme.example"])
        // A new setting starts unverified again; removing it goes back to the server's bounce domain.
        try store.setReturnPath("mail.acme.example", domain: "acme.example", accountID: account.id)
        #expect(try store.verifiedReturnPaths().isEmpty)
        try store.setReturnPath(nil, domain: "acme.example", accountID: account.id)
        #expect(try store.returnPath(domain: "acme.example", accountID: account.id) == nil)
    }

    @Test(arguments: StoreEngine.available)
    func dkimKeysAreActiveOnePerAlgorithm(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        _ = try store.createAccount(name: "acme", domains: [])
        func add(_ selector: String, _ algorithm: String, activate: Bool) throws {
            _ = try store.addDKIMKey(accountNamed: "acme", domain: "acme.example", selector: selector, algorithm: algorithm,
                                     privateKey: Data([1, 2, 3]), publicKey: "p", activate: activate)
        }
        try add("rsa1", "rsa", activate: true)
        try add("ed1", "ed25519", activate: true)
        try add("rsa2", "rsa", activate: false)
        func active() throws -> Set<String> { Set(try store.activeDKIMKeys().map(\.record.selector)) }
        #expect(try active() == ["rsa1", "ed1"], "an RSA and an Ed25519 key sign side by side")
        try store.activateDKIMKey(domain: "acme.example", selector: "rsa2")
        #expect(try active() == ["rsa2", "ed1"], "rotating the RSA key leaves the Ed25519 one")
        try add("ed2", "ed25519", activate: true)
        #expect(try active() == ["rsa2", "ed2"])
    }

    // An admin key may add any domain, but an unverified claim must not keep the real owner out.
    @Test(arguments: StoreEngine.available)
    func anUnverifiedClaimDoesNotBlockTheOwner(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let squatter = try store.createAccount(name: "squatter", domains: []).account
        let owner = try store.createAccount(name: "owner", domains: []).account
        func add(_ account: String, _ selector: String) throws {
            _ = try store.addDKIMKey(accountNamed: account, domain: "victim.example", selector: selector, algorithm: "rsa",
                                     privateKey: Data([1]), publicKey: selector, activate: true)
        }
        try add("squatter", "s1")
        try add("owner", "o1")
        #expect(Set(try store.activeDKIMKeys().map(\.record.selector)) == ["s1", "o1"], "each account's key is its own")
        try store.setDomainVerified("victim.example", accountID: owner.id, at: Date())
        #expect(throws: DKIMKeyError.domainOfAnotherAccount("victim.example")) { try add("squatter", "s2") }
        try add("owner", "o2")
        try store.activateDKIMKey(domain: "victim.example", selector: "o2")
        #expect(Set(try store.activeDKIMKeys().map(\.record.selector)) == ["s1", "o2"], "a rotation touches its own account's keys")
        #expect(try store.account(id: squatter.id)?.verifiedDomains == [])
    }

    @Test(arguments: StoreEngine.available)
    func heartbeatsReplaceTheNodesRowAndAreListedByName(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        #expect(try store.nodes().isEmpty)
        let started = Date(timeIntervalSince1970: 1_800_000_000)
        var b = NodeStatus(name: "node-b", version: "1.0", startedAt: started, heartbeatAt: started, pendingRecipients: 3, pendingMessages: 2)
        try store.recordHeartbeat(b)
        try store.recordHeartbeat(NodeStatus(name: "node-a", version: "1.0", startedAt: started, heartbeatAt: started,
                                             pendingRecipients: 0, pendingMessages: 0))
        b.heartbeatAt = started.addingTimeInterval(10)
        b.pendingRecipients = 7
        b.version = "1.1"
        try store.recordHeartbeat(b)
        let nodes = try store.nodes()
        #expect(nodes.map(\.name) == ["node-a", "node-b"])
        #expect(nodes[1] == b, "the last heartbeat replaces the row")
        #expect(b.isAlive(now: started.addingTimeInterval(40), heartbeatSeconds: 10))
        #expect(!b.isAlive(now: started.addingTimeInterval(41), heartbeatSeconds: 10))
        #expect(try store.forgetNode(named: "node-a"))
        #expect(try !store.forgetNode(named: "node-a"))
        #expect(try store.nodes().map(\.name) == ["node-b"])
    }

    @Test(arguments: StoreEngine.available)
    func dkimKeysAreSealedFoundRotatedAndDeleted(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: []).account
        let added = try store.addDKIMKey(accountNamed: "acme", domain: "Acme.Example", selector: "s1", algorithm: "rsa",
                                         privateKey: Data([9, 8, 7]), publicKey: "MIIB", activate: true)
        #expect(added.domain == "acme.example" && added.active)
        #expect(try store.account(id: acme.id)?.domains == ["acme.example"], "a key's domain becomes the account's")
        #expect(try store.activeDKIMKeys().map(\.privateKey) == [Data([9, 8, 7])])
        #expect(try store.dkimKeys(domain: "ACME.example").map(\.selector) == ["s1"])
        #expect(try store.dkimKeys(accountID: 987_654).isEmpty)
        #expect(throws: DKIMKeyError.selectorTaken("s1 for acme.example")) {
            try store.addDKIMKey(accountNamed: "acme", domain: "acme.example", selector: "s1", algorithm: "rsa",
                                 privateKey: Data([1]), publicKey: "p", activate: false)
        }
        #expect(throws: DKIMKeyError.invalidSelector("bad_selector")) {
            try store.addDKIMKey(accountNamed: "acme", domain: "acme.example", selector: "bad_selector", algorithm: "rsa",
                                 privateKey: Data([1]), publicKey: "p", activate: false)
        }
        #expect(throws: AccountStoreError.notFound("ghost")) {
            try store.addDKIMKey(accountNamed: "ghost", domain: "acme.example", selector: "s9", algorithm: "rsa",
                                 privateKey: Data([1]), publicKey: "p", activate: false)
        }
        #expect(throws: DKIMKeyError.notFound("nope for acme.example")) { try store.activateDKIMKey(domain: "acme.example", selector: "nope") }
        try store.deleteDKIMKey(domain: "ACME.EXAMPLE", selector: "s1")
        #expect(try store.activeDKIMKeys().isEmpty)
        #expect(throws: DKIMKeyError.notFound("s1 for acme.example")) { try store.deleteDKIMKey(domain: "acme.example", selector: "s1") }
    }

    @Test(arguments: StoreEngine.available)
    func meterEnforcesDailyQuotaRateAndSandbox(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        _ = try store.createAccount(name: "acme", domains: ["acme.example"])
        try store.setQuota(SendQuota(maxSendRate: 2, max24HourSend: 5, sandbox: true), name: "acme")
        let account = try #require(try store.account(named: "acme"))
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        // A domain claimed but not verified counts for nothing, not even as a sandbox recipient.
        #expect(SendingMeter(store: store).admit(accountID: account.id, messages: 1, recipients: ["a@acme.example"], bytes: 10, now: start)
            == .sandboxRecipient("a@acme.example"))
        #expect(SendingMeter(store: store, sandboxNeedsVerifiedDomains: false)
            .admit(accountID: account.id, messages: 1, recipients: ["a@acme.example"], bytes: 10, now: start) == .accepted)
        try store.setDomainVerified("acme.example", accountID: account.id, at: start)
        let meter = SendingMeter(store: store)
        #expect(meter.admit(accountID: account.id, messages: 1, recipients: ["x@other.example"], bytes: 10, now: start)
            == .sandboxRecipient("x@other.example"))
        #expect(meter.admit(accountID: account.id, messages: 1, recipients: ["a@acme.example", "b@acme.example"], bytes: 10, now: start)
            == .accepted)
        if case .rateExceeded(let wait) = meter.admit(accountID: account.id, messages: 1, recipients: ["c@acme.example"], bytes: 10,
                                                      now: start) {
            #expect(wait > 0 && wait <= 1)
        } else {
            Issue.record("expected the rate limit")
        }
        #expect(meter.admit(accountID: account.id, messages: 1, recipients: ["c@acme.example", "d@acme.example"], bytes: 10,
                            now: start.addingTimeInterval(1)) == .accepted)
        #expect(meter.admit(accountID: account.id, messages: 1, recipients: ["e@acme.example", "f@acme.example"], bytes: 10,
                            now: start.addingTimeInterval(2)) == .dailyQuotaExceeded)
        meter.release(accountID: account.id, messages: 1, recipients: 2, bytes: 10, now: start.addingTimeInterval(2))
        #expect(meter.sentLast24Hours(accountID: account.id, now: start.addingTimeInterval(2)) == 2)
        #expect(meter.admit(accountID: account.id, messages: 1, recipients: ["g@acme.example"], bytes: 10,
                            now: start.addingTimeInterval(25 * 3600)) == .accepted, "the window rolls")
        try meter.flush()
        let usage = try store.dailyUsage(accountID: account.id, since: start.addingTimeInterval(-86400),
                                         until: start.addingTimeInterval(3 * 86400))
        #expect(usage.reduce(0) { $0 + $1.recipients } == 3 && usage.reduce(0) { $0 + $1.messages } == 2)
        // A new meter (a restart) counts what was flushed.
        #expect(SendingMeter(store: store).sentLast24Hours(accountID: account.id, now: start.addingTimeInterval(25 * 3600)) == 1)
    }

    @Test(arguments: StoreEngine.available)
    func nodesSharingAStoreShareTheDailyQuota(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let account = try store.createAccount(name: "acme", domains: []).account
        try store.setQuota(SendQuota(maxSendRate: -1, max24HourSend: 100), name: "acme")
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        // Two meters on one store: two nodes. Each admits alone what it sees free.
        let nodeA = SendingMeter(store: store), nodeB = SendingMeter(store: store)
        func send(_ meter: SendingMeter, _ recipients: Int, at seconds: Double) -> Admission {
            meter.admit(accountID: account.id, messages: 1, recipients: (0..<recipients).map { "r\($0)@example.com" }, bytes: 100,
                        now: start.addingTimeInterval(seconds))
        }
        #expect(send(nodeA, 60, at: 0) == .accepted)
        #expect(send(nodeB, 30, at: 0) == .accepted, "B has not heard of A's sending yet: the documented tolerance")
        try nodeA.flush()
        try nodeB.flush()
        // Once each reads the ledger again (after `refresh`), the other's sending counts against the quota.
        #expect(send(nodeB, 11, at: 6) == .dailyQuotaExceeded)
        #expect(send(nodeA, 11, at: 6) == .dailyQuotaExceeded)
        #expect(send(nodeA, 10, at: 6) == .accepted)
        #expect(nodeB.sentLast24Hours(accountID: account.id, now: start.addingTimeInterval(6)) == 90,
                "B counts what the ledger holds, not A's unflushed 10")
        #expect(nodeA.sentLast24Hours(accountID: account.id, now: start.addingTimeInterval(6)) == 100)
        try nodeA.flush()
        #expect(send(nodeB, 1, at: 12) == .dailyQuotaExceeded)
        let usage = try store.dailyUsage(accountID: account.id, since: start.addingTimeInterval(-86400), until: start.addingTimeInterval(86400))
        #expect(usage.map(\.recipients).reduce(0, +) == 100 && usage.map(\.messages).reduce(0, +) == 3)
        #expect(usage.map(\.bytes).reduce(0, +) == 300)
    }

    @Test(arguments: StoreEngine.available)
    func unsubscribeGroupsKeepWhoLeftEachTopic(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: []).account.id
        let other = try store.createAccount(name: "other", domains: []).account.id
        let news = try store.createUnsubscribeGroup(accountID: acme, name: "ニュース", description: "news", isDefault: true)
        let offers = try store.createUnsubscribeGroup(accountID: acme, name: "Offers", description: "", isDefault: true)
        #expect(try store.unsubscribeGroups(accountID: acme).map(\.isDefault) == [false, true], "one default per account")
        try store.updateUnsubscribeGroup(accountID: acme, id: news.id, name: nil, description: "daily news", isDefault: nil)
        #expect(try store.unsubscribeGroup(accountID: acme, id: news.id).map { ($0.name, $0.description) } ?? ("", "") == ("ニュース", "daily news"))
        #expect(try store.unsubscribeGroup(accountID: other, id: news.id) == nil, "another account's group is not found")
        #expect(throws: UnsubscribeGroupError.notFound(news.id)) {
            try store.updateUnsubscribeGroup(accountID: other, id: news.id, name: "mine", description: nil, isDefault: nil)
        }
        #expect(throws: UnsubscribeGroupError.notFound(news.id)) {
            try store.unsubscribe(["x@example.com"], fromGroup: news.id, accountID: other, source: nil)
        }

        try store.unsubscribe(["B@example.com", "a@example.com", "b@example.com"], fromGroup: news.id, accountID: acme, source: "api")
        #expect(try store.groupUnsubscribes(accountID: acme, group: news.id) == ["a@example.com", "b@example.com"])
        #expect(try store.unsubscribeGroup(accountID: acme, id: news.id)?.unsubscribes == 2)
        #expect(try store.groupsUnsubscribed(accountID: acme, address: "A@Example.com") == [news.id])
        #expect(try store.groupUnsubscribesByGroup()[news.id] == ["a@example.com", "b@example.com"])
        try store.resubscribe("A@example.com", toGroup: news.id, accountID: acme)
        #expect(throws: UnsubscribeGroupError.notFound(news.id)) { try store.resubscribe("a@example.com", toGroup: news.id, accountID: acme) }

        // The preference page: stay in news, leave offers.
        var saved = try store.saveTopicPreferences(accountID: acme, address: "B@example.com", staying: [news.id], leaveAll: false,
                                                   source: "preference page")
        #expect(saved.left && saved.changed)
        #expect(try store.groupsUnsubscribed(accountID: acme, address: "b@example.com") == [offers.id])
        #expect(try store.suppression(accountID: acme, address: "b@example.com") == nil)
        // Leave everything: every group, and marketing mail as a whole.
        saved = try store.saveTopicPreferences(accountID: acme, address: "b@example.com", staying: [], leaveAll: true, source: "preference page")
        #expect(try saved.left && store.groupsUnsubscribed(accountID: acme, address: "b@example.com") == [news.id, offers.id])
        #expect(try store.suppression(accountID: acme, address: "b@example.com").map { ($0.reason, $0.scope) } ?? (.manual, .all)
            == (.unsubscribe, .marketing))
        // Coming back lifts the page's own suppression, never one the sender or a bounce made.
        saved = try store.saveTopicPreferences(accountID: acme, address: "b@example.com", staying: [news.id, offers.id], leaveAll: false,
                                               source: "preference page")
        #expect(try !saved.left && saved.changed && store.suppression(accountID: acme, address: "b@example.com") == nil)
        try store.suppress(Suppression(address: "c@example.com", reason: .bounce), accountID: acme)
        saved = try store.saveTopicPreferences(accountID: acme, address: "c@example.com", staying: [news.id], leaveAll: false, source: "preference page")
        #expect(try store.suppression(accountID: acme, address: "c@example.com")?.reason == .bounce)
        saved = try store.saveTopicPreferences(accountID: acme, address: "c@example.com", staying: [news.id], leaveAll: false, source: "preference page")
        #expect(!saved.left && !saved.changed, "saving the same choice again changes nothing")

        try store.deleteUnsubscribeGroup(accountID: acme, id: news.id)
        #expect(try store.groupUnsubscribesByGroup()[news.id] == nil, "a group's list goes with it")
        #expect(throws: UnsubscribeGroupError.notFound(news.id)) { try store.deleteUnsubscribeGroup(accountID: acme, id: news.id) }
        for index in 1..<UnsubscribeGroup.maximumPerAccount {
            _ = try store.createUnsubscribeGroup(accountID: acme, name: "g\(index)", description: "", isDefault: false)
        }
        #expect(throws: UnsubscribeGroupError.tooMany) {
            try store.createUnsubscribeGroup(accountID: acme, name: "one more", description: "", isDefault: false)
        }
        #expect(try store.createUnsubscribeGroup(accountID: other, name: "theirs", description: "", isDefault: false).name == "theirs")
    }

    @Test(arguments: StoreEngine.available)
    func webhooksKeepTheirKeysPositionAndHistory(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: []).account.id
        let other = try store.createAccount(name: "other", domains: []).account.id
        let native = try store.createWebhook(accountID: acme, name: nil, url: "https://a.example/hook", format: .native,
                                             eventTypes: ["delivered", "bounced"], cursor: 41)
        #expect(native.secret?.hasPrefix("whsec_") == true && native.webhook.name == native.webhook.id && native.webhook.confirmed)
        #expect(native.webhook.cursor == 41 && native.webhook.eventTypes == ["delivered", "bounced"] && native.webhook.enabled)
        guard case .hmac(let key)? = try store.webhookSigningKey(id: native.webhook.id) else { Issue.record("no HMAC key"); return }
        #expect(key.withUnsafeBytes { Data($0) }.base64EncodedString() == native.secret.map { String($0.dropFirst(6)) })
        let sendgrid = try store.createWebhook(accountID: acme, name: "sg", url: "https://b.example", format: .sendgrid, eventTypes: [],
                                               cursor: 0)
        #expect(sendgrid.secret == nil && sendgrid.webhook.publicKey != nil && sendgrid.webhook.wants("anything"))
        guard case .ecdsa(let signing)? = try store.webhookSigningKey(id: sendgrid.webhook.id) else { Issue.record("no ECDSA key"); return }
        #expect(signing.publicKey.derRepresentation.base64EncodedString() == sendgrid.webhook.publicKey)
        let ses = try store.createWebhook(accountID: acme, name: "topic", url: "https://c.example", format: .ses, eventTypes: [], cursor: 0)
        #expect(!ses.webhook.confirmed)
        guard case .sns? = try store.webhookSigningKey(id: ses.webhook.id) else { Issue.record("no SNS signing"); return }
        #expect(throws: WebhookStoreError.duplicateName("sg")) {
            try store.createWebhook(accountID: acme, name: "sg", url: "https://d.example", format: .native, eventTypes: [], cursor: 0)
        }
        #expect(try store.createWebhook(accountID: other, name: "sg", url: "https://d.example", format: .native, eventTypes: [],
                                        cursor: 0).webhook.name == "sg", "names are per account")

        // An SNS subscription confirms with its token; a new URL must confirm again.
        let token = try #require(try store.webhookConfirmToken(id: ses.webhook.id))
        #expect(try store.confirmWebhook(token: "wrong") == nil && store.confirmWebhook(token: "") == nil)
        #expect(try store.confirmWebhook(token: token)?.confirmed == true)
        #expect(try store.webhookConfirmToken(id: ses.webhook.id) == nil)
        let moved = try store.updateWebhook(id: ses.webhook.id, accountID: acme, url: "https://e.example")
        #expect(!moved.confirmed && moved.url == "https://e.example")
        #expect(try store.webhookConfirmToken(id: ses.webhook.id) != token)
        #expect(try store.updateWebhook(id: native.webhook.id, accountID: acme, url: "https://a2.example").confirmed,
                "only an SNS subscription confirms again")

        // Oldest first; those made in the same second by id.
        let listed = try store.webhooks(accountID: acme)
        #expect(Set(listed.map(\.id)) == [native.webhook.id, sendgrid.webhook.id, ses.webhook.id])
        #expect(listed.map(\.id) == listed.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }.map(\.id))
        #expect(try store.webhooks().count == 4 && store.webhook(id: native.webhook.id, accountID: other) == nil)
        #expect(try store.webhook(named: "sg", accountID: acme)?.id == sendgrid.webhook.id)
        #expect(throws: WebhookStoreError.notFound(native.webhook.id)) {
            try store.updateWebhook(id: native.webhook.id, accountID: other, enabled: false)
        }

        // The position moves forward only; failing, disabled by the server, enabled again.
        try store.advanceWebhook(id: native.webhook.id, to: 50, succeeded: true)
        try store.advanceWebhook(id: native.webhook.id, to: 45, succeeded: false)
        #expect(try store.webhook(id: native.webhook.id, accountID: nil)?.cursor == 50)
        #expect(try store.webhookPosition(id: native.webhook.id) == 50)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(try store.markWebhookFailing(id: native.webhook.id, at: start) == start)
        #expect(try store.markWebhookFailing(id: native.webhook.id, at: start.addingTimeInterval(60)) == start, "the streak's start stays")
        try store.disableWebhook(id: native.webhook.id, reason: "failing for 3 days")
        var found = try #require(try store.webhook(id: native.webhook.id, accountID: acme))
        #expect(!found.enabled && found.disabledReason == "failing for 3 days" && found.failingSince == start)
        found = try store.updateWebhook(id: native.webhook.id, accountID: acme, eventTypes: ["opened"], enabled: true)
        #expect(found.enabled && found.disabledReason == nil && found.failingSince == nil && found.eventTypes == ["opened"])
        try store.markWebhookFailing(id: native.webhook.id, at: start)
        try store.advanceWebhook(id: native.webhook.id, to: 60, succeeded: true)
        #expect(try store.webhook(id: native.webhook.id, accountID: acme)?.failingSince == nil, "a success ends the streak")

        for index in 0..<7 {
            try store.recordWebhookAttempt(WebhookAttempt(at: start.addingTimeInterval(Double(index)), events: index, firstEvent: 1,
                                                          lastEvent: Int64(index), status: index == 6 ? nil : 500, error: "e\(index)",
                                                          durationMilliseconds: 12), webhookID: native.webhook.id, keep: 5)
        }
        let attempts = try store.webhookAttempts(webhookID: native.webhook.id, limit: 10)
        #expect(attempts.map(\.events) == [6, 5, 4, 3, 2], "the newest five are kept, newest first")
        #expect(attempts[0].status == nil && attempts[1].status == 500 && !attempts[0].succeeded)
        let replay = try store.addWebhookReplay(webhookID: native.webhook.id, after: 10, through: 20)
        try store.advanceWebhookReplay(id: replay.id, to: 15)
        try store.advanceWebhookReplay(id: replay.id, to: 12)
        #expect(try store.webhookReplays(webhookID: native.webhook.id).map(\.after) == [15])
        try store.advanceWebhookReplay(id: replay.id, to: 20)
        #expect(try store.webhookReplays(webhookID: native.webhook.id).isEmpty, "finished once past its end")

        try store.deleteWebhook(id: native.webhook.id, accountID: acme)
        #expect(try store.webhookAttempts(webhookID: native.webhook.id, limit: 10).isEmpty)
        #expect(throws: WebhookStoreError.notFound(native.webhook.id)) { try store.deleteWebhook(id: native.webhook.id, accountID: nil) }
    }

    @Test(arguments: StoreEngine.available)
    func configurationSetsRouteEventsToTopics(engine: StoreEngine) throws {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: []).account.id
        try store.createConfigurationSet(accountID: acme, name: "marketing")
        try store.createConfigurationSet(accountID: acme, name: "billing")
        #expect(throws: ConfigurationSetError.alreadyExists("billing")) { try store.createConfigurationSet(accountID: acme, name: "billing") }
        #expect(try store.configurationSets(accountID: acme) == ["billing", "marketing"])
        #expect(try store.configurationSetExists(accountID: acme, name: "billing") && !store.configurationSetExists(accountID: acme, name: "x"))
        let destination = EventDestination(name: "to-sns", enabled: true, matchingEventTypes: ["BOUNCE", "COMPLAINT"],
                                           topicARN: WebhookEndpoint.topicARN(accountID: acme, name: "topic"))
        try store.saveEventDestination(destination, accountID: acme, configurationSet: "billing", replace: false)
        #expect(throws: ConfigurationSetError.alreadyExists("to-sns")) {
            try store.saveEventDestination(destination, accountID: acme, configurationSet: "billing", replace: false)
        }
        #expect(throws: ConfigurationSetError.notFound("other")) {
            try store.saveEventDestination(EventDestination(name: "other", enabled: true, matchingEventTypes: [], topicARN: "x"),
                                           accountID: acme, configurationSet: "billing", replace: true)
        }
        #expect(throws: ConfigurationSetError.notFound("nowhere")) {
            try store.saveEventDestination(destination, accountID: acme, configurationSet: "nowhere", replace: false)
        }
        var changed = destination
        changed.enabled = false
        changed.matchingEventTypes = ["DELIVERY"]
        try store.saveEventDestination(changed, accountID: acme, configurationSet: "billing", replace: true)
        #expect(try store.eventDestinations(accountID: acme, configurationSet: "billing") == [changed])
        #expect(try store.eventDestinations(accountID: acme) == ["billing": [changed]])
        try store.deleteEventDestination(accountID: acme, configurationSet: "billing", name: "to-sns")
        #expect(throws: ConfigurationSetError.notFound("to-sns")) {
            try store.deleteEventDestination(accountID: acme, configurationSet: "billing", name: "to-sns")
        }
        try store.saveEventDestination(destination, accountID: acme, configurationSet: "billing", replace: false)
        try store.deleteConfigurationSet(accountID: acme, name: "billing")
        #expect(try store.eventDestinations(accountID: acme).isEmpty, "a set's destinations go with it")
        #expect(throws: ConfigurationSetError.notFound("billing")) { try store.deleteConfigurationSet(accountID: acme, name: "billing") }

        #expect(try store.trackingDefaults(accountID: acme) == (false, false))
        try store.setTrackingDefaults(accountID: acme, opens: true, clicks: false)
        #expect(try store.trackingDefaults(accountID: acme) == (true, false))
    }
}

/// The marketer's data: contacts, lists and segments, on both engines.
struct ContactContractTests {
    typealias MarketingStore = any AccountStore & SuppressionList & ContactBook & SegmentStore & ContactActivityLog & CampaignStore

    func makeStore(_ engine: StoreEngine) throws -> (MarketingStore, Int64) {
        let store: MarketingStore = switch engine {
        case .sqlite: try SQLiteStore(path: NSTemporaryDirectory() + "hikyaku-contacts-" + UUID().uuidString + ".sqlite",
                                      hashParameters: StoreEngine.hashing)
        case .postgres: try PostgresStore(location: PostgresTestDatabase.make(), secretsKeyPath: StoreEngine.secretsKeyPath(),
                                          hashParameters: StoreEngine.hashing)
        }
        return (store, try store.createAccount(name: "acme", domains: []).account.id)
    }

    @Test(arguments: StoreEngine.available)
    func contactsKeepTypedFields(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        try store.addContactField(ContactField(name: "氏名", kind: .text), accountID: acme)
        try store.addContactField(ContactField(name: "ポイント", kind: .number), accountID: acme)
        try store.addContactField(ContactField(name: "誕生日", kind: .date), accountID: acme)
        try store.addContactField(ContactField(name: "会員", kind: .boolean), accountID: acme)
        #expect(throws: ContactError.fieldExists("氏名")) { try store.addContactField(ContactField(name: "氏名", kind: .text), accountID: acme) }
        #expect(throws: ContactError.invalidFieldName("email")) { try store.addContactField(ContactField(name: "email", kind: .text), accountID: acme) }
        #expect(try store.contactFields(accountID: acme).map(\.slot) == [1, 2, 3, 4])

        let saved = try store.upsertContact(address: "Taro@Example.JP", fields: [
            "氏名": .text("山田 太郎"), "ポイント": .number(1200.5), "誕生日": .date("1990-04-01"), "会員": .boolean(true),
        ], accountID: acme)
        #expect(saved.address == "taro@example.jp")
        #expect(saved.fields == ["氏名": .text("山田 太郎"), "ポイント": .number(1200.5), "誕生日": .date("1990-04-01"), "会員": .boolean(true)])
        // The fields given replace those values; the others stay.
        let changed = try store.upsertContact(address: "taro@example.jp", fields: ["ポイント": .number(10)], accountID: acme)
        #expect(changed.id == saved.id && changed.fields["ポイント"] == .number(10) && changed.fields["氏名"] == .text("山田 太郎"))
        #expect(throws: ContactError.unknownField("色")) { try store.upsertContact(address: "x@example.jp", fields: ["色": .text("赤")], accountID: acme) }
        #expect(throws: ContactError.invalidValue(field: "ポイント", kind: .number)) {
            try store.upsertContact(address: "x@example.jp", fields: ["ポイント": .text("many")], accountID: acme)
        }
        #expect(try store.contact(address: "x@example.jp", accountID: acme) == nil, "a refused contact is not made")

        for index in 0..<5 { try store.upsertContact(address: "c\(index)@example.jp", fields: [:], accountID: acme) }
        #expect(try store.contactCount(accountID: acme) == 6)
        let first = try store.contacts(accountID: acme, after: 0, limit: 4)
        #expect(first.count == 4 && first[0].address == "taro@example.jp")
        #expect(try store.contacts(accountID: acme, after: first[3].id, limit: 4).map(\.address) == ["c3@example.jp", "c4@example.jp"])

        // A deleted field's values go with it; a new field in its slot starts empty.
        try store.deleteContactField(named: "ポイント", accountID: acme)
        #expect(throws: ContactError.unknownField("ポイント")) { try store.deleteContactField(named: "ポイント", accountID: acme) }
        try store.addContactField(ContactField(name: "ランク", kind: .number), accountID: acme)
        #expect(try store.contactFields(accountID: acme).first { $0.name == "ランク" }?.slot == 2)
        #expect(try store.contact(address: "taro@example.jp", accountID: acme)?.fields["ランク"] == nil)

        #expect(try store.deleteContact(address: "TARO@example.jp", accountID: acme))
        #expect(try !store.deleteContact(address: "taro@example.jp", accountID: acme))
        #expect(try store.timeZone(accountID: acme).secondsFromGMT() == 0, "UTC until the account says otherwise")
    }

    @Test(arguments: StoreEngine.available)
    func activityMovesForwardAndSegmentsSeeIt(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        for index in 0..<3 { try store.upsertContact(address: "c\(index)@example.jp", fields: [:], accountID: acme) }
        #expect(try store.contactActivityCursor() == nil)
        let now = Date()
        try store.recordContactActivity([
            ContactActivity(accountID: acme, address: "c0@example.jp", kind: .delivered, at: now.addingTimeInterval(-3600)),
            ContactActivity(accountID: acme, address: "C0@example.jp", kind: .delivered, at: now.addingTimeInterval(-60)),
            ContactActivity(accountID: acme, address: "c1@example.jp", kind: .opened, at: now.addingTimeInterval(-40 * 86_400)),
            ContactActivity(accountID: acme, address: "nobody@example.jp", kind: .bounced, at: now),
        ], through: 41)
        // An older time arriving later never moves it back.
        try store.recordContactActivity([ContactActivity(accountID: acme, address: "c0@example.jp", kind: .delivered,
                                                         at: now.addingTimeInterval(-7200))], through: 42)
        #expect(try store.contactActivityCursor() == 42)
        let c0 = try #require(try store.contact(address: "c0@example.jp", accountID: acme))
        #expect(abs((c0.lastDeliveredAt ?? .distantPast).timeIntervalSince(now.addingTimeInterval(-60))) < 0.001)
        func count(_ json: String) throws -> Int {
            let parsed = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
            return try store.segmentCount(store.segmentQuery(try SegmentExpression(json: parsed), accountID: acme, now: now), accountID: acme)
        }
        #expect(try count(#"{"activity":"delivered","within_days":1}"#) == 1)
        #expect(try count(#"{"activity":"opened","within_days":30}"#) == 0)
        #expect(try count(#"{"activity":"opened"}"#) == 1)
        #expect(try count(#"{"not":{"activity":"bounced"}}"#) == 3)
    }

    @Test(arguments: StoreEngine.available)
    func listsHoldContacts(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        for index in 0..<4 { try store.upsertContact(address: "c\(index)@example.jp", fields: [:], accountID: acme) }
        let list = try store.createContactList(name: "VIP", accountID: acme)
        #expect(try store.changeListMembers(listID: list.id, addresses: ["C0@example.jp", "c1@example.jp", "nobody@example.jp"],
                                            remove: false, accountID: acme) == 2)
        #expect(try store.changeListMembers(listID: list.id, addresses: ["c1@example.jp"], remove: false, accountID: acme) == 1,
                "adding a member again is no error")
        #expect(try store.contactLists(accountID: acme).map(\.members) == [2])
        #expect(try store.contact(address: "c0@example.jp", accountID: acme)?.lists == [list.id])
        #expect(try store.changeListMembers(listID: list.id, addresses: ["c0@example.jp"], remove: true, accountID: acme) == 1)
        #expect(try store.contactLists(accountID: acme).map(\.members) == [1])
        let other = try store.createAccount(name: "other", domains: []).account.id
        #expect(throws: ContactError.notFound("list \(list.id)")) {
            try store.changeListMembers(listID: list.id, addresses: ["c2@example.jp"], remove: false, accountID: other)
        }
        _ = try store.deleteContact(address: "c1@example.jp", accountID: acme)
        #expect(try store.contactLists(accountID: acme).map(\.members) == [0], "a deleted contact leaves its lists")
        try store.deleteContactList(id: list.id, accountID: acme)
        #expect(throws: ContactError.notFound("list \(list.id)")) { try store.deleteContactList(id: list.id, accountID: acme) }
    }

    /// Every segment below counted by the store and by Swift over the same generated contacts: the two
    /// engines' SQL must say what the expression says, NULLs and edge dates included.
    @Test(arguments: StoreEngine.available)
    func segmentsCountWhatTheExpressionSays(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        for (name, kind) in [("name", ContactField.Kind.text), ("points", .number), ("birthday", .date), ("vip", .boolean)] {
            try store.addContactField(ContactField(name: name, kind: kind), accountID: acme)
        }
        let list = try store.createContactList(name: "list", accountID: acme)
        struct Person { var address: String; var name: String?; var points: Double?; var birthday: CalendarDate?; var vip: Bool?; var listed: Bool }
        var generator = SeededGenerator(seed: 20261206)
        let names = ["田中", "Alice", "alice", "Bob", "山田太郎", "a_b", "100%", "Émile"]
        var people: [Person] = []
        for index in 0..<240 {
            let person = Person(
                address: "c\(index)@example.com",
                name: Int.random(in: 0..<6, using: &generator) == 0 ? nil : names[Int.random(in: 0..<names.count, using: &generator)],
                points: Int.random(in: 0..<5, using: &generator) == 0 ? nil : Double(Int.random(in: 0..<3000, using: &generator)) / 2,
                birthday: Int.random(in: 0..<5, using: &generator) == 0 ? nil
                    : CalendarDate(year: Int.random(in: 1950...2010, using: &generator), month: Int.random(in: 1...12, using: &generator),
                                   day: Int.random(in: 1...28, using: &generator)),
                vip: Int.random(in: 0..<3, using: &generator) == 0 ? nil : Bool.random(using: &generator),
                listed: Int.random(in: 0..<4, using: &generator) == 0)
            var fields: [String: ContactValue] = [:]
            if let name = person.name { fields["name"] = .text(name) }
            if let points = person.points { fields["points"] = .number(points) }
            if let birthday = person.birthday { fields["birthday"] = .date(birthday.text) }
            if let vip = person.vip { fields["vip"] = .boolean(vip) }
            try store.upsertContact(address: person.address, fields: fields, accountID: acme)
            people.append(person)
        }
        _ = try store.changeListMembers(listID: list.id, addresses: people.filter(\.listed).map(\.address), remove: false, accountID: acme)
        try store.suppress(people.prefix(30).map { Suppression(address: $0.address, reason: .manual, scope: .marketing) }, accountID: acme)
        let suppressed = Set(people.prefix(30).map(\.address))
        // The account's own zone, not UTC: "today" and "this month" are Tokyo's.
        let zone = try #require(TimeZone(identifier: "Asia/Tokyo"))
        try store.setTimeZone(zone, accountID: acme)
        let now = Date()
        let today = CalendarDate(now, in: zone)
        let tenThousandDaysAgo = CalendarDate(now.addingTimeInterval(-10_000 * 86_400), in: zone)

        let cases: [(String, (Person) -> Bool)] = [
            (#"{"field":"points","op":"gte","value":1000}"#, { ($0.points ?? -1) >= 1000 }),
            (#"{"field":"points","op":"in","value":[7,14,21.5]}"#, { [7, 14, 21.5].contains($0.points ?? -1) }),
            (#"{"field":"points","op":"missing"}"#, { $0.points == nil }),
            (#"{"not":{"field":"points","op":"lt","value":500}}"#, { !(($0.points ?? 1e9) < 500) }),
            (#"{"field":"birthday","part":"month","op":"eq","value":4}"#, { $0.birthday?.month == 4 }),
            (#"{"field":"birthday","part":"month","op":"eq","value":"this_month"}"#, { $0.birthday?.month == today.month }),
            (#"{"field":"birthday","part":"month_day","op":"lte","value":315}"#, { $0.birthday.map { $0.month * 100 + $0.day <= 315 } ?? false }),
            (#"{"field":"birthday","part":"year","op":"gte","value":2000}"#, { ($0.birthday?.year ?? 0) >= 2000 }),
            (#"{"field":"birthday","part":"day","op":"eq","value":28}"#, { $0.birthday?.day == 28 }),
            (#"{"field":"birthday","op":"lt","value":"1980-06-15"}"#, { $0.birthday.map { $0 < CalendarDate(year: 1980, month: 6, day: 15)! } ?? false }),
            (#"{"field":"name","op":"contains","value":"田"}"#, { $0.name?.contains("田") ?? false }),
            (#"{"field":"name","op":"starts_with","value":"AL"}"#, { $0.name?.lowercased().hasPrefix("al") ?? false }),
            (#"{"field":"name","op":"contains","value":"_"}"#, { $0.name?.contains("_") ?? false }),
            (#"{"field":"name","op":"contains","value":"%"}"#, { $0.name?.contains("%") ?? false }),
            (#"{"field":"name","op":"eq","value":"alice"}"#, { $0.name == "alice" }),
            (#"{"field":"name","op":"gt","value":"Bob"}"#, { $0.name.map { Array($0.utf8).lexicographicallyPrecedes(Array("Bob".utf8)) == false && $0 != "Bob" } ?? false }),
            (#"{"field":"vip","op":"eq","value":true}"#, { $0.vip == true }),
            (#"{"not":{"field":"vip","op":"eq","value":true}}"#, { $0.vip != true }),
            (#"{"field":"email","op":"eq","value":"C5@Example.com"}"#, { $0.address == "c5@example.com" }),
            (#"{"field":"created_at","op":"within_last_days","value":1}"#, { _ in true }),
            (#"{"field":"created_at","part":"year","op":"eq","value":"this_year"}"#, { _ in true }),
            (#"{"list":\#(list.id)}"#, { $0.listed }),
            (#"{"all":[{"field":"points","op":"gt","value":500},{"any":[{"field":"vip","op":"eq","value":true},{"list":\#(list.id)}]}]}"#,
             { ($0.points ?? 0) > 500 && ($0.vip == true || $0.listed) }),
            (#"{"field":"birthday","part":"month_day","op":"eq","value":"today"}"#, { $0.birthday.map { $0.month == today.month && $0.day == today.day } ?? false }),
            (#"{"field":"birthday","op":"before_last_days","value":10000}"#, { $0.birthday.map { $0 < tenThousandDaysAgo } ?? false }),
            (#"{"field":"birthday","op":"within_last_days","value":10000}"#, { $0.birthday.map { !($0 < tenThousandDaysAgo) } ?? false }),
            (#"{"field":"points","op":"ne","value":7}"#, { $0.points.map { $0 != 7 } ?? false }),
            (#"{"field":"points","op":"gt","value":-5.5}"#, { $0.points != nil }),
            (#"{"field":"name","op":"exists"}"#, { $0.name != nil }),
            (#"{"field":"name","op":"in","value":["alice","Bob","nobody"]}"#, { ["alice", "Bob"].contains($0.name ?? "") }),
            (#"{"field":"email","op":"in","value":["C1@EXAMPLE.COM","c2@example.com"]}"#, { ["c1@example.com", "c2@example.com"].contains($0.address) }),
            (#"{"field":"email","op":"contains","value":"C1"}"#, { $0.address.contains("c1") }),
            // Case is folded for ASCII letters only, on both engines: "émile" does not find "Émile".
            (#"{"field":"name","op":"contains","value":"émile"}"#, { _ in false }),
            (#"{"activity":"delivered","within_days":30}"#, { _ in false }),
            (#"{"not":{"activity":"bounced"}}"#, { _ in true }),
        ]
        for (json, expected) in cases {
            let parsed = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
            let query = try store.segmentQuery(try SegmentExpression(json: parsed), accountID: acme, now: now)
            let matching = people.filter(expected)
            let counts = try store.segmentCounts(query, accountID: acme)
            #expect(counts.all == matching.count, "\(json)")
            #expect(counts.sendable == matching.filter { !suppressed.contains($0.address) }.count, "\(json)")
            #expect(try store.segmentCount(query, accountID: acme, sendable: true) == counts.sendable, "\(json)")
            var listed: [String] = []
            var after: Int64 = 0
            while true {
                let page = try store.segmentContacts(query, accountID: acme, after: after, limit: 50)
                guard let last = page.last else { break }
                listed += page.map(\.address)
                after = last.id
            }
            #expect(Set(listed) == Set(matching.map(\.address)) && listed.count == matching.count, "\(json)")
        }
    }

    @Test(arguments: StoreEngine.available)
    func segmentsAreSavedPerAccount(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        let expression = JSONValue.object(["field": .string("email"), "op": .string("contains"), "value": .string("@")])
        let saved = try store.saveSegment(name: "everyone", expression: expression, accountID: acme)
        #expect(try store.segments(accountID: acme) == [saved] && store.segment(id: saved.id, accountID: acme) == saved)
        let renamed = try store.saveSegment(name: "all", expression: expression, accountID: acme, id: saved.id)
        #expect(try store.segment(id: saved.id, accountID: acme)?.name == "all" && renamed.id == saved.id)
        let other = try store.createAccount(name: "other", domains: []).account.id
        #expect(try store.segment(id: saved.id, accountID: other) == nil)
        #expect(throws: ContactError.notFound("segment \(saved.id)")) {
            try store.saveSegment(name: "mine", expression: expression, accountID: other, id: saved.id)
        }
        try store.deleteSegment(id: saved.id, accountID: acme)
        #expect(throws: ContactError.notFound("segment \(saved.id)")) { try store.deleteSegment(id: saved.id, accountID: acme) }
    }
}

/// A small deterministic generator (SplitMix64), so that a failing case can be run again.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// CSV imports as the store stages and applies them, on both engines.
struct ContactImportContractTests {
    typealias ImportingStore = any AccountStore & ContactBook & ContactImportStore

    func makeStore(_ engine: StoreEngine, node: String = "node-a", location: PostgresLocation? = nil) throws -> (ImportingStore, Int64) {
        let store: ImportingStore = switch engine {
        case .sqlite: try SQLiteStore(path: NSTemporaryDirectory() + "hikyaku-imports-" + UUID().uuidString + ".sqlite",
                                      hashParameters: StoreEngine.hashing)
        case .postgres: try PostgresStore(location: location ?? PostgresTestDatabase.make(), secretsKeyPath: StoreEngine.secretsKeyPath(),
                                          nodeName: node, hashParameters: StoreEngine.hashing)
        }
        return (store, try store.createAccount(name: "acme", domains: []).account.id)
    }

    @Test(arguments: StoreEngine.available)
    func anImportAppliesItsLastValuesAtOnce(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        try store.addContactField(ContactField(name: "氏名", kind: .text), accountID: acme)
        try store.addContactField(ContactField(name: "ポイント", kind: .number), accountID: acme)
        try store.addContactField(ContactField(name: "誕生日", kind: .date), accountID: acme)
        try store.upsertContact(address: "old@example.jp", fields: ["氏名": .text("旧"), "ポイント": .number(5)], accountID: acme)
        let list = try store.createContactList(name: "imported", accountID: acme)
        let id = try store.beginContactImport(accountID: acme, listID: list.id)
        #expect(throws: ContactError.importRunning(thisAccount: true)) { try store.beginContactImport(accountID: acme, listID: nil) }
        let other = try store.createAccount(name: "other", domains: []).account.id
        #expect(throws: ContactError.importRunning(thisAccount: false)) {
            try store.beginContactImport(accountID: other, listID: nil, maximumRunning: 1)
        }
        #expect(throws: ContactError.notFound("list \(list.id)")) { try store.beginContactImport(accountID: other, listID: list.id) }
        try store.stageContactRows(importID: id, slots: [1, 2, 3], rows: [
            ("A@example.jp", [.text("一"), .number(1), .date("1990-04-01")]),
            ("old@example.jp", [nil, .number(50), nil]),
        ], errors: [ContactImport.RowError(line: 4, message: "bad address")], invalid: 1, rowsRead: 3)
        // A later row of the same address: its values win, its empty cells keep the earlier row's.
        try store.stageContactRows(importID: id, slots: [1, 2, 3], rows: [
            ("a@example.jp", [nil, .number(2), nil]),
            ("b@example.jp", [.text("二"), nil, nil]),
        ], errors: [], invalid: 0, rowsRead: 5)
        #expect(try store.contact(address: "a@example.jp", accountID: acme) == nil, "nothing applies before the end")
        let ended = try store.finishContactImport(importID: id, accountID: acme)
        #expect(ended.state == .done && ended.applied == 3 && ended.rowsRead == 5 && ended.rowsValid == 4 && ended.rowsInvalid == 1)
        #expect(ended.errors == [ContactImport.RowError(line: 4, message: "bad address")] && ended.finishedAt != nil)
        #expect(try store.contact(address: "a@example.jp", accountID: acme)?.fields
            == ["氏名": .text("一"), "ポイント": .number(2), "誕生日": .date("1990-04-01")])
        #expect(try store.contact(address: "old@example.jp", accountID: acme)?.fields == ["氏名": .text("旧"), "ポイント": .number(50)])
        #expect(try store.contact(address: "b@example.jp", accountID: acme)?.fields == ["氏名": .text("二")])
        #expect(try store.contactLists(accountID: acme).map(\.members) == [3])
        #expect(try store.contactImports(accountID: acme).map(\.id) == [id])
        #expect(try store.contactImport(id: id, accountID: other) == nil)
        #expect(throws: ContactError.notFound("running import \(id)")) { try store.finishContactImport(importID: id, accountID: acme) }

        // A failed import applies nothing and takes no more rows.
        let failing = try store.beginContactImport(accountID: acme, listID: nil)
        try store.stageContactRows(importID: failing, slots: [2], rows: [("c@example.jp", [.number(9)])], errors: [], invalid: 0, rowsRead: 1)
        try store.failContactImport(importID: failing, reason: "the upload did not arrive whole", line: 0)
        #expect(throws: ContactError.notFound("running import \(failing)")) {
            try store.stageContactRows(importID: failing, slots: [2], rows: [("d@example.jp", [.number(9)])], errors: [], invalid: 0, rowsRead: 2)
        }
        #expect(try store.contactImport(id: failing)?.state == .failed)
        #expect(try store.contactImport(id: failing)?.errors.last?.message == "the upload did not arrive whole")
        #expect(try store.contact(address: "c@example.jp", accountID: acme) == nil)
        // One interrupted by a restart is failed when the node starts again.
        let interrupted = try store.beginContactImport(accountID: acme, listID: nil)
        #expect(try store.abandonUnfinishedContactImports() == 1)
        #expect(try store.contactImport(id: interrupted)?.state == .failed)
        #expect(try store.contactImport(id: interrupted)?.errors == [ContactImport.interrupted])
    }
}

extension PostgresStoreTests {
    /// Each node follows its own delivery log: its position there is its own.
    @Test func eachNodeKeepsItsOwnActivityPosition() throws {
        let location = try PostgresTestDatabase.make()
        let secrets = StoreEngine.secretsKeyPath()
        let nodeA = try PostgresStore(location: location, secretsKeyPath: secrets, nodeName: "node-a", hashParameters: StoreEngine.hashing)
        let nodeB = try PostgresStore(location: location, secretsKeyPath: secrets, nodeName: "node-b", hashParameters: StoreEngine.hashing)
        try nodeA.recordContactActivity([], through: 500)
        try nodeB.recordContactActivity([], through: 7)
        #expect(try nodeA.contactActivityCursor() == 500 && nodeB.contactActivityCursor() == 7)
    }

    /// A node that starts abandons its own unfinished imports, not another node's, which is still reading its upload.
    @Test func aStartingNodeAbandonsOnlyItsOwnImports() throws {
        let location = try PostgresTestDatabase.make()
        let secrets = StoreEngine.secretsKeyPath()
        let nodeA = try PostgresStore(location: location, secretsKeyPath: secrets, nodeName: "node-a", hashParameters: StoreEngine.hashing)
        let nodeB = try PostgresStore(location: location, secretsKeyPath: secrets, nodeName: "node-b", hashParameters: StoreEngine.hashing)
        let acme = try nodeA.createAccount(name: "acme", domains: []).account.id
        let beta = try nodeA.createAccount(name: "beta", domains: []).account.id
        let onA = try nodeA.beginContactImport(accountID: acme, listID: nil)
        let onB = try nodeB.beginContactImport(accountID: beta, listID: nil)
        #expect(try nodeB.abandonUnfinishedContactImports() == 1)
        #expect(try nodeA.contactImport(id: onA)?.state == .running && nodeA.contactImport(id: onB)?.state == .failed)
    }
}

/// Campaign runs, claims, marks and A/B tests, on both engines.
struct CampaignContractTests {
    typealias CampaignsStore = any AccountStore & SuppressionList & ContactBook & SegmentStore & CampaignStore & UnsubscribeGroupStore

    func makeStore(_ engine: StoreEngine) throws -> (CampaignsStore, Int64) {
        let store: CampaignsStore = switch engine {
        case .sqlite: try SQLiteStore(path: NSTemporaryDirectory() + "hikyaku-campaigns-" + UUID().uuidString + ".sqlite",
                                      hashParameters: StoreEngine.hashing)
        case .postgres: try PostgresStore(location: PostgresTestDatabase.make(), secretsKeyPath: StoreEngine.secretsKeyPath(),
                                          hashParameters: StoreEngine.hashing)
        }
        let acme = try store.createAccount(name: "acme", domains: ["acme.example"]).account.id
        for (name, kind) in [("氏名", ContactField.Kind.text), ("誕生日", .date), ("ポイント", .number)] {
            try store.addContactField(ContactField(name: name, kind: kind), accountID: acme)
        }
        return (store, acme)
    }

    func startedABTest(_ store: CampaignsStore, accountID: Int64, testPercent: Int) throws -> Campaign {
        var tested = Campaign.Definition(from: "news@acme.example", content: Campaign.Content(subject: "s", text: "x"))
        tested.abTest = Campaign.ABTest(variants: [Campaign.Content(subject: "a"), Campaign.Content(subject: "b")], testPercent: testPercent,
                                        criterion: .manual, waitSeconds: 60)
        let test = try store.createCampaign(name: "t", definition: tested, accountID: accountID, schedule: true)
        _ = try store.startCampaignRun(test, occurrence: "once", audience: nil, now: Date())
        return try #require(try store.campaign(id: test.id, accountID: accountID))
    }

    @Test(arguments: StoreEngine.available)
    func claimsNeverShareARowAndProgressIsCounted(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        for index in 0..<25 {
            try store.upsertContact(address: "c\(index)@x.jp", fields: ["ポイント": .number(Double(index)), "氏名": .text("顧客\(index)")],
                                    accountID: acme)
        }
        try store.suppress(Suppression(address: "c24@x.jp", reason: .unsubscribe, scope: .marketing), accountID: acme)
        let definition = Campaign.Definition(from: "news@acme.example", content: Campaign.Content(subject: "s", text: "x"))
        var campaign = try store.createCampaign(name: "c", definition: definition, accountID: acme, schedule: true)
        #expect(campaign.state == .scheduled)
        let started = try store.startCampaignRun(campaign, occurrence: "once", audience: nil, now: Date())
        #expect(started == CampaignProgress(recipients: 24, pending: 24), "the suppressed contact is left out")
        campaign = try #require(try store.campaign(id: campaign.id, accountID: acme))
        #expect(campaign.state == .sending && campaign.excluded == 1 && campaign.occurrence == "once")
        let firstClaim = CampaignClaim(seed: 1, milliseconds: 1_000), secondClaim = CampaignClaim(seed: 2, milliseconds: 2_000)
        let first = try #require(try store.claimCampaignBatch(campaign, limit: 10, recovering: true, claim: firstClaim))
        let second = try #require(try store.claimCampaignBatch(campaign, limit: 10, recovering: false, claim: secondClaim))
        #expect(first.count == 10 && second.count == 10)
        #expect(Set(first.map(\.contactID)).isDisjoint(with: second.map(\.contactID)))
        #expect(first.allSatisfy { !$0.claimedEarlier && $0.claim == firstClaim && $0.variant == 0 })
        #expect(first[0].fields == ["ポイント": .number(0), "氏名": .text("顧客0")] && first[0].address == "c0@x.jp")
        try store.markCampaignRows(campaign, first.map { CampaignRowMark($0.contactID, messageID: "m\($0.contactID)") }, state: .queued)
        #expect(try store.claimCampaignBatch(campaign, limit: 10, recovering: false, claim: CampaignClaim(seed: 3, milliseconds: 3_000))?.count == 4,
                "without recovering, the second batch's rows (still with the intake) are left alone")
        let again = try #require(try store.claimCampaignBatch(campaign, limit: 20, recovering: true, claim: CampaignClaim(seed: 4, milliseconds: 4_000)))
        #expect(again.prefix(10).map(\.contactID) == second.map(\.contactID) && again.prefix(10).map(\.claim) == second.map(\.claim),
                "a row claimed earlier comes back with the claim its id is made from")
        #expect(again.allSatisfy(\.claimedEarlier) && again.count == 14)
        #expect(try store.campaignProgress(campaign) == CampaignProgress(recipients: 24, pending: 14, queued: 10))
        // A cancelled campaign's mail is found by the ids written down and by those its claims make.
        let ids = try store.campaignMessageIDs(campaign.id) { claim, contact in "\(claim.seed):\(contact)" }
        #expect(Set(ids) == Set(first.map { "m\($0.contactID)" } + again.map { "\($0.claim?.seed ?? 0):\($0.contactID)" }))
        // Marked queued with ids made from their claims; one skipped (a template error for that contact).
        let maker: CampaignMessageIDMaker = { claim, contact in "\(claim.seed)-\(contact)" }
        let skippedOne = again[0]
        try store.markCampaignRows(campaign, [CampaignRowMark(skippedOne.contactID)], state: .skipped)
        try store.markCampaignRows(campaign, again.dropFirst().map { CampaignRowMark($0.contactID, claim: $0.claim) }, state: .queued,
                                   messageID: maker)
        #expect(try store.campaignProgress(campaign) == CampaignProgress(recipients: 24, pending: 0, queued: 23, skipped: 1))
        #expect(try store.claimCampaignBatch(campaign, limit: 10, recovering: true, claim: CampaignClaim(seed: 5, milliseconds: 5_000)) == [])
        try store.finishCampaignRun(campaign, now: Date())
        campaign = try #require(try store.campaign(id: campaign.id, accountID: acme))
        #expect(try campaign.state == .sent && store.campaignState(campaign.id) == .sent)
        #expect(Set(try store.campaignMessageIDs(campaign.id) { _, _ in "" }).count == 23, "every queued row keeps its id")
        #expect(try store.campaignTotals(campaign.id) == CampaignProgress(recipients: 24, queued: 23, skipped: 1))
        #expect(throws: CampaignError.invalidState(from: .sent, action: "paused")) {
            try store.changeCampaign(id: campaign.id, accountID: acme, action: .pause)
        }
        try store.deleteCampaign(id: campaign.id, accountID: acme)
        #expect(try store.campaign(id: campaign.id, accountID: acme) == nil)
        #expect(throws: CampaignError.notFound(campaign.id)) { try store.deleteCampaign(id: campaign.id, accountID: acme) }
    }

    @Test(arguments: StoreEngine.available)
    func aTestSendsItsShareThenTheWinnerToTheRest(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        for index in 0..<40 { try store.upsertContact(address: "t\(index)@x.jp", fields: [:], accountID: acme) }
        var test = try startedABTest(store, accountID: acme, testPercent: 50)
        #expect(try store.campaignProgress(test) == CampaignProgress(recipients: 40, pending: 20, waitingForWinner: 20))
        let rows = try #require(try store.claimCampaignBatch(test, limit: 100, recovering: false, claim: CampaignClaim(seed: 8, milliseconds: 1)))
        #expect(rows.count == 20 && rows.filter { $0.variant == 0 }.count == 10 && rows.filter { $0.variant == 1 }.count == 10,
                "split evenly between the variants")
        try store.markCampaignRows(test, rows.map { CampaignRowMark($0.contactID, messageID: "x\($0.contactID)") }, state: .queued)
        let now = Date()
        try store.finishCampaignRun(test, now: now)
        test = try #require(try store.campaign(id: test.id, accountID: acme))
        #expect(test.state == .testing && abs((test.testEndsAt ?? .distantPast).timeIntervalSince(now.addingTimeInterval(60))) < 0.001)
        #expect(try store.activeCampaigns(now: now).isEmpty && store.activeCampaigns(now: now.addingTimeInterval(61)).map(\.id) == [test.id])
        // Paused while testing, the winner chosen by hand: it waits for the resume.
        test = try store.changeCampaign(id: test.id, accountID: acme, action: .pause)
        #expect(try store.chooseCampaignWinner(test, winner: 1, decision: "by hand"))
        #expect(try !store.chooseCampaignWinner(test, winner: 0, decision: "twice"), "decided once")
        #expect(try store.campaignProgress(test) == CampaignProgress(recipients: 40, pending: 20, queued: 20))
        test = try store.changeCampaign(id: test.id, accountID: acme, action: .resume)
        #expect(test.state == .sending)
        test = try #require(try store.campaign(id: test.id, accountID: acme))
        #expect(test.winner == 1 && test.decision == "by hand")
        let rest = try #require(try store.claimCampaignBatch(test, limit: 100, recovering: true, claim: CampaignClaim(seed: 9, milliseconds: 2)))
        #expect(rest.count == 20 && rest.allSatisfy { $0.variant == 1 })
        // A contact deleted before its row was sent is skipped, not sent.
        #expect(try store.deleteContact(address: rest[0].address, accountID: acme))
        let maker: CampaignMessageIDMaker = { claim, contact in "\(claim.seed)-\(contact)" }
        try store.markCampaignRows(test, rest.dropFirst().map { CampaignRowMark($0.contactID, claim: $0.claim) }, state: .queued, messageID: maker)
        #expect(try store.claimCampaignBatch(test, limit: 100, recovering: true, claim: CampaignClaim(seed: 10, milliseconds: 3))?.map(\.contactGone)
            == [true], "claimed earlier, its contact gone: it comes back for the runner to skip")
        try store.markCampaignRows(test, [CampaignRowMark(rest[0].contactID)], state: .skipped)
        try store.finishCampaignRun(test, now: Date())
        #expect(try store.campaign(id: test.id, accountID: acme)?.state == .sent)
        #expect(try store.campaignTotals(test.id) == CampaignProgress(recipients: 40, queued: 39, skipped: 1))
    }

    /// A daily birthday campaign over two years of days, with the clock given: each contact gets one run a year,
    /// and running a day again (a restart) adds nobody.
    @Test(arguments: StoreEngine.available)
    func aDailyBirthdayRunReachesEachContactOnceAYear(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        for (index, birthday) in ["1990-04-10", "1985-12-31", "2000-01-01", "1996-02-29"].enumerated() {
            try store.upsertContact(address: "b\(index)@x.jp", fields: ["誕生日": .date(birthday)], accountID: acme)
        }
        try store.setTimeZone(try #require(TimeZone(identifier: "Asia/Tokyo")), accountID: acme)
        let segment = JSONValue.object(["field": .string("誕生日"), "part": .string("month_day"), "op": .string("eq"), "value": .string("today")])
        let start = try #require(ISO8601DateFormatter().date(from: "2026-01-01T00:00:00Z"))
        let definition = Campaign.Definition(from: "news@acme.example", content: Campaign.Content(subject: "おめでとう", text: "x"),
                                             segment: segment, dailyAt: "09:00")
        var campaign = try store.createCampaign(name: "birthday", definition: definition, accountID: acme, schedule: true, now: start)
        #expect(campaign.nextRunAt == start, "09:00 JST is 00:00 UTC: the first run is at the start")
        var runs = 0
        var sent: [String: Int] = [:]
        for day in 0..<(365 * 2) {
            let now = start.addingTimeInterval(Double(day) * 86_400 + 60)
            campaign = try #require(try store.campaign(id: campaign.id, accountID: acme))
            guard campaign.state == .scheduled, let due = campaign.nextRunAt, due <= now else { continue }
            let query = try store.segmentQuery(try SegmentExpression(json: segment), accountID: acme, now: now)
            let occurrence = CalendarDate(now, in: try store.timeZone(accountID: acme)).text
            _ = try store.startCampaignRun(campaign, occurrence: occurrence, audience: query, now: now)
            // A restart that starts the same day's run again adds nobody.
            campaign = try #require(try store.campaign(id: campaign.id, accountID: acme))
            _ = try store.startCampaignRun(campaign, occurrence: occurrence, audience: query, now: now)
            campaign = try #require(try store.campaign(id: campaign.id, accountID: acme))
            let rows = try #require(try store.claimCampaignBatch(campaign, limit: 100, recovering: true,
                                                                 claim: CampaignClaim(seed: Int64(runs), milliseconds: 0)))
            for row in rows { sent[row.address, default: 0] += 1 }
            try store.markCampaignRows(campaign, rows.map { CampaignRowMark($0.contactID, messageID: "\(runs)-\($0.contactID)") }, state: .queued)
            try store.finishCampaignRun(campaign, now: now)
            runs += 1
        }
        #expect(runs == 730)
        #expect(sent == ["b0@x.jp": 2, "b1@x.jp": 2, "b2@x.jp": 2], "29 February comes in neither 2026 nor 2027")
        // A new zone moves the next run to 09:00 there.
        try store.setTimeZone(try #require(TimeZone(identifier: "UTC")), accountID: acme, now: start)
        let next = try #require(try store.campaign(id: campaign.id, accountID: acme)?.nextRunAt)
        #expect(next == start.addingTimeInterval(9 * 3600))
    }

    /// A run started again the same day (a daily campaign late after downtime) adds no address it has, even
    /// for a contact deleted and made anew since, and adds new contacts; an unsubscribed one gets nothing.
    @Test(arguments: StoreEngine.available)
    func aRunStartedAgainAddsNoAddressTwice(engine: StoreEngine) throws {
        let (store, acme) = try makeStore(engine)
        for index in 0..<3 { _ = try store.upsertContact(address: "r\(index)@x.jp", fields: [:], accountID: acme) }
        let group = try store.createUnsubscribeGroup(accountID: acme, name: "news", description: "", isDefault: false)
        let definition = Campaign.Definition(from: "news@acme.example", content: Campaign.Content(subject: "s", text: "x"),
                                             unsubscribeGroup: group.id, dailyAt: "09:00")
        let now = Date()
        var campaign = try store.createCampaign(name: "daily", definition: definition, accountID: acme, schedule: true, now: now)
        try store.unsubscribe(["r2@x.jp"], fromGroup: group.id, accountID: acme, source: nil)
        // Run it now, whatever the schedule says.
        campaign.state = .scheduled
        _ = try store.startCampaignRun(campaign, occurrence: "2026-12-06", audience: nil, now: now)
        campaign = try #require(try store.campaign(id: campaign.id, accountID: acme))
        let rows = try #require(try store.claimCampaignBatch(campaign, limit: 10, recovering: true, claim: CampaignClaim(seed: 1, milliseconds: 1)))
        #expect(rows.map(\.address) == ["r0@x.jp", "r1@x.jp"], "the group's unsubscribed address is left out")
        try store.markCampaignRows(campaign, rows.map { CampaignRowMark($0.contactID, messageID: "m\($0.contactID)") }, state: .queued)
        try store.finishCampaignRun(campaign, now: now)
        #expect(try store.campaign(id: campaign.id, accountID: acme)?.state == .scheduled)
        #expect(try store.deleteContact(address: "r1@x.jp", accountID: acme))
        _ = try store.upsertContact(address: "r1@x.jp", fields: [:], accountID: acme)
        _ = try store.upsertContact(address: "r3@x.jp", fields: [:], accountID: acme)
        campaign = try #require(try store.campaign(id: campaign.id, accountID: acme))
        let progress = try store.startCampaignRun(campaign, occurrence: "2026-12-06", audience: nil, now: now)
        #expect(progress.recipients == 3 && progress.pending == 1 && progress.queued == 2, "\(progress)")
        campaign = try #require(try store.campaign(id: campaign.id, accountID: acme))
        let added = try #require(try store.claimCampaignBatch(campaign, limit: 10, recovering: true, claim: CampaignClaim(seed: 2, milliseconds: 2)))
        #expect(added.map(\.address) == ["r3@x.jp"])
    }
}
