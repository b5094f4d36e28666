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
}
