import NIOConcurrencyHelpers
import NIOCore

/// Limits failed AUTH attempts per client address across connections, so
/// that password guessing cannot simply reconnect after each 421, and so that
/// a guesser cannot make the server spend its CPU on slow password hashes.
public final class AuthenticationThrottle: Sendable {
    public let maximumFailures: Int
    public let window: TimeAmount
    private let now: @Sendable () -> NIODeadline
    private let failures = NIOLockedValueBox<[String: [NIODeadline]]>([:])

    public init(maximumFailures: Int, window: TimeAmount, now: @escaping @Sendable () -> NIODeadline = { .now() }) {
        self.maximumFailures = maximumFailures
        self.window = window
        self.now = now
    }

    /// True when `client` has used up its failures in the current window.
    public func isBlocked(_ client: String) -> Bool {
        let cutoff = now() - window
        return failures.withLockedValue { failures in
            guard var recent = failures[client] else { return false }
            recent.removeAll { $0 < cutoff }
            failures[client] = recent.isEmpty ? nil : recent
            return recent.count >= maximumFailures
        }
    }

    public func recordFailure(_ client: String) {
        let time = now()
        let cutoff = time - window
        failures.withLockedValue { failures in
            var recent = failures[client, default: []]
            recent.removeAll { $0 < cutoff }
            recent.append(time)
            // Keep memory bounded per address.
            if recent.count > maximumFailures { recent.removeFirst(recent.count - maximumFailures) }
            failures[client] = recent
            // And bounded overall: forget the quiet addresses when the table grows.
            if failures.count > 100_000 {
                failures = failures.filter { $0.value.last.map { $0 >= cutoff } ?? false }
            }
        }
    }
}
