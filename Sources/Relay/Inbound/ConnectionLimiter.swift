import NIOConcurrencyHelpers

/// Counts open SMTP connections, overall and per client address, across all
/// listeners and event loops. A refused connection gets 421 4.7.0.
public final class ConnectionLimiter: Sendable {
    public let maximumConnections: Int
    public let maximumPerClient: Int
    private let counts = NIOLockedValueBox<(total: Int, perClient: [String: Int])>((0, [:]))

    public init(maximumConnections: Int, maximumPerClient: Int) {
        self.maximumConnections = maximumConnections
        self.maximumPerClient = maximumPerClient
    }

    /// Takes a slot for `client`; false when a limit is reached (nothing is taken then).
    public func acquire(_ client: String) -> Bool {
        counts.withLockedValue { counts in
            let current = counts.perClient[client, default: 0]
            guard counts.total < maximumConnections, current < maximumPerClient else { return false }
            counts.total += 1
            counts.perClient[client] = current + 1
            return true
        }
    }

    public func release(_ client: String) {
        counts.withLockedValue { counts in
            counts.total -= 1
            let remaining = counts.perClient[client, default: 1] - 1
            counts.perClient[client] = remaining > 0 ? remaining : nil
        }
    }

    public var openConnections: Int { counts.withLockedValue { $0.total } }
}
