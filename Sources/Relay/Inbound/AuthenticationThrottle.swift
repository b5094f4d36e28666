import NIOConcurrencyHelpers
import NIOCore

/// Limits AUTH attempts per client across connections, so that password
/// guessing cannot simply reconnect after each 421, and so that a guesser
/// cannot make the server spend its CPU on slow password hashes.
///
/// An attempt counts from the moment it starts (`begin`), not when its hash
/// is done: a client that opens many connections and sends a password on each
/// at once is stopped after `maximumFailures`, not after all of them were
/// hashed. A success takes its attempt back (`end`). At most
/// `maximumConcurrent` checks run at once, whoever asks. Clients are counted
/// by address, IPv6 ones by /64 (`ClientNetwork`), since one host has a whole
/// /64 to choose from.
public final class AuthenticationThrottle: Sendable {
    public let maximumFailures: Int
    public let window: TimeAmount
    public let maximumConcurrent: Int
    private let now: @Sendable () -> NIODeadline
    private let state = NIOLockedValueBox<(attempts: [String: [NIODeadline]], running: Int)>(([:], 0))

    public init(maximumFailures: Int, window: TimeAmount, maximumConcurrent: Int = 16,
                now: @escaping @Sendable () -> NIODeadline = { .now() }) {
        self.maximumFailures = maximumFailures
        self.window = window
        self.maximumConcurrent = maximumConcurrent
        self.now = now
    }

    /// Whether a check may start now.
    public enum Admission: Sendable, Equatable {
        case proceed
        /// This client used up its attempts in the current window.
        case throttled
        /// Too many checks are running: try again shortly.
        case busy
    }

    /// True when `client` has used up its attempts in the current window.
    public func isBlocked(_ client: String) -> Bool {
        let key = ClientNetwork.key(client)
        let cutoff = now() - window
        return state.withLockedValue { state in
            guard var recent = state.attempts[key] else { return false }
            recent.removeAll { $0 < cutoff }
            state.attempts[key] = recent.isEmpty ? nil : recent
            return recent.count >= maximumFailures
        }
    }

    /// Starts a check for `client`, counting it as a failure until `end` says otherwise.
    public func begin(_ client: String) -> Admission {
        let key = ClientNetwork.key(client)
        let time = now()
        let cutoff = time - window
        return state.withLockedValue { state in
            var recent = state.attempts[key, default: []]
            recent.removeAll { $0 < cutoff }
            guard recent.count < maximumFailures else { return .throttled }
            guard state.running < maximumConcurrent else { return .busy }
            state.running += 1
            recent.append(time)
            state.attempts[key] = recent
            Self.bound(&state.attempts, cutoff: cutoff)
            return .proceed
        }
    }

    /// A check started by `begin` is over; a success takes its attempt back.
    public func end(_ client: String, succeeded: Bool) {
        let key = ClientNetwork.key(client)
        state.withLockedValue { state in
            state.running = max(0, state.running - 1)
            if succeeded, var recent = state.attempts[key], !recent.isEmpty {
                recent.removeLast()
                state.attempts[key] = recent.isEmpty ? nil : recent
            }
        }
    }

    /// A failure outside a check (a wrong API key, a bad signature).
    public func recordFailure(_ client: String) {
        let key = ClientNetwork.key(client)
        let time = now()
        let cutoff = time - window
        state.withLockedValue { state in
            var recent = state.attempts[key, default: []]
            recent.removeAll { $0 < cutoff }
            recent.append(time)
            // Keep memory bounded per address.
            if recent.count > maximumFailures { recent.removeFirst(recent.count - maximumFailures) }
            state.attempts[key] = recent
            Self.bound(&state.attempts, cutoff: cutoff)
        }
    }

    /// And bounded overall: forget the quiet addresses when the table grows.
    private static func bound(_ attempts: inout [String: [NIODeadline]], cutoff: NIODeadline) {
        guard attempts.count > 100_000 else { return }
        attempts = attempts.filter { $0.value.last.map { $0 >= cutoff } ?? false }
        // Still too many recent ones (a wide IPv4 botnet): start over rather than grow without bound.
        if attempts.count > 100_000 { attempts.removeAll() }
    }
}

/// How clients are told apart for limits: an IPv4 address as it is, an
/// IPv6 address by its /64 (RFC 7707: one host may hold a whole /64), an
/// IPv4-mapped IPv6 address as the IPv4 address it maps.
public enum ClientNetwork {
    public static func key(_ address: String) -> String {
        guard address.contains(":") else { return address }
        let lowered = address.lowercased()
        if lowered.hasPrefix("::ffff:"), lowered.dropFirst(7).contains(".") { return String(lowered.dropFirst(7)) }
        guard let bytes = try? SocketAddress(ipAddress: address, port: 0).ipv6Bytes else { return address }
        let prefix = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return prefix.joined(separator: ":") + "::/64"
    }
}

extension SocketAddress {
    /// The 16 bytes of an IPv6 address; nil for other kinds.
    var ipv6Bytes: [UInt8]? {
        guard case .v6(let address) = self else { return nil }
        return withUnsafeBytes(of: address.address.sin6_addr) { Array($0) }
    }
}
