import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore

/// What one delivery attempt for one domain's recipients produced.
public struct DeliveryReport: Sendable {
    /// One per recipient; empty when postponed.
    public var outcomes: [RecipientOutcome]
    /// The destination site (traffic-shaping rule or MX set), once routed.
    public var site: String?
    /// The connection that produced the outcomes, if one was made.
    public var session: SessionDetails?
    /// Nothing was attempted: the site's connection or rate limit is
    /// reached. Due again at this time, without counting an attempt.
    public var postponedUntil: Date?
    public var duration: Duration = .zero

    public init(outcomes: [RecipientOutcome], site: String? = nil, session: SessionDetails? = nil,
                postponedUntil: Date? = nil) {
        self.outcomes = outcomes
        self.site = site
        self.session = session
        self.postponedUntil = postponedUntil
    }
}

/// Called on the connection's event loop the moment a remote server has
/// accepted recipients (its reply to the end of data), before anything else.
public typealias AcceptanceHook = @Sendable (_ recipients: [String]) -> Void

/// Delivers one message to the recipients of one domain: routes it, finds
/// the destination site, and sends through one of the site's connections —
/// an idle one when there is one, else a new one tried host by host and
/// address by address — within the site's limits. Every recipient gets
/// exactly one outcome, unless the site says to come back later.
public struct SMTPCourier: Sendable {
    public struct Options: Sendable {
        public var heloName: String
        public var tlsPolicy: TLSPolicy
        public var connectTimeout: TimeAmount
        /// Egress pools: named sets of local addresses to connect from. Mail
        /// of an account on no pool uses `default`; no `default`: the kernel chooses.
        public var egressPools: [String: [String]]
        public var shaping: TrafficShaping
        /// In a cluster: the named sites' connection slots, counted across the nodes.
        public var sharedSlots: SharedSiteSlots?

        public init(heloName: String, tlsPolicy: TLSPolicy = .opportunistic, connectTimeout: TimeAmount = .seconds(30),
                    egressPools: [String: [String]] = [:], shaping: TrafficShaping = TrafficShaping(),
                    sharedSlots: SharedSiteSlots? = nil) {
            self.sharedSlots = sharedSlots
            self.heloName = heloName
            self.tlsPolicy = tlsPolicy
            self.connectTimeout = connectTimeout
            self.egressPools = egressPools
            self.shaping = shaping
        }
    }

    let group: any EventLoopGroup
    let router: MXRouter
    let options: Options
    let logger: Logger
    let sites: SiteDirectory
    /// Round robin over a pool's addresses.
    private let turn = NIOLockedValueBox(0)

    public init(group: any EventLoopGroup, router: MXRouter, options: Options, logger: Logger) {
        self.group = group
        self.router = router
        self.options = options
        self.logger = logger
        self.sites = SiteDirectory(shaping: options.shaping, cluster: options.sharedSlots)
    }

    /// `envelope.recipients` must all be on `domain`; `pool` names the egress
    /// pool of the message's account (nil: `default`).
    /// `onAccepted` hears which recipients the remote server took, as soon as it says so.
    public func deliver(_ envelope: OutboundEnvelope, message: [UInt8], domain: String, pool: String? = nil,
                        onAccepted: AcceptanceHook? = nil) async -> DeliveryReport {
        let started = ContinuousClock.now
        var report = await deliverTimed(envelope, message: message, domain: domain, source: sourceAddress(pool: pool),
                                        onAccepted: onAccepted)
        report.duration = ContinuousClock.now - started
        return report
    }

    /// The next address of the pool, or nil (the kernel chooses).
    func sourceAddress(pool: String?) -> String? {
        guard let addresses = options.egressPools[pool ?? "default"] ?? options.egressPools["default"], !addresses.isEmpty else {
            return nil
        }
        return addresses[turn.withLockedValue { turn in
            turn &+= 1
            return turn
        } % addresses.count]
    }

    func deliverTimed(_ envelope: OutboundEnvelope, message: [UInt8], domain: String, source: String?,
                      onAccepted: AcceptanceHook?) async -> DeliveryReport {
        let decision = await router.route(domain)
        let hosts: [MXHost]
        switch decision {
        case .permanentFailure(let code, let text):
            return DeliveryReport(outcomes: envelope.recipients.map {
                RecipientOutcome(recipient: $0, reply: Reply(550, code, text), source: .dns(transient: false))
            })
        case .transientFailure(let code, let text):
            return DeliveryReport(outcomes: envelope.recipients.map {
                RecipientOutcome(recipient: $0, reply: Reply(451, code, text), source: .dns(transient: true))
            })
        case .deliver(let found):
            hosts = found
        }
        // Limits and connections are per source address and site (an egress path).
        let site = sites.site(domain: domain, mxHosts: hosts.map(\.name), source: source)
        // A reused connection may have been closed by the server meanwhile;
        // then ask again (the stale one has given its slot back).
        for _ in 0..<3 {
            switch await site.acquire() {
            case .postpone(let until):
                return DeliveryReport(outcomes: [], site: site.name, postponedUntil: until)
            case .reuse(let connection):
                let result = await connection.transact(envelope, message: message, onAccepted: onAccepted)
                await site.release(connection, reusable: result.reusable)
                if result.stale { continue }
                return DeliveryReport(outcomes: result.outcomes, site: site.name,
                                      session: connection.details(tlsVersion: result.tlsVersion))
            case .open:
                var report = await openAndDeliver(envelope, message: message, hosts: hosts, site: site, source: source,
                                                  onAccepted: onAccepted)
                report.site = site.name
                return report
            }
        }
        return DeliveryReport(outcomes: envelope.recipients.map {
            RecipientOutcome(recipient: $0, reply: Reply(451, EnhancedStatusCode(4, 4, 2), "connections to the site keep closing"),
                             source: .connection)
        }, site: site.name)
    }

    /// Holds one of the site's connection slots: tries the hosts in order
    /// until one session produces outcomes, and leaves the connection with
    /// the site (or frees the slot).
    func openAndDeliver(_ envelope: OutboundEnvelope, message: [UInt8], hosts: [MXHost], site: DeliverySite,
                        source: String?, onAccepted: AcceptanceHook?) async -> DeliveryReport {
        var last = DeliveryReport(outcomes: envelope.recipients.map {
            RecipientOutcome(recipient: $0, reply: Reply(451, EnhancedStatusCode(4, 4, 1), "no mail exchanger answered"),
                             source: .connection)
        })
        for host in hosts {
            for address in host.addresses {
                let target = (try? SocketAddress(ipAddress: address.ipAddress ?? "", port: host.port)) ?? address
                guard let (connection, result) = await session(envelope, message: message, host: host, address: target,
                                                               source: source, site: site, onAccepted: onAccepted)
                else { continue }
                let report = DeliveryReport(outcomes: result.outcomes, session: connection.details(tlsVersion: result.tlsVersion))
                // Try the next host only when this one never really took part
                // (a 4xx greeting or a lost connection before any reply).
                if result.outcomes.isEmpty || result.outcomes.allSatisfy({
                    $0.reply.code == 421 || ($0.reply.isTransientFailure && $0.reply.enhancedCode?.subject == 4)
                }) {
                    if !result.outcomes.isEmpty { last = report }
                    if connection.channel.isActive { connection.quit() }
                    continue
                }
                await site.release(connection, reusable: result.reusable)
                return report
            }
        }
        await site.release(nil, reusable: false)
        return last
    }

    /// Connects and runs the first transaction; nil when no connection could be made.
    func session(_ envelope: OutboundEnvelope, message: [UInt8], host mx: MXHost, address: SocketAddress, source: String?,
                 site: DeliverySite, onAccepted: AcceptanceHook?) async -> (OutboundConnection, TransactionResult)? {
        let host = mx.name
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: TransactionResult.self)
        OutboundConnection.report(promise.futureResult, to: onAccepted)
        // The next hop's own policy, else the site's, else the global one.
        let tlsPolicy = mx.tlsPolicy ?? site.limits.tlsPolicy ?? options.tlsPolicy
        var tls = TLSConfiguration.makeClientConfiguration()
        if tlsPolicy != .requiredVerified {
            // Opportunistic TLS protects against passive listeners only; most
            // MX certificates would not verify (RFC 7435).
            tls.certificateVerification = .none
        }
        let machine = SMTPClientStateMachine(heloName: options.heloName, tlsPolicy: tlsPolicy, envelope: envelope,
                                             credentials: mx.credentials)
        var timeouts = SMTPClientHandler.Timeouts()
        // From the operator's shaping file: clamped to a day, never converted with a trap.
        let idle = site.limits.idleSeconds.isFinite ? min(max(site.limits.idleSeconds, 0), 86_400) : 5
        timeouts.idle = .milliseconds(Int64(idle * 1000))
        var bootstrap = ClientBootstrap(group: eventLoop).connectTimeout(options.connectTimeout)
        if let source, let bind = try? SocketAddress(ipAddress: source, port: 0) {
            bootstrap = bootstrap.bind(to: bind)
        }
        let tlsConfiguration = tls
        let handlerTimeouts = timeouts
        // Made on the event loop, where the handler lives.
        let made = NIOLockedValueBox<OutboundConnection?>(nil)
        do {
            _ = try await bootstrap
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = SMTPClientHandler(machine: machine, message: message, tlsConfiguration: tlsConfiguration,
                                                        serverHostname: host, timeouts: handlerTimeouts, promise: promise)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        made.withLockedValue { $0 = OutboundConnection(channel: channel, handler: handler, mxHost: host) }
                    }
                }
                .connect(to: address).get()
        } catch {
            logger.notice("connection failed", metadata: ["mx": "\(host)", "address": "\(address)", "error": "\(error)"])
            promise.succeed(TransactionResult(outcomes: [], reusable: false, stale: false))
            return nil
        }
        guard let connection = made.withLockedValue({ $0 }) else { return nil }
        let channel = connection.channel
        // An idle connection that closes by itself gives its slot back.
        channel.closeFuture.whenComplete { _ in
            Task { await site.closed(connection) }
        }
        let result = await connection.firstTransaction(promise.futureResult)
        return (connection, result)
    }

    /// Closes every idle connection (shutdown).
    public func closeIdleConnections() async {
        for site in sites.all { await site.closeIdle() }
    }

    /// Every site delivered to since start, busiest first (at most `limit`).
    public func siteActivity(limit: Int = 200) async -> [SiteActivity] {
        var activity: [SiteActivity] = []
        for site in sites.all { activity.append(await site.activity) }
        return Array(activity.sorted { ($0.openConnections, $0.postponements, $1.name) > ($1.openConnections, $1.postponements, $0.name) }
            .prefix(limit))
    }

    /// The named shaping rules (providers and carriers), in their order.
    public var shapingRuleNames: [String] { options.shaping.rules.map(\.name) }

    /// The shaping rule a recipient domain falls under, by its name alone (nil: none; its site is its MX set).
    public func shapingRule(forDomain domain: String) -> String? {
        let site = options.shaping.site(domain: domain, mxHosts: [])
        return DeliverySite.isAdHoc(site.name) ? nil : site.name
    }
}
