import Crypto
import Foundation
import NIOCore
import NIOPosix
import Spool
import Store
import Synchronization

/// Where accepted messages go. Contract as `Spool.append`: success only
/// once the message is on stable storage.
public protocol MessageSpool: Sendable {
    func append(_ message: IncomingMessage, completion: @escaping @Sendable (Result<MessageID, SpoolError>) -> Void)
}

extension Spool: MessageSpool {}

/// What a check of SMTP credentials found.
public enum CredentialCheck: Sendable {
    case accepted(AuthenticatedAccount)
    /// Wrong credentials, an unknown user and a disabled account alike.
    case refused
    /// The store could not answer, and the credentials are not among those
    /// that verified recently: try again later (454 4.7.0), not counted as a failure.
    case unavailable
}

/// Checks SMTP credentials. Slow by design (password hashing), so it runs
/// off the event loops.
public protocol CredentialVerifier: Sendable {
    func verify(username: String, password: String, eventLoop: any EventLoop) -> EventLoopFuture<CredentialCheck>
}

/// Verifies against the account store on a thread pool. Credentials that
/// verified are remembered (as a keyed hash, never the password), so that
/// while the store cannot answer, a known account's clients still sign in
/// for `RecentCredentials.grace`; everyone else is told to try again later.
public struct AccountCredentialVerifier: CredentialVerifier {
    let store: any AccountStore
    let threadPool: NIOThreadPool
    let recent: RecentCredentials

    public init(store: any AccountStore, threadPool: NIOThreadPool, outageGrace: TimeInterval = 0) {
        self.store = store
        self.threadPool = threadPool
        recent = RecentCredentials(grace: outageGrace)
    }

    public func verify(username: String, password: String, eventLoop: any EventLoop) -> EventLoopFuture<CredentialCheck> {
        threadPool.runIfActive(eventLoop: eventLoop) { [store, recent] () -> CredentialCheck in
            let found: Account?
            do {
                found = try store.authenticate(username: username, password: password)
            } catch {
                if let account = recent.recall(username: username, password: password) { return .accepted(account) }
                // A remembered user with another password is refused, and counted, as the store would: guessing
                // does not get easier while the store is away.
                return recent.knows(username: username) ? .refused : .unavailable
            }
            guard let account = found else {
                recent.forget(username: username)
                return .refused
            }
            let authenticated = AuthenticatedAccount(account)
            recent.remember(username: username, password: password, account: authenticated)
            return .accepted(authenticated)
        }.recover { _ in .unavailable }
    }
}

/// SMTP credentials that verified against the store, each with the time it
/// last did: kept as an HMAC under a key made for this process (never
/// written anywhere), bounded in number.
final class RecentCredentials: Sendable {
    private struct Entry {
        var mac: Data
        var account: AuthenticatedAccount
        var verifiedAt: Date
    }

    /// How long after its last verification a credential still opens while the store cannot answer; 0: never.
    let grace: TimeInterval
    private let key = SymmetricKey(size: .bits256)
    private let entries = Mutex<[String: Entry]>([:])
    static let maximumEntries = 100_000

    init(grace: TimeInterval) {
        self.grace = grace
    }

    private func mac(_ username: String, _ password: String) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data((username + "\u{0}" + password).utf8), using: key))
    }

    func remember(username: String, password: String, account: AuthenticatedAccount, now: Date = Date()) {
        guard grace > 0 else { return }
        let entry = Entry(mac: mac(username, password), account: account, verifiedAt: now)
        entries.withLock { entries in
            if entries.count >= RecentCredentials.maximumEntries && entries[username] == nil {
                entries = entries.filter { now.timeIntervalSince($0.value.verifiedAt) <= grace }
                if entries.count >= RecentCredentials.maximumEntries { return }
            }
            entries[username] = entry
        }
    }

    /// Whether credentials of this user verified within the grace period.
    func knows(username: String, now: Date = Date()) -> Bool {
        guard grace > 0, let entry = entries.withLock({ $0[username] }) else { return false }
        return now.timeIntervalSince(entry.verifiedAt) <= grace
    }

    func forget(username: String) {
        _ = entries.withLock { $0.removeValue(forKey: username) }
    }

    /// The account, when these credentials verified within the grace period.
    func recall(username: String, password: String, now: Date = Date()) -> AuthenticatedAccount? {
        guard grace > 0, let entry = entries.withLock({ $0[username] }), now.timeIntervalSince(entry.verifiedAt) <= grace else {
            return nil
        }
        // Compared in constant time, as HMAC verification does.
        guard HMAC<SHA256>.isValidAuthenticationCode(entry.mac, authenticating: Data((username + "\u{0}" + password).utf8),
                                                     using: key) else { return nil }
        return entry.account
    }
}

/// Sent down a session's pipeline when the server starts draining.
public struct DrainRequest: Sendable {
    public init() {}
}
