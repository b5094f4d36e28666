import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTPTypes
import Relay

/// Per-connection limits of the API port, which strangers reach too (the
/// one-click unsubscribe endpoint): a cap on open connections, overall and
/// per client (IPv6 by /64), and a deadline for each request to arrive whole,
/// head and body, so that a client trickling bytes cannot hold a connection
/// and its memory. Idle connections between requests are Hummingbird's
/// `idleTimeout`. Sits after the HTTP decoder; event-loop confined.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let limiter: ConnectionLimiter
    let requestTimeout: TimeAmount
    private var client: String?
    private var deadline: Scheduled<Void>?

    init(limiter: ConnectionLimiter, requestTimeout: TimeAmount) {
        self.limiter = limiter
        self.requestTimeout = requestTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context: context)
        context.fireChannelActive()
    }

    private func admit(context: ChannelHandlerContext) {
        guard client == nil else { return }
        let address = ClientNetwork.key(context.channel.remoteAddress?.ipAddress ?? "unknown")
        guard limiter.acquire(address) else {
            // No HTTP has been read yet: closing is the answer a connection cap can give.
            context.close(promise: nil)
            return
        }
        client = address
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    private func release() {
        deadline?.cancel()
        deadline = nil
        if let client {
            limiter.release(client)
            self.client = nil
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            deadline?.cancel()
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: requestTimeout) {
                // The request did not arrive in time: nothing sensible can be answered mid-request.
                context.close(promise: nil)
            }
        case .end:
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }
}
