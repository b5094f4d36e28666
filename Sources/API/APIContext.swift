import Hummingbird
import NIOCore

/// The request context of the API port: Hummingbird's core storage (with
/// the request id in the logger's metadata) plus the client's address, which
/// the authentication throttle is keyed by.
public struct APIRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// Bodies are collected by `APIGate` under the configured limit, not here.
    public var maxUploadSize: Int { Int.max }

    var clientAddress: String { remoteAddress?.ipAddress ?? "unknown" }
}
