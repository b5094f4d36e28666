import NIOConcurrencyHelpers
import NIOCore

/// The connection an attempt used, as the delivery log records it.
public struct SessionDetails: Sendable, Equatable {
    public var mxHost: String
    public var remoteIP: String
    public var sourceIP: String?
    public var tlsVersion: String?

    public init(mxHost: String, remoteIP: String, sourceIP: String? = nil, tlsVersion: String? = nil) {
        self.mxHost = mxHost
        self.remoteIP = remoteIP
        self.sourceIP = sourceIP
        self.tlsVersion = tlsVersion
    }
}

/// One open SMTP client connection, which may carry several transactions
/// one after the other (a site's pool hands it from message to message).
final class OutboundConnection: Sendable {
    let channel: any Channel
    private let handler: NIOLoopBound<SMTPClientHandler>
    let mxHost: String
    private let carried = NIOLockedValueBox(0)

    init(channel: any Channel, handler: SMTPClientHandler, mxHost: String) {
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.mxHost = mxHost
    }

    /// Transactions this connection has carried.
    var transactions: Int { carried.withLockedValue { $0 } }

    func details(tlsVersion: String?) -> SessionDetails {
        SessionDetails(mxHost: mxHost, remoteIP: channel.remoteAddress?.ipAddress ?? "",
                       sourceIP: channel.localAddress?.ipAddress, tlsVersion: tlsVersion)
    }

    /// The first transaction, started by the handler after the greeting.
    func firstTransaction(_ result: EventLoopFuture<TransactionResult>) async -> TransactionResult {
        carried.withLockedValue { $0 += 1 }
        return (try? await result.get()) ?? TransactionResult(outcomes: [], reusable: false, stale: false)
    }

    /// A further transaction on this (idle) connection.
    func transact(_ envelope: OutboundEnvelope, message: [UInt8], onAccepted: AcceptanceHook? = nil) async -> TransactionResult {
        carried.withLockedValue { $0 += 1 }
        let promise = channel.eventLoop.makePromise(of: TransactionResult.self)
        OutboundConnection.report(promise.futureResult, to: onAccepted)
        let handler = self.handler
        channel.eventLoop.execute {
            handler.value.begin(envelope, message: message, promise: promise)
        }
        return (try? await promise.futureResult.get()) ?? TransactionResult(outcomes: [], reusable: false, stale: true)
    }

    /// Tells `hook` which recipients were accepted, on the event loop as the
    /// result arrives: registered before anyone awaits the result, so it runs first.
    static func report(_ result: EventLoopFuture<TransactionResult>, to hook: AcceptanceHook?) {
        guard let hook else { return }
        result.whenSuccess { result in
            let accepted = result.outcomes.filter(\.delivered).map(\.recipient)
            if !accepted.isEmpty { hook(accepted) }
        }
    }

    /// QUIT (when idle) and close.
    func quit() {
        let handler = self.handler
        let channel = self.channel
        channel.eventLoop.execute {
            handler.value.quit()
            // A server that does not answer QUIT is not waited for long.
            channel.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
        }
    }
}
