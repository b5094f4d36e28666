import Logging
import NIOCore
import SMTPCore

/// First in the pipeline of a connection from a load balancer: reads the PROXY
/// protocol header (`ProxyHeader`), then has the session started for the
/// client it names and passes on whatever followed the header.
///
/// Nothing is answered before the header: a header that is malformed, too
/// long, or not complete within `timeout` closes the connection, as Postfix
/// does with `smtpd_upstream_proxy_protocol`. The buffer never holds more than
/// the longest header allowed.
final class ProxyHeaderHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Adds the session's handlers (after this one) for the header read.
    typealias Start = (_ channel: any Channel, _ header: ProxyHeader) throws -> Void

    private let timeout: TimeAmount
    private let logger: Logger
    private let start: Start
    private var buffer = ByteBuffer()
    private var deadline: Scheduled<Void>?
    private enum State { case reading, passing, refused }
    private var state = State.reading

    init(timeout: TimeAmount, logger: Logger, start: @escaping Start) {
        self.timeout = timeout
        self.logger = logger
        self.start = start
    }

    func channelActive(context: ChannelHandlerContext) {
        // Not passed on: the session becomes active once the header has named its client.
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { [logger] in
            logger.warning("PROXY header not received in time; connection closed",
                           metadata: ["peer": "\(channel.remoteAddress?.ipAddress ?? "unknown")"])
            channel.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .passing: return context.fireChannelRead(data)
        case .refused: return
        case .reading: break
        }
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        switch ProxyHeader.parse(buffer.readableBytesView) {
        case .incomplete:
            // `parse` refuses anything longer than a header may be, so the buffer stays bounded.
            break
        case .invalid(let reason):
            refuse(context, reason)
        case .header(let header, let length):
            state = .passing
            deadline?.cancel()
            buffer.moveReaderIndex(forwardBy: length)
            do {
                try start(context.channel, header)
            } catch {
                return refuse(context, "the session could not start: \(error)")
            }
            context.fireChannelActive()
            if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
            buffer = ByteBuffer()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Draining before the header came: no session was started, so there is none to finish.
        if state == .reading, event is DrainRequest {
            state = .refused
            deadline?.cancel()
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func refuse(_ context: ChannelHandlerContext, _ reason: String) {
        state = .refused
        deadline?.cancel()
        logger.warning("PROXY header refused; connection closed",
                       metadata: ["peer": "\(context.channel.remoteAddress?.ipAddress ?? "unknown")", "reason": "\(reason)"])
        context.close(promise: nil)
    }
}
