import DNS
import NIOCore
import SMTPCore

/// One host to try for a destination, with the addresses to connect to.
public struct MXHost: Equatable, Sendable {
    public var name: String
    public var preference: UInt16
    public var port: Int
    public var addresses: [SocketAddress]
    /// For a configured next hop: its STARTTLS policy and AUTH credentials.
    public var tlsPolicy: TLSPolicy?
    public var credentials: SMTPCredentials?

    public init(name: String, preference: UInt16, port: Int = 25, addresses: [SocketAddress], tlsPolicy: TLSPolicy? = nil,
                credentials: SMTPCredentials? = nil) {
        self.name = name
        self.preference = preference
        self.port = port
        self.addresses = addresses
        self.tlsPolicy = tlsPolicy
        self.credentials = credentials
    }
}

/// A username and password for AUTH PLAIN at a next hop (a smarthost).
/// Never logged: `description` hides the password.
public struct SMTPCredentials: Equatable, Sendable, CustomStringConvertible {
    public var username: String
    public var password: String
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
    public var description: String { "\(username):<hidden>" }
}

/// Where mail for a domain goes, or why it cannot go anywhere. Three-valued
/// like every delivery outcome: hosts to try, a transient failure (retry
/// later), or a permanent one (bounce now).
public enum RoutingDecision: Equatable, Sendable {
    case deliver([MXHost])
    case transientFailure(EnhancedStatusCode, String)
    case permanentFailure(EnhancedStatusCode, String)
}

/// A fixed next hop: a smarthost for everything, or a route for one domain.
public struct NextHop: Equatable, Sendable {
    public var host: String
    public var port: Int
    /// Overrides `delivery.tlsPolicy` for this hop; with credentials, TLS is required at least.
    public var tlsPolicy: TLSPolicy?
    public var credentials: SMTPCredentials?
    public init(host: String, port: Int, tlsPolicy: TLSPolicy? = nil, credentials: SMTPCredentials? = nil) {
        self.host = host
        self.port = port
        self.tlsPolicy = tlsPolicy
        self.credentials = credentials
    }
}

/// Routing rules an operator configures.
public struct RoutingPolicy: Sendable {
    /// Connect to loopback, private, link-local and similar addresses. Off by
    /// default: a hostile domain's MX pointing at 127.0.0.1 or 10.0.0.5 would
    /// otherwise turn the relay into a probe of the operator's network.
    public var allowNonPublicAddresses: Bool
    /// Names of this relay: an MX with one of them means a loop.
    public var localNames: Set<String>
    /// Addresses of this relay, for the same check.
    public var localAddresses: Set<String>
    /// Per-domain next hops (lower-cased domain → host:port).
    public var routes: [String: NextHop]
    /// Where everything else goes instead of the MX hosts, if set.
    public var smarthost: NextHop?

    public init(allowNonPublicAddresses: Bool = false, localNames: Set<String> = [], localAddresses: Set<String> = [],
                routes: [String: NextHop] = [:], smarthost: NextHop? = nil) {
        self.allowNonPublicAddresses = allowNonPublicAddresses
        self.localNames = Set(localNames.map { $0.lowercased() })
        self.localAddresses = localAddresses
        self.routes = routes
        self.smarthost = smarthost
    }
}

/// Finds the hosts that accept mail for a domain (RFC 5321 §5.1).
public struct MXRouter: Sendable {
    let resolver: any Resolver
    let policy: RoutingPolicy
    /// Shuffles hosts of equal preference; injected so tests are repeatable.
    let shuffle: @Sendable ([MXHost]) -> [MXHost]

    public init(resolver: any Resolver, policy: RoutingPolicy,
                shuffle: @escaping @Sendable ([MXHost]) -> [MXHost] = { $0.shuffled() }) {
        self.resolver = resolver
        self.policy = policy
        self.shuffle = shuffle
    }

    public func route(_ domain: String) async -> RoutingDecision {
        let lowered = domain.lowercased()
        if let hop = policy.routes[lowered] ?? policy.smarthost {
            return await routeToNextHop(hop)
        }
        let name: DomainName
        do {
            name = try DomainName(lowered)
        } catch {
            return .permanentFailure(EnhancedStatusCode(5, 1, 2), "invalid domain \(domain)")
        }
        let mx: DNSAnswer
        do {
            mx = try await resolver.lookup(name, .mx)
        } catch {
            return Self.dnsFailure(error, domain: domain)
        }
        var candidates: [(name: DomainName, preference: UInt16)] = mx.records.compactMap { record in
            guard case .mx(let preference, let exchange) = record.data else { return nil }
            return (exchange, preference)
        }
        // RFC 7505: a single MX of "." at preference 0 says the domain takes no mail.
        if !candidates.isEmpty && candidates.allSatisfy({ $0.name == .root }) {
            return .permanentFailure(EnhancedStatusCode(5, 1, 10), "\(domain) does not accept mail (null MX)")
        }
        candidates.removeAll { $0.name == .root }
        if candidates.isEmpty {
            // RFC 5321 §5.1: no MX — the domain itself is the implicit MX.
            candidates = [(mx.canonicalName, 0)]
        }
        // RFC 5321 §5.1: drop this relay and every host it would prefer less.
        if let own = candidates.filter({ policy.localNames.contains($0.name.description) }).map(\.preference).min() {
            candidates.removeAll { $0.preference >= own }
            if candidates.isEmpty {
                return .permanentFailure(EnhancedStatusCode(5, 4, 6), "mail loop: \(domain) is routed to this relay")
            }
        }

        var hosts: [MXHost] = []
        var transient: String?
        var refusedAddresses = false
        var loop = false
        for candidate in candidates {
            let outcome = await addresses(of: candidate.name)
            if let error = outcome.error { transient = transient ?? error }
            var usable = outcome.addresses
            if usable.contains(where: { policy.localAddresses.contains($0.ipAddress ?? "") }) {
                loop = true
                continue
            }
            if !policy.allowNonPublicAddresses {
                let before = usable.count
                usable.removeAll { !PublicAddress.isPublic($0) }
                if usable.count < before { refusedAddresses = true }
            }
            if !usable.isEmpty {
                hosts.append(MXHost(name: candidate.name.description, preference: candidate.preference, addresses: usable))
            }
        }
        if hosts.isEmpty {
            if let transient { return .transientFailure(EnhancedStatusCode(4, 4, 3), transient) }
            if loop { return .permanentFailure(EnhancedStatusCode(5, 4, 6), "mail loop: \(domain) resolves to this relay") }
            if refusedAddresses {
                return .permanentFailure(EnhancedStatusCode(5, 4, 4), "\(domain): mail exchangers resolve only to non-public addresses")
            }
            return .permanentFailure(EnhancedStatusCode(5, 4, 4), "\(domain): no mail exchanger has an address")
        }
        return .deliver(ordered(hosts))
    }

    /// Ascending preference, random order among equals (RFC 5321 §5.1).
    func ordered(_ hosts: [MXHost]) -> [MXHost] {
        let preferences = Set(hosts.map(\.preference)).sorted()
        return preferences.flatMap { preference in shuffle(hosts.filter { $0.preference == preference }) }
    }

    func routeToNextHop(_ hop: NextHop) async -> RoutingDecision {
        if let literal = try? SocketAddress(ipAddress: hop.host, port: hop.port) {
            return .deliver([MXHost(name: hop.host, preference: 0, port: hop.port, addresses: [literal],
                                    tlsPolicy: hop.tlsPolicy, credentials: hop.credentials)])
        }
        guard let name = try? DomainName(hop.host) else {
            return .transientFailure(EnhancedStatusCode(4, 4, 3), "invalid next hop \(hop.host)")
        }
        let outcome = await addresses(of: name)
        guard !outcome.addresses.isEmpty else {
            // A configured next hop that does not resolve is the operator's
            // problem to fix; keep the mail meanwhile.
            return .transientFailure(EnhancedStatusCode(4, 4, 3), outcome.error ?? "next hop \(hop.host) has no address")
        }
        let addresses = outcome.addresses.compactMap { try? SocketAddress(ipAddress: $0.ipAddress ?? "", port: hop.port) }
        return .deliver([MXHost(name: hop.host, preference: 0, port: hop.port, addresses: addresses,
                                tlsPolicy: hop.tlsPolicy, credentials: hop.credentials)])
    }

    /// A and AAAA of a host; NXDOMAIN just yields none, other failures are reported.
    func addresses(of host: DomainName) async -> (addresses: [SocketAddress], error: String?) {
        var addresses: [SocketAddress] = []
        var error: String?
        for type in [RecordType.a, .aaaa] {
            do {
                for record in try await resolver.lookup(host, type).records {
                    switch record.data {
                    case .a(let bytes), .aaaa(let bytes):
                        if let address = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 25) {
                            addresses.append(address)
                        }
                    default:
                        break
                    }
                }
            } catch let failure where failure.isTransient {
                error = "\(host): \(failure)"
            } catch {
                continue
            }
        }
        return (addresses, error)
    }

    static func dnsFailure(_ error: DNSError, domain: String) -> RoutingDecision {
        switch error {
        case .nameDoesNotExist, .invalidName:
            // NXDOMAIN is authoritative: the domain does not exist (RFC 3463 X.1.2).
            return .permanentFailure(EnhancedStatusCode(5, 1, 2), "\(domain): domain does not exist")
        case .serverFailure, .timeout, .malformedResponse:
            return .transientFailure(EnhancedStatusCode(4, 4, 3), "\(domain): \(error)")
        }
    }
}

/// Which addresses delivery may connect to by default.
public enum PublicAddress {
    /// False for loopback, RFC 1918 private, CGNAT, link-local, unspecified,
    /// multicast, reserved, IETF protocol (192.0.0.0/24), 6to4 relay anycast,
    /// documentation and benchmark ranges; IPv6 loopback, unspecified, ULA,
    /// link-local, deprecated site-local (fec0::/10), multicast, discard-only,
    /// Teredo, ORCHID and documentation ranges. An address that embeds an
    /// IPv4 address (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4
    /// 2002::/16) is judged by that IPv4 address, so none of them is a way
    /// around the IPv4 rules.
    public static func isPublic(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4(let v4):
            return isPublicIPv4(withUnsafeBytes(of: v4.address.sin_addr) { Array($0) })
        case .v6(let v6):
            return isPublicIPv6(withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) })
        default:
            return false
        }
    }

    /// Four bytes, network order.
    static func isPublicIPv4(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == 4 else { return false }
        let (a, b, c) = (bytes[0], bytes[1], bytes[2])
        if a == 0 || a == 10 || a == 127 || a >= 224 { return false } // this network, private, loopback, multicast and reserved
        if a == 100 && (64...127).contains(b) { return false } // CGNAT 100.64.0.0/10
        if a == 169 && b == 254 { return false } // link-local
        if a == 172 && (16...31).contains(b) { return false }
        if a == 192 && b == 168 { return false }
        if a == 192 && b == 0 && (c == 0 || c == 2) { return false } // IETF protocol assignments, TEST-NET-1
        if a == 192 && b == 88 && c == 99 { return false } // 6to4 relay anycast
        if a == 198 && (18...19).contains(b) { return false } // benchmarking
        if a == 198 && b == 51 && c == 100 { return false } // TEST-NET-2
        if a == 203 && b == 0 && c == 113 { return false } // TEST-NET-3
        return true
    }

    /// Sixteen bytes, network order.
    static func isPublicIPv6(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == 16 else { return false }
        let zeroPrefix = bytes[0..<10].allSatisfy { $0 == 0 }
        if zeroPrefix && bytes[10] == 0xFF && bytes[11] == 0xFF { return isPublicIPv4(Array(bytes[12...])) } // ::ffff:0:0/96
        if zeroPrefix && bytes[10] == 0 && bytes[11] == 0 {
            // ::/96: unspecified, loopback, and the deprecated IPv4-compatible form.
            if bytes[12..<15].allSatisfy({ $0 == 0 }) { return false }
            return isPublicIPv4(Array(bytes[12...]))
        }
        // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052) carries an IPv4 address; 64:ff9b:1::/48 is for local use.
        if bytes[0] == 0x00 && bytes[1] == 0x64 && bytes[2] == 0xFF && bytes[3] == 0x9B {
            if bytes[4..<12].allSatisfy({ $0 == 0 }) { return isPublicIPv4(Array(bytes[12...])) }
            return false
        }
        if bytes[0] == 0x20 && bytes[1] == 0x02 { return isPublicIPv4(Array(bytes[2..<6])) } // 6to4 2002::/16
        if bytes[0] & 0xFE == 0xFC { return false } // ULA fc00::/7
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return false } // link-local fe80::/10
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0xC0 { return false } // site-local fec0::/10 (deprecated)
        if bytes[0] == 0xFF { return false } // multicast
        if bytes[0] == 0x01 && bytes[1] == 0x00 && bytes[2..<8].allSatisfy({ $0 == 0 }) { return false } // discard-only 100::/64
        if bytes[0] == 0x20 && bytes[1] == 0x01 {
            if bytes[2] == 0x00 && bytes[3] == 0x00 { return false } // Teredo 2001::/32
            if bytes[2] == 0x0D && bytes[3] == 0xB8 { return false } // documentation 2001:db8::/32
            if bytes[2] == 0x00 && bytes[3] & 0xF0 == 0x10 { return false } // ORCHID 2001:10::/28
            if bytes[2] == 0x00 && bytes[3] & 0xF0 == 0x20 { return false } // ORCHIDv2 2001:20::/28
        }
        if bytes[0] == 0x3F && bytes[1] == 0xFF && bytes[2] & 0xF0 == 0x00 { return false } // documentation 3fff::/20
        return true
    }
}
