import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore

/// Delivers one message to the recipients of one domain: routes it, then
/// tries the MX hosts and their addresses in order until one session
/// produces outcomes. Every recipient gets exactly one outcome.
public struct SMTPCourier: Sendable {
    public struct Options: Sendable {
        public var heloName: String
        public var tlsPolicy: TLSPolicy
        public var connectTimeout: TimeAmount
        /// Source address to bind to (an egress IP), if any.
        public var sourceAddress: String?

        public init(heloName: String, tlsPolicy: TLSPolicy = .opportunistic, connectTimeout: TimeAmount = .seconds(30),
                    sourceAddress: String? = nil) {
            self.heloName = heloName
            self.tlsPolicy = tlsPolicy
            self.connectTimeout = connectTimeout
            self.sourceAddress = sourceAddress
        }
    }

    let group: any EventLoopGroup
    let router: MXRouter
    let options: Options
    let logger: Logger

    public init(group: any EventLoopGroup, router: MXRouter, options: Options, logger: Logger) {
        self.group = group
        self.router = router
        self.options = options
        self.logger = logger
    }

    /// `envelope.recipients` must all be on `domain`.
    public func deliver(_ envelope: OutboundEnvelope, message: [UInt8], domain: String) async -> [RecipientOutcome] {
        let decision = await router.route(domain)
        let hosts: [MXHost]
        switch decision {
        case .permanentFailure(let code, let text):
            return envelope.recipients.map { RecipientOutcome(recipient: $0, reply: Reply(550, code, text)) }
        case .transientFailure(let code, let text):
            return envelope.recipients.map { RecipientOutcome(recipient: $0, reply: Reply(451, code, text)) }
        case .deliver(let found):
            hosts = found
        }
        var last: [RecipientOutcome] = envelope.recipients.map {
            RecipientOutcome(recipient: $0, reply: Reply(451, EnhancedStatusCode(4, 4, 1), "no mail exchanger answered"))
        }
        for host in hosts {
            for address in host.addresses {
                let target = (try? SocketAddress(ipAddress: address.ipAddress ?? "", port: host.port)) ?? address
                guard let outcomes = await session(envelope, message: message, host: host.name, address: target) else { continue }
                // Try the next host only when this one never really took part
                // (a 4xx greeting or a lost connection before any reply).
                if outcomes.allSatisfy({ $0.reply.code == 421 || ($0.reply.isTransientFailure && $0.reply.enhancedCode?.subject == 4) }) {
                    last = outcomes
                    continue
                }
                return outcomes
            }
        }
        return last
    }

    /// One session; nil when the connection could not be made.
    func session(_ envelope: OutboundEnvelope, message: [UInt8], host: String, address: SocketAddress) async -> [RecipientOutcome]? {
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: [RecipientOutcome].self)
        var tls = TLSConfiguration.makeClientConfiguration()
        if options.tlsPolicy != .requiredVerified {
            // Opportunistic TLS protects against passive listeners only; most
            // MX certificates would not verify (RFC 7435).
            tls.certificateVerification = .none
        }
        let machine = SMTPClientStateMachine(heloName: options.heloName, tlsPolicy: options.tlsPolicy, envelope: envelope)
        var bootstrap = ClientBootstrap(group: eventLoop).connectTimeout(options.connectTimeout)
        if let source = options.sourceAddress, let bind = try? SocketAddress(ipAddress: source, port: 0) {
            bootstrap = bootstrap.bind(to: bind)
        }
        do {
            // The handler closes the channel when the session is over.
            _ = try await bootstrap
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SMTPClientHandler(
                            machine: machine, message: message, tlsConfiguration: tls, serverHostname: host,
                            timeouts: .init(), promise: promise))
                    }
                }
                .connect(to: address).get()
        } catch {
            logger.notice("connection failed", metadata: ["mx": "\(host)", "address": "\(address)", "error": "\(error)"])
            promise.succeed([])
            return nil
        }
        let outcomes = (try? await promise.futureResult.get()) ?? []
        return outcomes.isEmpty ? nil : outcomes
    }
}
