import CoreMetrics
import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import Spool
import Store

/// Sends the delivery log to webhook endpoints: the log is the outbox.
///
/// Each endpoint keeps the id of the last event it has (`WebhookEndpoint.cursor`,
/// in the store) and one worker reads on from there in batches, posts, and
/// moves the cursor only after a 2xx. A crash between the post and the move
/// sends the batch again with the same event ids (at least once). Events an
/// endpoint is not sent (a type it does not want) are passed over by the
/// same move. A failing endpoint is retried with exponential backoff and,
/// after `disableAfter` without a success, disabled; its events wait in the
/// log, not in memory, until it is enabled again (or retention drops them).
/// One request per endpoint is in flight at a time, so each endpoint
/// receives its events in log order.
public final class WebhookDispatcher: Sendable {
    public struct Settings: Sendable {
        /// Events per request at most (SNS: one per request, as SNS sends them).
        public var batchSize: Int
        /// A batch smaller than `batchSize` waits until its oldest event is this old.
        public var batchAge: TimeInterval
        /// How often an idle endpoint looks for new events.
        public var pollInterval: Duration
        public var minimumBackoff: TimeInterval
        public var maximumBackoff: TimeInterval
        /// An endpoint failing for this long without a success is disabled.
        public var disableAfter: TimeInterval
        /// How often an unconfirmed SNS subscription is sent its confirmation again.
        public var confirmationInterval: TimeInterval

        public init(batchSize: Int = 500, batchAge: TimeInterval = 0.5, pollInterval: Duration = .milliseconds(200),
                    minimumBackoff: TimeInterval = 5, maximumBackoff: TimeInterval = 600, disableAfter: TimeInterval = 86400,
                    confirmationInterval: TimeInterval = 300) {
            self.batchSize = batchSize
            self.batchAge = batchAge
            self.pollInterval = pollInterval
            self.minimumBackoff = minimumBackoff
            self.maximumBackoff = maximumBackoff
            self.disableAfter = disableAfter
            self.confirmationInterval = confirmationInterval
        }
    }

    let store: any WebhookStore & ConfigurationSetStore
    let index: QueueIndex
    let client: WebhookClient
    let sns: SNSSigner?
    let settings: Settings
    let logger: Logger
    private let workers = NIOLockedValueBox<[String: Task<Void, Never>]>([:])
    private let sentEvents = Counter(label: "hikyaku_webhook_events_total")
    private let failedRequests = Counter(label: "hikyaku_webhook_failed_requests_total")
    private let disabledEndpoints = Counter(label: "hikyaku_webhook_endpoints_disabled_total")

    public init(store: any WebhookStore & ConfigurationSetStore, index: QueueIndex, client: WebhookClient, sns: SNSSigner?, settings: Settings, logger: Logger) {
        self.store = store
        self.index = index
        self.client = client
        self.sns = sns
        self.settings = settings
        self.logger = logger
    }

    /// Keeps one worker per enabled endpoint until cancelled; endpoints
    /// created, enabled, disabled or deleted are noticed within a second.
    public func run() async {
        while !Task.isCancelled {
            do {
                let live = Dictionary(try store.webhooks().filter(\.enabled).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
                // A worker leaves the table itself when it ends, so a cancelled one still finishing its
                // request keeps its place and no second worker starts for the endpoint meanwhile.
                workers.withLockedValue { workers in
                    for (id, task) in workers where live[id] == nil { task.cancel() }
                    for id in live.keys where workers[id] == nil {
                        workers[id] = Task { [self] in await work(id) }
                    }
                }
            } catch {
                logger.error("webhooks: cannot read the endpoints", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
        let tasks = workers.withLockedValue { workers in
            defer { workers = [:] }
            return Array(workers.values)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    // MARK: One endpoint

    func work(_ id: String) async {
        var failures = 0
        var lastConfirmation: Date?
        while !Task.isCancelled {
            let pause: TimeInterval?
            do {
                guard let endpoint = try store.webhook(id: id, accountID: nil), endpoint.enabled else { break }
                if endpoint.format == .ses && !endpoint.confirmed {
                    if lastConfirmation.map({ Date().timeIntervalSince($0) >= settings.confirmationInterval }) ?? true {
                        let attempt = await confirm(endpoint)
                        try store.recordWebhookAttempt(attempt, webhookID: id)
                        // Sent (whatever the answer): again after the interval; not sent: again in a second.
                        if attempt.status != nil { lastConfirmation = Date() }
                    }
                    pause = 1
                } else {
                    pause = try await step(endpoint, failures: &failures)
                }
            } catch {
                logger.error("webhooks: store failure", metadata: ["webhook": "\(id)", "error": "\(error)"])
                pause = 5
            }
            if let pause {
                try? await Task.sleep(for: pause > 0 ? .milliseconds(Int64(pause * 1000)) : settings.pollInterval)
            }
        }
        _ = workers.withLockedValue { $0.removeValue(forKey: id) }
    }

    /// Sends one batch (a replay's first); returns how long to wait before
    /// the next step (0: the poll interval), nil to go on at once.
    func step(_ endpoint: WebhookEndpoint, failures: inout Int) async throws -> TimeInterval? {
        let replay = try store.webhookReplays(webhookID: endpoint.id).first
        let after = try replay?.after ?? store.webhookPosition(id: endpoint.id) ?? startingPosition(endpoint)
        let scanned = try index.eventsAfter(after, accountID: endpoint.accountID, through: replay?.through ?? .max,
                                            limit: settings.batchSize)
        guard let lastScanned = scanned.last?.id else {
            if let replay { try store.advanceWebhookReplay(id: replay.id, to: replay.through) }
            return 0
        }
        let destinations = endpoint.format == .ses ? try store.eventDestinations(accountID: endpoint.accountID) : [:]
        let wanted = scanned.filter { wants(endpoint, $0, destinations: destinations) }
        if wanted.isEmpty {
            try move(endpoint, replay: replay, to: lastScanned, succeeded: false)
            return nil
        }
        // A partial batch waits for company until its oldest event is old enough.
        if replay == nil, scanned.count < settings.batchSize, let oldest = wanted.first?.event.at,
           Date().timeIntervalSince(oldest) < settings.batchAge {
            return min(settings.batchAge, max(0.05, settings.batchAge - Date().timeIntervalSince(oldest)))
        }
        let (attempt, delivered) = await send(endpoint, wanted, replay: replay != nil)
        try store.recordWebhookAttempt(attempt, webhookID: endpoint.id)
        if let delivered {
            sentEvents.increment(by: wanted.filter { $0.id <= delivered }.count)
            // Everything scanned up to the last event delivered is done (the unwanted ones included).
            let through = delivered == wanted.last?.id ? lastScanned : delivered
            try move(endpoint, replay: replay, to: through, succeeded: true)
        }
        guard !attempt.succeeded else {
            failures = 0
            return nil
        }
        failedRequests.increment()
        failures += 1
        let since = try store.markWebhookFailing(id: endpoint.id)
        if Date().timeIntervalSince(since) >= settings.disableAfter {
            let reason = "disabled after failing since \(WebhookTime.iso(since)); last error: \(attempt.error ?? "HTTP \(attempt.status ?? 0)")"
            try store.disableWebhook(id: endpoint.id, reason: reason)
            disabledEndpoints.increment()
            // The host only: a URL's path or query may carry the receiver's own token.
            logger.error("webhook endpoint disabled", metadata: ["webhook": "\(endpoint.id)", "account": "\(endpoint.accountID)",
                                                                 "host": "\(WebhookURL(endpoint.url)?.host ?? "?")", "reason": "\(reason)"])
            return nil
        }
        let delay = min(settings.maximumBackoff, settings.minimumBackoff * pow(2, Double(min(failures - 1, 30))))
        logger.warning("webhook request failed", metadata: ["webhook": "\(endpoint.id)", "status": "\(attempt.status.map(String.init) ?? "-")",
                                                            "error": "\(attempt.error ?? "")", "retry_in": "\(Int(delay)) s"])
        return delay * Double.random(in: 0.9...1.1)
    }

    /// Where a node of a cluster that has no position yet starts: before its first event since the endpoint was made.
    func startingPosition(_ endpoint: WebhookEndpoint) throws -> Int64 {
        try index.eventIDRange(since: endpoint.createdAt, until: .distantFuture)?.after ?? index.lastEventID()
    }

    func move(_ endpoint: WebhookEndpoint, replay: WebhookReplay?, to position: Int64, succeeded: Bool) throws {
        if let replay {
            try store.advanceWebhookReplay(id: replay.id, to: position)
        } else {
            try store.advanceWebhook(id: endpoint.id, to: position, succeeded: succeeded)
        }
    }

    func wants(_ endpoint: WebhookEndpoint, _ item: OutboxEvent, destinations: [String: [EventDestination]]) -> Bool {
        guard endpoint.wants(item.event.type.rawValue) else { return false }
        switch endpoint.format {
        case .native: return true
        case .sendgrid: return SendGridWebhookFormat.eventName(item.event.type) != nil
        case .ses:
            // SES publishes only for messages sent with a configuration set whose destination names this topic.
            guard let (_, matching) = SESWebhookFormat.eventType(item.event.type), let set = item.metadata?.configurationSet else { return false }
            return destinations[set]?.contains { $0.enabled && $0.topicARN == endpoint.topicARN && $0.matchingEventTypes.contains(matching) }
                ?? false
        }
    }

    // MARK: Requests

    /// Posts events; returns the attempt and the id of the last event the
    /// endpoint acknowledged (nil: none).
    func send(_ endpoint: WebhookEndpoint, _ events: [OutboxEvent], replay: Bool = false, test: Bool = false) async
        -> (WebhookAttempt, delivered: Int64?) {
        let started = ContinuousClock.now
        let first = events.first?.id ?? 0
        let last = events.last?.id ?? 0
        func attempt(_ status: Int?, _ error: String?, count: Int? = nil) -> WebhookAttempt {
            let elapsed = ContinuousClock.now - started
            return WebhookAttempt(at: Date(), events: count ?? events.count, firstEvent: first, lastEvent: last, status: status, error: error,
                                  durationMilliseconds: Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000),
                                  replay: replay, test: test)
        }
        guard let url = WebhookURL(endpoint.url) else { return (attempt(nil, "the URL is not an http(s) URL"), nil) }
        // For SNS, one request per event: what was acknowledged before a failure stays acknowledged.
        var delivered: Int64?
        do {
            guard let key = try store.webhookSigningKey(id: endpoint.id) else { return (attempt(nil, "no signing key"), nil) }
            let now = Date()
            let timestamp = Int64(now.timeIntervalSince1970)
            switch (endpoint.format, key) {
            case (.native, .hmac(let secret)):
                let body = NativeWebhookFormat.body(events, at: now)
                let id = test ? "msg_test_\(timestamp)" : "msg_\(endpoint.id)_\(first)_\(last)"
                let response = try await client.post(url, headers: NativeWebhookFormat.headers(id: id, timestamp: timestamp, body: body, key: secret),
                                                     body: body)
                return outcome(response, attempt, last)
            case (.sendgrid, .ecdsa(let privateKey)):
                let body = SendGridWebhookFormat.body(events)
                let response = try await client.post(url, headers: try SendGridWebhookFormat.headers(timestamp: timestamp, body: body, key: privateKey),
                                                     body: body)
                return outcome(response, attempt, last)
            case (.ses, .sns):
                guard let sns else { return (attempt(nil, "SNS signing is not configured"), nil) }
                for (count, item) in events.enumerated() {
                    // A worker told to stop (its endpoint disabled or deleted) sends nothing more.
                    guard !Task.isCancelled else { return (attempt(nil, "stopped", count: count), delivered) }
                    guard let message = SESWebhookFormat.message(item, accountID: endpoint.accountID) else {
                        delivered = item.id
                        continue
                    }
                    let (headers, body) = try sns.notification(topicARN: endpoint.topicARN,
                                                               messageID: WebhookDispatcher.uuid("\(endpoint.id):\(item.id)"),
                                                               message: message.text, at: now)
                    let response = try await client.post(url, headers: headers, body: Array(body.utf8))
                    guard (200..<300).contains(response.status) else {
                        return (attempt(response.status, WebhookDispatcher.excerpt(response.body), count: count + 1), delivered)
                    }
                    delivered = item.id
                }
                return (attempt(200, nil), delivered)
            default:
                return (attempt(nil, "the signing key does not match the format"), nil)
            }
        } catch let error as WebhookDialError {
            return (attempt(nil, error.description), delivered)
        } catch {
            return (attempt(nil, "\(error)"), delivered)
        }
    }

    func outcome(_ response: WebhookClient.Response, _ attempt: (Int?, String?, Int?) -> WebhookAttempt, _ last: Int64)
        -> (WebhookAttempt, delivered: Int64?) {
        if (200..<300).contains(response.status) { return (attempt(response.status, nil, nil), last) }
        // A redirect is not followed: the URL configured is the only place events go.
        let error = (300..<400).contains(response.status) ? "redirect not followed" : WebhookDispatcher.excerpt(response.body)
        return (attempt(response.status, error, nil), nil)
    }

    /// The SubscriptionConfirmation of an SNS-format endpoint.
    func confirm(_ endpoint: WebhookEndpoint) async -> WebhookAttempt {
        let started = Date()
        func attempt(_ status: Int?, _ error: String?) -> WebhookAttempt {
            WebhookAttempt(at: Date(), events: 0, firstEvent: 0, lastEvent: 0, status: status, error: error,
                           durationMilliseconds: Int(Date().timeIntervalSince(started) * 1000))
        }
        guard let sns else { return attempt(nil, "SNS signing is not configured") }
        guard let url = WebhookURL(endpoint.url) else { return attempt(nil, "the URL is not an http(s) URL") }
        do {
            guard let token = try store.webhookConfirmToken(id: endpoint.id) else { return attempt(nil, "already confirmed") }
            let (headers, body) = try sns.subscriptionConfirmation(topicARN: endpoint.topicARN,
                                                                   messageID: WebhookDispatcher.uuid("\(endpoint.id):confirm:\(Date().timeIntervalSince1970)"),
                                                                   token: token, at: Date())
            let response = try await client.post(url, headers: headers, body: Array(body.utf8))
            return attempt(response.status, (200..<300).contains(response.status) ? "confirmation sent; waiting for SubscribeURL to be visited"
                                                                                  : WebhookDispatcher.excerpt(response.body))
        } catch {
            return attempt(nil, "\(error)")
        }
    }

    /// `POST /v1/webhooks/{id}/test`: one sample event, now, outside the outbox.
    public func sendTest(_ endpoint: WebhookEndpoint, sender: String) async -> WebhookAttempt {
        var event = DeliveryEvent(at: Date(), messageID: Intake.newMessageID(), recipient: "test@example.com", type: .delivered, attempt: 1,
                                  replyCode: 250, enhancedCode: "2.0.0", replyText: "OK (a test event from Hikyaku)")
        event.id = 0
        let sample = OutboxEvent(event: event, id: 0, accountID: endpoint.accountID, sender: sender,
                                 metadata: MessageMetadata(tags: ["test"], customArguments: ["test": "true"]))
        if endpoint.format == .ses && !endpoint.confirmed {
            return WebhookAttempt(at: Date(), events: 0, firstEvent: 0, lastEvent: 0, status: nil,
                                  error: "the SNS subscription is not confirmed yet", durationMilliseconds: 0, test: true)
        }
        let (attempt, _) = await send(endpoint, [sample], test: true)
        try? store.recordWebhookAttempt(attempt, webhookID: endpoint.id)
        return attempt
    }

    static func excerpt(_ body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(200), as: UTF8.self).filter { !$0.isNewline }
        return text.isEmpty ? "no body" : text
    }

    /// A UUID (v4 layout) made from `name`, so that a retried notification keeps its MessageId.
    static func uuid(_ name: String) -> String {
        var bytes = Array(SHA256.hash(data: Data(name.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }
}
