import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import MIME
import NIOCore
import NIOSSL
import Relay
import Spool
import Store

/// The HTTP API port: the native API (`/v1`, described at `/openapi.json`),
/// the SES v2 subset (`/v2/email`) and the SendGrid v3 subset (`/v3`).
public struct APIServer: Sendable {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public var hostname: String
        public var maximumBodySize: Int
        /// Largest message built or accepted, as smtp.maxMessageSize.
        public var maximumMessageSize: Int
        /// All the messages one request may build together (recipients × content).
        public var maximumExpandedSize: Int
        public var maximumAuthFailures: Int
        public var authFailureWindow: TimeAmount
        /// Open connections, overall and per client address (IPv6 by /64).
        public var maximumConnections: Int
        public var maximumConnectionsPerClient: Int
        /// An idle connection is closed after this long.
        public var idleTimeout: TimeAmount
        /// A request must arrive whole (head and body) within this long.
        public var requestTimeout: TimeAmount
        /// HTTPS with this configuration; nil: plain HTTP.
        public var tls: TLSConfiguration?
        /// The file keeping the SigV4 replay memory across restarts; nil: memory only.
        public var replayJournal: String?

        public init(host: String, port: Int, hostname: String, maximumBodySize: Int, maximumMessageSize: Int,
                    maximumExpandedSize: Int = 256 << 20, maximumAuthFailures: Int = 10,
                    authFailureWindow: TimeAmount = .seconds(300), maximumConnections: Int = 1000, maximumConnectionsPerClient: Int = 100,
                    idleTimeout: TimeAmount = .seconds(60), requestTimeout: TimeAmount = .seconds(60), tls: TLSConfiguration? = nil,
                    replayJournal: String? = nil) {
            self.host = host
            self.port = port
            self.hostname = hostname
            self.maximumBodySize = maximumBodySize
            self.maximumMessageSize = maximumMessageSize
            self.maximumExpandedSize = maximumExpandedSize
            self.maximumAuthFailures = maximumAuthFailures
            self.authFailureWindow = authFailureWindow
            self.maximumConnections = maximumConnections
            self.maximumConnectionsPerClient = maximumConnectionsPerClient
            self.idleTimeout = idleTimeout
            self.requestTimeout = requestTimeout
            self.tls = tls
            self.replayJournal = replayJournal
        }
    }

    let options: Options
    let services: APIServices
    let logger: Logger
    let connections: ConnectionLimiter

    let unsubscribe: UnsubscribeLinks?
    /// A domain's compliance report as JSON, for one account's keys.
    public typealias ComplianceReport = @Sendable (_ domain: String, _ accountID: Int64) async throws -> [UInt8]
    let compliance: ComplianceReport?
    /// Checks a domain's DNS records and records whether it is verified for an account; the result as JSON.
    public typealias DomainVerification = @Sendable (_ domain: String, _ accountID: Int64) async throws -> [UInt8]
    let verification: DomainVerification?
    /// The web console under /console/; nil: not served.
    let console: ConsoleOptions?

    /// Messages go to `intake`, the one every door shares; `spool` is read for status and resends.
    public init(options: Options, store: any HikyakuStore, spool: Spool, intake: Intake, meter: SendingMeter,
                unsubscribe: UnsubscribeLinks?, compliance: ComplianceReport? = nil, verification: DomainVerification? = nil,
                eventsOut: EventsOut? = nil, console: ConsoleOptions? = nil, logger: Logger) {
        self.console = console
        self.unsubscribe = unsubscribe
        self.compliance = compliance
        self.verification = verification
        self.options = options
        self.logger = logger
        connections = ConnectionLimiter(maximumConnections: options.maximumConnections, maximumPerClient: options.maximumConnectionsPerClient)
        let gate = APIGate(store: store, maximumBodySize: options.maximumBodySize,
                           throttle: AuthenticationThrottle(maximumFailures: options.maximumAuthFailures,
                                                            window: options.authFailureWindow),
                           replayJournal: options.replayJournal, logger: logger)
        services = APIServices(store: store, spool: spool, index: spool.index, layout: spool.layout, gate: gate,
                               submitter: Submitter(intake: intake),
                               builder: MessageBuilder(hostname: options.hostname), meter: meter, unsubscribe: unsubscribe,
                               draftLimits: .init(maximumMessageSize: options.maximumMessageSize,
                                                  maximumExpandedSize: options.maximumExpandedSize),
                               eventsOut: eventsOut, archive: spool.archive)
    }

    /// What a listener serves: the API with the console under /console/, the API alone (the console
    /// has a listener of its own), or the console alone.
    public enum Serving: Sendable {
        case apiAndConsole
        case api
        case console
    }

    func router(_ serving: Serving = .apiAndConsole) throws -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        let table = RouteTable()
        router.add(middleware: ErrorMiddleware(routes: table, replays: services.gate.replays))
        router.add(middleware: LogRequestsMiddleware(.debug))
        let routes = Routes(router: router, table: table)
        if serving != .api, let console {
            let views = try ConsoleViews()
            let secure = console.secureCookie || options.tls != nil
            var consoleOptions = console
            consoleOptions.secureCookie = secure
            ConsoleRoutes(services: services, views: views, auth: ConsoleAuth(store: services.store, options: consoleOptions),
                          verification: verification, compliance: compliance).register(on: routes)
        }
        guard serving != .console else { return router }
        let openAPI = ByteBuffer(bytes: try APIResources.openAPIDocument())
        routes.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: openAPI))
        }
        NativeAPI(services: services).register(on: routes)
        SESAPI(services: services).register(on: routes)
        SESIdentities(services: services).register(on: routes)
        SendGridAPI(services: services).register(on: routes)
        SendGridKeys(services: services).register(on: routes)
        SendGridTemplates(services: services).register(on: routes)
        SendGridSuppressions(services: services).register(on: routes)
        if let unsubscribe { UnsubscribeRoutes(services: services, links: unsubscribe).register(on: routes) }
        DomainRoutes(services: services, compliance: compliance, verification: verification).register(on: routes)
        if let eventsOut = services.eventsOut {
            WebhookRoutes(services: services, eventsOut: eventsOut).register(on: routes)
            TrackingRoutes(services: services, eventsOut: eventsOut).register(on: routes)
        }
        return router
    }

    /// The application, ready to run in a ServiceGroup; `onListening` gets the bound address.
    /// `serving` `.console` listens on `address` (host, port) instead of the API's, with the same TLS and connection limits.
    public func application(_ serving: Serving = .apiAndConsole, address: (host: String, port: Int)? = nil,
                            onListening: @escaping @Sendable (SocketAddress?) -> Void) throws -> some ApplicationProtocol {
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuard(limiter: connections, requestTimeout: options.requestTimeout)],
            idleTimeout: options.idleTimeout)
        let address = address ?? (options.host, options.port)
        return Application(router: try router(serving),
                    server: try options.tls.map { try .tls(.http1(configuration: http1), tlsConfiguration: $0) } ?? .http1(configuration: http1),
                    configuration: .init(address: .hostname(address.host, port: address.port), serverName: "hikyaku"),
                    onServerRunning: { [unsubscribe, tracking = services.tracking, tls = options.tls != nil] channel in
                        // Without api.publicUrl, links point at the API's listener.
                        if serving != .console, let address = channel.localAddress, let ip = address.ipAddress, let port = address.port {
                            let host = ip.contains(":") ? "[\(ip)]" : ip
                            unsubscribe?.setBaseIfUnset("\(tls ? "https" : "http")://\(host):\(port)")
                            tracking?.setBaseIfUnset("\(tls ? "https" : "http")://\(host):\(port)")
                        }
                        onListening(channel.localAddress)
                    }, logger: logger)
    }
}
