import DNS
import Foundation
import Logging
import NIOCore
import NIOPosix
import Relay
import NIOConcurrencyHelpers
import ServiceLifecycle
import Spool
import Store
import Synchronization

/// Builds the delivery path from the configuration, for the server and for
/// `hikyaku queue deliver` alike.
public enum DeliveryComposition {
    public static func courier(configuration: Configuration, group: any EventLoopGroup, sharedSlots: SharedSiteSlots? = nil,
                               logger: Logger) throws -> SMTPCourier {
        let tlsPolicy = try tlsPolicyNamed(configuration.deliveryTLSPolicy)
        let servers = try dnsServers(configuration.dnsServers)
        let resolver = StubResolver(
            options: .init(servers: servers, timeout: .milliseconds(Int64(configuration.dnsTimeoutMilliseconds))),
            transport: NIODNSTransport(group: group))
        let smarthost = try configuration.deliverySmarthost.map { text -> NextHop in
            let address = try ListenAddress(parsing: text)
            let credentials = try smarthostCredentials(configuration)
            // A password goes only to a server whose certificate verifies, unless the operator says otherwise.
            let tlsPolicy = try configuration.deliverySmarthostTLSPolicy.map(tlsPolicyNamed) ?? (credentials != nil ? .requiredVerified : nil)
            return NextHop(host: address.host, port: address.port, tlsPolicy: tlsPolicy, credentials: credentials)
        }
        let router = MXRouter(resolver: resolver, policy: RoutingPolicy(
            allowNonPublicAddresses: configuration.deliveryAllowNonPublicAddresses,
            localNames: [configuration.hostname], localAddresses: localAddresses(configuration),
            routes: try routes(configuration.deliveryRoutes), smarthost: smarthost))
        let shaping = try TrafficShaping.load(operatorFile: configuration.deliveryShapingFile)
        return SMTPCourier(group: group, router: router,
                           options: .init(heloName: configuration.hostname, tlsPolicy: tlsPolicy,
                                          egressPools: try egressPools(configuration.deliveryEgressPools), shaping: shaping,
                                          sharedSlots: sharedSlots),
                           logger: logger)
    }

    /// The addresses at which this server takes mail on port 25: an MX that
    /// resolves to one of them is this server (a loop, RFC 5321 §5.1), even
    /// under another name. A wildcard listener stands for every interface.
    static func localAddresses(_ configuration: Configuration) -> Set<String> {
        var addresses: Set<String> = []
        for text in configuration.smtpListen + configuration.smtpTLSListen {
            guard let listen = try? ListenAddress(parsing: text), listen.port == 25 else { continue }
            if listen.host == "0.0.0.0" || listen.host == "::" || listen.host == "*" {
                for device in (try? System.enumerateDevices()) ?? [] {
                    if let ip = device.address?.ipAddress { addresses.insert(ip) }
                }
            } else if let ip = (try? SocketAddress(ipAddress: listen.host, port: 25))?.ipAddress {
                addresses.insert(ip)
            }
        }
        return addresses
    }

    static func tlsPolicyNamed(_ name: String) throws -> TLSPolicy {
        guard let policy = TLSPolicy(rawValue: name) else {
            throw ConfigurationError("a TLS policy is none, opportunistic, required or required-verified (got \(name))")
        }
        return policy
    }

    /// The smarthost's credentials: the username from the configuration, the
    /// password from its own file, so that the configuration holds no secret.
    static func smarthostCredentials(_ configuration: Configuration) throws -> SMTPCredentials? {
        switch (configuration.deliverySmarthostUsername, configuration.deliverySmarthostPasswordFile) {
        case (nil, nil):
            return nil
        case (let username?, let file?):
            guard let text = try? String(contentsOfFile: file, encoding: .utf8),
                  let password = text.split(whereSeparator: \.isNewline).first.map(String.init), !password.isEmpty else {
                throw ConfigurationError("delivery.smarthostPasswordFile \(file) cannot be read or is empty")
            }
            return SMTPCredentials(username: username, password: password)
        default:
            throw ConfigurationError("delivery.smarthostUsername and delivery.smarthostPasswordFile must be set together")
        }
    }

    /// `domain=host:port` entries as next hops by lower-cased domain.
    static func routes(_ entries: [String]) throws -> [String: NextHop] {
        var routes: [String: NextHop] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, let address = try? ListenAddress(parsing: parts[1]) else {
                throw ConfigurationError("delivery.routes entries are domain=host:port (got \(entry))")
            }
            routes[parts[0].lowercased()] = NextHop(host: address.host, port: address.port)
        }
        return routes
    }

    /// `NAME=ADDRESS [ADDRESS…]` entries as pools; every address must be an IP.
    public static func egressPools(_ entries: [String]) throws -> [String: [String]] {
        var pools: [String: [String]] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let addresses = parts.count == 2 ? parts[1].split(separator: " ").map(String.init) : []
            guard parts.count == 2, !parts[0].isEmpty, !addresses.isEmpty,
                  addresses.allSatisfy({ (try? SocketAddress(ipAddress: $0, port: 0)) != nil }) else {
                throw ConfigurationError("delivery.egressPools entries are NAME=IP [IP…], e.g. marketing=192.0.2.10 192.0.2.11 (got \(entry))")
            }
            pools[parts[0], default: []] += addresses
        }
        return pools
    }

    /// The scheduler over `index`, delivering through `courier`; `enqueue`
    /// (the server's spool) makes DSNs, without it none are sent.
    public static func scheduler(configuration: Configuration, index: QueueIndex, layout: SpoolLayout, courier: SMTPCourier,
                                 accounts: AccountPools, logger: Logger,
                                 enqueue: DeliveryScheduler.Enqueue? = nil, acceptances: AcceptanceLog? = nil) throws -> DeliveryScheduler {
        DeliveryScheduler(
            index: index, layout: layout, schedule: schedule(configuration),
            maximumConcurrentMessages: configuration.deliveryMaxConcurrentMessages, logger: logger,
            reportingMTA: configuration.hostname, enqueue: enqueue, classifier: try classifier(configuration), acceptances: acceptances
        ) { envelope, message, domain, account, onAccepted in
            await courier.deliver(envelope, message: message, domain: domain, pool: account.flatMap(accounts.pool(of:)),
                                  onAccepted: onAccepted)
        }
    }

    /// The shipped rules behind the operator's, and the learned reading unless turned off.
    public static func classifier(_ configuration: Configuration) throws -> BounceClassifier {
        let extra = try configuration.classificationRulesFile.map(BounceClassifier.rules(fromFile:)) ?? []
        return try BounceClassifier.standard(extraRules: extra, learnedReading: configuration.classificationLearnedReading)
    }

    /// `host:port` entries as addresses; none given: the nameservers of /etc/resolv.conf.
    public static func dnsServers(_ configured: [String]) throws -> [SocketAddress] {
        let servers = try configured.map { text -> SocketAddress in
            let address = try ListenAddress(parsing: text)
            return try SocketAddress(ipAddress: address.host, port: address.port)
        }
        return servers.isEmpty ? ResolvConf.systemServers() : servers
    }

    public static func schedule(_ configuration: Configuration) -> RetrySchedule {
        RetrySchedule(minimumBackoff: TimeInterval(configuration.deliveryMinimumBackoffSeconds),
                      maximumBackoff: TimeInterval(configuration.deliveryMaximumBackoffSeconds),
                      lifetime: TimeInterval(configuration.deliveryQueueLifetimeSeconds),
                      delayWarning: configuration.deliveryDelayWarningSeconds > 0
                          ? TimeInterval(configuration.deliveryDelayWarningSeconds) : nil)
    }
}

/// Which egress pool each account's mail leaves from, read from the store
/// and refreshed every 30 s (so `hikyaku account set-pool` takes effect
/// without a restart, and delivery does not read the store per message).
public final class AccountPools: Sendable {
    private let pools: RefreshingSnapshot<[Int64: String]>

    public init(store: any AccountStore) {
        pools = RefreshingSnapshot(lifetime: .seconds(30), initial: [:]) { try store.egressPools() }
    }

    func pool(of account: Int64) -> String? { pools.current[account] }
}

/// Runs the scheduler until graceful shutdown; attempts in flight finish
/// (an interrupted one is simply retried after a restart).
struct DeliveryService: Service {
    let scheduler: DeliveryScheduler
    let courier: SMTPCourier
    let suppressions: SuppressionWriter

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await scheduler.run() }
            group.addTask {
                // Suppressions that waited for the store are written once it answers.
                try? await cancelWhenGracefulShutdown {
                    while true {
                        try await Task.sleep(for: .seconds(5))
                        suppressions.flush()
                    }
                }
            }
            group.addTask {
                try? await gracefulShutdown()
                await scheduler.stop()
            }
            await group.waitForAll()
        }
        // Idle connections say QUIT rather than vanish.
        await courier.closeIdleConnections()
    }
}

/// Writes the suppressions delivery decides on (a hard bounce from a bad
/// address). While the shared store cannot take them they wait here, in
/// order, and are written when it can: a bounce during an outage still
/// suppresses. They wait in memory, at most 100,000: a node stopped meanwhile
/// loses them (its log keeps the bounces). One the store refuses for its
/// data is logged and dropped, so that it cannot hold up the others. The
/// store is called on a queue of its own, never on the caller's thread.
final class SuppressionWriter: Sendable {
    let store: any SuppressionList
    let logger: Logger
    private let waiting = Mutex<[(account: Int64, suppression: Suppression)]>([])
    /// A flush is queued: another is not (a store that hangs would otherwise gather them).
    private let scheduled = Mutex(false)
    private let queue = DispatchQueue(label: "hikyaku.suppression-writer")
    static let maximumWaiting = 100_000

    init(store: any SuppressionList, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func suppress(_ account: Int64, _ suppression: Suppression) {
        let kept = waiting.withLock { waiting -> Bool in
            guard waiting.count < SuppressionWriter.maximumWaiting else { return false }
            waiting.append((account, suppression))
            return true
        }
        if !kept { logger.error("automatic suppression dropped: too many wait for the store", metadata: ["address": "\(suppression.address)"]) }
        flush()
    }

    /// Writes what waits, oldest first, until the store fails for a reason of its own.
    func flush() {
        guard scheduled.withLock({ busy in
            defer { busy = true }
            return !busy
        }) else { return }
        queue.async { [self] in
            scheduled.withLock { $0 = false }
            while let next = waiting.withLock({ $0.first }) {
                do {
                    _ = try store.suppressAutomatically(next.suppression, accountID: next.account)
                } catch let error as PostgresStoreError where !error.isAboutTheData {
                    // The shared store's trouble (away, busy, a timeout, a full disk): it waits for the next flush.
                    return
                } catch {
                    // Refused for its data; or the embedded store's error, which waiting would not mend.
                    logger.error("automatic suppression not written", metadata: ["address": "\(next.suppression.address)",
                                                                                "error": "\(error)"])
                }
                waiting.withLock { _ = $0.removeFirst() }
            }
        }
    }

    var waitingCount: Int { waiting.withLock { $0.count } }
}

/// Every account's suppressed addresses and every unsubscribe group's,
/// read from the store and refreshed every 5 s, so that delivery checks each
/// recipient without a query and an API or CLI change applies within seconds.
public final class SuppressionCache: Sendable {
    private let entries: RefreshingSnapshot<[Int64: [String: Suppression]]>
    private let groups: RefreshingSnapshot<[Int64: Set<String>]>

    public init(store: any SuppressionList & UnsubscribeGroupStore) {
        entries = RefreshingSnapshot(lifetime: .seconds(5), initial: [:]) { try store.suppressionsByAccount() }
        groups = RefreshingSnapshot(lifetime: .seconds(5), initial: [:]) { try store.groupUnsubscribesByGroup() }
    }

    /// The reason `address` is suppressed for this kind of mail (sent in `group`, if any), or nil.
    func reason(_ account: Int64, _ address: String, marketing: Bool, group: Int64? = nil) -> String? {
        let address = address.lowercased()
        if let entry = entries.current[account]?[address], entry.scope.covers(marketing: marketing) { return entry.reason.rawValue }
        if let group, groups.current[group]?.contains(address) == true { return "unsubscribed from group \(group)" }
        return nil
    }
}
