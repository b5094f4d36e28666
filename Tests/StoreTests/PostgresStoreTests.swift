import Foundation
import Testing
@testable import Store

struct PostgresLocationTests {
    @Test func aURLNamesTheServerTheUserAndTheDatabase() throws {
        let tcp = try PostgresLocation(url: "postgres://mail:s3cret@db.example:6543/hikyaku?sslmode=verify-full&pool_size=20")
        #expect(tcp.endpoint == .tcp(host: "db.example", port: 6543))
        #expect(tcp.username == "mail" && tcp.password == "s3cret" && tcp.database == "hikyaku")
        #expect(tcp.tls == .verifyFull && tcp.poolSize == 20)
        #expect(!tcp.description.contains("s3cret"), "the password stays out of logs")

        let defaults = try PostgresLocation(url: "postgresql://db.example/mail")
        #expect(defaults.endpoint == .tcp(host: "db.example", port: 5432) && defaults.username == "hikyaku")
        #expect(defaults.tls == .prefer && defaults.poolSize == 8 && defaults.statementTimeoutMilliseconds == 30_000)

        let socket = try PostgresLocation(url: "postgres://hikyaku@/mail?host=/run/pg&port=5499")
        #expect(socket.endpoint == .socket(path: "/run/pg/.s.PGSQL.5499") && socket.tls == .disable && socket.database == "mail")
        #expect(try PostgresLocation(url: "postgres:///mail").endpoint == .socket(path: "/var/run/postgresql/.s.PGSQL.5432"))
    }

    @Test func aWrongURLIsRefusedWithItsReason() {
        #expect(throws: PostgresLocation.ParseError.notPostgres("mysql")) { try PostgresLocation(url: "mysql://db/mail") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?sslmode=maybe") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?pool_size=0") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?pool_size=99999999999999999999") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?colour=blue") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?host") }
    }
}

/// What only the shared engine has to show: several nodes on one database.
@Suite(.enabled(if: StoreEngine.available.contains(.postgres)))
struct PostgresStoreTests {
    @Test func nodesStartingTogetherMigrateOnce() async throws {
        let location = try PostgresTestDatabase.make()
        let secrets = StoreEngine.secretsKeyPath()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask { _ = try PostgresStore(location: location, secretsKeyPath: secrets, hashParameters: StoreEngine.hashing) }
            }
            try await group.waitForAll()
        }
        let store = try PostgresStore(location: location, secretsKeyPath: secrets, hashParameters: StoreEngine.hashing)
        let applied = try store.pool.query("SELECT name FROM hikyaku_migration ORDER BY name").records.map { try $0.decode("name", as: String.self) }
        #expect(applied == PostgresSchema.migrations.map(\.name))
        #expect(try PostgresSchema.migrate(store.pool).isEmpty, "a node started later finds nothing to do")
    }

    @Test func whatOneNodeWritesTheOtherReads() throws {
        let location = try PostgresTestDatabase.make()
        // The nodes of a cluster share one secrets key, so that a key made on one verifies on the other.
        let secrets = StoreEngine.secretsKeyPath()
        let nodeA = try PostgresStore(location: location, secretsKeyPath: secrets, hashParameters: StoreEngine.hashing)
        let nodeB = try PostgresStore(location: location, secretsKeyPath: secrets, hashParameters: StoreEngine.hashing)
        let created = try nodeA.createAccount(name: "acme", domains: ["acme.example"])
        #expect(try nodeB.authenticate(username: created.account.smtpUsername, password: created.smtpPassword)?.id == created.account.id)
        try nodeA.suppress(Suppression(address: "gone@example.com", reason: .bounce), accountID: created.account.id)
        #expect(try nodeB.suppressionsByAccount()[created.account.id]?["gone@example.com"]?.reason == .bounce)
        let key = try nodeA.createAPIKey(accountNamed: "acme", scope: .send)
        #expect(try nodeB.verifyAPIToken(key.token)?.keyID == key.key.keyID)
        #expect(try nodeB.apiKeySecret(accessKeyID: key.key.keyID)?.1 == key.secret)
        try nodeB.revokeAPIKey(key.key.keyID)
        #expect(try nodeA.verifyAPIToken(key.token) == nil, "a key revoked on one node is refused by the other")
        try nodeB.setDisabled(true, name: "acme")
        #expect(try nodeA.authenticate(username: created.account.smtpUsername, password: created.smtpPassword) == nil)
    }

    @Test func theSchemaKeepsAddressesLowerCased() throws {
        let store = try PostgresStore(location: PostgresTestDatabase.make(), secretsKeyPath: StoreEngine.secretsKeyPath(),
                                      hashParameters: StoreEngine.hashing)
        let id = try store.createAccount(name: "acme", domains: []).account.id
        #expect(throws: PostgresStoreError.self) {
            _ = try store.pool.query("""
                INSERT INTO suppression (account_id, address, reason, scope, created_at) VALUES (\(id), 'Mixed@Example.com', 'manual', 'all', now())
                """)
        }
    }

    @Test func aServerThatIsNotThereIsAnErrorNotAHang() throws {
        var location = try PostgresLocation(url: "postgres://hikyaku@127.0.0.1:1/none?connect_timeout=2")
        location.tls = .disable
        #expect(throws: (any Error).self) {
            try PostgresStore(location: location, secretsKeyPath: StoreEngine.secretsKeyPath(), hashParameters: StoreEngine.hashing)
        }
    }
}
