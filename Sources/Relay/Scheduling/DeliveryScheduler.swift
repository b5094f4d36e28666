import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers
import SMTPCore
import Spool
import Store

/// When to try again and when to give up (defaults after Postfix:
/// `minimal_backoff_time` 300 s, `maximal_backoff_time` 4000 s,
/// `maximal_queue_lifetime` 5 days).
public struct RetrySchedule: Sendable {
    public var minimumBackoff: TimeInterval
    public var maximumBackoff: TimeInterval
    public var lifetime: TimeInterval
    /// Up to this fraction of the backoff is added at random, so deferred
    /// mail does not come back in lockstep.
    public var jitter: Double

    /// After this long in the queue a deferred recipient's sender gets one
    /// "delayed" DSN (Postfix's delay_warning_time); nil: never.
    public var delayWarning: TimeInterval?

    public init(minimumBackoff: TimeInterval = 300, maximumBackoff: TimeInterval = 4000, lifetime: TimeInterval = 5 * 86400,
                jitter: Double = 0.2, delayWarning: TimeInterval? = nil) {
        self.delayWarning = delayWarning
        self.minimumBackoff = minimumBackoff
        self.maximumBackoff = maximumBackoff
        self.lifetime = lifetime
        self.jitter = jitter
    }

    /// The delay after the `attempts`-th failed attempt: doubling from the
    /// minimum, capped at the maximum, plus jitter.
    public func delay(afterAttempts attempts: Int, random: Double) -> TimeInterval {
        let exponent = Double(max(0, min(attempts - 1, 30)))
        let base = min(maximumBackoff, minimumBackoff * pow(2, exponent))
        return base * (1 + jitter * random)
    }
}

/// Delivers what is due: finds messages with recipients whose next attempt
/// has come (held messages excepted), delivers each recipient domain through
/// the courier, and records every outcome: delivered, bounced (5xx),
/// deferred with the next attempt time (4xx), or expired once the queue
/// lifetime has passed. The queue index is the schedule; nothing due is kept
/// in memory beyond the messages in flight, so a million queued messages
/// cost no memory here.
public actor DeliveryScheduler {
    /// Delivers to one domain's recipients: envelope, message bytes, domain,
    /// the sending account (for its egress pool), and what to call the moment
    /// the remote server accepts recipients (before the report comes back).
    public typealias Deliver = @Sendable (OutboundEnvelope, [UInt8], String, Int64?, @escaping AcceptanceHook) async -> DeliveryReport
    /// Hands a generated message (a DSN) to the intake; returns once it is durable.
    public typealias Enqueue = @Sendable (Submission) async throws -> Void
    /// Why an account does not send to an address (its suppression reason),
    /// or nil: the account, the address, and whether the mail is marketing.
    /// (account, address, marketing, unsubscribe group): the reason the address does not get the message, or nil.
    public typealias Suppressed = @Sendable (Int64, String, Bool, Int64?) -> String?

    let index: QueueIndex
    let layout: SpoolLayout
    let deliver: Deliver
    let schedule: RetrySchedule
    let maximumConcurrentMessages: Int
    let now: @Sendable () -> Date
    let logger: Logger
    let reportingMTA: String
    let enqueue: Enqueue?
    let classifier: BounceClassifier
    let journal: AttemptJournal
    /// Remote acceptances written as they arrive, settled once the journal has them.
    let acceptances: AcceptanceLog?
    /// Checked before every attempt, so that an address suppressed while its
    /// mail waited is not sent to either.
    public var suppressed: Suppressed?
    /// VERP: the envelope sender each recipient's copy leaves with; nil: the original sender.
    public var returnPath: ReturnPath?
    /// Puts an address on its account's suppression list (a hard bounce for a bad address).
    public var suppress: (@Sendable (Int64, Suppression) -> Void)?
    /// Soft failures (a full mailbox, an expiry) suppress when they repeat this often.
    public var softLimit: AutomaticSuppression.SoftLimit?
    private var inFlight: Set<MessageID> = []
    /// Due messages from the last look at the index, started in order as
    /// room frees up; at most `readBatch` ids, so memory stays bounded
    /// however much is queued.
    private var ready: [QueuedMessageDetails] = []
    private var readyCursor = 0
    private var readAt = ContinuousClock.now
    /// New mail was indexed or the poll interval passed: look again.
    private var lookAgain = true
    private var stopping = false
    private var sleeper: CheckedContinuation<Void, Never>?
    private var wakeRequested = false
    private var timerPending = false
    static let readBatch = 256

    public init(index: QueueIndex, layout: SpoolLayout, schedule: RetrySchedule, maximumConcurrentMessages: Int = 50,
                now: @escaping @Sendable () -> Date = { Date() }, logger: Logger, reportingMTA: String = "localhost",
                enqueue: Enqueue? = nil, classifier: BounceClassifier, acceptances: AcceptanceLog? = nil, deliver: @escaping Deliver) {
        self.acceptances = acceptances
        self.classifier = classifier
        self.reportingMTA = reportingMTA
        self.enqueue = enqueue
        self.index = index
        self.layout = layout
        self.schedule = schedule
        self.maximumConcurrentMessages = maximumConcurrentMessages
        self.now = now
        self.logger = logger
        self.deliver = deliver
        self.journal = AttemptJournal(index: index)
    }

    /// Runs until cancelled or `stop()`; deliveries in flight finish. Looks
    /// at the index when woken (a message was indexed), when its list of
    /// due messages runs out, and at least every `pollInterval` (deferred
    /// mail coming due).
    public func run(pollInterval: Duration = .seconds(1)) async {
        await withDiscardingTaskGroup { group in
            while !stopping && !Task.isCancelled {
                var room = maximumConcurrentMessages - inFlight.count
                // Rows older than a second are read again, so that a hold or a
                // cancellation from the command line is seen before delivery.
                if room > 0 && (lookAgain || readyCursor >= ready.count || ContinuousClock.now - readAt > .seconds(1)) {
                    lookAgain = false
                    readAt = ContinuousClock.now
                    // The rows come with the ids: one read for a batch, none per message.
                    let due = (try? index.dueMessageDetails(now: now(), limit: Self.readBatch, excluding: inFlight)) ?? []
                    ready = due
                    readyCursor = 0
                }
                var started = 0
                while room > 0 && readyCursor < ready.count {
                    let details = ready[readyCursor]
                    readyCursor += 1
                    guard inFlight.insert(details.id).inserted else { continue }
                    room -= 1
                    started += 1
                    group.addTask {
                        await self.attempt(details)
                        await self.finished(details.id)
                    }
                }
                // Sleep only when there was nothing new to start.
                if started == 0 { await pause(pollInterval) }
            }
        }
    }

    private func finished(_ id: MessageID) {
        inFlight.remove(id)
        resume()
    }

    public func setSuppressed(_ check: @escaping Suppressed) {
        suppressed = check
    }

    public func setReturnPath(_ returnPath: ReturnPath?) {
        self.returnPath = returnPath
    }

    public func setSuppress(_ suppress: @escaping @Sendable (Int64, Suppression) -> Void,
                            softLimit: AutomaticSuppression.SoftLimit? = nil) {
        self.suppress = suppress
        self.softLimit = softLimit
    }

    public func stop() {
        stopping = true
        resume()
    }

    /// Look at the queue now: new mail was indexed, or mail was re-armed.
    public func wake() {
        lookAgain = true
        resume()
    }

    private func resume() {
        if let sleeper {
            self.sleeper = nil
            sleeper.resume()
        } else {
            wakeRequested = true
        }
    }

    private func pause(_ interval: Duration) async {
        if wakeRequested {
            wakeRequested = false
            return
        }
        if !timerPending {
            // One timer at a time, however often the loop pauses.
            timerPending = true
            Task { [weak self] in
                try? await Task.sleep(for: interval)
                await self?.timerFired()
            }
        }
        await withCheckedContinuation { sleeper = $0 }
        wakeRequested = false
    }

    private func timerFired() {
        timerPending = false
        wake()
    }

    /// One attempt for every recipient of a message not yet in a final
    /// state; returns what happened to each. Also used by `hikyaku queue deliver`.
    @discardableResult
    public func attempt(_ id: MessageID) async -> [(outcome: RecipientOutcome, state: RecipientState)] {
        do {
            guard let details = try index.details(of: id) else { return [] }
            return await attempt(details)
        } catch {
            logger.error("delivery attempt failed", metadata: ["id": "\(id)", "error": "\(error)"])
            return []
        }
    }

    /// The same, for a message whose index row is at hand.
    @discardableResult
    func attempt(_ details: QueuedMessageDetails) async -> [(outcome: RecipientOutcome, state: RecipientState)] {
        var results: [(outcome: RecipientOutcome, state: RecipientState)] = []
        let id = details.id
        do {
            guard !details.held else { return [] }
            let time = now()
            var due = details.recipients.filter { $0.state == RecipientState.queued.rawValue || $0.state == RecipientState.deferred.rawValue }
            guard !due.isEmpty else { return [] }
            if let suppressed, let account = details.accountID {
                let marketing = details.metadata?.marketing ?? false
                let group = details.metadata?.unsubscribeGroup
                var dropped: [AttemptRecord] = []
                due.removeAll { recipient in
                    guard let reason = suppressed(account, recipient.address, marketing, group) else { return false }
                    let text = "not sent: the address is on the account's suppression list (\(reason))"
                    var record = AttemptRecord(message: id, recipient: recipient.address, state: .suppressed, reply: text,
                                               event: DeliveryEvent(at: time, messageID: id, recipient: recipient.address,
                                                                    type: .suppressed, replyText: text, category: "suppressed"))
                    record.countsAsAttempt = false
                    dropped.append(record)
                    return true
                }
                if !dropped.isEmpty {
                    try await journal.record(dropped)
                    if logger.logLevel <= .info {
                        for record in dropped { logger.info("suppressed", metadata: ["id": "\(id)", "to": "<\(record.recipient)>"]) }
                    }
                }
                guard !due.isEmpty else { return [] }
            }
            let bytes = try Spool.contents(of: details, layout: layout)
            let byDomain = Dictionary(grouping: due.map(\.address)) { address in
                String(address[address.index(after: address.lastIndex(of: "@") ?? address.startIndex)...]).lowercased()
            }
            let attempts = Dictionary(uniqueKeysWithValues: due.map { ($0.address, $0.attempts) })
            let alreadyWarned = Set(due.filter(\.delayNotified).map(\.address))
            var records: [(AttemptRecord, () -> Logger.Metadata, Classification?)] = []
            // Written by the courier the moment a remote server accepts, settled once recorded below.
            let accepted = NIOLockedValueBox<[AcceptanceLog.Token]>([])
            let eightBit = bytes.contains { $0 >= 0x80 }
            // With VERP each recipient's copy has its own envelope sender, so each is its own transaction.
            let positions = Dictionary(details.recipients.enumerated().map { ($1.address, $0) }) { first, _ in first }
            var batches: [(domain: String, recipients: [String], sender: String)] = []
            let bounceDomain = details.sender.isEmpty ? nil : returnPath?.domain(forSender: details.sender)
            for (domain, recipients) in byDomain.sorted(by: { $0.key < $1.key }) {
                if let returnPath, let bounceDomain {
                    for recipient in recipients {
                        batches.append((domain, [recipient],
                                        returnPath.address(message: id, position: positions[recipient] ?? 0, domain: bounceDomain)))
                    }
                } else {
                    batches.append((domain, recipients, details.sender))
                }
            }
            for (domain, recipients, sender) in batches {
                let envelope = OutboundEnvelope(sender: sender, recipients: recipients, size: bytes.count,
                                                eightBit: eightBit, requiresSMTPUTF8: details.smtpUTF8)
                let report = await deliver(envelope, bytes, domain, details.accountID) { [acceptances] recipients in
                    if let token = acceptances?.record(message: id, recipients: recipients) { accepted.withLockedValue { $0.append(token) } }
                }
                if let until = report.postponedUntil {
                    try index.postpone(id, recipients: recipients, until: until)
                    DeliveryMetrics.counter("hikyaku_delivery_postponed_total", [("site", DeliverySite.metricsLabel(report.site))]).increment()
                    continue
                }
                DeliveryMetrics.attemptDuration.recordNanoseconds(
                    report.duration.components.seconds * 1_000_000_000 + report.duration.components.attoseconds / 1_000_000_000)
                for outcome in report.outcomes {
                    var (record, metadata, classification) = record(outcome, report: report, domain: domain, message: id,
                                                    receivedAt: details.receivedAt,
                                                    attempt: (attempts[outcome.recipient] ?? 0) + 1, at: time)
                    if record.state == .deferred, let warning = schedule.delayWarning, enqueue != nil, !details.sender.isEmpty,
                       time.timeIntervalSince(details.receivedAt) >= warning, !alreadyWarned.contains(outcome.recipient) {
                        record.delayNotified = true
                    }
                    records.append((record, metadata, classification))
                    results.append((outcome, record.state))
                }
            }
            // Concurrent deliveries share the transaction that records them.
            try await journal.record(records.map(\.0))
            acceptances?.settle(accepted.withLockedValue { $0 })
            DeliveryMetrics.recorded(records.map(\.0), receivedAt: details.receivedAt)
            if let suppress, let account = details.accountID {
                for (record, _, classification) in records where record.state == .bounced || record.state == .expired {
                    let evidence = "\(record.state.rawValue) message \(id): \(record.reply)" + (classification.map {
                        " (rule \($0.rule)" + (record.event?.mxHost.map { ", \($0)" } ?? "") + ")"
                    } ?? "")
                    if let suppression = AutomaticSuppression.suppression(
                        category: record.event?.category, hard: record.event?.hard,
                        saysTheAddressIsBad: classification?.isEvidenceAgainstTheAddress ?? false,
                        recipient: record.recipient, evidence: evidence)
                        ?? AutomaticSuppression.suppression(afterFailureOf: record.recipient, category: record.event?.category,
                                                             account: account, limit: softLimit, index: index, now: time,
                                                             evidence: evidence) {
                        suppress(account, suppression)
                    }
                }
            }
            if logger.logLevel <= .info {
                for (record, metadata, _) in records { logger.info("\(record.state.rawValue)", metadata: metadata()) }
            }
            let warned = Set(records.filter { $0.0.delayNotified }.map(\.0.recipient))
            try await notifySender(of: results, delayed: warned, details: details, original: bytes, at: time)
        } catch {
            logger.error("delivery attempt failed", metadata: ["id": "\(id)", "error": "\(error)"])
            // A message that cannot be read or recorded would otherwise be due
            // again at once, in a loop; look at it again after a minute.
            let pending = details.recipients.filter {
                $0.state == RecipientState.queued.rawValue || $0.state == RecipientState.deferred.rawValue
            }.map(\.address)
            try? index.postpone(id, recipients: pending, until: now().addingTimeInterval(60))
        }
        return results
    }

    /// RFC 3464: one DSN to the envelope sender for the recipients that
    /// bounced or expired in this attempt, and one warning for those first
    /// found delayed past `delayWarning` — never for the null sender, so
    /// bounces cannot bounce. DSNs go through the same queue.
    func notifySender(of results: [(outcome: RecipientOutcome, state: RecipientState)], delayed: Set<String>,
                      details: QueuedMessageDetails, original: [UInt8], at time: Date) async throws {
        guard let enqueue, !details.sender.isEmpty else { return }
        let failed = results.filter { $0.state == .bounced || $0.state == .expired }
        let failures = failed.map { result -> DeliveryStatusNotification.ReportedRecipient in
            var reply = result.outcome.reply
            if result.state == .expired {
                // RFC 3463 X.4.7: delivery time expired.
                reply = Reply(550, EnhancedStatusCode(5, 4, 7), "delivery time expired; last reply: \(reply)")
            }
            return .init(address: result.outcome.recipient, reply: reply)
        }
        let warnings = results.filter { $0.state == .deferred && delayed.contains($0.outcome.recipient) }.map {
            DeliveryStatusNotification.ReportedRecipient(address: $0.outcome.recipient, action: "delayed", reply: $0.outcome.reply,
                                                         willRetryUntil: details.receivedAt.addingTimeInterval(schedule.lifetime))
        }
        for recipients in [failures, warnings] where !recipients.isEmpty {
            let report = DeliveryStatusNotification(reportingMTA: reportingMTA, originalMessageID: details.id.rawValue,
                                                    arrivalDate: details.receivedAt, recipients: recipients)
            let id = Intake.newMessageID()
            // From the relay itself, to the original sender: RFC 3464 §2 (the null reverse-path, so it cannot bounce).
            let dsn = Submission(id: id, door: .dsn, principal: .relay(forAccount: details.accountID), sender: "", recipients: [details.sender], smtpUTF8: false,
                                 content: report.render(to: details.sender, originalMessage: original, now: time, dsnID: id.rawValue),
                                 origin: .local)
            try await enqueue(dsn)
            logger.info("dsn queued", metadata: ["id": "\(details.id)", "dsn": "\(id)", "to": "<\(details.sender)>",
                                                 "action": "\(recipients[0].action)"])
        }
    }

    /// What to record for one outcome: the new state, and the event with
    /// the connection and the classification of a failure.
    func record(_ outcome: RecipientOutcome, report: DeliveryReport, domain: String, message id: MessageID, receivedAt: Date,
                attempt: Int, at time: Date) -> (AttemptRecord, () -> Logger.Metadata, Classification?) {
        let reply = outcome.reply
        var event = DeliveryEvent(
            at: Date(), messageID: id, recipient: outcome.recipient, type: .delivered, attempt: attempt, replyCode: reply.code,
            enhancedCode: reply.enhancedCode?.description, replyText: reply.text, site: report.site,
            mxHost: report.session?.mxHost, remoteIP: report.session?.remoteIP, sourceIP: report.session?.sourceIP,
            tlsVersion: report.session?.tlsVersion,
            durationMilliseconds: Int(report.duration.components.seconds * 1000 + report.duration.components.attoseconds / 1_000_000_000_000_000))
        var classification: Classification?
        if !outcome.delivered {
            let classified = classifier.classify(observation(outcome, domain: domain, mxHost: report.session?.mxHost))
            classification = classified
            event.category = classified.category.rawValue
            event.hard = reply.isPermanentFailure
        }
        let state: RecipientState
        var next: Date?
        var stored = reply.description
        if outcome.delivered {
            state = .delivered
        } else if reply.isPermanentFailure {
            state = .bounced
        } else if time.timeIntervalSince(receivedAt) >= schedule.lifetime {
            // RFC 5321 §4.5.4.1: give up after the queue lifetime.
            state = .expired
            stored = "expired after \(Int(schedule.lifetime)) s in the queue; last reply: \(reply)"
            event.category = BounceCategory.expired.rawValue
            event.hard = true
        } else {
            state = .deferred
            next = time.addingTimeInterval(schedule.delay(afterAttempts: attempt, random: Double.random(in: 0...1)))
        }
        event.type = DeliveryEvent.Kind(rawValue: state.rawValue) ?? .deferred
        let record = AttemptRecord(message: id, recipient: outcome.recipient, state: state, reply: stored, nextAttempt: next, event: event)
        // Built only when the log level wants it.
        let metadata = { [event] () -> Logger.Metadata in
            var metadata: Logger.Metadata = ["id": "\(id)", "to": "<\(outcome.recipient)>", "reply": "\(reply)"]
            if let category = event.category { metadata["category"] = "\(category)" }
            if let next = record.nextAttempt { metadata["next"] = "\(next)" }
            return metadata
        }
        return (record, metadata, classification)
    }

    func observation(_ outcome: RecipientOutcome, domain: String, mxHost: String?) -> FailureObservation {
        let reply = outcome.reply
        let kind: FailureObservation.Kind
        var command: String?
        switch outcome.source {
        case .remote(let verb):
            kind = .reply(code: reply.code, enhanced: reply.enhancedCode, text: reply.text)
            command = verb
        case .local:
            kind = .reply(code: reply.code, enhanced: reply.enhancedCode, text: reply.text)
        case .dns(let transient):
            kind = .dns(transient: transient, text: reply.text)
        case .connection:
            kind = .connection(reply.text)
        case .tls:
            kind = .tls(reply.text)
        }
        return FailureObservation(kind: kind, remoteHost: mxHost, recipientDomain: domain, command: command)
    }
}

/// What the scheduler counts, through swift-metrics (Prometheus at `/metrics`).
/// Handles are made once per label set: making one asks the factory, which
/// locks and hashes the labels.
enum DeliveryMetrics {
    private static let counters = NIOLockedValueBox<[String: Counter]>([:])
    static let latency = Timer(label: "hikyaku_delivery_latency_seconds")
    static let attemptDuration = Timer(label: "hikyaku_delivery_attempt_duration_seconds")

    static func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLockedValue { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: label, dimensions: dimensions)
            counters[key] = counter
            return counter
        }
    }

    static func recorded(_ records: [AttemptRecord], receivedAt: Date) {
        for record in records {
            counter("hikyaku_delivery_attempts_total",
                    [("outcome", record.state.rawValue), ("category", record.event?.category ?? "none")]).increment()
            if record.state == .delivered {
                // From the 250 at intake to the remote 250.
                latency.recordNanoseconds(Int64(min(max(0, Date().timeIntervalSince(receivedAt)), 1e9) * 1e9))
            }
        }
    }
}
