import Foundation
import Hummingbird
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
        public var maximumAuthFailures: Int
        public var authFailureWindow: TimeAmount
        /// HTTPS with this configuration; nil: plain HTTP.
        public var tls: TLSConfiguration?
        /// Accounts send only from domains they verified (`domains.requireVerified`).
        public var requireVerifiedDomains: Bool

        public init(host: String, port: Int, hostname: String, maximumBodySize: Int, maximumMessageSize: Int,
                    maximumAuthFailures: Int = 10,
                    authFailureWindow: TimeAmount = .seconds(300), tls: TLSConfiguration? = nil, requireVerifiedDomains: Bool = false) {
            self.host = host
            self.port = port
            self.hostname = hostname
            self.maximumBodySize = maximumBodySize
            self.maximumMessageSize = maximumMessageSize
            self.maximumAuthFailures = maximumAuthFailures
            self.authFailureWindow = authFailureWindow
            self.tls = tls
            self.requireVerifiedDomains = requireVerifiedDomains
        }
    }

    let options: Options
    let services: APIServices
    let logger: Logger

    let unsubscribe: UnsubscribeLinks?
    /// A domain's compliance report as JSON.
    public typealias ComplianceReport = @Sendable (String) async throws -> [UInt8]
    let compliance: ComplianceReport?
    /// Checks a domain's DNS records and records whether it is verified; the result as JSON.
    let verification: ComplianceReport?

    public init(options: Options, store: SQLiteStore, spool: Spool, meter: SendingMeter, signing: MessageSigning?,
                unsubscribe: UnsubscribeLinks?, compliance: ComplianceReport? = nil, verification: ComplianceReport? = nil,
                logger: Logger) {
        self.unsubscribe = unsubscribe
        self.compliance = compliance
        self.verification = verification
        self.options = options
        self.logger = logger
        let gate = APIGate(store: store, maximumBodySize: options.maximumBodySize,
                           throttle: AuthenticationThrottle(maximumFailures: options.maximumAuthFailures,
                                                            window: options.authFailureWindow))
        services = APIServices(store: store, index: spool.index, layout: spool.layout, gate: gate,
                               submitter: Submitter(spool: spool, meter: meter, hostname: options.hostname,
                                                    maximumMessageSize: options.maximumMessageSize, signing: signing,
                                                    requireVerifiedDomains: options.requireVerifiedDomains),
                               builder: MessageBuilder(hostname: options.hostname), meter: meter, unsubscribe: unsubscribe)
    }

    func router() -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        let table = RouteTable()
        router.add(middleware: ErrorMiddleware(routes: table))
        router.add(middleware: LogRequestsMiddleware(.debug))
        let routes = Routes(router: router, table: table)
        routes.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        NativeAPI(services: services).register(on: routes)
        SESAPI(services: services).register(on: routes)
        SendGridAPI(services: services).register(on: routes)
        if let unsubscribe { UnsubscribeRoutes(services: services, links: unsubscribe).register(on: routes) }
        DomainRoutes(services: services, compliance: compliance, verification: verification).register(on: routes)
        return router
    }

    /// The application, ready to run in a ServiceGroup; `onListening` gets the bound address.
    public func application(onListening: @escaping @Sendable (SocketAddress?) -> Void) throws -> some ApplicationProtocol {
        Application(router: router(), server: try options.tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1(),
                    configuration: .init(address: .hostname(options.host, port: options.port), serverName: "hikyaku"),
                    onServerRunning: { [unsubscribe, tls = options.tls != nil] channel in
                        // Without api.publicUrl, links point at this listener.
                        if let address = channel.localAddress, let ip = address.ipAddress, let port = address.port {
                            let host = ip.contains(":") ? "[\(ip)]" : ip
                            unsubscribe?.setBaseIfUnset("\(tls ? "https" : "http")://\(host):\(port)")
                        }
                        onListening(channel.localAddress)
                    }, logger: logger)
    }
}
