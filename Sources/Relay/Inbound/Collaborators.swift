import NIOCore
import NIOPosix
import Spool
import Store

/// Where accepted messages go. Contract as `Spool.append`: success only
/// once the message is on stable storage.
public protocol MessageSpool: Sendable {
    func append(_ message: IncomingMessage, completion: @escaping @Sendable (Result<MessageID, SpoolError>) -> Void)
}

extension Spool: MessageSpool {}

/// Checks SMTP credentials. Slow by design (password hashing), so it runs
/// off the event loops.
public protocol CredentialVerifier: Sendable {
    /// The account, or nil for wrong credentials, unknown users and disabled
    /// accounts alike.
    func verify(username: String, password: String, eventLoop: any EventLoop) -> EventLoopFuture<AuthenticatedAccount?>
}

/// Verifies against the account store on a thread pool.
public struct AccountCredentialVerifier: CredentialVerifier {
    let store: any AccountStore
    let threadPool: NIOThreadPool

    public init(store: any AccountStore, threadPool: NIOThreadPool) {
        self.store = store
        self.threadPool = threadPool
    }

    public func verify(username: String, password: String, eventLoop: any EventLoop) -> EventLoopFuture<AuthenticatedAccount?> {
        threadPool.runIfActive(eventLoop: eventLoop) { [store] in
            guard let account = try store.authenticate(username: username, password: password) else { return nil }
            return AuthenticatedAccount(account)
        }.recover { _ in nil }
    }
}

/// Sent down a session's pipeline when the server starts draining.
public struct DrainRequest: Sendable {
    public init() {}
}
