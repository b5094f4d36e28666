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
