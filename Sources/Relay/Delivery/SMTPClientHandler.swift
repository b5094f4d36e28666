import NIOCore
import NIOSSL
import NIOTLS
import SMTPCore

/// Thin NIO glue around `SMTPClientStateMachine` for one outbound session
/// carrying one message. Completes `promise` with every recipient's outcome.
final class SMTPClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Timeouts: Sendable {
        // RFC 5321 §4.5.3.2: greeting 5 min, MAIL/RCPT 5, DATA 2, each block 3, after "." 10.
        var greeting: TimeAmount = .minutes(5)
        var command: TimeAmount = .minutes(5)
        var data: TimeAmount = .minutes(2)
        var dataEnd: TimeAmount = .minutes(10)
    }

    private var machine: SMTPClientStateMachine
    private let message: [UInt8]
    private let tlsConfiguration: TLSConfiguration
    private let serverHostname: String
    private let timeouts: Timeouts
    private let promise: EventLoopPromise<[RecipientOutcome]>
    private var parser = ReplyParser()
    private var buffer = ByteBuffer()
    private var timer: Scheduled<Void>?
    private var finished = false

    init(machine: SMTPClientStateMachine, message: [UInt8], tlsConfiguration: TLSConfiguration, serverHostname: String,
         timeouts: Timeouts, promise: EventLoopPromise<[RecipientOutcome]>) {
        self.machine = machine
        self.message = message
        self.tlsConfiguration = tlsConfiguration
        self.serverHostname = serverHostname
        self.timeouts = timeouts
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        armTimer(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        while !finished || machine.phase == .quit {
            let result: ReplyParser.Result
            do {
                result = try parser.parse(&buffer)
            } catch {
                perform(machine.connectionLost("unparsable reply: \(error)"), context: context)
                context.close(promise: nil)
                return
            }
            guard case .reply(let reply) = result else { break }
            if machine.phase == .quit {
                context.close(promise: nil)
                return
            }
            perform(machine.receive(reply), context: context)
        }
        buffer.discardReadBytes()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            perform(machine.tlsEstablished(), context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        if !finished { complete(machine.connectionLost("connection closed")) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !finished {
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
                let context2 = try NIOSSLContext(configuration: tlsConfiguration)
                let handler = try NIOSSLClientHandler(context: context2, serverHostname: serverHostname)
                try context.pipeline.syncOperations.addHandler(handler, position: .first)
            } catch {
                complete(machine.tlsFailed("\(error)"))
                context.close(promise: nil)
            }
        case .sendMessage:
            // Dots re-stuffed, every line ending CRLF: nothing ambiguous on the wire.
            context.writeAndFlush(wrapOutboundOut(DotStuffing.stuff(message)), promise: nil)
        case .transactionFinished(let outcomes):
            finished = true
            promise.succeed(outcomes)
            if machine.phase == .idle, case .send(let quit) = machine.quit() {
                var out = context.channel.allocator.buffer(capacity: 8)
                for command in quit { command.write(to: &out) }
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            } else {
                context.close(promise: nil)
            }
        case .close:
            context.close(promise: nil)
        }
        armTimer(context: context)
    }

    private func complete(_ action: SMTPClientStateMachine.Action) {
        finished = true
        if case .transactionFinished(let outcomes) = action {
            promise.succeed(outcomes)
        } else {
            promise.succeed([])
        }
    }

    private func armTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        let timeout: TimeAmount
        switch machine.phase {
        case .greeting: timeout = timeouts.greeting
        case .dataEnd: timeout = timeouts.dataEnd
        case .data: timeout = timeouts.data
        case .idle, .closed: return
        default: timeout = timeouts.command
        }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            if !finished { complete(machine.connectionLost("timeout in \(machine.phase)")) }
            context.close(promise: nil)
        }
    }
}
