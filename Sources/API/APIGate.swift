import Crypto
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import Relay
import Store

/// Who is calling: the key used and its account.
struct Principal: Sendable {
    var key: APIKey
    var account: Account
}

/// One authenticated request: who, and the body it carried.
struct APICall: Sendable {
    var principal: Principal
    var body: [UInt8]
    var account: Account { principal.account }
}

/// Admission to the API: reads the body under the size limit, checks the
/// credentials (a bearer token, or an AWS Signature V4 for the SES paths)
/// and the key's scope. Wrong credentials are 401; a client that keeps
/// presenting them is then refused with 429 and Retry-After before any check.
final class APIGate: Sendable {
    let store: SQLiteStore
    let maximumBodySize: Int
    let throttle: AuthenticationThrottle
    /// Verified principals by token digest, kept briefly so that a busy
    /// client does not cost a database read per request; a revoked key or
    /// disabled account stops working within `cacheLifetime`.
    private let cache = NIOLockedValueBox<[String: (Principal, secret: String?, expires: Date)]>([:])
    let cacheLifetime: TimeInterval = 10

    init(store: SQLiteStore, maximumBodySize: Int, throttle: AuthenticationThrottle) {
        self.store = store
        self.maximumBodySize = maximumBodySize
        self.throttle = throttle
    }

    func open(_ request: Request, context: APIRequestContext, scope: APIKeyScope) async throws -> APICall {
        let client = context.clientAddress
        if throttle.isBlocked(client) {
            throw APIError(.tooManyRequests, "too_many_failures", "too many failed authentications; try again later",
                           ses: "TooManyRequestsException", retryAfter: Int(throttle.window.nanoseconds / 1_000_000_000))
        }
        let body = try await readBody(request)
        let principal: Principal?
        if request.uri.path.hasPrefix("/v2/") {
            principal = verifySignature(request, body: body)
        } else {
            principal = verifyBearer(request.headers[.authorization])
        }
        guard let principal else {
            // Only wrong credentials count towards the throttle; none at all is not a guess.
            if request.headers[.authorization] != nil { throttle.recordFailure(client) }
            context.logger.notice("authentication failed", metadata: ["client": "\(client)"])
            throw APIError.unauthorized
        }
        guard principal.key.scope >= scope else { throw APIError.forbidden }
        return APICall(principal: principal, body: body)
    }

    func readBody(_ request: Request) async throws -> [UInt8] {
        do {
            let buffer = try await request.body.collect(upTo: maximumBodySize)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "payload_too_large", "request body exceeds \(maximumBodySize) bytes",
                           ses: "MessageRejected")
        }
    }

    func verifyBearer(_ header: String?) -> Principal? {
        guard let header, header.lowercased().hasPrefix("bearer ") else { return nil }
        let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        let digest = SignatureV4.hex(SHA256.hash(data: Data(token.utf8)))
        if let cached = cached(digest) { return cached.0 }
        guard let key = try? store.verifyAPIToken(token), let account = try? store.account(id: key.accountID) else { return nil }
        let principal = Principal(key: key, account: account)
        remember(digest, principal, secret: nil)
        return principal
    }

    func verifySignature(_ request: Request, body: [UInt8]) -> Principal? {
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            headers[name] = headers[name].map { $0 + "," + field.value } ?? field.value
        }
        // HTTP types keep Host as the request's authority, not as a field.
        if headers["host"] == nil, let authority = request.head.authority { headers["host"] = authority }
        let uri = request.uri.string
        let rawPath = String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "/")
        let signature = SignatureV4(method: request.method.rawValue, rawPath: rawPath, rawQuery: request.uri.query ?? "",
                                    headers: headers, body: body)
        var found: Principal?
        let verified = signature.verify { accessKeyID in
            let slot = "sigv4:" + accessKeyID
            if let cached = cached(slot), let secret = cached.secret {
                found = cached.0
                return secret
            }
            guard let (key, secret) = try? store.apiKeySecret(accessKeyID: accessKeyID),
                  let account = try? store.account(id: key.accountID) else { return nil }
            found = Principal(key: key, account: account)
            remember(slot, found!, secret: secret)
            return secret
        }
        return verified == nil ? nil : found
    }

    private func cached(_ slot: String) -> (Principal, secret: String?)? {
        let now = Date()
        return cache.withLockedValue { cache in
            guard let entry = cache[slot], entry.expires > now else { return nil }
            return (entry.0, entry.secret)
        }
    }

    private func remember(_ slot: String, _ principal: Principal, secret: String?) {
        let expires = Date().addingTimeInterval(cacheLifetime)
        cache.withLockedValue { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[slot] = (principal, secret, expires)
        }
    }
}
