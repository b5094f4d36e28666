import NIOCore
import NIOSSL
import NIOTLS
import SMTPCore

/// What one transaction on a connection produced.
struct TransactionResult: Sendable {
    var outcomes: [RecipientOutcome]
    /// The connection may carry another transaction.
    var reusable: Bool
    /// A reused connection turned out to be closed before the server said
    /// anything about this transaction: nothing happened, try a new one.
    var stale: Bool
    var tlsVersion: String?
}

/// Thin NIO glue around `SMTPClientStateMachine` for one outbound
/// connection. Carries one transaction at a time; between transactions the
/// connection idles (QUIT after `idleTimeout`) until `begin` gives it the next.
final class SMTPClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Timeouts: Sendable {
        // RFC 5321 §4.5.3.2: greeting 5 min, MAIL/RCPT 5, DATA 2, each block 3, after "." 10.
        var greeting: TimeAmount = .minutes(5)
        var command: TimeAmount = .minutes(5)
        var data: TimeAmount = .minutes(2)
        var dataEnd: TimeAmount = .minutes(10)
        /// How long an unused connection stays open for the next message
        /// (Postfix's smtp_connection_cache_time_limit is 2 s).
        var idle: TimeAmount = .seconds(5)
    }

    private var machine: SMTPClientStateMachine
    private var message: [UInt8]
    private let tlsConfiguration: TLSConfiguration
    private let serverHostname: String
    private let timeouts: Timeouts
    private var promise: EventLoopPromise<TransactionResult>?
    private var parser = ReplyParser()
    private var buffer = ByteBuffer()
    /// One scheduled task at a time, moved lazily: each step only sets
    /// `deadline`; the task, when it fires early, re-arms for the new one.
    private var timer: Scheduled<Void>?
    private var timerFiresAt: NIODeadline?
    private var deadline: NIODeadline?
    private var context: ChannelHandlerContext?
    private var tlsVersion: String?
    /// Replies received since the current transaction began on a reused connection.
    private var repliesThisTransaction = 0
    private var reused = false

    init(machine: SMTPClientStateMachine, message: [UInt8], tlsConfiguration: TLSConfiguration, serverHostname: String,
         timeouts: Timeouts, promise: EventLoopPromise<TransactionResult>) {
        self.machine = machine
        self.message = message
        self.tlsConfiguration = tlsConfiguration
        self.serverHostname = serverHostname
        self.timeouts = timeouts
        self.promise = promise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        armTimer(context: context)
        context.fireChannelActive()
    }

    /// Starts the next transaction on an idle connection; completes
    /// `promise` with a stale result when the connection cannot take it.
    func begin(_ envelope: OutboundEnvelope, message: [UInt8], promise: EventLoopPromise<TransactionResult>) {
        guard let context, context.channel.isActive, self.promise == nil, machine.phase == .idle else {
            promise.succeed(TransactionResult(outcomes: [], reusable: false, stale: true))
            return
        }
        self.message = message
        self.promise = promise
        reused = true
        repliesThisTransaction = 0
        perform(machine.begin(envelope), context: context)
    }

    /// Ends an idle connection politely.
    func quit() {
        guard let context, promise == nil else { return }
        perform(machine.quit(), context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        while true {
            let result: ReplyParser.Result
            do {
                result = try parser.parse(&buffer)
            } catch {
                complete(machine.connectionLost("unparsable reply: \(error)"))
                context.close(promise: nil)
                return
            }
            guard case .reply(let reply) = result else { break }
            if machine.phase == .quit || machine.phase == .closed {
                context.close(promise: nil)
                return
            }
            repliesThisTransaction += 1
            perform(machine.receive(reply), context: context)
        }
        buffer.discardReadBytes()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            if let version = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).tlsVersion {
                tlsVersion = "\(version)"
            }
            perform(machine.tlsEstablished(), context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        timerFiresAt = nil
        deadline = nil
        if promise != nil { complete(machine.connectionLost("connection closed")) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if promise != nil {
            if error is NIOSSLError || error is BoringSSLError {
                complete(machine.tlsFailed("\(error)"))
            } else {
                complete(machine.connectionLost("\(error)"))
            }
        }
        context.close(promise: nil)
    }

    private func perform(_ action: SMTPClientStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .send(let commands):
            var out = context.channel.allocator.buffer(capacity: 256)
            for command in commands { command.write(to: &out) }
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        case .startTLS:
            // RFC 3207 §4.2: nothing the server sent in plaintext after its 220 counts.
            buffer.clear()
            parser = ReplyParser()
            do {
                let sslContext = try NIOSSLContext(configuration: tlsConfiguration)
                // SNI takes names only (RFC 6066 §3): a next hop given as an IP address sends none.
                let isAddress = (try? SocketAddress(ipAddress: serverHostname, port: 0)) != nil
                let handler = try NIOSSLClientHandler(context: sslContext, serverHostname: isAddress ? nil : serverHostname)
                try context.pipeline.syncOperations.addHandler(handler, position: .first)
            } catch {
                complete(machine.tlsFailed("\(error)"))
                context.close(promise: nil)
            }
        case .sendMessage:
            // Dots re-stuffed, every line ending CRLF: nothing ambiguous on the wire.
            context.writeAndFlush(wrapOutboundOut(DotStuffing.stuff(message)), promise: nil)
        case .transactionFinished:
            complete(action)
            if machine.phase != .idle { context.close(promise: nil) }
        case .close:
            context.close(promise: nil)
        }
        armTimer(context: context)
    }

    private func complete(_ action: SMTPClientStateMachine.Action) {
        guard let promise else { return }
        self.promise = nil
        // The message bytes are not needed until the next transaction.
        message = []
        guard case .transactionFinished(let outcomes) = action else {
            promise.succeed(TransactionResult(outcomes: [], reusable: false, stale: reused && repliesThisTransaction == 0,
                                              tlsVersion: tlsVersion))
            return
        }
        let lostBeforeAnyReply = reused && repliesThisTransaction == 0 && machine.phase == .closed
        promise.succeed(TransactionResult(outcomes: lostBeforeAnyReply ? [] : outcomes, reusable: machine.phase == .idle,
                                          stale: lostBeforeAnyReply, tlsVersion: tlsVersion))
    }

    private func armTimer(context: ChannelHandlerContext) {
        let timeout: TimeAmount
        switch machine.phase {
        case .greeting: timeout = timeouts.greeting
        case .dataEnd: timeout = timeouts.dataEnd
        case .data: timeout = timeouts.data
        case .idle: timeout = timeouts.idle
        case .closed:
            deadline = nil
            return
        default: timeout = timeouts.command
        }
        let next = context.eventLoop.now + timeout
        deadline = next
        // A later deadline waits for the task to fire; an earlier one (the
        // idle time after a 10-minute wait for "."'s reply) moves it.
        if let firesAt = timerFiresAt, firesAt <= next { return }
        timer?.cancel()
        schedule(at: next, context: context)
    }

    private func schedule(at when: NIODeadline, context: ChannelHandlerContext) {
        timerFiresAt = when
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [self] in
            timer = nil
            timerFiresAt = nil
            guard let deadline else { return }
            if deadline > context.eventLoop.now {
                schedule(at: deadline, context: context)
                return
            }
            self.deadline = nil
            if machine.phase == .idle && promise == nil {
                // Unused for too long: QUIT, and close when it is answered (or not).
                perform(machine.quit(), context: context)
                return
            }
            complete(machine.connectionLost("timeout in \(machine.phase)"))
            context.close(promise: nil)
        }
    }
}
