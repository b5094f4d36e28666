import Foundation
import GRDB

/// A marketing send to an audience of contacts: content, sender, audience,
/// schedule, and optionally an A/B test. Its recipients are written down
/// when a run starts (`campaign_recipient`), one row per contact and run, so
/// that no contact gets a run twice, whatever restarts in between.
public struct Campaign: Sendable, Equatable {
    public enum State: String, Sendable, CaseIterable {
        /// Saved, not to be sent until scheduled.
        case draft
        /// Waits for `nextRunAt` (recurring campaigns wait here between runs).
        case scheduled
        case sending
        case paused
        /// The A/B test's variants went out; the winner is chosen at `testEndsAt`.
        case testing
        case sent
        case cancelled
    }

    /// What a variant (or the campaign itself) sends. Fields left nil take the campaign's.
    public struct Content: Sendable, Equatable, Codable {
        public var fromName: String?
        public var subject: String?
        public var text: String?
        public var html: String?
        /// A stored template instead of subject, text and HTML.
        public var template: String?
        /// Minutes after the run starts that this variant's mail may be delivered (a send-time test).
        public var delayMinutes: Int?

        public init(fromName: String? = nil, subject: String? = nil, text: String? = nil, html: String? = nil, template: String? = nil,
                    delayMinutes: Int? = nil) {
            self.fromName = fromName
            self.subject = subject
            self.text = text
            self.html = html
            self.template = template
            self.delayMinutes = delayMinutes
        }

        /// `self` with the variant's fields over it.
        public func overridden(by variant: Content) -> Content {
            Content(fromName: variant.fromName ?? fromName, subject: variant.subject ?? subject,
                    text: variant.template == nil ? (variant.text ?? text) : nil,
                    html: variant.template == nil ? (variant.html ?? html) : nil,
                    template: variant.template ?? (variant.text != nil || variant.html != nil ? nil : template),
                    delayMinutes: variant.delayMinutes ?? delayMinutes)
        }
    }

    public enum WinnerCriterion: String, Sendable, Codable, CaseIterable {
        case opens, clicks, manual
    }

    public struct ABTest: Sendable, Equatable, Codable {
        public var variants: [Content]
        /// The share of the audience the variants go to, split evenly; the winner goes to the rest.
        public var testPercent: Int
        public var criterion: WinnerCriterion
        /// How long after the test mail was queued the winner is chosen, in seconds.
        public var waitSeconds: Int

        public init(variants: [Content], testPercent: Int, criterion: WinnerCriterion, waitSeconds: Int) {
            self.variants = variants
            self.testPercent = testPercent
            self.criterion = criterion
            self.waitSeconds = waitSeconds
        }
    }

    public struct Definition: Sendable, Equatable, Codable {
        /// The envelope sender and From address.
        public var from: String
        public var replyTo: String?
        public var content: Content
        /// A saved segment, an inline expression, lists: a contact in any list and in the segment (when given).
        public var segmentID: Int64?
        public var segment: JSONValue?
        public var lists: [Int64]
        public var marketing: Bool
        public var unsubscribeGroup: Int64?
        public var trackOpens: Bool
        public var trackClicks: Bool
        public var tags: [String]
        /// When the first run starts (nil: now, once scheduled).
        public var sendAt: Date?
        /// A daily run at this time of day (`HH:MM`) in the account's time zone.
        public var dailyAt: String?
        public var abTest: ABTest?

        public init(from: String, replyTo: String? = nil, content: Content, segmentID: Int64? = nil, segment: JSONValue? = nil,
                    lists: [Int64] = [], marketing: Bool = true, unsubscribeGroup: Int64? = nil, trackOpens: Bool = false,
                    trackClicks: Bool = false, tags: [String] = [], sendAt: Date? = nil, dailyAt: String? = nil, abTest: ABTest? = nil) {
            self.from = from
            self.replyTo = replyTo
            self.content = content
            self.segmentID = segmentID
            self.segment = segment
            self.lists = lists
            self.marketing = marketing
            self.unsubscribeGroup = unsubscribeGroup
            self.trackOpens = trackOpens
            self.trackClicks = trackClicks
            self.tags = tags
            self.sendAt = sendAt
            self.dailyAt = dailyAt
            self.abTest = abTest
        }

        /// The variants sent: the A/B test's, or the campaign's content alone.
        public var variants: [Content] { abTest.map { $0.variants.map(content.overridden(by:)) } ?? [content] }
    }

    public var id: Int64
    public var accountID: Int64
    public var name: String
    public var state: State
    public var definition: Definition
    public var nextRunAt: Date?
    /// The run in progress or last run: `once`, or the day (`YYYY-MM-DD`) of a daily run.
    public var occurrence: String?
    public var testEndsAt: Date?
    /// The variant chosen for the rest of the audience, and how it was chosen.
    public var winner: Int?
    public var decision: String?
    /// Why sending waits, when it does (the quota, a template error).
    public var note: String?
    /// Contacts the audience held that were not sent to because they are suppressed or unsubscribed.
    public var excluded: Int
    public var createdAt: Date

    /// The tag every message of the campaign carries, and a variant's in an A/B test (the rest's: `campaign:ID:rest`).
    public var tag: String { "campaign:\(id)" }
    public func tag(variant: Int) -> String { "campaign:\(id):" + Campaign.variantName(variant) }
    public static func variantName(_ index: Int) -> String {
        index >= 0 && index < 26 ? String(UnicodeScalar(UInt8(truncatingIfNeeded: 65 + index))) : String(index)
    }
}

/// One recipient row of a campaign run, with the contact's current fields for rendering.
public struct CampaignRecipient: Sendable, Equatable {
    public var contactID: Int64
    public var address: String
    public var variant: Int
    /// The id the message was stored under (a queued row), or given by an older version before it was
    /// handed to the intake (a `submitting` row).
    public var messageID: String?
    /// The claim that took a pending row, which its message id is made from (`MessageID(claim:contact:)`).
    public var claim: CampaignClaim?
    public var fields: [String: ContactValue]
    /// The contact was deleted after the run started.
    public var contactGone = false
    /// The id was given in an earlier claim: the message may be in the spool already.
    public var claimedEarlier = false
}

/// What a batch's claim writes down once for all its rows: a random seed and the time, from which each
/// row's message id is made (MessageID in the spool), the same after a restart.
public struct CampaignClaim: Sendable, Hashable {
    public var seed: Int64
    public var milliseconds: Int64

    public init(seed: Int64, milliseconds: Int64) {
        self.seed = seed
        self.milliseconds = milliseconds
    }
}

/// A row to mark: its contact, and for a queued row the id its message was stored under, and the claim
/// that id was made from (when it was: a claimed batch's rows are then marked by one statement).
public struct CampaignRowMark: Sendable, Hashable {
    public enum State: String, Sendable {
        case queued, skipped
    }

    public var contactID: Int64
    public var messageID: String?
    public var claim: CampaignClaim?

    public init(_ contactID: Int64, messageID: String? = nil, claim: CampaignClaim? = nil) {
        self.contactID = contactID
        self.messageID = messageID
        self.claim = claim
    }
}

/// One read of a claim: the run's rows in `state` after contact `after` through `through`; `earlier`: rows
/// claimed before (a restart's, or a refused batch's), which come back with `claimedEarlier` set.
struct CampaignClaimPass {
    var state: String
    var after: Int64
    var through: Int64
    var earlier: Bool

    /// What a claim reads, in order: with `recovering`, rows given ids by an older version (`submitting`)
    /// and pending rows of earlier claims first; then the rows after the last claim's range.
    static func passes(recovering: Bool, claimedThrough: Int64) -> [CampaignClaimPass] {
        var passes: [CampaignClaimPass] = []
        if recovering {
            passes.append(CampaignClaimPass(state: "submitting", after: Int64.min, through: Int64.max, earlier: true))
            passes.append(CampaignClaimPass(state: "pending", after: Int64.min, through: claimedThrough, earlier: true))
        }
        passes.append(CampaignClaimPass(state: "pending", after: claimedThrough, through: Int64.max, earlier: false))
        return passes
    }
}

/// How a claimed row's message id is made from its claim and contact (`MessageID(claim:contact:)`, which the
/// store cannot see): given, rows marked queued with ids made so are marked a claim at a time.
public typealias CampaignMessageIDMaker = @Sendable (CampaignClaim, Int64) -> String

/// How far a campaign is: rows by state.
public struct CampaignProgress: Sendable, Equatable {
    public var recipients = 0
    public var pending = 0
    /// Waiting for the A/B test's winner.
    public var waitingForWinner = 0
    public var queued = 0
    public var skipped = 0
}

public enum CampaignError: Error, Equatable, CustomStringConvertible {
    case notFound(Int64)
    case invalidState(from: Campaign.State, action: String)

    public var description: String {
        switch self {
        case .notFound(let id): return "no campaign \(id)"
        case .invalidState(let state, let action): return "a campaign that is \(state.rawValue) cannot be \(action)"
        }
    }
}

/// Campaigns, their runs, recipients, claims and progress: one capability of
/// the store, with an implementation per engine (`SQLiteStore`, `PostgresStore`).
public protocol CampaignStore: Sendable {
    /// A new campaign, a draft, or with `schedule` scheduled at once. At most `Campaign.maximumPerAccount` per account.
    func createCampaign(name: String, definition: Campaign.Definition, accountID: Int64, schedule: Bool, now: Date) throws -> Campaign
    /// One campaign; another account's is nil, any account's with nil.
    func campaign(id: Int64, accountID: Int64?) throws -> Campaign?
    /// Newest first.
    func campaigns(accountID: Int64, limit: Int) throws -> [Campaign]
    /// Campaigns the runner has work for at `now`: due to start, sending, or testing past their wait.
    func activeCampaigns(now: Date) throws -> [Campaign]
    /// Draft → scheduled, for `sendAt` or its next daily time, else now.
    func scheduleCampaign(id: Int64, accountID: Int64, now: Date) throws
    /// Pause, resume or cancel; refused from states where the action means nothing.
    func changeCampaign(id: Int64, accountID: Int64, action: CampaignAction) throws -> Campaign
    func deleteCampaign(id: Int64, accountID: Int64) throws
    /// Sets the account's time zone; daily campaigns waiting for their next run are rescheduled in it.
    func setTimeZone(_ zone: TimeZone, accountID: Int64, now: Date) throws
    /// Starts a run: writes down its recipients (the audience now, less suppressed and unsubscribed
    /// contacts, less those the run already has) and assigns variants. A run started before a restart keeps its rows.
    func startCampaignRun(_ campaign: Campaign, occurrence: String, audience: SegmentQuery?, now: Date) throws -> CampaignProgress
    /// The next rows to send, claimed (see `SQLiteStore.claimCampaignBatch`); nil when the campaign is no
    /// longer sending. `queued` are marked first, in the same transaction.
    func claimCampaignBatch(_ campaign: Campaign, limit: Int, recovering: Bool, queued: [CampaignRowMark],
                            messageID: CampaignMessageIDMaker?, claim: CampaignClaim) throws -> [CampaignRecipient]?
    /// Rows whose message is in the spool (`queued`, with the id it was stored under), or that could not be
    /// built (`skipped`: a template error for that contact, or a contact deleted before it was sent).
    func markCampaignRows(_ campaign: Campaign, _ rows: [CampaignRowMark], state: CampaignRowMark.State,
                          messageID: CampaignMessageIDMaker?) throws
    /// The campaign's current run's rows by state.
    func campaignProgress(_ campaign: Campaign) throws -> CampaignProgress
    /// Every run's rows together (a recurring campaign's report covers all its runs).
    func campaignTotals(_ campaignID: Int64) throws -> CampaignProgress
    /// The run's rows have all been sent: an A/B test waits for its winner, a daily campaign for its next day, others are done.
    func finishCampaignRun(_ campaign: Campaign, now: Date) throws
    /// The A/B test is decided: the rest of the audience gets `winner`, and sending resumes.
    /// False when the campaign was cancelled or decided meanwhile (nothing changes then).
    @discardableResult
    func chooseCampaignWinner(_ campaign: Campaign, winner: Int, decision: String) throws -> Bool
    /// The campaign's state now (the runner checks it after a batch went to the intake).
    func campaignState(_ id: Int64) throws -> Campaign.State?
    func noteCampaign(_ id: Int64, _ note: String?) throws
    /// The message ids handed to the intake (a cancelled campaign's mail that may still be queued): those
    /// written on queued rows, and those of claimed rows not yet marked, made by `messageID` from their claim.
    func campaignMessageIDs(_ id: Int64, messageID: (CampaignClaim, Int64) -> String) throws -> [String]
}

extension CampaignStore {
    public func createCampaign(name: String, definition: Campaign.Definition, accountID: Int64, schedule: Bool) throws -> Campaign {
        try createCampaign(name: name, definition: definition, accountID: accountID, schedule: schedule, now: Date())
    }

    public func campaigns(accountID: Int64) throws -> [Campaign] { try campaigns(accountID: accountID, limit: 200) }

    public func scheduleCampaign(id: Int64, accountID: Int64) throws { try scheduleCampaign(id: id, accountID: accountID, now: Date()) }

    public func setTimeZone(_ zone: TimeZone, accountID: Int64) throws { try setTimeZone(zone, accountID: accountID, now: Date()) }

    public func claimCampaignBatch(_ campaign: Campaign, limit: Int, recovering: Bool, claim: CampaignClaim) throws -> [CampaignRecipient]? {
        try claimCampaignBatch(campaign, limit: limit, recovering: recovering, queued: [], messageID: nil, claim: claim)
    }

    public func markCampaignRows(_ campaign: Campaign, _ rows: [CampaignRowMark], state: CampaignRowMark.State) throws {
        try markCampaignRows(campaign, rows, state: state, messageID: nil)
    }
}

extension Campaign {
    public static let maximumPerAccount = 10_000

    /// The next moment after `date` whose time of day in `zone` is `time` (`HH:MM`).
    public static func nextDailyRun(at time: String, after date: Date, in zone: TimeZone) -> Date? {
        let parts = time.split(separator: ":")
        guard parts.count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]), (0..<24).contains(hour), (0..<60).contains(minute) else {
            return nil
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        return calendar.nextDate(after: date, matching: DateComponents(hour: hour, minute: minute, second: 0), matchingPolicy: .nextTime)
    }

    /// When a campaign being scheduled at `now` first runs: its `sendAt`, its next daily time, else now.
    func firstRun(now: Date, in zone: TimeZone) -> Date {
        definition.sendAt ?? definition.dailyAt.flatMap { Campaign.nextDailyRun(at: $0, after: now.addingTimeInterval(-1), in: zone) } ?? now
    }

    /// The state `action` takes a campaign in `state` to (`pausedFrom`: what a pause interrupted), or nil when it means nothing there.
    static func state(after action: CampaignAction, from state: State, pausedFrom: State?) -> State? {
        switch (action, state) {
        case (.pause, .sending), (.pause, .scheduled), (.pause, .testing): return .paused
        // Back to what the pause interrupted: a run goes on (and is finished by the runner when nothing is
        // left), a test waits on, a schedule waits for its time.
        case (.resume, .paused): return pausedFrom ?? .sending
        case (.cancel, .draft), (.cancel, .scheduled), (.cancel, .sending), (.cancel, .paused), (.cancel, .testing): return .cancelled
        default: return nil
        }
    }

    /// How long after a test run's last batch the winner is chosen: the wait, plus the longest send-time
    /// delay of a variant (its mail is not out before).
    var testWait: Double {
        let delay = (definition.abTest?.variants.compactMap(\.delayMinutes).max() ?? 0) * 60
        return Double(definition.abTest?.waitSeconds ?? 0) + Double(delay)
    }

    /// The definition as stored: its JSON text.
    static func json(_ definition: Definition) throws -> String {
        String(decoding: try JSONEncoder().encode(definition), as: UTF8.self)
    }

    static func definition(_ json: String) -> Definition? {
        try? JSONDecoder().decode(Definition.self, from: Data(json.utf8))
    }
}

extension SQLiteStore: CampaignStore {
    static func registerCampaignMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v13-campaigns") { db in
            try db.execute(sql: """
                CREATE TABLE segment (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    expression TEXT NOT NULL,
                    created_at REAL NOT NULL
                );
                CREATE INDEX segment_account ON segment(account_id);
                CREATE TABLE campaign (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    state TEXT NOT NULL,
                    definition TEXT NOT NULL,
                    next_run_at REAL,
                    occurrence TEXT,
                    test_ends_at REAL,
                    winner INTEGER,
                    decision TEXT,
                    note TEXT,
                    excluded INTEGER NOT NULL DEFAULT 0,
                    -- The state a pause interrupted, which resume returns to.
                    paused_from TEXT,
                    created_at REAL NOT NULL
                );
                CREATE INDEX campaign_account ON campaign(account_id);
                CREATE INDEX campaign_due ON campaign(state, next_run_at);
                -- Recipients of each run; variant NULL: waiting for the A/B test's winner.
                -- state: pending, submitting (a message id is chosen), queued (in the spool), skipped.
                CREATE TABLE campaign_recipient (
                    campaign_id INTEGER NOT NULL REFERENCES campaign(id) ON DELETE CASCADE,
                    occurrence TEXT NOT NULL,
                    contact_id INTEGER NOT NULL,
                    address TEXT NOT NULL,
                    variant INTEGER,
                    state TEXT NOT NULL DEFAULT 'pending',
                    message_id TEXT,
                    PRIMARY KEY (campaign_id, occurrence, contact_id)
                );
                CREATE INDEX campaign_recipient_state ON campaign_recipient(campaign_id, occurrence, state, contact_id);
                -- One row per address and run, even for a contact deleted and made again (dropped by v19).
                CREATE UNIQUE INDEX campaign_recipient_address ON campaign_recipient(campaign_id, occurrence, address);
                """)
        }
        migrator.registerMigration("v14-campaign-counts") { db in
            // How many of a run's rows are in each state, kept by triggers in the same transaction as the rows,
            // so that progress (polled by the console while a million rows change) reads a handful of rows.
            try db.execute(sql: """
                CREATE TABLE campaign_count (
                    campaign_id INTEGER NOT NULL REFERENCES campaign(id) ON DELETE CASCADE,
                    occurrence TEXT NOT NULL,
                    state TEXT NOT NULL,
                    waiting INTEGER NOT NULL,
                    n INTEGER NOT NULL,
                    PRIMARY KEY (campaign_id, occurrence, state, waiting)
                ) WITHOUT ROWID;
                INSERT INTO campaign_count (campaign_id, occurrence, state, waiting, n)
                    SELECT campaign_id, occurrence, state, variant IS NULL, COUNT(*) FROM campaign_recipient GROUP BY 1, 2, 3, 4;
                CREATE TRIGGER campaign_recipient_added AFTER INSERT ON campaign_recipient BEGIN
                    INSERT INTO campaign_count (campaign_id, occurrence, state, waiting, n)
                    VALUES (NEW.campaign_id, NEW.occurrence, NEW.state, NEW.variant IS NULL, 1)
                    ON CONFLICT DO UPDATE SET n = n + 1;
                END;
                CREATE TRIGGER campaign_recipient_changed AFTER UPDATE OF state, variant ON campaign_recipient
                WHEN OLD.state IS NOT NEW.state OR (OLD.variant IS NULL) IS NOT (NEW.variant IS NULL) BEGIN
                    UPDATE campaign_count SET n = n - 1 WHERE campaign_id = OLD.campaign_id AND occurrence = OLD.occurrence
                        AND state = OLD.state AND waiting = (OLD.variant IS NULL);
                    INSERT INTO campaign_count (campaign_id, occurrence, state, waiting, n)
                    VALUES (NEW.campaign_id, NEW.occurrence, NEW.state, NEW.variant IS NULL, 1)
                    ON CONFLICT DO UPDATE SET n = n + 1;
                END;
                CREATE TRIGGER campaign_recipient_removed AFTER DELETE ON campaign_recipient BEGIN
                    UPDATE campaign_count SET n = n - 1 WHERE campaign_id = OLD.campaign_id AND occurrence = OLD.occurrence
                        AND state = OLD.state AND waiting = (OLD.variant IS NULL);
                END;
                """)
        }
    }

    /// Campaign migrations that came after the node registry's.
    static func registerCampaignBatchMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v16-campaign-rows-counted-per-start") { db in
            // A run's rows are written by one statement (`startCampaignRun`), which counts them once it is done:
            // counted row by row, by a trigger, the counting took as long as the writing.
            try db.execute(sql: "DROP TRIGGER campaign_recipient_added")
        }
        migrator.registerMigration("v17-campaign-claims") { db in
            // One row per claimed batch instead of an id written on each of its recipient rows (which cost as
            // much as the rest of a claim): the run's rows after `after_contact` through `through_contact`,
            // pending ones among them with the intake or waiting to be settled, their ids made from `seed`
            // and the time. Rows claimed by an older version stay `submitting`, with their ids.
            try db.execute(sql: """
                CREATE TABLE campaign_claim (
                    campaign_id INTEGER NOT NULL REFERENCES campaign(id) ON DELETE CASCADE,
                    occurrence TEXT NOT NULL,
                    after_contact INTEGER NOT NULL,
                    through_contact INTEGER NOT NULL,
                    seed INTEGER NOT NULL,
                    claimed_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (campaign_id, occurrence, through_contact)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v18-campaign-rows-queued-per-batch") { db in
            // A claimed row becoming queued is counted per batch by `markCampaignRows`, which changes five
            // hundred at a time; the trigger counts every other change as it is made.
            try db.execute(sql: """
                DROP TRIGGER campaign_recipient_changed;
                CREATE TRIGGER campaign_recipient_changed AFTER UPDATE OF state, variant ON campaign_recipient
                WHEN (OLD.state IS NOT NEW.state OR (OLD.variant IS NULL) IS NOT (NEW.variant IS NULL))
                    AND NOT (OLD.state = 'pending' AND NEW.state = 'queued' AND OLD.variant IS NOT NULL AND NEW.variant IS NOT NULL) BEGIN
                    UPDATE campaign_count SET n = n - 1 WHERE campaign_id = OLD.campaign_id AND occurrence = OLD.occurrence
                        AND state = OLD.state AND waiting = (OLD.variant IS NULL);
                    INSERT INTO campaign_count (campaign_id, occurrence, state, waiting, n)
                    VALUES (NEW.campaign_id, NEW.occurrence, NEW.state, NEW.variant IS NULL, 1)
                    ON CONFLICT DO UPDATE SET n = n + 1;
                END;
                """)
        }
        migrator.registerMigration("v19-campaign-rows-without-address-index") { db in
            // A run's rows come from the contacts, which are one per address already; only a run started a
            // second time could meet an address again (a contact deleted and made anew), and that start leaves
            // out the run's addresses itself. Kept up row by row in address order, the unique index took six
            // of every seven seconds of a million-contact run's start (in a replica with SQLite's default cache).
            try db.execute(sql: "DROP INDEX campaign_recipient_address")
        }
    }

    public func createCampaign(name: String, definition: Campaign.Definition, accountID: Int64, schedule: Bool, now: Date) throws -> Campaign {
        let text = try Campaign.json(definition)
        let id: Int64 = try database.write { db in
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM campaign WHERE account_id = ?", arguments: [accountID]) ?? 0
            guard count < Campaign.maximumPerAccount else { throw ContactError.notFound("room for another campaign") }
            try db.execute(sql: "INSERT INTO campaign (account_id, name, state, definition, created_at) VALUES (?, ?, 'draft', ?, ?)",
                           arguments: [accountID, name, text, now.timeIntervalSince1970])
            return db.lastInsertedRowID
        }
        if schedule { try scheduleCampaign(id: id, accountID: accountID, now: now) }
        guard let campaign = try campaign(id: id, accountID: accountID) else { throw CampaignError.notFound(id) }
        return campaign
    }

    public func campaign(id: Int64, accountID: Int64?) throws -> Campaign? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM campaign WHERE id = ? AND (? IS NULL OR account_id = ?)",
                             arguments: [id, accountID, accountID]).flatMap(SQLiteStore.campaign)
        }
    }

    public func campaigns(accountID: Int64, limit: Int) throws -> [Campaign] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM campaign WHERE account_id = ? ORDER BY id DESC LIMIT ?",
                             arguments: [accountID, limit]).compactMap(SQLiteStore.campaign)
        }
    }

    public func activeCampaigns(now: Date) throws -> [Campaign] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM campaign WHERE state = 'sending'
                    OR (state = 'scheduled' AND next_run_at <= ?) OR (state = 'testing' AND test_ends_at <= ?)
                ORDER BY id
                """, arguments: [now.timeIntervalSince1970, now.timeIntervalSince1970]).compactMap(SQLiteStore.campaign)
        }
    }

    public func scheduleCampaign(id: Int64, accountID: Int64, now: Date) throws {
        guard let campaign = try campaign(id: id, accountID: accountID) else { throw CampaignError.notFound(id) }
        guard campaign.state == .draft else { throw CampaignError.invalidState(from: campaign.state, action: "scheduled") }
        try setCampaign(id: id, state: .scheduled, nextRunAt: campaign.firstRun(now: now, in: try timeZone(accountID: accountID)))
    }

    func setCampaign(id: Int64, state: Campaign.State, nextRunAt: Date?? = nil, note: String?? = nil) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE campaign SET state = ? WHERE id = ?", arguments: [state.rawValue, id])
            if let nextRunAt { try db.execute(sql: "UPDATE campaign SET next_run_at = ? WHERE id = ?", arguments: [nextRunAt?.timeIntervalSince1970, id]) }
            if let note { try db.execute(sql: "UPDATE campaign SET note = ? WHERE id = ?", arguments: [note, id]) }
        }
    }

    public func changeCampaign(id: Int64, accountID: Int64, action: CampaignAction) throws -> Campaign {
        try database.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM campaign WHERE id = ? AND account_id = ?", arguments: [id, accountID]),
                  let campaign = SQLiteStore.campaign(row) else {
                throw CampaignError.notFound(id)
            }
            let pausedFrom = (row["paused_from"] as String?).flatMap(Campaign.State.init(rawValue:))
            guard let next = Campaign.state(after: action, from: campaign.state, pausedFrom: pausedFrom) else {
                throw CampaignError.invalidState(from: campaign.state, action: action.past)
            }
            if next == .paused {
                try db.execute(sql: "UPDATE campaign SET paused_from = ? WHERE id = ?", arguments: [campaign.state.rawValue, id])
            }
            try db.execute(sql: "UPDATE campaign SET state = ? WHERE id = ?", arguments: [next.rawValue, id])
            var changed = campaign
            changed.state = next
            return changed
        }
    }

    public func deleteCampaign(id: Int64, accountID: Int64) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM campaign WHERE id = ? AND account_id = ?", arguments: [id, accountID])
            guard db.changesCount > 0 else { throw CampaignError.notFound(id) }
        }
    }

    // MARK: Runs

    public func startCampaignRun(_ campaign: Campaign, occurrence: String, audience: SegmentQuery?, now: Date) throws -> CampaignProgress {
        let definition = campaign.definition
        return try database.write { db in
            var conditions = ["c.account_id = ?"]
            var arguments: [DatabaseValue] = [campaign.id.databaseValue, occurrence.databaseValue, campaign.accountID.databaseValue]
            if let audience {
                conditions.append(audience.condition)
                arguments += audience.databaseValues
            }
            if !definition.lists.isEmpty {
                conditions.append("EXISTS (SELECT 1 FROM contact_list_member m JOIN contact_list l ON l.id = m.list_id WHERE m.contact_id = c.id "
                                  + "AND l.account_id = c.account_id AND l.id IN (" + definition.lists.map { _ in "?" }.joined(separator: ",") + "))")
                arguments += definition.lists.map(\.databaseValue)
            }
            let audienceSQL = "FROM contact c INDEXED BY contact_account WHERE " + conditions.joined(separator: " AND ")
            let scope = definition.marketing ? "('all', 'marketing')" : "('all', 'transactional')"
            var excluded = "EXISTS (SELECT 1 FROM suppression s WHERE s.account_id = c.account_id AND s.address = c.address AND s.scope IN \(scope))"
            var exclusionArguments: [DatabaseValue] = []
            if let group = definition.unsubscribeGroup {
                excluded += " OR EXISTS (SELECT 1 FROM group_unsubscribe u JOIN unsubscribe_group g ON g.id = u.group_id "
                    + "WHERE u.group_id = ? AND g.account_id = c.account_id AND u.address = c.address)"
                exclusionArguments.append(group.databaseValue)
            }
            // Started only from `scheduled`: a pause or a cancel that came first stands.
            guard try String.fetchOne(db, sql: "SELECT state FROM campaign WHERE id = ?", arguments: [campaign.id]) == Campaign.State.scheduled.rawValue else {
                return try SQLiteStore.campaignProgress(campaign.id, occurrence: occurrence, db)
            }
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) " + audienceSQL,
                                         arguments: StatementArguments(Array(arguments.dropFirst(2)))) ?? 0
            let existing = try Int.fetchOne(db, sql: "SELECT SUM(n) FROM campaign_count WHERE campaign_id = ? AND occurrence = ?",
                                            arguments: [campaign.id, occurrence]) ?? 0
            // A run started again (a daily run restarted the same day) adds no address it has already: one row per
            // address and run, even for a contact deleted and made anew since (its old row may be sent already).
            // The run's addresses are read once, into a temporary index, not looked up row by row.
            if existing > 0 {
                excluded += " OR c.address IN (SELECT address FROM campaign_recipient WHERE campaign_id = ? AND occurrence = ?)"
                exclusionArguments += [campaign.id.databaseValue, occurrence.databaseValue]
            }
            // Without a test every row is variant 0 as it is written (not in a second pass: each row changed
            // afterwards is rewritten and counted again, which took as long as the insert itself).
            try db.execute(sql: """
                INSERT OR IGNORE INTO campaign_recipient (campaign_id, occurrence, contact_id, address, variant)
                SELECT ?, ?, c.id, c.address, \(definition.abTest == nil ? "0" : "NULL") \(audienceSQL) AND NOT (\(excluded))
                """, arguments: StatementArguments(arguments + exclusionArguments))
            // The run's counts by state, made again from its rows (those of an earlier start included).
            try db.execute(sql: """
                INSERT INTO campaign_count (campaign_id, occurrence, state, waiting, n)
                SELECT campaign_id, occurrence, state, variant IS NULL, COUNT(*) FROM campaign_recipient
                WHERE campaign_id = ? AND occurrence = ? GROUP BY state, variant IS NULL
                ON CONFLICT DO UPDATE SET n = excluded.n
                """, arguments: [campaign.id, occurrence])
            let rows = try Int.fetchOne(db, sql: "SELECT SUM(n) FROM campaign_count WHERE campaign_id = ? AND occurrence = ?",
                                        arguments: [campaign.id, occurrence]) ?? 0
            if let test = definition.abTest {
                // The test share, split evenly at random; the rest waits for the winner (variant NULL).
                let unassigned = try Int64.fetchAll(db, sql: """
                    SELECT contact_id FROM campaign_recipient WHERE campaign_id = ? AND occurrence = ? AND variant IS NULL ORDER BY random()
                    """, arguments: [campaign.id, occurrence])
                let testCount = min(unassigned.count, (rows * max(0, min(100, test.testPercent)) + 50) / 100)
                let update = try db.cachedStatement(sql: "UPDATE campaign_recipient SET variant = ? WHERE campaign_id = ? AND occurrence = ? AND contact_id = ?")
                for (index, contact) in unassigned.prefix(testCount).enumerated() {
                    try update.execute(arguments: [index % max(1, test.variants.count), campaign.id, occurrence, contact])
                }
            } else if existing > 0 {
                // Rows written by an earlier start of this run (INSERT OR IGNORE kept them) may still wait.
                try db.execute(sql: "UPDATE campaign_recipient SET variant = 0 WHERE campaign_id = ? AND occurrence = ? AND variant IS NULL",
                               arguments: [campaign.id, occurrence])
            }
            try db.execute(sql: """
                UPDATE campaign SET state = 'sending', occurrence = ?, excluded = excluded + ?, test_ends_at = NULL, winner = NULL,
                    decision = NULL, note = NULL WHERE id = ?
                """, arguments: [occurrence, existing == 0 ? max(0, total - rows) : 0, campaign.id])
            return try SQLiteStore.campaignProgress(campaign.id, occurrence: occurrence, db)
        }
    }

    /// Claims the next rows to send (variant chosen), with their contacts' fields, read through the
    /// (campaign, run, state, contact) index. A claim writes one row, not one per recipient: the batch
    /// takes the run's pending rows after the last batch's last contact, in contact order, and `claim`
    /// (a seed and a time) is written down with the range it took. Each row's message id is made from it
    /// (`MessageID(claim:contact:)`), now and again after a restart; batches claimed one after another
    /// never share a row, because the next one starts after this one's range.
    ///
    /// With `recovering`, rows claimed earlier and not yet queued (before a restart, or in a batch the
    /// intake refused) come first, with `claimedEarlier` set, for the runner to settle with the spool;
    /// only while no other batch of the run is with the intake, whose rows look just the same. Rows
    /// given an id of their own by an older version (`submitting`) come with them.
    /// A pending row whose contact is gone is skipped. Nil when the campaign is no longer sending (paused,
    /// cancelled, being tested) or is on another run: a pause stops the claims at once, not at the end of a turn.
    ///
    /// `queued` are rows of earlier batches whose messages the spool now holds, with their ids: marked
    /// first, whatever the campaign's state, in the same transaction (one commit per batch rather than two);
    /// with `messageID`, those of one claim by one statement (see `markClaimedRanges`).
    public func claimCampaignBatch(_ campaign: Campaign, limit: Int, recovering: Bool, queued: [CampaignRowMark],
                                   messageID: CampaignMessageIDMaker?, claim: CampaignClaim) throws -> [CampaignRecipient]? {
        try database.write { db in
            let occurrence = campaign.occurrence ?? ""
            installClaimedMessageID(messageID, db)
            try SQLiteStore.markCampaignRows(campaign, queued, state: .queued, messageID: messageID, db)
            let now = try Row.fetchOne(db, sql: "SELECT state, occurrence FROM campaign WHERE id = ?", arguments: [campaign.id])
            guard let now, now["state"] as String? == Campaign.State.sending.rawValue, (now["occurrence"] as String?) ?? "" == occurrence else {
                return nil
            }
            let fields = try SQLiteStore.contactFields(accountID: campaign.accountID, db)
            let skip = try db.cachedStatement(sql: """
                UPDATE campaign_recipient SET state = 'skipped' WHERE campaign_id = ? AND occurrence = ? AND contact_id = ?
                """)
            // Only the columns needed, read by position: a row of a hundred slots looked up by name is slow.
            let slots = fields.map { ", c.s\($0.slot)" }.joined()
            let read = try db.makeStatement(sql: """
                SELECT r.contact_id, r.address, r.variant, r.message_id, c.id\(slots)
                FROM (SELECT * FROM campaign_recipient WHERE campaign_id = ? AND occurrence = ? AND state = ? AND variant IS NOT NULL
                      AND contact_id > ? AND contact_id <= ? ORDER BY contact_id LIMIT ?) r
                LEFT JOIN contact c ON c.id = r.contact_id
                """)
            // Where the run's claims end: rows after it are free, pending rows up to it were claimed before.
            let claimedThrough = try Int64.fetchOne(db, sql: """
                SELECT through_contact FROM campaign_claim WHERE campaign_id = ? AND occurrence = ? ORDER BY through_contact DESC LIMIT 1
                """, arguments: [campaign.id, occurrence]) ?? Int64.min
            let claims = try db.cachedStatement(sql: """
                SELECT seed, claimed_at_ms, through_contact FROM campaign_claim
                WHERE campaign_id = ? AND occurrence = ? AND through_contact >= ? ORDER BY through_contact LIMIT 1
                """)
            var batch: [CampaignRecipient] = []
            var fresh: [Int64] = []
            var skipped = true
            // Rows skipped make room: read on, so that an empty batch always means the run has nothing left.
            while batch.isEmpty && skipped {
                skipped = false
                for pass in CampaignClaimPass.passes(recovering: recovering, claimedThrough: claimedThrough)
                    where batch.count < limit && pass.after < pass.through {
                    var covering: (through: Int64, claim: CampaignClaim)?
                    let rows = try Row.fetchAll(read, arguments: [campaign.id, occurrence, pass.state, pass.after, pass.through,
                                                                  limit - batch.count])
                    for row in rows {
                        let contactID: Int64 = row[0]
                        let present = !row.hasNull(atIndex: 4)
                        var rowClaim: CampaignClaim?
                        if pass.state == "pending" {
                            guard present || pass.earlier else {
                                try skip.execute(arguments: [campaign.id, occurrence, contactID])
                                skipped = true
                                continue
                            }
                            if pass.earlier {
                                // The claim whose range holds this contact (rows come in order: one lookup per claim).
                                if let known = covering, known.through >= contactID {
                                    rowClaim = known.claim
                                } else if let found = try Row.fetchOne(claims, arguments: [campaign.id, occurrence, contactID]) {
                                    let claim = CampaignClaim(seed: found[0], milliseconds: found[1])
                                    covering = (found[2], claim)
                                    rowClaim = claim
                                }
                            } else {
                                rowClaim = claim
                                fresh.append(contactID)
                            }
                        }
                        var values: [String: ContactValue] = [:]
                        if present {
                            for (index, field) in fields.enumerated() {
                                if let value = ContactValue.stored(row[5 + index], as: field.kind) { values[field.name] = value }
                            }
                        }
                        batch.append(CampaignRecipient(contactID: contactID, address: row[1], variant: row[2], messageID: row[3],
                                                       claim: rowClaim, fields: values, contactGone: !present, claimedEarlier: pass.earlier))
                    }
                }
            }
            if let last = fresh.last {
                try db.execute(sql: """
                    INSERT INTO campaign_claim (campaign_id, occurrence, after_contact, through_contact, seed, claimed_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [campaign.id, occurrence, claimedThrough, last, claim.seed, claim.milliseconds])
            }
            return batch
        }
    }

    public func markCampaignRows(_ campaign: Campaign, _ rows: [CampaignRowMark], state: CampaignRowMark.State,
                                 messageID: CampaignMessageIDMaker?) throws {
        guard !rows.isEmpty else { return }
        try database.write { db in
            installClaimedMessageID(messageID, db)
            try SQLiteStore.markCampaignRows(campaign, rows, state: state, messageID: messageID, db)
        }
    }

    /// Puts `hikyaku_claimed_message_id(seed, milliseconds, contact)` on the writer's connection, once (the
    /// first maker given stays: there is one way to make these ids). `db` is the writer's one connection.
    func installClaimedMessageID(_ messageID: CampaignMessageIDMaker?, _ db: Database) {
        guard let messageID else { return }
        claimedMessageIDInstalled.withLock { installed in
            guard !installed else { return }
            installed = true
            db.add(function: DatabaseFunction("hikyaku_claimed_message_id", argumentCount: 3, pure: true) { values in
                guard values.count == 3, let seed = Int64.fromDatabaseValue(values[0]), let milliseconds = Int64.fromDatabaseValue(values[1]),
                      let contact = Int64.fromDatabaseValue(values[2]) else { return nil }
                return messageID(CampaignClaim(seed: seed, milliseconds: milliseconds), contact)
            })
        }
    }

    static func markCampaignRows(_ campaign: Campaign, _ rows: [CampaignRowMark], state: CampaignRowMark.State,
                                 messageID: CampaignMessageIDMaker?, _ db: Database) throws {
        guard !rows.isEmpty else { return }
        let occurrence = campaign.occurrence ?? ""
        var rest = rows[...]
        if state == .queued {
            // Pending rows (with their variant) become queued uncounted by the trigger, and are counted here at once.
            var queued = 0
            var others: [CampaignRowMark] = []
            var single: [CampaignRowMark] = []
            if messageID != nil {
                let (marked, unmarked) = try markClaimedRanges(campaign, rows, db)
                queued += marked
                single = unmarked
            } else {
                single = rows
            }
            let queue = try db.cachedStatement(sql: """
                UPDATE campaign_recipient SET state = 'queued', message_id = ?
                WHERE campaign_id = ? AND occurrence = ? AND contact_id = ? AND state = 'pending' AND variant IS NOT NULL
                """)
            for row in single {
                try queue.execute(arguments: [row.messageID, campaign.id, occurrence, row.contactID])
                if db.changesCount > 0 { queued += 1 } else { others.append(row) }
            }
            if queued > 0 {
                try db.execute(sql: """
                    UPDATE campaign_count SET n = n - ? WHERE campaign_id = ? AND occurrence = ? AND state = 'pending' AND waiting = 0
                    """, arguments: [queued, campaign.id, occurrence])
                try db.execute(sql: """
                    INSERT INTO campaign_count (campaign_id, occurrence, state, waiting, n) VALUES (?, ?, 'queued', 0, ?)
                    ON CONFLICT DO UPDATE SET n = n + excluded.n
                    """, arguments: [campaign.id, occurrence, queued])
            }
            rest = others[...]
        }
        // Any other change (a row claimed by an older version, a skip) is counted by the trigger.
        let statement = try db.cachedStatement(sql: """
            UPDATE campaign_recipient SET state = ?, message_id = COALESCE(?, message_id)
            WHERE campaign_id = ? AND occurrence = ? AND contact_id = ?
            """)
        for row in rest {
            try statement.execute(arguments: [state.rawValue, row.messageID, campaign.id, occurrence, row.contactID])
        }
    }

    /// Marks queued, one statement per claim, the rows whose ids were made from their claim: each run of
    /// marks of one claim changes the pending rows between its first and last contact, their ids made by
    /// SQL from the claim (row by row, the ids' writing cost more than the rest of a batch's store work).
    /// Only when exactly the marked contacts changed is that kept; else (a row of an A/B test's rest given
    /// its variant meanwhile, say) it is undone and those marks are left for the row-by-row path.
    /// Returns how many rows were marked, and the marks left.
    static func markClaimedRanges(_ campaign: Campaign, _ rows: [CampaignRowMark], _ db: Database) throws
        -> (marked: Int, left: [CampaignRowMark]) {
        let update = try db.cachedStatement(sql: """
            UPDATE campaign_recipient SET state = 'queued', message_id = hikyaku_claimed_message_id(?, ?, contact_id)
            WHERE campaign_id = ? AND occurrence = ? AND contact_id BETWEEN ? AND ? AND state = 'pending' AND variant IS NOT NULL
            RETURNING contact_id
            """)
        var marked = 0
        var left: [CampaignRowMark] = []
        var start = rows.startIndex
        while start < rows.endIndex {
            var end = start + 1
            while end < rows.endIndex && rows[end].claim != nil && rows[end].claim == rows[start].claim { end += 1 }
            let run = rows[start..<end]
            start = end
            guard let claim = run.first?.claim, run.count > 1 else {
                left += run
                continue
            }
            let contacts = Set(run.map(\.contactID))
            guard let low = contacts.min(), let high = contacts.max() else { continue }
            var exact = false
            try db.inSavepoint {
                let changed = try Int64.fetchAll(update, arguments: [claim.seed, claim.milliseconds, campaign.id, campaign.occurrence ?? "",
                                                                     low, high])
                exact = changed.count == contacts.count && Set(changed) == contacts
                return exact ? .commit : .rollback
            }
            if exact { marked += contacts.count } else { left += run }
        }
        return (marked, left)
    }

    public func campaignProgress(_ campaign: Campaign) throws -> CampaignProgress {
        try database.read { db in try SQLiteStore.campaignProgress(campaign.id, occurrence: campaign.occurrence ?? "", db) }
    }

    public func campaignTotals(_ campaignID: Int64) throws -> CampaignProgress {
        try database.read { db in try SQLiteStore.campaignProgress(campaignID, occurrence: nil, db) }
    }

    static func campaignProgress(_ id: Int64, occurrence: String?, _ db: Database) throws -> CampaignProgress {
        var progress = CampaignProgress()
        for row in try Row.fetchAll(db, sql: """
            SELECT state, waiting, SUM(n) AS n FROM campaign_count
            WHERE campaign_id = ? AND (? IS NULL OR occurrence = ?) GROUP BY state, waiting
            """, arguments: [id, occurrence, occurrence]) {
            let count: Int = row["n"]
            progress.recipients += count
            switch (row["state"] as String, row["waiting"] as Bool) {
            case ("queued", _): progress.queued += count
            case ("skipped", _): progress.skipped += count
            case (_, true): progress.waitingForWinner += count
            default: progress.pending += count
            }
        }
        return progress
    }

    public func finishCampaignRun(_ campaign: Campaign, now: Date) throws {
        let zone = try timeZone(accountID: campaign.accountID)
        try database.write { db in
            // Read in the same transaction as the change: a winner chosen a moment ago adds pending rows.
            let progress = try SQLiteStore.campaignProgress(campaign.id, occurrence: campaign.occurrence ?? "", db)
            guard progress.pending == 0 else { return }
            // Every claimed row is queued or skipped: the claims are done with (the rest after a test starts anew).
            try db.execute(sql: "DELETE FROM campaign_claim WHERE campaign_id = ? AND occurrence = ?",
                           arguments: [campaign.id, campaign.occurrence ?? ""])
            let winner = try Int.fetchOne(db, sql: "SELECT winner FROM campaign WHERE id = ?", arguments: [campaign.id])
            if progress.waitingForWinner > 0 && winner == nil {
                // The wait counts from now.
                let wait = campaign.testWait
                try db.execute(sql: "UPDATE campaign SET state = 'testing', test_ends_at = COALESCE(test_ends_at, ?) WHERE id = ? AND state = 'sending'",
                               arguments: [now.timeIntervalSince1970 + wait, campaign.id])
                return
            }
            if let daily = campaign.definition.dailyAt {
                let next = Campaign.nextDailyRun(at: daily, after: now, in: zone)
                try db.execute(sql: "UPDATE campaign SET state = 'scheduled', next_run_at = ? WHERE id = ? AND state = 'sending'",
                               arguments: [next?.timeIntervalSince1970, campaign.id])
                return
            }
            try db.execute(sql: "UPDATE campaign SET state = 'sent' WHERE id = ? AND state = 'sending'", arguments: [campaign.id])
        }
    }

    @discardableResult
    public func chooseCampaignWinner(_ campaign: Campaign, winner: Int, decision: String) throws -> Bool {
        try database.write { db in
            try db.execute(sql: """
                UPDATE campaign SET winner = ?, decision = ?, state = CASE WHEN state = 'paused' THEN state ELSE 'sending' END,
                    paused_from = CASE WHEN state = 'paused' THEN 'sending' ELSE paused_from END
                WHERE id = ? AND winner IS NULL AND state IN ('testing', 'sending', 'paused')
                """, arguments: [winner, decision, campaign.id])
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "UPDATE campaign_recipient SET variant = ? WHERE campaign_id = ? AND occurrence = ? AND variant IS NULL",
                           arguments: [winner, campaign.id, campaign.occurrence ?? ""])
            return true
        }
    }

    public func campaignState(_ id: Int64) throws -> Campaign.State? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT state FROM campaign WHERE id = ?", arguments: [id]).flatMap(Campaign.State.init(rawValue:))
        }
    }

    public func noteCampaign(_ id: Int64, _ note: String?) throws {
        try database.write { db in try db.execute(sql: "UPDATE campaign SET note = ? WHERE id = ?", arguments: [note, id]) }
    }

    /// (Rows in a claim's range that still wait for an A/B test's winner were never sent, and are left out.)
    public func campaignMessageIDs(_ id: Int64, messageID: (CampaignClaim, Int64) -> String) throws -> [String] {
        try database.read { db in
            var ids = try String.fetchAll(db, sql: """
                SELECT message_id FROM campaign_recipient WHERE campaign_id = ? AND state IN ('queued', 'submitting') AND message_id IS NOT NULL
                """, arguments: [id])
            for row in try Row.fetchAll(db, sql: """
                SELECT r.contact_id, k.seed, k.claimed_at_ms FROM campaign_claim k
                JOIN campaign_recipient r ON r.campaign_id = k.campaign_id AND r.occurrence = k.occurrence AND r.state = 'pending'
                    AND r.variant IS NOT NULL AND r.contact_id > k.after_contact AND r.contact_id <= k.through_contact
                WHERE k.campaign_id = ?
                """, arguments: [id]) {
                ids.append(messageID(CampaignClaim(seed: row[1], milliseconds: row[2]), row[0]))
            }
            return ids
        }
    }

    static func campaign(_ row: Row) -> Campaign? {
        guard let state = Campaign.State(rawValue: row["state"]),
              let definition = Campaign.definition(row["definition"]) else {
            return nil
        }
        let date = { (name: String) -> Date? in (row[name] as Double?).map(Date.init(timeIntervalSince1970:)) }
        return Campaign(id: row["id"], accountID: row["account_id"], name: row["name"], state: state, definition: definition,
                        nextRunAt: date("next_run_at"), occurrence: row["occurrence"], testEndsAt: date("test_ends_at"), winner: row["winner"],
                        decision: row["decision"], note: row["note"], excluded: row["excluded"],
                        createdAt: date("created_at") ?? Date(timeIntervalSince1970: 0))
    }
}

public enum CampaignAction: String, Sendable {
    case pause, resume, cancel

    var past: String {
        switch self {
        case .pause: return "paused"
        case .resume: return "resumed"
        case .cancel: return "cancelled"
        }
    }
}
