import Foundation
import Logging
import MIME
import NIOConcurrencyHelpers
import Relay
import Spool
import Store

/// Sends campaigns: starts each run when it is due (writing its recipients
/// down), then hands the intake one batch at a time, each contact's message
/// rendered from its fields, and decides A/B tests when their wait is over.
///
/// No contact gets a run twice: a batch's claim (a seed and a time, which
/// each row's message id is made from) is written down before its messages
/// go to the intake, and a row is done once the intake has stored it. After a
/// crash, a claimed row's id is made again and looked up in the spool's index:
/// found, it is done; not found, it is sent with that same id.
public final class CampaignRunner: Sendable {
    let services: APIServices
    let clock: @Sendable () -> Date
    let logger: Logger
    /// Contacts handed to the intake at once (one intake batch: one quota check, one group commit).
    let batchSize: Int
    /// Batches of one campaign with the intake at once.
    let window = 3
    /// Batches per turn of a campaign (about two seconds of sending), so that another campaign gets its turn.
    /// A pause or a cancel is seen at the next claim; each turn ends with the batches in flight, so it is
    /// long enough that the pipeline's filling and draining stay a small part of it.
    let batchesPerTurn = 64
    /// Campaigns waiting out a refusal (the rate, the daily quota, a full disk) until then.
    private let waiting = NIOLockedValueBox<[Int64: Date]>([:])
    /// Campaigns whose mail this node's spool may hold: a cancel made on another node of a cluster
    /// withdraws it here too (`withdrawCancelled`). Read from the index at start, added to with each batch.
    private let queuedHere = NIOLockedValueBox<Set<Int64>?>(nil)
    private let sweptAt = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
    /// Where the runner's store work waits for the database's one writer (see `blocking`).
    private let storeQueue = DispatchQueue(label: "hikyaku.campaign-store")

    init(services: APIServices, clock: @escaping @Sendable () -> Date, batchSize: Int = 500, logger: Logger) {
        self.services = services
        self.clock = clock
        self.batchSize = batchSize
        self.logger = logger
    }

    /// Works until cancelled: at once while there is work, else once a second or when a campaign is
    /// given work (`APIServices.campaignBell`), so that "send now" starts now.
    public func run() async {
        while !Task.isCancelled {
            if await tick() {
                try? await Task.sleep(for: .milliseconds(1))
            } else {
                await services.campaignBell.wait(upTo: .seconds(1))
            }
        }
    }

    /// One pass over the campaigns with work; true when there may be more at once.
    @discardableResult
    public func tick() async -> Bool {
        await withdrawCancelled()
        let now = clock()
        let campaigns: [Campaign]
        do { campaigns = try services.store.activeCampaigns(now: now) } catch {
            logger.error("campaigns not read", metadata: ["error": "\(error)"])
            return false
        }
        var busy = false
        for campaign in campaigns {
            if let until = waiting.withLockedValue({ $0[campaign.id] }), until > now { continue }
            do {
                switch campaign.state {
                case .scheduled:
                    try await start(campaign, now: now)
                    busy = true
                case .sending:
                    busy = try await send(campaign, now: now) || busy
                case .testing:
                    try decide(campaign)
                default:
                    break
                }
            } catch {
                logger.error("campaign step failed", metadata: ["campaign": "\(campaign.id)", "error": "\(error)"])
                try? services.store.noteCampaign(campaign.id, "\(error)")
                wait(campaign.id, until: now.addingTimeInterval(10))
            }
        }
        return busy
    }

    /// Every 5 s: the campaigns this node has queued mail of, asked for their state. One cancelled (on
    /// whichever node) has its mail withdrawn from this node's queue; one finished or gone is forgotten.
    func withdrawCancelled() async {
        let due = sweptAt.withLockedValue { last -> Bool in
            guard last.map({ ContinuousClock.now - $0 >= .seconds(5) }) ?? true else { return false }
            last = ContinuousClock.now
            return true
        }
        guard due else { return }
        if queuedHere.withLockedValue({ $0 }) == nil {
            guard let found = try? services.index.queuedCampaigns() else { return }
            queuedHere.withLockedValue { $0 = $0 ?? found }
        }
        for id in queuedHere.withLockedValue({ $0 ?? [] }) {
            let state: Campaign.State?
            do { state = try services.store.campaignState(id) } catch { continue }
            switch state {
            case .cancelled:
                // Forgotten only once withdrawn: a store that fails here leaves it for the next sweep.
                guard let withdrawn = try? await services.withdrawCampaignMail(id) else { continue }
                if withdrawn > 0 { logger.info("campaign cancelled: its mail withdrawn here", metadata: ["campaign": "\(id)", "messages": "\(withdrawn)"]) }
                queuedHere.withLockedValue { _ = $0?.remove(id) }
            case .sent, nil:
                // Finished (a sent campaign cannot be cancelled), or deleted.
                queuedHere.withLockedValue { _ = $0?.remove(id) }
            default:
                continue
            }
        }
    }

    private func wait(_ id: Int64, until date: Date) {
        waiting.withLockedValue { $0[id] = date }
    }

    // MARK: Starting a run

    /// Writes down the run's recipients: the audience now, without suppressed or unsubscribed contacts.
    func start(_ campaign: Campaign, now: Date) async throws {
        let definition = campaign.definition
        let occurrence: String
        if definition.dailyAt != nil {
            occurrence = CalendarDate(now, in: try services.store.timeZone(accountID: campaign.accountID)).text
        } else {
            occurrence = "once"
        }
        var expression = definition.segment
        if let id = definition.segmentID {
            guard let saved = try services.store.segment(id: id, accountID: campaign.accountID) else {
                return try pause(campaign, "segment \(id) no longer exists")
            }
            expression = saved.expression
        }
        var audience: SegmentQuery?
        if let expression {
            do {
                audience = try services.store.segmentQuery(try SegmentExpression(json: expression), accountID: campaign.accountID, now: now)
            } catch let error as SegmentError {
                return try pause(campaign, "the segment is no longer valid: \(error)")
            }
        }
        let query = audience
        let progress = try await blocking {
            try self.services.store.startCampaignRun(campaign, occurrence: occurrence, audience: query, now: now)
        }
        logger.info("campaign run started", metadata: ["campaign": "\(campaign.id)", "occurrence": "\(occurrence)",
                                                       "recipients": "\(progress.recipients)"])
    }

    private func pause(_ campaign: Campaign, _ reason: String) throws {
        _ = try services.store.changeCampaign(id: campaign.id, accountID: campaign.accountID, action: .pause)
        try services.store.noteCampaign(campaign.id, reason)
        logger.notice("campaign paused", metadata: ["campaign": "\(campaign.id)", "reason": "\(reason)"])
    }

    // MARK: Sending

    /// A turn of sending: up to `batchesPerTurn` batches, `window` of them in flight at once (the next
    /// claimed and built while those before it are with the intake and its spool). False when the run
    /// had nothing left to send (and was finished) or must wait.
    func send(_ campaign: Campaign, now: Date) async throws -> Bool {
        guard let account = try services.store.account(id: campaign.accountID), !account.disabled else {
            try pause(campaign, "the account is disabled")
            return false
        }
        // A batch is admitted whole by the account's sending rate: never more than a second of it (of this
        // node's share of it, in a cluster), one at a time.
        var limit = batchSize
        var window = self.window
        if account.quota.maxSendRate > 0 {
            let rate = services.meter.nodeShare(ofRate: account.quota.maxSendRate)
            limit = min(batchSize, max(1, Int(exactly: rate.rounded(.down)) ?? batchSize))
            window = 1
        }
        return try await withThrowingTaskGroup(of: BatchOutcome.self) { group in
            var inFlight = 0
            var more = true
            // Rows whose messages the spool holds, marked `queued` with the next claim (one transaction, not two).
            var queued: [CampaignRowMark] = []
            func record(_ outcome: BatchOutcome) {
                queued += outcome.queued
                if !outcome.proceed { more = false }
            }
            var failure: (any Error)?
            do {
                for turn in 0..<batchesPerTurn {
                    // Rows claimed earlier are settled only while no batch of this run is with the intake.
                    let recovering = inFlight == 0, size = limit, marking = queued
                    let claim = CampaignRunner.newClaim()
                    let rows = try await blocking {
                        try self.services.store.claimCampaignBatch(campaign, limit: size, recovering: recovering, queued: marking,
                                                                   messageID: CampaignRunner.claimedMessageID, claim: claim)
                    }
                    // Marked by the claim (a claim that failed marked nothing: they stay for the end of the turn).
                    queued = Array(queued.dropFirst(marking.count))
                    // No longer sending (paused, cancelled): the batches in flight finish, no more are claimed.
                    guard let rows else {
                        more = false
                        break
                    }
                    if rows.isEmpty {
                        if turn == 0 {
                            try services.store.finishCampaignRun(campaign, now: now)
                            more = false
                        }
                        break
                    }
                    group.addTask { try await self.send(rows, campaign: campaign, account: account, now: now) }
                    inFlight += 1
                    if inFlight >= window, let outcome = try await group.next() {
                        inFlight -= 1
                        record(outcome)
                        if !more { break }
                    }
                }
            } catch {
                failure = error
            }
            // Every batch in flight finishes, and what the spool holds is marked even when something failed
            // (else those rows would wait, `submitting`, for the next turn to settle them).
            while let result = await group.nextResult() {
                switch result {
                case .success(let outcome): record(outcome)
                case .failure(let error): failure = failure ?? error
                }
            }
            let marking = queued
            try await blocking {
                try self.services.store.markCampaignRows(campaign, marking, state: .queued, messageID: CampaignRunner.claimedMessageID)
            }
            if let failure { throw failure }
            return more
        }
    }

    /// What became of a batch: the rows the spool now holds, and whether the run may go on (false: it must
    /// wait, or was paused).
    struct BatchOutcome: Sendable {
        var queued: [CampaignRowMark] = []
        var proceed = true
    }

    /// One claimed batch to the intake.
    private func send(_ rows: [CampaignRecipient], campaign: Campaign, account: Account, now: Date) async throws -> BatchOutcome {
        let batch = try await settle(rows, campaign: campaign)
        // Each variant's content compiled once; then the messages rendered and built on every core.
        var renderers: [Int: TemplateRenderer] = [:]
        for variant in Set(batch.map(\.row.variant)) {
            do { renderers[variant] = try renderer(variant, campaign: campaign, account: account) } catch {
                try pause(campaign, "variant \(Campaign.variantName(variant)) cannot be sent: \(error.message)")
                return BatchOutcome(proceed: false)
            }
        }
        let compiled = renderers
        let chunkSize = max(64, batch.count / max(1, ProcessInfo.processInfo.activeProcessorCount) + 1)
        let built = await withTaskGroup(of: [(contact: Int64, address: String, result: Result<OutgoingMessage, APIError>)].self) { group in
            for start in stride(from: 0, to: batch.count, by: chunkSize) {
                let chunk = Array(batch[start..<min(batch.count, start + chunkSize)])
                group.addTask {
                    chunk.map { row, id in
                        let result: Result<OutgoingMessage, APIError>
                        do throws(APIError) {
                            result = .success(try self.build(row, id: id, campaign: campaign, renderer: compiled[row.variant]))
                        } catch {
                            result = .failure(error)
                        }
                        return (row.contactID, row.address, result)
                    }
                }
            }
            var all: [(contact: Int64, address: String, result: Result<OutgoingMessage, APIError>)] = []
            for await part in group { all += part }
            return all
        }
        var messages: [(contact: Int64, message: OutgoingMessage)] = []
        var unbuildable: [Int64] = []
        for item in built {
            switch item.result {
            case .success(let message): messages.append((item.contact, message))
            case .failure(let error):
                unbuildable.append(item.contact)
                try? services.store.noteCampaign(campaign.id, "not sent to \(item.address): \(error.message)")
            }
        }
        let skipped = unbuildable
        try await blocking { try self.services.store.markCampaignRows(campaign, skipped.map { CampaignRowMark($0) }, state: .skipped) }
        guard !messages.isEmpty else { return BatchOutcome() }
        let submitter = services.submitter
        let submissions = messages.map {
            submitter.submission($0.message, door: .campaign, account: account, client: "campaign \(campaign.id)")
        }
        switch await submitter.intake.submit(submissions) {
        case .success:
            queuedHere.withLockedValue { _ = $0?.insert(campaign.id) }
            // From here on the batch is stored: nothing may throw its rows away before they are marked.
            if campaign.note != nil { try? services.store.noteCampaign(campaign.id, nil) }
            // Cancelled while this batch was with the intake: its mail is withdrawn from the queue too, once
            // the index has it (the spool acknowledges first).
            let state: Campaign.State?
            do { state = try services.store.campaignState(campaign.id) } catch {
                logger.error("campaign state not read after a batch", metadata: ["campaign": "\(campaign.id)", "error": "\(error)"])
                state = nil
            }
            if state == .cancelled {
                _ = await services.spool.indexedBarrier(timeout: .seconds(5))
                for item in messages { _ = try? services.index.cancel(item.message.id, reason: "campaign cancelled") }
            }
            // A row whose id was made from its claim says so: a claim's rows are then marked by one statement.
            let claims = Dictionary(batch.map { ($0.row.contactID, $0.row.claim) }, uniquingKeysWith: { first, _ in first })
            return BatchOutcome(queued: messages.map {
                CampaignRowMark($0.contact, messageID: $0.message.id.rawValue, claim: claims[$0.contact] ?? nil)
            })
        case .failure(let refusal):
            return BatchOutcome(proceed: try await refused(refusal, campaign: campaign, messages: messages, submissions: submissions, now: now))
        }
    }

    /// A refused batch: waits out a rate or quota, keeps what a failing spool stored, and sends
    /// the rest one by one when one message was at fault (each refused one is skipped and noted).
    private func refused(_ refusal: IntakeRefusal, campaign: Campaign, messages: [(contact: Int64, message: OutgoingMessage)],
                         submissions: [Submission], now: Date) async throws -> Bool {
        switch refusal {
        case .rateExceeded(let retryAfter):
            wait(campaign.id, until: now.addingTimeInterval(max(0.05, min(retryAfter, 60))))
            return false
        case .dailyQuotaExceeded:
            try services.store.noteCampaign(campaign.id, "the account's 24-hour quota is reached; sending waits for it")
            wait(campaign.id, until: now.addingTimeInterval(60))
            return false
        case .insufficientStorage(let accepted), .spoolUnavailable(let accepted):
            let ids = Set(accepted)
            try services.store.markCampaignRows(campaign, messages.filter { ids.contains($0.message.id) }.map {
                CampaignRowMark($0.contact, messageID: $0.message.id.rawValue)
            }, state: .queued)
            try services.store.noteCampaign(campaign.id, "the spool is unavailable; sending waits")
            wait(campaign.id, until: now.addingTimeInterval(10))
            return false
        case .unknownAccount:
            try pause(campaign, "the account is disabled")
            return false
        case .sender(let reason):
            try pause(campaign, "the sender is not allowed: \(reason.message)")
            return false
        case .malformedHeader, .messageTooLarge, .mailLoop, .sandboxRecipient:
            for (item, submission) in zip(messages, submissions) {
                switch await services.submitter.intake.submit(submission) {
                case .success:
                    try services.store.markCampaignRows(campaign, [CampaignRowMark(item.contact, messageID: item.message.id.rawValue)], state: .queued)
                case .failure(let single):
                    switch single {
                    case .malformedHeader, .messageTooLarge, .mailLoop, .sandboxRecipient:
                        // This message's own fault: skipped, and said.
                        try services.store.markCampaignRows(campaign, [CampaignRowMark(item.contact)], state: .skipped)
                        try services.store.noteCampaign(campaign.id, "not sent to \(item.message.recipients.first ?? "?"): \(single)")
                    default:
                        // Not the message's fault: the rest keep their ids and wait, as for a refused batch.
                        return try await refused(single, campaign: campaign, messages: [], submissions: [], now: now)
                    }
                }
            }
            return true
        }
    }

    /// A batch's rows ready to send, with their ids. Rows claimed before (a restart, a refused batch) are
    /// settled with the spool first: stored already (done), or not (sent again with the same id); a row
    /// whose contact was deleted since is skipped. A batch of freshly claimed rows needs no store work.
    private func settle(_ rows: [CampaignRecipient], campaign: Campaign) async throws -> [(row: CampaignRecipient, id: MessageID)] {
        if !rows.contains(where: { $0.claimedEarlier || $0.contactGone }) {
            let ready = rows.compactMap { row in CampaignRunner.messageID(row).map { (row, $0) } }
            if ready.count == rows.count { return ready }
        }
        return try await blocking {
            var stored: [CampaignRowMark] = []
            var gone: [CampaignRowMark] = []
            var batch: [(row: CampaignRecipient, id: MessageID)] = []
            for row in rows {
                guard let id = CampaignRunner.messageID(row) else {
                    gone.append(CampaignRowMark(row.contactID))
                    continue
                }
                if row.claimedEarlier, try self.services.index.details(of: id) != nil {
                    stored.append(CampaignRowMark(row.contactID, messageID: id.rawValue))
                } else if row.contactGone {
                    // Never stored, and the contact was deleted since: nothing is sent.
                    gone.append(CampaignRowMark(row.contactID))
                } else {
                    batch.append((row, id))
                }
            }
            try self.services.store.markCampaignRows(campaign, stored, state: .queued)
            try self.services.store.markCampaignRows(campaign, gone, state: .skipped)
            return batch
        }
    }

    /// A new batch's claim: a random seed, and the time its ids begin with.
    static func newClaim() -> CampaignClaim {
        var generator = SystemRandomNumberGenerator()
        return CampaignClaim(seed: Int64(bitPattern: generator.next()),
                             milliseconds: Int64(exactly: (Date().timeIntervalSince1970 * 1000).rounded(.down)) ?? 0)
    }

    /// The id of a claim's row, for the store (which marks a claim's rows by one statement).
    static let claimedMessageID: CampaignMessageIDMaker = { MessageID(claim: $0, contact: $1).rawValue }

    /// A claimed row's message id: made from its claim, or as an older version wrote it on the row.
    static func messageID(_ row: CampaignRecipient) -> MessageID? {
        if let claim = row.claim { return MessageID(claim: claim, contact: row.contactID) }
        return row.messageID.flatMap(MessageID.init)
    }

    /// A variant's content, compiled: a stored template or the campaign's own subject, text and HTML.
    func renderer(_ variant: Int, campaign: Campaign, account: Account) throws(APIError) -> TemplateRenderer {
        let variants = campaign.definition.variants
        guard variant >= 0, variant < variants.count else { throw APIError.badRequest("no variant \(variant)") }
        let content = variants[variant]
        if let template = content.template { return try services.renderer(template: template, account: account).0 }
        return try TemplateRenderer(subject: content.subject ?? "", text: content.text, html: content.html)
    }

    /// One contact's message: the variant's content rendered from the contact's fields (and `email`).
    func build(_ row: CampaignRecipient, id: MessageID, campaign: Campaign, renderer: TemplateRenderer?) throws(APIError) -> OutgoingMessage {
        let definition = campaign.definition
        let variants = definition.variants
        guard let renderer, row.variant >= 0, row.variant < variants.count else { throw APIError.badRequest("no variant \(row.variant)") }
        let content = variants[row.variant]
        var base = Composition(from: NameAddress(name: content.fromName, address: definition.from), subject: content.subject ?? "")
        if let replyTo = definition.replyTo { base.replyTo = [try NameAddress.parse(replyTo, field: "reply_to")] }
        var data: [String: JSONValue] = ["email": .string(row.address)]
        for (name, value) in row.fields {
            switch value {
            case .text(let text), .date(let text): data[name] = .string(text)
            case .number(let number): data[name] = .number(number)
            case .boolean(let flag): data[name] = .bool(flag)
            }
        }
        var personalization = Personalization(to: [NameAddress(name: nil, address: row.address)])
        personalization.messageID = id
        // The test's mail carries its variant's tag, so that the comparison stays between test mail; once the
        // winner is chosen (every test row was queued before), the rest carries the rest's tag.
        let phase = campaign.winner == nil ? campaign.tag(variant: row.variant) : campaign.tag + ":rest"
        var metadata = MessageMetadata(tags: definition.tags + [campaign.tag, phase],
                                       marketing: definition.marketing, source: "campaign")
        metadata.unsubscribeGroup = definition.unsubscribeGroup
        if services.eventsOut != nil, definition.trackOpens || definition.trackClicks {
            metadata.tracking = TrackingSettings(opens: definition.trackOpens, clicks: definition.trackClicks)
        }
        if let delay = content.delayMinutes, delay > 0 { metadata.notBefore = clock().addingTimeInterval(Double(delay) * 60) }
        let draft = MessageDraft(base: base, renderer: renderer, data: data, personalizations: [personalization], metadata: metadata)
        let built = try draft.messages(builder: services.builder, unsubscribe: services.unsubscribe, tracking: services.tracking,
                                       limits: services.draftLimits)
        guard built.count == 1, let message = built.first else { throw APIError.badRequest("the campaign message could not be built") }
        return message
    }

    /// Store work, which blocks while the database's one writer is busy, off the concurrency pool's few
    /// threads (two on two cores: one of them waiting would halve the building of messages).
    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            storeQueue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    // MARK: A/B tests

    /// The test's wait is over: its winner (by unique human opens or clicks) goes to the rest.
    func decide(_ campaign: Campaign) throws {
        guard let test = campaign.definition.abTest, campaign.winner == nil, test.criterion != .manual else { return }
        let arms = try test.variants.indices.map { index in
            let report = try services.index.tagReport(accountID: campaign.accountID, tag: campaign.tag(variant: index))
            return ABTestDecision.Arm(delivered: report.delivered,
                                      successes: test.criterion == .opens ? report.opens.humanUnique : report.clicks.humanUnique,
                                      machineOpens: report.opens.machineUnique)
        }
        let decision = ABTestDecision(arms: arms, criterion: test.criterion == .opens ? "opens" : "clicks")
        try services.store.chooseCampaignWinner(campaign, winner: decision.winner, decision: decision.explanation)
        logger.info("A/B test decided", metadata: ["campaign": "\(campaign.id)", "winner": "\(Campaign.variantName(decision.winner))",
                                                   "outcome": "\(decision.outcome)"])
    }
}

extension MessageID {
    /// The id of a claimed campaign row's message (see `CampaignClaim`).
    init(claim: CampaignClaim, contact: Int64) {
        self.init(milliseconds: claim.milliseconds, seed: UInt64(bitPattern: claim.seed), member: contact)
    }
}

extension APIServer {
    /// The campaign runner over this server's intake and store; `clock` is injectable for tests.
    public func campaignRunner(clock: @escaping @Sendable () -> Date = { Date() }) -> CampaignRunner {
        CampaignRunner(services: services, clock: clock, logger: logger)
    }
}
