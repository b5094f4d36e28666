import DNS
import Foundation
import Logging
import NIOCore
import NIOPosix
import Relay
import ServiceLifecycle
import Spool

/// Builds the delivery path from the configuration, for the server and for
/// `hikyaku queue deliver` alike.
public enum DeliveryComposition {
    public static func courier(configuration: Configuration, group: any EventLoopGroup, logger: Logger) throws -> SMTPCourier {
        guard let tlsPolicy = TLSPolicy(rawValue: configuration.deliveryTLSPolicy) else {
            throw ConfigurationError("delivery.tlsPolicy must be none, opportunistic, required or required-verified")
        }
        let servers = try dnsServers(configuration.dnsServers)
        let resolver = StubResolver(
            options: .init(servers: servers, timeout: .milliseconds(Int64(configuration.dnsTimeoutMilliseconds))),
            transport: NIODNSTransport(group: group))
        let smarthost = try configuration.deliverySmarthost.map { text -> NextHop in
            let address = try ListenAddress(parsing: text)
            return NextHop(host: address.host, port: address.port)
        }
        let router = MXRouter(resolver: resolver, policy: RoutingPolicy(
            allowNonPublicAddresses: configuration.deliveryAllowNonPublicAddresses,
            localNames: [configuration.hostname], smarthost: smarthost))
        let shaping = try TrafficShaping.load(operatorFile: configuration.deliveryShapingFile)
        return SMTPCourier(group: group, router: router,
                           options: .init(heloName: configuration.hostname, tlsPolicy: tlsPolicy,
                                          sourceAddress: configuration.deliverySourceAddress, shaping: shaping),
                           logger: logger)
    }

    /// The scheduler over `index`, delivering through `courier`; `enqueue`
    /// (the server's spool) makes DSNs, without it none are sent.
    public static func scheduler(configuration: Configuration, index: QueueIndex, layout: SpoolLayout, courier: SMTPCourier,
                                 logger: Logger, enqueue: DeliveryScheduler.Enqueue? = nil) throws -> DeliveryScheduler {
        DeliveryScheduler(
            index: index, layout: layout, schedule: schedule(configuration),
            maximumConcurrentMessages: configuration.deliveryMaxConcurrentMessages, logger: logger,
            reportingMTA: configuration.hostname, enqueue: enqueue, classifier: try classifier(configuration)
        ) { envelope, message, domain in
            await courier.deliver(envelope, message: message, domain: domain)
        }
    }

    /// The shipped rules behind the operator's.
    public static func classifier(_ configuration: Configuration) throws -> BounceClassifier {
        let extra = try configuration.classificationRulesFile.map(BounceClassifier.rules(fromFile:)) ?? []
        return try BounceClassifier.standard(extraRules: extra)
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
                      lifetime: TimeInterval(configuration.deliveryQueueLifetimeSeconds))
    }
}

/// Runs the scheduler until graceful shutdown; attempts in flight finish
/// (an interrupted one is simply retried after a restart).
struct DeliveryService: Service {
    let scheduler: DeliveryScheduler

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await scheduler.run() }
            group.addTask {
                try? await gracefulShutdown()
                await scheduler.stop()
            }
            await group.waitForAll()
        }
    }
}
