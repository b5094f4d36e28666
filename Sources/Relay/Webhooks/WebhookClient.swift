import DNS
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A webhook URL as the dialer accepts it: http or https, a host name or an
/// IP literal, no credentials in it.
public struct WebhookURL: Sendable, Equatable, CustomStringConvertible {
    public var secure: Bool
    public var host: String
    public var port: Int
    /// Path and query, as sent in the request line.
    public var target: String

    public init?(_ text: String) {
        guard text.utf8.count <= 2048, !text.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }),
              let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", components.user == nil, components.password == nil,
              let host = components.host, !host.isEmpty else { return nil }
        secure = scheme == "https"
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let port = components.port ?? (secure ? 443 : 80)
        guard (1...65535).contains(port) else { return nil }
        self.port = port
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        target = path + (components.percentEncodedQuery.map { "?" + $0 } ?? "")
    }

    public var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(secure ? "https" : "http")://\(host):\(port)\(target)"
    }

    /// The host is an IPv4 or IPv6 literal (no lookup, no SNI).
    var literalAddress: SocketAddress? { try? SocketAddress(ipAddress: host, port: port) }
}

/// Why a webhook request got no HTTP answer.
public enum WebhookDialError: Error, Equatable, CustomStringConvertible {
    /// The URL names an address the policy forbids (loopback, private, metadata…): SSRF.
    /// The addresses are not named: a tenant could map the operator's network through its resolver.
    case forbiddenAddress
    /// The request may have been sent, but no complete response came.
    case noResponse(String)
    case plainHTTPNotAllowed
    case resolution(String)
    case connection(String)
    case timeout
    case invalidResponse(String)

    public var description: String {
        switch self {
        case .forbiddenAddress: return "refused: the host is not a public address (webhooks.allowNonPublicAddresses is off)"
        case .noResponse(let detail): return "no response: \(detail)"
        case .plainHTTPNotAllowed: return "refused: plain http is not allowed (webhooks.allowPlainHttp is off)"
        case .resolution(let detail): return "DNS: \(detail)"
        case .connection(let detail): return "connection: \(detail)"
        case .timeout: return "timed out"
        case .invalidResponse(let detail): return "invalid response: \(detail)"
        }
    }
}

/// POSTs to customers' URLs without becoming a way into the operator's
/// network (SSRF): the host is resolved once, every address is checked
/// against `PublicAddress`, and the connection goes to an address that was
/// checked, so a second lookup (DNS rebinding) cannot change where it goes.
/// No redirect is followed (a 3xx is just a failed attempt), the response
/// read is capped, and HTTPS verifies the certificate against the host name.
public final class WebhookClient: Sendable {
    public struct Policy: Sendable {
        public var allowNonPublicAddresses: Bool
        public var allowPlainHTTP: Bool
        public var timeout: TimeAmount
        /// Response bytes read at most (head and body); the rest is not read.
        public var maximumResponseBytes: Int
        /// Trust roots for HTTPS; nil: the system's.
        public var trustRoots: NIOSSLTrustRoots?

        public init(allowNonPublicAddresses: Bool = false, allowPlainHTTP: Bool = false, timeout: TimeAmount = .seconds(10),
                    maximumResponseBytes: Int = 64 * 1024, trustRoots: NIOSSLTrustRoots? = nil) {
            self.allowNonPublicAddresses = allowNonPublicAddresses
            self.allowPlainHTTP = allowPlainHTTP
            self.timeout = timeout
            self.maximumResponseBytes = maximumResponseBytes
            self.trustRoots = trustRoots
        }
    }

    public struct Response: Sendable {
        public var status: Int
        /// At most `maximumResponseBytes` of the body.
        public var body: [UInt8]
    }

    let policy: Policy
    let resolver: any DNS.Resolver
    let group: any EventLoopGroup
    let sslContext: NIOSSLContext

    public init(policy: Policy, resolver: any DNS.Resolver, group: any EventLoopGroup) throws {
        self.policy = policy
        self.resolver = resolver
        self.group = group
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let roots = policy.trustRoots { tls.trustRoots = roots }
        sslContext = try NIOSSLContext(configuration: tls)
    }

    /// The addresses a request to `url` may go to, checked; throws when none may.
    public func addresses(for url: WebhookURL) async throws(WebhookDialError) -> [SocketAddress] {
        if !url.secure && !policy.allowPlainHTTP { throw .plainHTTPNotAllowed }
        var candidates: [SocketAddress] = []
        if let literal = url.literalAddress {
            candidates = [literal]
        } else {
            guard let name = try? DomainName(url.host) else { throw .resolution("\(url.host) is not a host name") }
            var failure: String?
            for type in [RecordType.a, .aaaa] {
                do {
                    for record in try await resolver.lookup(name, type).records {
                        switch record.data {
                        case .a(let bytes), .aaaa(let bytes):
                            if let address = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: url.port) {
                                candidates.append(address)
                            }
                        default: continue
                        }
                    }
                } catch {
                    failure = "\(url.host): \(error)"
                }
            }
            if candidates.isEmpty { throw .resolution(failure ?? "\(url.host) has no address") }
        }
        // At most four addresses are tried, so one request is bounded by four connect timeouts.
        candidates = Array(candidates.prefix(4))
        guard !policy.allowNonPublicAddresses else { return candidates }
        let usable = candidates.filter(PublicAddress.isPublic)
        guard !usable.isEmpty else { throw .forbiddenAddress }
        return usable
    }

    /// One POST; a response of any status is returned, only no response throws.
    public func post(_ url: WebhookURL, headers: [(String, String)], body: [UInt8]) async throws(WebhookDialError) -> Response {
        let addresses = try await addresses(for: url)
        var lastError = WebhookDialError.connection("no address")
        for address in addresses {
            do {
                return try await post(url, to: address, headers: headers, body: body)
            } catch let error as WebhookDialError {
                lastError = error
                // Only a failure to connect tries the next address; anything later might repeat the request.
                guard case .connection = error else { throw error }
            } catch {
                lastError = .connection("\(error)")
            }
        }
        throw lastError
    }

    func post(_ url: WebhookURL, to address: SocketAddress, headers: [(String, String)], body: [UInt8]) async throws -> Response {
        let promise = group.next().makePromise(of: Response.self)
        let collector = ResponseCollector(promise: promise, limit: policy.maximumResponseBytes)
        let sslContext = url.secure ? self.sslContext : nil
        let serverName = url.literalAddress == nil ? url.host : nil
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(policy.timeout)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(to: address).get()
        } catch {
            promise.fail(WebhookDialError.connection("\(address.ipAddress ?? "?"):\(url.port): \(error)"))
            throw WebhookDialError.connection("\(address.ipAddress ?? "?"):\(url.port): \(error)")
        }
        let timeout = channel.eventLoop.scheduleTask(in: policy.timeout) {
            promise.fail(WebhookDialError.timeout)
            channel.close(promise: nil)
        }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: url.target)
        let hostField = url.host.contains(":") ? "[\(url.host)]" : url.host
        head.headers.add(name: "Host", value: (url.port == (url.secure ? 443 : 80)) ? hostField : "\(hostField):\(url.port)")
        head.headers.add(name: "User-Agent", value: "Hikyaku-Webhooks/1")
        head.headers.add(name: "Content-Length", value: "\(body.count)")
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        defer {
            timeout.cancel()
            channel.close(promise: nil)
        }
        return try await promise.futureResult.get()
    }
}

/// Reads one response: the status and up to `limit` body bytes, then stops.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart

    let promise: EventLoopPromise<WebhookClient.Response>
    let limit: Int
    var status: Int?
    var body: [UInt8] = []
    var done = false

    init(promise: EventLoopPromise<WebhookClient.Response>, limit: Int) {
        self.promise = promise
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(var buffer):
            let take = min(buffer.readableBytes, limit - body.count)
            if take > 0, let bytes = buffer.readBytes(length: take) { body += bytes }
            if body.count >= limit { finish(context) }
        case .end:
            finish(context)
        }
    }

    func finish(_ context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        if let status {
            promise.succeed(WebhookClient.Response(status: status, body: body))
        } else {
            promise.fail(WebhookDialError.invalidResponse("no status line"))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            if let status {
                promise.succeed(WebhookClient.Response(status: status, body: body))
            } else {
                promise.fail(WebhookDialError.noResponse("closed before a response"))
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            promise.fail(error is HTTPParserError ? WebhookDialError.invalidResponse("\(error)") : WebhookDialError.noResponse("\(error)"))
        }
        context.close(promise: nil)
    }
}
