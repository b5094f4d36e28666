import Foundation
import Testing
@testable import Store

struct AccountStoreTests {
    func makeStore() throws -> SQLiteStore {
        let path = NSTemporaryDirectory() + "hikyaku-store-" + UUID().uuidString + ".sqlite"
        // Cheap hashing parameters keep the tests fast; production uses .standard.
        return try SQLiteStore(path: path, hashParameters: PasswordHash.Parameters(rounds: 1 << 10, blockSize: 8, parallelism: 1))
    }

    @Test func createAuthenticateDisable() throws {
        let store = try makeStore()
        let created = try store.createAccount(name: "acme", domains: ["Acme.Example", "mail.acme.example"])
        #expect(created.account.domains == ["acme.example", "mail.acme.example"])
        let username = created.account.smtpUsername
        #expect(try store.authenticate(username: username, password: created.smtpPassword)?.name == "acme")
        #expect(try store.authenticate(username: username, password: created.smtpPassword + "x") == nil)
        #expect(try store.authenticate(username: "nobody", password: created.smtpPassword) == nil)
        try store.setDisabled(true, name: "acme")
        #expect(try store.authenticate(username: username, password: created.smtpPassword) == nil)
        try store.setDisabled(false, name: "acme")
        try store.addDomain("other.example", toAccountNamed: "acme")
        #expect(try store.account(named: "acme")?.domains.contains("other.example") == true)
    }

    @Test func domainVerificationIsRecordedAndWithdrawn() throws {
        let store = try makeStore()
        let created = try store.createAccount(name: "acme", domains: ["acme.example", "other.example"])
        #expect(created.account.verifiedDomains.isEmpty)
        try store.setDomainVerified("ACME.example", accountID: created.account.id, at: Date())
        let verified = try store.authenticate(username: created.account.smtpUsername, password: created.smtpPassword)
        #expect(verified?.verifiedDomains == ["acme.example"])
        try store.setDomainVerified("acme.example", accountID: created.account.id, at: nil)
        #expect(try store.account(id: created.account.id)?.verifiedDomains == [])
        #expect(throws: AccountStoreError.domainNotFound("nobody.example")) {
            try store.setDomainVerified("nobody.example", accountID: created.account.id, at: Date())
        }
    }

    @Test func returnPathsAreTheDomainsOwnAndUsedOnlyOnceVerified() throws {
        let store = try makeStore()
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

    @Test func dkimKeysAreActiveOnePerAlgorithm() throws {
        let store = try makeStore()
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
    @Test func anUnverifiedClaimDoesNotBlockTheOwner() throws {
        let store = try makeStore()
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

    @Test func passwordIsStoredOnlyAsASlowHash() throws {
        let store = try makeStore()
        let created = try store.createAccount(name: "acme", domains: [])
        let hash = try store.database.read { db in
            try String.fetchOne(db, sql: "SELECT smtp_password_hash FROM account")
        }
        #expect(hash?.hasPrefix("scrypt$") == true)
        #expect(hash?.contains(created.smtpPassword) == false)
    }

    @Test func invalidInput() throws {
        let store = try makeStore()
        _ = try store.createAccount(name: "acme", domains: [])
        #expect(throws: AccountStoreError.duplicateName("acme")) { try store.createAccount(name: "acme", domains: []) }
        #expect(throws: AccountStoreError.self) { try store.createAccount(name: "bad name", domains: []) }
        #expect(throws: AccountStoreError.self) { try store.createAccount(name: "x", domains: ["no_dots"]) }
        #expect(throws: AccountStoreError.notFound("ghost")) { try store.setDisabled(true, name: "ghost") }
    }

    @Test func hashVerification() throws {
        let parameters = PasswordHash.Parameters(rounds: 1 << 10, blockSize: 8, parallelism: 1)
        let hash = try PasswordHash.make("correct horse", parameters: parameters)
        #expect(PasswordHash.verify("correct horse", against: hash))
        #expect(!PasswordHash.verify("correct horsE", against: hash))
        #expect(!PasswordHash.verify("x", against: "scrypt$broken"))
        #expect(PasswordHash.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!PasswordHash.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!PasswordHash.constantTimeEqual([1, 2], [1, 2, 3]))
    }
}
