import NIOCore
import NIOPosix

/// Sends one query to one server and returns the raw reply.
public protocol DNSTransport: Sendable {
    func exchange(_ query: [UInt8], id: UInt16, server: SocketAddress, overTCP: Bool, timeout: TimeAmount) async throws(DNSError) -> [UInt8]
}

/// UDP (RFC 1035 §4.2.1) from a fresh ephemeral port per query, and TCP
/// (§4.2.2, two-octet length prefix) after a truncated UDP reply. A UDP
/// reply counts only if it comes from the server queried and carries the
/// query's id; anything else is ignored, which with random ids and ports
/// makes spoofed answers hard to slip in.
public struct NIODNSTransport: DNSTransport {
    let group: any EventLoopGroup

    public init(group: any EventLoopGroup) {
        self.group = group
    }

    public func exchange(_ query: [UInt8], id: UInt16, server: SocketAddress, overTCP: Bool, timeout: TimeAmount) async throws(DNSError) -> [UInt8] {
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: [UInt8].self)
        let timer = eventLoop.scheduleTask(in: timeout) { promise.fail(DNSError.timeout(server.description)) }
        do {
            let channel: any Channel
            if overTCP {
                channel = try await ClientBootstrap(group: eventLoop)
                    .connectTimeout(timeout)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(StreamReplyHandler(promise: promise))
                        }
                    }
                    .connect(to: server).get()
                var buffer = channel.allocator.buffer(capacity: query.count + 2)
                buffer.writeInteger(UInt16(query.count))
                buffer.writeBytes(query)
                channel.writeAndFlush(buffer, promise: nil)
            } else {
                let any = server.protocol == .inet6 ? "::" : "0.0.0.0"
                channel = try await DatagramBootstrap(group: eventLoop)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(
                                DatagramReplyHandler(promise: promise, server: server, id: id))
                        }
                    }
                    .bind(host: any, port: 0).get()
                let envelope = AddressedEnvelope(remoteAddress: server, data: channel.allocator.buffer(bytes: query))
                channel.writeAndFlush(envelope, promise: nil)
            }
            defer { channel.close(promise: nil) }
            let reply = try await promise.futureResult.get()
            timer.cancel()
            return reply
        } catch let error as DNSError {
            timer.cancel()
            promise.fail(error)
            throw error
        } catch {
            timer.cancel()
            promise.fail(error)
            // Connection refused, unreachable: as good as no answer.
            throw DNSError.timeout("\(server): \(error)")
        }
    }
}

final class DatagramReplyHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let promise: EventLoopPromise<[UInt8]>
    let server: SocketAddress
    let id: UInt16

    init(promise: EventLoopPromise<[UInt8]>, server: SocketAddress, id: UInt16) {
        self.promise = promise
        self.server = server
        self.id = id
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == server, envelope.data.getInteger(at: envelope.data.readerIndex, as: UInt16.self) == id
        else { return }
        promise.succeed(Array(envelope.data.readableBytesView))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and the like: let the timeout or the next server decide.
    }
}

final class StreamReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let promise: EventLoopPromise<[UInt8]>
    var received = ByteBuffer()

    init(promise: EventLoopPromise<[UInt8]>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        received.writeBuffer(&chunk)
        guard let length = received.getInteger(at: received.readerIndex, as: UInt16.self),
              received.readableBytes >= Int(length) + 2 else { return }
        received.moveReaderIndex(forwardBy: 2)
        promise.succeed(received.readBytes(length: Int(length)) ?? [])
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(DNSError.malformedResponse("TCP connection closed before a full reply"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(DNSError.malformedResponse("TCP: \(error)"))
        context.close(promise: nil)
    }
}
