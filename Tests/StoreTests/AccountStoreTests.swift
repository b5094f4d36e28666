import Foundation
import Testing
@testable import Store

struct AccountStoreTests {
    func makeStore() throws -> SQLiteStore {
        let path = NSTemporaryDirectory() + "hikyaku-store-" + UUID().uuidString + ".sqlite"
        // Cheap hashing parameters keep the tests fast; production uses .standard.
        return try SQLiteStore(path: path, hashParameters: PasswordHash.Parameters(rounds: 1 << 10, blockSize: 8, parallelism: 1))
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
