import Foundation
import Testing
@testable import Store

@Suite struct APIStoreTests {
    func store() throws -> (SQLiteStore, String) {
        let directory = NSTemporaryDirectory() + "hikyaku-store-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: directory + "/hikyaku.sqlite",
                                    hashParameters: .init(rounds: 16, blockSize: 1, parallelism: 1))
        _ = try store.createAccount(name: "acme", domains: ["acme.example"])
        return (store, directory)
    }

    @Test func keysAreStoredHashedAndSealed() throws {
        let (store, directory) = try store()
        let created = try store.createAPIKey(accountNamed: "acme", scope: .read)
        #expect(try store.verifyAPIToken(created.token)?.keyID == created.key.keyID)
        #expect(try store.verifyAPIToken(created.token + "x") == nil)
        #expect(try store.verifyAPIToken("hk_\(created.key.keyID)_") == nil)
        #expect(try store.apiKeySecret(accessKeyID: created.key.keyID)?.1 == created.secret)
        // Neither the token nor the secret is in the database file in clear.
        let database = try Data(contentsOf: URL(fileURLWithPath: directory + "/hikyaku.sqlite"))
            + ((try? Data(contentsOf: URL(fileURLWithPath: directory + "/hikyaku.sqlite-wal"))) ?? Data())
        #expect(database.range(of: Data(created.secret.utf8)) == nil)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/secrets.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        try store.revokeAPIKey(created.key.keyID)
        #expect(try store.verifyAPIToken(created.token) == nil)
        #expect(try store.apiKeySecret(accessKeyID: created.key.keyID) == nil)
        let second = try store.createAPIKey(accountNamed: "acme", scope: .send)
        try store.setDisabled(true, name: "acme")
        #expect(try store.verifyAPIToken(second.token) == nil, "a disabled account's keys stop working")
    }

    @Test func meterEnforcesDailyQuotaRateAndSandbox() throws {
        let (store, _) = try store()
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

    @Test func templatesAndSuppressions() throws {
        let (store, _) = try store()
        let id = try #require(try store.account(named: "acme")).id
        let template = Template(name: "welcome", subject: "Hi {{name}}", text: "x", html: nil, defaults: ["name": .string("you")])
        try store.saveTemplate(template, accountID: id, replace: false)
        #expect(throws: TemplateStoreError.exists("welcome")) { try store.saveTemplate(template, accountID: id, replace: false) }
        #expect(throws: TemplateStoreError.notFound("other")) {
            try store.saveTemplate(Template(name: "other", subject: "", text: "", html: nil), accountID: id, replace: true)
        }
        #expect(try store.template(accountID: id, name: "welcome")?.defaults == ["name": .string("you")])
        try store.suppress(Suppression(address: "User@Example.JP", reason: .unsubscribe, scope: .marketing), accountID: id)
        #expect(try store.suppression(accountID: id, address: "user@example.jp")?.scope == .marketing)
        #expect(try store.suppressionsByAccount()[id]?["user@example.jp"]?.reason == .unsubscribe)
        #expect(Suppression.Scope.marketing.covers(marketing: true) && !Suppression.Scope.marketing.covers(marketing: false))
        // A bounce widens the unsubscribe to every kind of mail; a later marketing one does not narrow it.
        #expect(try store.suppressAutomatically(Suppression(address: "user@example.jp", reason: .bounce), accountID: id))
        #expect(try store.suppression(accountID: id, address: "user@example.jp")?.scope == .all)
        #expect(try !store.suppressAutomatically(Suppression(address: "user@example.jp", reason: .complaint), accountID: id))
        try store.unsuppress(accountID: id, address: "user@example.jp")
        #expect(try store.suppressions(accountID: id).isEmpty)
        // An account that wants no automatic suppression for complaints gets none.
        try store.setSuppressedReasons([.bounce], accountID: id)
        #expect(try store.account(id: id)?.suppressedReasons == [.bounce])
        #expect(try !store.suppressAutomatically(Suppression(address: "c@example.jp", reason: .complaint), accountID: id))
        #expect(try store.suppressAutomatically(Suppression(address: "b@example.jp", reason: .bounce), accountID: id))
    }
}
