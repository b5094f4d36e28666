import API
import CoreMetrics
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import Relay
import ServiceLifecycle
import Spool
import Store

/// Where swift-metrics goes in this process: the registry `/metrics` shows.
/// MetricsSystem can be bootstrapped once per process, so this is made once.
let metricsRegistry: PrometheusCollectorRegistry = {
    let registry = PrometheusCollectorRegistry()
    var factory = PrometheusMetricsFactory(registry: registry)
    factory.defaultDurationHistogramBuckets = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(300), .seconds(3600), .seconds(86400),
    ]
    MetricsSystem.bootstrap(factory)
    return registry
}()

/// Paths inside the data directory.
public struct DataLayout: Sendable {
    public var root: String
    public init(root: String) { self.root = root }
    public var storePath: String { root + "/hikyaku.sqlite" }
    /// The key that seals API secrets, DKIM and webhook keys (on a cluster, the same file on every node).
    public var secretsKeyPath: String { root + "/secrets.key" }
    public var spool: SpoolLayout { SpoolLayout(directory: root + "/spool") }
    public var certificatePath: String { root + "/tls/certificate.pem" }
    public var privateKeyPath: String { root + "/tls/private-key.pem" }
    /// The SES signatures used while still valid (`ReplayJournal`), and its previous generation beside it.
    public var signatureJournalPath: String { root + "/signatures-used" }
    /// The key and certificate that sign SNS notifications (`ses`-format webhooks).
    public var snsDirectory: String { root + "/sns" }

    public func create() throws {
        DataLayout.restrictNewFiles()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
    }

    /// Files this process makes (databases, their WAL and SHM files, spool
    /// segments, keys) are readable by its user only: the store holds sealed
    /// secrets, password hashes and every message.
    public static func restrictNewFiles() {
        umask(0o077)
    }

    /// What is wrong with the permissions of an existing data directory:
    /// nothing, or a sentence for the log. The databases are made 0600 on the way.
    public func checkPermissions() -> [String] {
        var warnings: [String] = []
        if let mode = (try? FileManager.default.attributesOfItem(atPath: root))?[.posixPermissions] as? Int, mode & 0o077 != 0 {
            warnings.append("data directory \(root) is readable by others (mode \(String(mode, radix: 8))); chmod 700 it")
        }
        for path in [storePath, storePath + "-wal", storePath + "-shm", spool.indexPath, spool.indexPath + "-wal",
                     spool.indexPath + "-shm", secretsKeyPath] where FileManager.default.fileExists(atPath: path) {
            if let mode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int, mode & 0o077 != 0 {
                chmod(path, 0o600)
            }
        }
        return warnings
    }
}

/// The running relay: builds every part from the configuration and runs
/// them in one ServiceGroup, so SIGTERM and SIGINT drain it cleanly.
public enum Server {
    public static func run(configuration: Configuration, logger: Logger) async throws {
        let layout = DataLayout(root: configuration.dataDirectory)
        try layout.create()
        for warning in layout.checkPermissions() { logger.warning("\(warning)") }
        let store = try ConfiguredStore.open(configuration, layout: layout)
        // In a cluster, what is limited for the service as a whole is shared out among the live nodes.
        let liveNodes = LiveNodes()
        let sharedSlots = (store as? any SiteSlotLeases).map { leases in
            // What a previous run of this node held is free again.
            try? leases.releaseAllSiteSlots()
            return SharedSiteSlots(leases: leases, liveNodes: liveNodes, lifetime: max(30, 3 * configuration.heartbeatSeconds))
        }
        // Keep room for the index and the logs when the disk fills up
        // (Postfix's queue_minfree): twice the largest message by default.
        let minimumFree = configuration.spoolMinimumFreeBytes > 0
            ? configuration.spoolMinimumFreeBytes : 2 * configuration.maxMessageSize
        let spool = try Spool(layout: layout.spool, minimumFreeBytes: Int64(minimumFree),
                              commitDelayMicroseconds: configuration.spoolCommitDelayMicroseconds, logger: logger)
        let trustedNetworks = try TrustedNetworks(configuration.trustedNetworks)
        let plainAddresses = try configuration.smtpListen.map(ListenAddress.init(parsing:))
        let tlsAddresses = try configuration.smtpTLSListen.map(ListenAddress.init(parsing:))
        let proxyAddresses = try configuration.smtpProxyListen.map(ListenAddress.init(parsing:))
        let proxyTLSAddresses = try configuration.smtpTLSProxyListen.map(ListenAddress.init(parsing:))
        let proxy = SMTPListener.ProxySettings(from: try TrustedNetworks(configuration.smtpProxyFrom),
                                               timeout: .seconds(Int64(configuration.smtpProxyTimeoutSeconds)))
        if !(proxyAddresses + proxyTLSAddresses).isEmpty && configuration.smtpProxyFrom.isEmpty {
            throw ConfigurationError("smtp.proxyListen and smtp.tlsProxyListen need smtp.proxyFrom: the load balancers' addresses")
        }

        var certificatePath = configuration.tlsCertificate
        var keyPath = configuration.tlsPrivateKey
        if certificatePath == nil && keyPath == nil {
            certificatePath = layout.certificatePath
            keyPath = layout.privateKeyPath
            try await SelfSignedCertificate.ensure(certificatePath: layout.certificatePath, keyPath: layout.privateKeyPath,
                                                   hostname: configuration.hostname)
        }
        guard let certificatePath, let keyPath else {
            throw ConfigurationError("smtp.tlsCertificate and smtp.tlsPrivateKey must be set together")
        }
        let tlsConfiguration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
        var smtpTLSConfiguration = tlsConfiguration
        switch configuration.smtpTLSMinimumVersion {
        case "1.2": smtpTLSConfiguration.minimumTLSVersion = .tlsv12
        case "1.3": smtpTLSConfiguration.minimumTLSVersion = .tlsv13
        default: throw ConfigurationError("smtp.tlsMinimumVersion is 1.2 or 1.3 (got \(configuration.smtpTLSMinimumVersion))")
        }
        let tlsContext = try NIOSSLContext(configuration: smtpTLSConfiguration)
        var apiTLSConfiguration = tlsConfiguration
        apiTLSConfiguration.minimumTLSVersion = .tlsv12

        let group = MultiThreadedEventLoopGroup(
            numberOfThreads: configuration.eventLoopThreads > 0 ? configuration.eventLoopThreads : max(1, System.coreCount - 1))
        // Slow work off the event loops, each kind on its own threads, so that
        // a flood of one (AUTH guesses, reports) cannot hold up the others.
        let authenticationPool = NIOThreadPool(numberOfThreads: 2)
        let signingPool = NIOThreadPool(numberOfThreads: 2)
        let feedbackPool = NIOThreadPool(numberOfThreads: 1)
        for pool in [authenticationPool, signingPool, feedbackPool] { pool.start() }

        var settings = InboundSettings(
            hostname: configuration.hostname, maximumMessageSize: configuration.maxMessageSize,
            maximumRecipients: configuration.maxRecipients, maximumCommandLineLength: configuration.maxCommandLineLength,
            maximumTextLineLength: configuration.maxTextLineLength, maximumAuthFailures: configuration.maxAuthFailures,
            maximumErrors: configuration.maxErrors, maximumReceivedHeaders: configuration.maxReceivedHeaders,
            tlsAvailable: true)
        settings.requireVerifiedDomains = configuration.domainsRequireVerified
        // VERP: one key for making return paths and checking those that come back.
        let softLimit = AutomaticSuppression.SoftLimit(count: configuration.suppressionSoftBounces,
                                                       window: TimeInterval(configuration.suppressionSoftBounceDays) * 86400)
        let returnPath = ReturnPath(domain: configuration.bounceDomain, key: store.derivedKey("hikyaku return path"),
                                    directory: ReturnPathDirectory(store: store))
        settings.returnPath = returnPath
        let unsubscribe = UnsubscribeLinks(key: store.derivedKey("hikyaku unsubscribe"), base: configuration.apiPublicURL,
                                           mailDomain: configuration.bounceDomain)
        settings.unsubscribe = unsubscribe
        // One meter for SMTP and the API: the same quotas whichever way mail comes.
        let meter = SendingMeter(store: store, sandboxNeedsVerifiedDomains: configuration.domainsRequireVerified, liveNodes: liveNodes)
        // Every enabled account as it is now, read again every 5 s: a disabled account or a domain that lost
        // its verification stops sending within seconds, also in SMTP sessions opened before.
        let currentAccounts = RefreshingSnapshot<[Int64: AuthenticatedAccount]>(lifetime: .seconds(5), initial: [:]) {
            Dictionary(try store.accounts().filter { !$0.disabled }.map { ($0.id, AuthenticatedAccount($0)) }) { first, _ in first }
        }
        let signing = MessageSigning(store: store, headers: configuration.dkimHeaders)
        // The one way into the spool, for every door.
        let intake = Intake(
            settings: .init(hostname: configuration.hostname, maximumMessageSize: configuration.maxMessageSize,
                            maximumReceivedFields: configuration.maxReceivedHeaders,
                            requireVerifiedDomains: configuration.domainsRequireVerified),
            spool: spool, meter: meter, signing: signing, signingPool: signingPool,
            accountLookup: { id, fresh in
                if fresh { return (try? store.account(id: id)).flatMap { $0 }.flatMap { $0.disabled ? nil : AuthenticatedAccount($0) } }
                return currentAccounts.current[id]
            })
        var environment = InboundSessionHandler.Environment(
            settings: settings, intake: intake,
            verifier: AccountCredentialVerifier(store: store, threadPool: authenticationPool,
                                                outageGrace: TimeInterval(configuration.storageOutageGraceSeconds)), tlsContext: tlsContext,
            commandTimeout: .seconds(Int64(configuration.commandTimeoutSeconds)),
            dataTimeout: .seconds(Int64(configuration.dataTimeoutSeconds)),
            authenticationThrottle: AuthenticationThrottle(
                maximumFailures: configuration.maxAuthFailuresPerClient,
                window: .seconds(Int64(configuration.authFailureWindowSeconds))),
            logger: logger)
        environment.feedbackPool = feedbackPool
        // In a cluster, what concerns another node's message goes to that node through the shared store.
        let forwarder = (store as? any ClusterInbox).map { FeedbackForwarder(inbox: $0, logger: logger) }
        environment.feedback = FeedbackRecorder(index: spool.index, store: store,
                                                classifier: try DeliveryComposition.classifier(configuration), returnPath: returnPath,
                                                unsubscribe: unsubscribe, softLimit: softLimit)
        environment.feedback?.forwarder = forwarder
        let limiter = ConnectionLimiter(maximumConnections: configuration.maxConnections,
                                        maximumPerClient: configuration.maxConnectionsPerClient)
        let listeners = plainAddresses.map { address in
            SMTPListener(options: .init(host: address.host, port: address.port, implicitTLS: false),
                         environment: environment, limiter: limiter, trustedNetworks: trustedNetworks, group: group)
        } + tlsAddresses.map { address in
            SMTPListener(options: .init(host: address.host, port: address.port, implicitTLS: true),
                         environment: environment, limiter: limiter, trustedNetworks: trustedNetworks, group: group)
        } + proxyAddresses.map { address in
            SMTPListener(options: .init(host: address.host, port: address.port, implicitTLS: false, proxy: proxy),
                         environment: environment, limiter: limiter, trustedNetworks: trustedNetworks, group: group)
        } + proxyTLSAddresses.map { address in
            SMTPListener(options: .init(host: address.host, port: address.port, implicitTLS: true, proxy: proxy),
                         environment: environment, limiter: limiter, trustedNetworks: trustedNetworks, group: group)
        }

        let accounts = (try? store.accounts().count) ?? 0
        let dataDirectory = configuration.dataDirectory
        let smtp = SMTPListenerService(listeners: listeners, gracePeriod: .seconds(Int64(configuration.drainSeconds)), logger: logger) {
            if accounts == 0 {
                announce("hikyaku: no accounts yet; create one with: hikyaku account create NAME --domain example.com --data-dir \(dataDirectory)")
            }
        }
        let housekeeping = SpoolHousekeepingService(spool: spool, retention: TimeInterval(configuration.logRetentionDays) * 86400,
                                                    logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: housekeeping), .init(service: UsageFlushService(meter: meter, logger: logger)),
            .init(service: NodeHeartbeatService(registry: store, index: spool.index,
                                                name: configuration.clusterNodeName,
                                                heartbeatSeconds: configuration.heartbeatSeconds,
                                                // The embedded store is one node's alone, whatever names its registry kept.
                                                liveNodes: store is any SharedDeliveryLog ? liveNodes : nil,
                                                sharedSlots: sharedSlots, logger: logger)),
        ]
        if let shared = store as? any SharedDeliveryLog {
            // Listed early, so stopped late: it copies what delivery logged up to its end.
            services.append(.init(service: SharedLogService(sharer: DeliveryLogSharer(index: spool.index, log: shared), log: shared,
                                                            retention: TimeInterval(configuration.logRetentionDays) * 86400,
                                                            logger: logger)))
        }
        if configuration.domainsReverifySeconds > 0 {
            // A service that returns ends the group: only added when it has work to do.
            services.append(.init(service: DomainVerificationService(configuration: configuration, store: store, logger: logger)))
        }
        // Made before the API so that the console can show its sites; started with delivery below.
        let courier = configuration.deliveryEnabled
            ? try DeliveryComposition.courier(configuration: configuration, group: group, sharedSlots: sharedSlots, logger: logger) : nil
        var engagements: EngagementRecorder?
        if !configuration.apiListen.isEmpty {
            let address = try ListenAddress(parsing: configuration.apiListen)
            let eventsOut = try await EventsOutComposition.make(configuration: configuration, store: store, index: spool.index,
                                                                 snsDirectory: layout.snsDirectory, group: group, forwarder: forwarder,
                                                                 logger: logger)
            engagements = eventsOut.engagements
            services.append(.init(service: EventsOutService(eventsOut: eventsOut)))
            let api = APIServer(
                options: .init(host: address.host, port: address.port, hostname: configuration.hostname,
                               maximumBodySize: configuration.apiMaxRequestSize > 0
                                   ? configuration.apiMaxRequestSize : 2 * configuration.maxMessageSize,
                               maximumMessageSize: configuration.maxMessageSize,
                               maximumExpandedSize: configuration.apiMaxExpandedSize,
                               maximumAuthFailures: configuration.maxAuthFailuresPerClient,
                               authFailureWindow: .seconds(Int64(configuration.authFailureWindowSeconds)),
                               maximumConnections: configuration.apiMaxConnections,
                               maximumConnectionsPerClient: configuration.apiMaxConnectionsPerClient,
                               idleTimeout: .seconds(Int64(configuration.apiIdleTimeoutSeconds)),
                               requestTimeout: .seconds(Int64(configuration.apiRequestTimeoutSeconds)),
                               tls: configuration.apiTLS ? apiTLSConfiguration : nil,
                               replayJournal: layout.signatureJournalPath),
                store: store, spool: spool, intake: intake, meter: meter, unsubscribe: unsubscribe,
                compliance: { [index = spool.index] domain, account in
                    let checks = try await Compliance.check(.init(domain: domain, configuration: configuration, store: store, index: index,
                                                                  resolver: try Compliance.resolver(configuration), accountID: account))
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    return Array(try encoder.encode(ComplianceReport(domain: domain, checks: checks)))
                },
                verification: { domain, account in
                    let resolver = try Compliance.resolver(configuration)
                    let verification = try await SendingDomain.verifyAndRecord(domain: domain, configuration: configuration, store: store,
                                                                               resolver: resolver, accountID: account)
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    return Array(try encoder.encode(verification))
                }, eventsOut: eventsOut,
                console: ConsoleComposition.options(configuration: configuration, layout: layout.spool, index: spool.index,
                                                    courier: courier),
                logger: logger)
            MarketingService.abandonImports(store: store, directory: layout.spool.directory + "/imports", logger: logger)
            services.append(.init(service: MarketingService(runner: api.campaignRunner(),
                                                            follower: ContactActivityFollower(index: spool.index, store: store),
                                                            logger: logger)))
            let consoleAddress = configuration.consoleEnabled && !configuration.consoleListen.isEmpty
                ? try ListenAddress(parsing: configuration.consoleListen) : nil
            services.append(.init(service: try api.application(consoleAddress == nil ? .apiAndConsole : .api) { bound in
                announce("hikyaku: listening api \(bound?.ipAddress ?? address.host):\(bound?.port ?? address.port)")
            }))
            if let consoleAddress {
                services.append(.init(service: try api.application(.console, address: (consoleAddress.host, consoleAddress.port)) { bound in
                    announce("hikyaku: listening console \(bound?.ipAddress ?? consoleAddress.host):\(bound?.port ?? consoleAddress.port)")
                }))
            }
        }
        if let inbox = store as? any ClusterInbox {
            services.append(.init(service: InboxService(
                // A node without the API (so without tracking) still records the opens and clicks others forward.
                follower: FeedbackInboxFollower(inbox: inbox, index: spool.index,
                                                engagements: engagements ?? EngagementRecorder(
                                                    index: spool.index,
                                                    classifier: EngagementClassifier(window: Double(configuration.trackingMachineWindowSeconds)),
                                                    logger: logger),
                                                unsubscribeStore: store, feedback: environment.feedback, logger: logger),
                inbox: inbox, logger: logger)))
        }
        if !configuration.adminListen.isEmpty {
            let address = try ListenAddress(parsing: configuration.adminListen)
            let admin = AdminServer(options: .init(host: address.host, port: address.port), registry: metricsRegistry,
                                    index: spool.index, healthy: { spool.isHealthy }, nodes: store,
                                    heartbeatSeconds: configuration.heartbeatSeconds, logger: logger)
            services.append(.init(service: admin.application { bound in
                announce("hikyaku: listening admin \(bound?.ipAddress ?? address.host):\(bound?.port ?? address.port)")
            }))
        }
        if let courier {
            let scheduler = try DeliveryComposition.scheduler(
                configuration: configuration, index: spool.index, layout: spool.layout, courier: courier,
                accounts: AccountPools(store: store), logger: logger, enqueue: { dsn in _ = try await intake.submit(dsn).get() },
                acceptances: spool.acceptances)
            let suppressions = SuppressionCache(store: store)
            await scheduler.setSuppressed { account, address, marketing, group in
                suppressions.reason(account, address, marketing: marketing, group: group)
            }
            await scheduler.setReturnPath(returnPath)
            let suppressionWriter = SuppressionWriter(store: store, logger: logger)
            await scheduler.setSuppress({ account, suppression in suppressionWriter.suppress(account, suppression) }, softLimit: softLimit)
            // New mail is looked at as soon as it is indexed, not at the next poll.
            spool.onIndexed = { Task { await scheduler.wake() } }
            services.append(.init(service: DeliveryService(scheduler: scheduler, courier: courier, suppressions: suppressionWriter)))
        }
        // Shut down in reverse: the SMTP listeners drain first, then delivery, then housekeeping.
        services.append(.init(service: smtp))
        let serviceGroup = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let outcome: Result<Void, any Error>
        do {
            try await serviceGroup.run()
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }

        // Sessions are closed; finish any batch in flight so that every 250
        // already sent is on disk, then release the threads.
        spool.close()
        for pool in [authenticationPool, signingPool, feedbackPool] { try await pool.shutdownGracefully() }
        try await group.shutdownGracefully()
        try outcome.get()
        logger.info("stopped")
    }
}

/// Runs the SMTP listeners until graceful shutdown, then drains them.
///
/// The listeners start inside the service group, after it has installed its
/// signal handlers, so a SIGTERM that follows the "listening" lines always
/// drains instead of killing the process.
struct SMTPListenerService: Service {
    let listeners: [SMTPListener]
    let gracePeriod: TimeAmount
    let logger: Logger
    let onListening: @Sendable () -> Void

    func run() async throws {
        for listener in listeners {
            let bound = try await listener.start()
            let kind = (listener.options.implicitTLS ? "smtp-tls" : "smtp") + (listener.options.proxy == nil ? "" : "-proxy")
            // One line per listener on stdout: scripts read the bound port from it.
            announce("hikyaku: listening \(kind) \(bound.ipAddress ?? listener.options.host):\(bound.port ?? 0)")
        }
        onListening()
        try? await gracefulShutdown()
        logger.info("draining SMTP sessions", metadata: ["open": "\(listeners.reduce(0) { $0 + $1.openSessions })"])
        await withTaskGroup(of: Void.self) { group in
            for listener in listeners {
                group.addTask { await listener.drain(gracePeriod: gracePeriod) }
            }
        }
    }
}

/// Reclaims spool segments whose messages are all final, and forgets log
/// entries and finished messages past the retention time.
struct SpoolHousekeepingService: Service {
    let spool: Spool
    let retention: TimeInterval
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // Each step on its own: a failure of one (a full disk, say) does not stop the others from freeing space.
            do { try spool.archive.purge(before: Date().addingTimeInterval(-retention)) } catch {
                logger.warning("archive purge failed", metadata: ["error": "\(error)"])
            }
            do { try spool.collectGarbage() } catch {
                logger.warning("spool garbage collection failed", metadata: ["error": "\(error)"])
            }
            do {
                let purged = try spool.index.purge(before: Date().addingTimeInterval(-retention))
                if purged.events + purged.messages > 0 {
                    logger.info("retention", metadata: ["events": "\(purged.events)", "messages": "\(purged.messages)"])
                }
            } catch {
                logger.warning("spool housekeeping failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(60)) }
        }
    }
}

/// Runs blocking store work on a queue of its own: a database that hangs then holds that queue's thread,
/// not one of the few threads Swift's concurrency pool has for everything else.
func offload<T: Sendable>(_ queue: DispatchQueue, _ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        queue.async { continuation.resume(with: Result { try work() }) }
    }
}

/// In a cluster: copies this node's delivery log into the shared one every
/// second, and drops the shared log's days past the retention time.
struct SharedLogService: Service {
    let sharer: DeliveryLogSharer
    let log: any SharedDeliveryLog
    let retention: TimeInterval
    let logger: Logger

    func run() async throws {
        var failing = false
        var droppedAt = ContinuousClock.now - .seconds(3600)
        let queue = DispatchQueue(label: "hikyaku.shared-log")
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                while try await offload(queue, { try sharer.catchUp() }) > 0 && !Task.isShuttingDownGracefully {}
                if failing { logger.notice("delivery log copied to the shared store again") }
                failing = false
            } catch {
                // Once per outage: the local log keeps the events until the store answers.
                if !failing { logger.warning("delivery log not copied to the shared store yet", metadata: ["error": "\(error)"]) }
                failing = true
            }
            if ContinuousClock.now - droppedAt > .seconds(600) {
                droppedAt = ContinuousClock.now
                do {
                    let days = try await offload(queue) { try log.dropSharedLog(before: Date().addingTimeInterval(-retention)) }
                    if days > 0 { logger.info("retention of the shared log", metadata: ["days": "\(days)"]) }
                } catch {
                    logger.warning("shared log retention failed", metadata: ["error": "\(error)"])
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
        }
        // What the last second logged, before the node stops.
        _ = try? await offload(queue) { try sharer.catchUp() }
    }
}

/// In a cluster: applies every second what other nodes heard about this
/// node's messages (opens, clicks, unsubscribes, reports), and drops what no
/// node took within `FeedbackInboxFollower.lifetime`.
struct InboxService: Service {
    let follower: FeedbackInboxFollower
    let inbox: any ClusterInbox
    let logger: Logger

    func run() async throws {
        var failing = false
        var expiredAt = ContinuousClock.now - .seconds(3600)
        let queue = DispatchQueue(label: "hikyaku.cluster-inbox")
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                // Page after page while pages come full.
                while try await offload(queue, { try follower.catchUp(limit: 1000) }) == 1000 && !Task.isShuttingDownGracefully {}
                if ContinuousClock.now - expiredAt > .seconds(600) {
                    expiredAt = ContinuousClock.now
                    _ = try await offload(queue) {
                        try inbox.expireInboxItems(before: Date().addingTimeInterval(-FeedbackInboxFollower.lifetime))
                    }
                }
                failing = false
            } catch {
                if !failing { logger.warning("cluster inbox not read", metadata: ["error": "\(error)"]) }
                failing = true
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
        }
    }
}

/// Writes this node's status to the store's node registry at start and then
/// every `cluster.heartbeatSeconds`: what `hikyaku cluster status` and the
/// admin port's `/cluster` list.
struct NodeHeartbeatService: Service {
    let registry: any NodeRegistry
    let index: QueueIndex
    let name: String
    let heartbeatSeconds: Int
    /// Counted from the registry with each heartbeat (the nodes heard from within three intervals), on a
    /// shared store; nil on the embedded one.
    let liveNodes: LiveNodes?
    /// This node's site slots, renewed with each heartbeat.
    let sharedSlots: SharedSiteSlots?
    let logger: Logger

    func run() async throws {
        let started = Date()
        let queue = DispatchQueue(label: "hikyaku.heartbeat")
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await offload(queue) { [self] in
                    let pending = try index.pendingCounts()
                    try registry.recordHeartbeat(NodeStatus(name: name, version: HikyakuVersion.string, startedAt: started,
                                                            heartbeatAt: Date(), pendingRecipients: pending.queued + pending.deferred,
                                                            pendingMessages: pending.messages))
                    if let liveNodes {
                        let now = Date()
                        liveNodes.set(try registry.nodes().filter { $0.isAlive(now: now, heartbeatSeconds: heartbeatSeconds) }.count)
                    }
                    try sharedSlots?.renew()
                }
            } catch {
                logger.warning("node heartbeat failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(heartbeatSeconds)) }
        }
    }
}

/// Writes the sending meter's counts to the store every second, and once
/// more at shutdown.
struct UsageFlushService: Service {
    let meter: SendingMeter
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            do { try meter.flush() } catch { logger.warning("usage flush failed", metadata: ["error": "\(error)"]) }
        }
        try? meter.flush()
    }
}

/// Re-checks every sending domain's records at start and then every
/// `domains.reverifySeconds`, as SES keeps checking identities: a DKIM record
/// published since verifies the domain without anyone running `domain
/// verify`, one withdrawn takes it out of use, and the same for a return
/// path's MX. A failed lookup changes nothing, so a DNS outage cannot stop mail.
struct DomainVerificationService: Service {
    let configuration: Configuration
    let store: any AccountStore & DKIMKeyStore & ReturnPathStore
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await reverifyAll()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(configuration.domainsReverifySeconds)) }
        }
    }

    func reverifyAll() async {
        do {
            let resolver = try Compliance.resolver(configuration)
            for domain in Set(try store.dkimKeys().map(\.domain)).sorted() {
                guard !Task.isShuttingDownGracefully else { return }
                let before = try state(domain)
                let after = try await SendingDomain.verifyAndRecord(domain: domain, configuration: configuration, store: store, resolver: resolver)
                if before != (after.verified, after.returnPath?.verified) {
                    logger.notice("sending domain re-checked", metadata: [
                        "domain": "\(domain)", "verified": "\(after.verified)",
                        "return_path": "\(after.returnPath.map { "\($0.domain) \($0.verified ? "in use" : "not in use")" } ?? "none")"])
                }
            }
        } catch {
            logger.warning("re-checking sending domains failed", metadata: ["error": "\(error)"])
        }
    }

    private func state(_ domain: String) throws -> (Bool, Bool?) {
        guard let owner = try SendingDomain.owner(of: domain, keys: store.dkimKeys(domain: domain), store: store) else { return (false, nil) }
        return (try store.account(id: owner)?.verifiedDomains.contains(domain) ?? false,
                try store.returnPath(domain: domain, accountID: owner)?.verified)
    }
}

/// Writes a line to standard output at once (unbuffered), for scripts that wait on it.
func announce(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
