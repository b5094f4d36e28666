import Crypto
import Foundation
import Relay
import Store
import Testing
@testable import API

/// A store that cannot answer (the shared database is away): every call fails.
struct UnreachableStore: AccountStore, APIKeyStore {
    struct Down: Error {}

    func createAccount(name: String, domains: [String]) throws -> NewAccountCredentials { throw Down() }
    func accounts() throws -> [Account] { throw Down() }
    func account(named name: String) throws -> Account? { throw Down() }
    func account(id: Int64) throws -> Account? { throw Down() }
    func setDisabled(_ disabled: Bool, name: String) throws { throw Down() }
    func addDomain(_ domain: String, toAccountNamed name: String) throws { throw Down() }
    func setDomainVerified(_ domain: String, accountID: Int64, at date: Date?) throws { throw Down() }
    func setQuota(_ quota: SendQuota, name: String) throws { throw Down() }
    func setEgressPool(_ pool: String?, name: String) throws { throw Down() }
    func egressPools() throws -> [Int64: String] { throw Down() }
    func setSuppressedReasons(_ reasons: Set<Suppression.Reason>, accountID: Int64) throws { throw Down() }
    func authenticate(username: String, password: String) throws -> Account? { throw Down() }
    func smtpCredentials(accountID: Int64) throws -> [SMTPCredential] { throw Down() }
    func createSMTPCredential(accountID: Int64) throws -> NewSMTPCredential { throw Down() }
    func revokeSMTPCredential(username: String, accountID: Int64) throws -> Bool { throw Down() }
    func createAPIKey(accountNamed name: String, scope: APIKeyScope, label: String?) throws -> NewAPIKey { throw Down() }
    func apiKeys(accountID: Int64?) throws -> [APIKey] { throw Down() }
    func revokeAPIKey(_ keyID: String) throws { throw Down() }
    func verifyAPIToken(_ token: String) throws -> APIKey? { throw Down() }
    func apiKeySecret(accessKeyID: String) throws -> (APIKey, String)? { throw Down() }
    func derivedKey(_ label: String) -> SymmetricKey { SymmetricKey(size: .bits256) }
}

struct GateStoreFailureTests {
    /// A database that cannot answer is the service's trouble, not the caller's: 503 `store_unavailable`,
    /// never 401, and the client is not counted toward its failed authentications.
    @Test func aStoreThatCannotAnswerIsA503NotAWrongKey() throws {
        let gate = APIGate(store: UnreachableStore(), maximumBodySize: 1 << 20,
                           throttle: AuthenticationThrottle(maximumFailures: 1, window: .seconds(60)))
        do {
            _ = try gate.verifyBearer("Bearer hk_HKSOMEKEY_secret")
            Issue.record("expected a store failure")
        } catch {
            #expect(error.status == .serviceUnavailable && error.code == "store_unavailable")
        }
        do {
            _ = try gate.signingKey("HKSOMEKEY")
            Issue.record("expected a store failure")
        } catch {
            #expect(error.status == .serviceUnavailable && error.code == "store_unavailable")
        }
        #expect(try gate.verifyBearer("Basic dXNlcjpwYXNz") == nil && gate.verifyBearer(nil) == nil, "no bearer token: no store question")
    }
}
