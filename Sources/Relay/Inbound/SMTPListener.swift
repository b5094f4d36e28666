import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One listening SMTP socket (plain+STARTTLS or implicit TLS).
///
/// Each accepted connection gets its own pipeline; a failing connection never
/// affects the listener or another session. `drain` stops accepting, tells
/// every session to finish (idle ones get 421 at once, busy ones after
/// their transaction), and closes whatever is left after the grace period.
public final class SMTPListener: Sendable {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public var implicitTLS: Bool
        /// Non-nil: every connection is a load balancer's, and starts with a PROXY protocol header
        /// naming the client (`ProxyHeader`).
        public var proxy: ProxySettings?
        public init(host: String, port: Int, implicitTLS: Bool, proxy: ProxySettings? = nil) {
            self.host = host
            self.port = port
            self.implicitTLS = implicitTLS
            self.proxy = proxy
        }
    }

    /// Who may send a PROXY header, and how long it may take.
    public struct ProxySettings: Sendable {
        /// The load balancers' addresses; a connection from anywhere else is closed unanswered.
        public var from: TrustedNetworks
        public var timeout: TimeAmount
        public init(from: TrustedNetworks, timeout: TimeAmount) {
            self.from = from
            self.timeout = timeout
        }
    }

    public let options: Options
    private let environment: InboundSessionHandler.Environment
    private let limiter: ConnectionLimiter
    private let trustedNetworks: TrustedNetworks
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox<(channel: (any Channel)?, sessions: [ObjectIdentifier: any Channel], nextID: UInt64)>((nil, [:], 0))

    public init(options: Options, environment: InboundSessionHandler.Environment, limiter: ConnectionLimiter,
                trustedNetworks: TrustedNetworks, group: any EventLoopGroup) {
        self.options = options
        self.environment = environment
        self.limiter = limiter
        self.trustedNetworks = trustedNetworks
        self.group = group
    }

    /// Binds and starts accepting; returns the bound address (port 0 picks one).
    public func start() async throws -> SocketAddress {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.initialise(channel) }
            }
            .bind(host: options.host, port: options.port)
            .get()
        state.withLockedValue { $0.channel = channel }
        guard let bound = channel.localAddress else { throw ChannelError.ioOnClosedChannel }
        return bound
    }

    private func initialise(_ channel: any Channel) throws {
        let sessionID = state.withLockedValue { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        let key = ObjectIdentifier(channel)
        state.withLockedValue { $0.sessions[key] = channel }
        channel.closeFuture.whenComplete { [state] _ in
            state.withLockedValue { _ = $0.sessions.removeValue(forKey: key) }
        }
        guard let proxy = options.proxy else {
            return try startSession(channel, client: channel.remoteAddress, mayBeTrusted: true, sessionID: sessionID)
        }
        // Behind a load balancer the session starts once its header names the client.
        guard proxy.from.contains(channel.remoteAddress) else {
            environment.logger.warning("PROXY listener: connection from an address not in smtp.proxyFrom closed",
                                       metadata: ["peer": "\(channel.remoteAddress?.ipAddress ?? "unknown")"])
            channel.close(promise: nil)
            return
        }
        let handler = ProxyHeaderHandler(timeout: proxy.timeout, logger: environment.logger) { [self] channel, header in
            // LOCAL or UNKNOWN: the balancer's own connection (a health check) is served as itself — never trusted
            // to relay, whatever smtp.trustedNetworks says of the balancer's address.
            try self.startSession(channel, client: header.source ?? channel.remoteAddress, mayBeTrusted: header.source != nil,
                                  sessionID: sessionID)
        }
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    /// Adds the session's handlers for `client`: the refusal when it has too many connections, else TLS
    /// (for implicit TLS) and the SMTP session, trusted to relay when `mayBeTrusted` and in `trustedNetworks`.
    func startSession(_ channel: any Channel, client: SocketAddress?, mayBeTrusted: Bool, sessionID: UInt64) throws {
        let address = client?.ipAddress ?? "unknown"
        guard limiter.acquire(address) else {
            try channel.pipeline.syncOperations.addHandler(RefuseConnectionHandler())
            return
        }
        channel.closeFuture.whenComplete { [limiter] _ in limiter.release(address) }
        if options.implicitTLS {
            guard let tlsContext = environment.tlsContext else { throw ChannelError.inappropriateOperationForState }
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext))
        }
        let handler = InboundSessionHandler(
            environment: environment, clientAddress: address, trusted: mayBeTrusted && trustedNetworks.contains(client),
            implicitTLS: options.implicitTLS, sessionID: "\(options.port)-\(sessionID)")
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    public var openSessions: Int { state.withLockedValue { $0.sessions.count } }

    /// Stops accepting, asks sessions to finish, and force-closes any still
    /// open after `gracePeriod`.
    public func drain(gracePeriod: TimeAmount) async {
        let (listening, sessions) = state.withLockedValue { ($0.channel, Array($0.sessions.values)) }
        try? await listening?.close()
        for session in sessions {
            session.pipeline.fireUserInboundEventTriggered(DrainRequest())
        }
        let deadline = NIODeadline.now() + gracePeriod
        while openSessions > 0 && NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let remaining = state.withLockedValue { Array($0.sessions.values) }
        for session in remaining {
            try? await session.close()
        }
    }
}

/// Answers a connection over the limits with 421 4.7.0 and hangs up.
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        let reply = Reply421.tooManyConnections.encoded()
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

import SMTPCore

enum Reply421 {
    static let tooManyConnections = Reply(421, EnhancedStatusCode(4, 7, 0), "Too many connections, try again later")
}
