import Crypto
import Foundation
import Logging
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import Relay
import Store

/// Who is calling: the key used and its account.
struct Caller: Sendable {
    var key: APIKey
    var account: Account
    /// An operator asked for every account (`?account=*`): only the routes that can list across accounts read it.
    var allAccounts = false
}

/// One authenticated request: who, and the body it carried.
struct APICall: Sendable {
    var principal: Caller
    var body: [UInt8]
    var account: Account { principal.account }
}

/// Admission to the API. Credentials are checked from the headers before a
/// byte of the body is read: a bearer token wholly; an AWS Signature V4 as
/// far as it can be without the body (its form, the clock skew, a known
/// access key), then the body under the size limit, whose hash the signature
/// covers, then the signature itself, then (for requests that change
/// something) a replay memory of signatures seen while they are valid. A client whose requests keep failing (missing,
/// wrong or replayed credentials) is refused with 429 and Retry-After before
/// any check, counted by address (IPv6 by /64).
final class APIGate: Sendable {
    let store: any AccountStore & APIKeyStore
    let maximumBodySize: Int
    let throttle: AuthenticationThrottle
    let replays: SignatureReplayMemory
    /// Verified principals by token digest, kept briefly so that a busy
    /// client does not cost a database read per request; a revoked key or
    /// disabled account stops working within `cacheLifetime`.
    private let cache = NIOLockedValueBox<[String: (Caller, secret: String?, expires: Date)]>([:])
    let cacheLifetime: TimeInterval = 4
    /// Signed request bodies being read before their signature could be checked.
    private let unverifiedBodies = NIOLockedValueBox(0)
    static let maximumUnverifiedBodies = 32

    /// `replayJournal`: the file that keeps the replay memory across restarts (nil: memory only).
    init(store: any AccountStore & APIKeyStore, maximumBodySize: Int, throttle: AuthenticationThrottle, replayJournal: String? = nil, logger: Logger? = nil) {
        self.store = store
        self.maximumBodySize = maximumBodySize
        self.throttle = throttle
        let window = SignatureV4.allowedSkew * 2
        self.replays = SignatureReplayMemory(window: window,
                                             journal: replayJournal.map { ReplayJournal(path: $0, window: window, logger: logger) })
    }

    /// `bodyLimit`: a smaller limit than the API's for this route's body (nil: the API's).
    func open(_ request: Request, context: APIRequestContext, scope: APIKeyScope, bodyLimit: Int? = nil) async throws -> APICall {
        let client = context.clientAddress
        if throttle.isBlocked(client) {
            throw APIError(.tooManyRequests, "too_many_failures", "too many failed authentications; try again later",
                           ses: "TooManyRequestsException", retryAfter: max(1, Int(throttle.window.nanoseconds / 1_000_000_000)))
        }
        func refuse(_ reason: String) -> APIError {
            throttle.recordFailure(client)
            context.logger.notice("authentication failed", metadata: ["client": "\(client)", "reason": "\(reason)"])
            return APIError.unauthorized
        }
        if request.uri.path.hasPrefix("/v2/") {
            let unsigned = SignatureV4(request, body: [])
            guard let authorization = unsigned.precheck(), let (caller, secret) = try signingKey(authorization.accessKeyID) else {
                throw refuse("signature")
            }
            // An access key id is no secret: bodies read before their signature is checked are few at a time.
            guard unverifiedBodies.withLockedValue({ count -> Bool in
                guard count < APIGate.maximumUnverifiedBodies else { return false }
                count += 1
                return true
            }) else {
                throw APIError(.tooManyRequests, "busy", "too many signed requests are being read; try again shortly",
                               ses: "TooManyRequestsException", retryAfter: 1)
            }
            let body: [UInt8]
            do {
                body = try await readBody(request, limit: bodyLimit.map { min($0, maximumBodySize) })
                unverifiedBodies.withLockedValue { $0 -= 1 }
            } catch {
                unverifiedBodies.withLockedValue { $0 -= 1 }
                throw error
            }
            var signed = unsigned
            signed.body = body
            guard signed.verify(authorization, secret: secret) else { throw refuse("signature") }
            // Before the replay memory: a request this key may not make is no use of a signature.
            guard caller.key.scope >= scope else { throw APIError.forbidden }
            // A request that changes something is taken once: a captured one cannot be sent again while
            // its date is valid. Reads may repeat (botocore gives two identical calls in one second one signature).
            if request.method != .get && request.method != .head {
                switch replays.use(authorization.signature.lowercased(), key: authorization.accessKeyID, request: context.id) {
                case .first:
                    break
                case .replay:
                    context.logger.notice("replayed signature refused", metadata: ["client": "\(client)"])
                    throw APIError(.forbidden, "replayed_request", "this request's signature was already used; sign each request anew",
                                   ses: "InvalidSignatureException")
                case .busy:
                    throw APIError(.tooManyRequests, "too_many_requests", "too many signed requests from this key; try again shortly",
                                   ses: "TooManyRequestsException", retryAfter: 1)
                }
            }
            return APICall(principal: try actingAs(caller, request), body: body)
        }
        return APICall(principal: try authenticate(request, context: context, scope: scope, throttled: true),
                       body: try await readBody(request))
    }

    /// A bearer-token request's caller, without reading its body (an upload the route streams itself).
    /// `throttled`: the client's failures were already looked at.
    func authenticate(_ request: Request, context: APIRequestContext, scope: APIKeyScope, throttled: Bool = false) throws -> Caller {
        let client = context.clientAddress
        if !throttled, throttle.isBlocked(client) {
            throw APIError(.tooManyRequests, "too_many_failures", "too many failed authentications; try again later",
                           ses: "TooManyRequestsException", retryAfter: max(1, Int(throttle.window.nanoseconds / 1_000_000_000)))
        }
        guard let caller = try verifyBearer(request.headers[.authorization]) else {
            throttle.recordFailure(client)
            context.logger.notice("authentication failed", metadata: ["client": "\(client)", "reason": "bearer"])
            throw APIError.unauthorized
        }
        guard caller.key.scope >= scope else { throw APIError.forbidden }
        return try actingAs(caller, request)
    }

    /// An operator key acts for the account named by `?account=NAME` on the
    /// native API (`*`: every account, where a route can list across them);
    /// any other key naming an account other than its own is refused.
    func actingAs(_ caller: Caller, _ request: Request) throws -> Caller {
        guard request.uri.path.hasPrefix("/v1/"), let name = request.query("account"), name != caller.account.name else { return caller }
        guard caller.key.scope == .operator else {
            throw APIError(.forbidden, "forbidden", "only an operator key may act for another account", ses: "AccessDeniedException")
        }
        var acting = caller
        if name == "*" {
            acting.allAccounts = true
            return acting
        }
        let account: Account?
        do { account = try store.account(named: name) } catch { throw APIError.storeFailure(error) }
        guard let account else { throw APIError.notFound("account \(name)") }
        acting.account = account
        return acting
    }

    func readBody(_ request: Request, limit: Int? = nil) async throws -> [UInt8] {
        let limit = limit ?? maximumBodySize
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "payload_too_large", "request body exceeds \(limit) bytes",
                           ses: "MessageRejected")
        }
    }

    /// The caller of a bearer token, or nil for a wrong one. A store that cannot answer is a 503, not a
    /// wrong key: no client is refused, or throttled, for the database's trouble.
    func verifyBearer(_ header: String?) throws(APIError) -> Caller? {
        guard let header, header.lowercased().hasPrefix("bearer ") else { return nil }
        let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty, token.utf8.count <= 512 else { return nil }
        let digest = SignatureV4.hex(SHA256.hash(data: Data(token.utf8)))
        if let cached = cached(digest) { return cached.0 }
        let found: (APIKey, Account)?
        do {
            found = try store.verifyAPIToken(token).flatMap { key in try store.account(id: key.accountID).map { (key, $0) } }
        } catch {
            throw APIError.storeFailure(error)
        }
        guard let (key, account) = found else { return nil }
        let caller = Caller(key: key, account: account)
        remember(digest, caller, secret: nil)
        return caller
    }

    /// The caller and secret of an access key id, or nil for an unknown one; a 503 when the store cannot answer.
    func signingKey(_ accessKeyID: String) throws(APIError) -> (Caller, String)? {
        guard accessKeyID.utf8.count <= 128 else { return nil }
        let slot = "sigv4:" + accessKeyID
        if let cached = cached(slot), let secret = cached.secret { return (cached.0, secret) }
        let found: (APIKey, String, Account)?
        do {
            found = try store.apiKeySecret(accessKeyID: accessKeyID).flatMap { key, secret in
                try store.account(id: key.accountID).map { (key, secret, $0) }
            }
        } catch {
            throw APIError.storeFailure(error)
        }
        guard let (key, secret, account) = found else { return nil }
        let caller = Caller(key: key, account: account)
        remember(slot, caller, secret: secret)
        return (caller, secret)
    }

    private func cached(_ slot: String) -> (Caller, secret: String?)? {
        let now = Date()
        return cache.withLockedValue { cache in
            guard let entry = cache[slot], entry.expires > now else { return nil }
            return (entry.0, entry.secret)
        }
    }

    private func remember(_ slot: String, _ caller: Caller, secret: String?) {
        let expires = Date().addingTimeInterval(cacheLifetime)
        cache.withLockedValue { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[slot] = (caller, secret, expires)
        }
    }
}

/// Signatures already accepted (lower-cased, as they are compared), each
/// kept for as long as it could be valid (the clock skew allowed either way),
/// so that a captured request cannot be sent again; one that failed is
/// forgotten, since it changed nothing. Bounded: past `capacity` entries the
/// expired ones go; each access key may hold at most `capacityPerKey` live
/// entries, so one key's flood refuses that key (`.busy`), not the others.
/// With a journal it is also written to disk and read back on start.
final class SignatureReplayMemory: Sendable {
    enum Use: Equatable {
        case first
        case replay
        /// This key (or the whole memory) is full of live signatures: try again shortly.
        case busy
    }

    let window: TimeInterval
    let capacity: Int
    let capacityPerKey: Int
    /// Signature → (its key, when it expires); live entries per key; the signature each request in progress was admitted with.
    private let state = NIOLockedValueBox<(seen: [String: (key: String, expires: Date)], perKey: [String: Int],
                                           inProgress: [String: String])>(([:], [:], [:]))

    /// Where the signatures are also written, so that a restart remembers them (nil: memory only).
    let journal: ReplayJournal?

    init(window: TimeInterval, capacity: Int = 200_000, capacityPerKey: Int = 50_000, journal: ReplayJournal? = nil, now: Date = Date()) {
        self.window = window
        self.capacity = capacity
        self.capacityPerKey = capacityPerKey
        self.journal = journal
        if let entries = journal?.load(now: now) {
            state.withLockedValue { state in
                for entry in entries.suffix(capacity) {
                    state.seen[entry.signature] = (entry.key, entry.expires)
                    state.perKey[entry.key, default: 0] += 1
                }
            }
        }
    }

    /// True the first time `signature` is presented within its window; `request` names the request it admits.
    func firstUse(_ signature: String, key: String = "", request: String? = nil, now: Date = Date()) -> Bool {
        use(signature, key: key, request: request, now: now) == .first
    }

    func use(_ signature: String, key: String = "", request: String? = nil, now: Date = Date()) -> Use {
        state.withLockedValue { state in
            if let entry = state.seen[signature], entry.expires > now { return .replay }
            if state.seen.count >= capacity || state.perKey[key, default: 0] >= capacityPerKey {
                state.seen = state.seen.filter { $0.value.expires > now }
                state.perKey = state.seen.values.reduce(into: [:]) { $0[$1.key, default: 0] += 1 }
                guard state.seen.count < capacity, state.perKey[key, default: 0] < capacityPerKey else { return .busy }
            }
            state.seen[signature] = (key, now.addingTimeInterval(window))
            state.perKey[key, default: 0] += 1
            journal?.recordUse(signature, key: key, expires: now.addingTimeInterval(window), now: now) { SignatureReplayMemory.live(state.seen, now) }
            if let request, state.inProgress.count < capacity { state.inProgress[request] = signature }
            return .first
        }
    }

    static func live(_ seen: [String: (key: String, expires: Date)], _ now: Date) -> [ReplayJournal.Entry] {
        seen.compactMap { $0.value.expires > now ? ReplayJournal.Entry(signature: $0.key, key: $0.value.key, expires: $0.value.expires) : nil }
    }

    /// The request admitted by `firstUse` is over. One that failed changed
    /// nothing: its signature may be used again (botocore retries a throttled
    /// call within the same second, signed alike). Only the request that was
    /// admitted can release its signature, so a forged copy that fails does not.
    func finish(request: String, failed: Bool) {
        state.withLockedValue { state in
            guard let signature = state.inProgress.removeValue(forKey: request) else { return }
            if failed, let entry = state.seen.removeValue(forKey: signature) {
                state.perKey[entry.key, default: 1] -= 1
                let now = Date()
                journal?.recordForget(signature, now: now) { SignatureReplayMemory.live(state.seen, now) }
            }
        }
    }
}

extension SignatureV4 {
    /// The parts of `request` a signature covers; the body is added once read.
    init(_ request: Request, body: [UInt8]) {
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            headers[name] = headers[name].map { $0 + "," + field.value } ?? field.value
        }
        // HTTP types keep Host as the request's authority, not as a field.
        if headers["host"] == nil, let authority = request.head.authority { headers["host"] = authority }
        let uri = request.uri.string
        let rawPath = String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "/")
        self.init(method: request.method.rawValue, rawPath: rawPath, rawQuery: request.uri.query ?? "", headers: headers, body: body)
    }
}
