import Foundation
import PostgresNIO

/// Campaigns on the shared store. The rows and their counts follow the
/// embedded store's design (`Campaigns.swift`); the differences:
///
/// - A statement that changes rows adjusts `campaign_count` itself (SQLite
///   has triggers for some changes); a run's counts are made again from its
///   rows after its start and after its winner is chosen.
/// - A claim and a mark lock the campaign's row, so that the runners of
///   several nodes never claim the same rows: the next batch starts after
///   the last claim's range, read under that lock.
/// - A claim records its node. A recovering claim takes back only this
///   node's earlier claims: another node's may be with its intake right now,
///   and only that node's queue index can tell which of their messages it
///   holds. A node that stops leaves its claimed rows pending until it (or
///   its data directory, under its name) runs again and settles them.
/// - Queued rows get their ids from Swift in one statement (`unnest`), not
///   from an SQL function.
extension PostgresStore: CampaignStore {
    public func createCampaign(name: String, definition: Campaign.Definition, accountID: Int64, schedule: Bool, now: Date) throws -> Campaign {
        let text = try Campaign.json(definition)
        let id: Int64 = try pool.transaction { transaction in
            _ = try transaction.query("SELECT id FROM account WHERE id = \(accountID) FOR UPDATE")
            let count: Int = try transaction.query("""
                SELECT count(*)::bigint AS campaigns FROM campaign WHERE account_id = \(accountID)
                """).records.first?.decode("campaigns") ?? 0
            guard count < Campaign.maximumPerAccount else { throw ContactError.notFound("room for another campaign") }
            guard let id: Int64 = try transaction.query("""
                INSERT INTO campaign (account_id, name, state, definition, created_at) VALUES (\(accountID), \(name), 'draft', \(text), \(now))
                RETURNING id
                """).records.first?.decode("id") else { throw PostgresStoreError.missingColumn("id") }
            return id
        }
        if schedule { try scheduleCampaign(id: id, accountID: accountID, now: now) }
        guard let campaign = try campaign(id: id, accountID: accountID) else { throw CampaignError.notFound(id) }
        return campaign
    }

    public func campaign(id: Int64, accountID: Int64?) throws -> Campaign? {
        try pool.query("""
            SELECT * FROM campaign WHERE id = \(id) AND (\(accountID)::bigint IS NULL OR account_id = \(accountID))
            """).records.first.flatMap(PostgresStore.campaign)
    }

    public func campaigns(accountID: Int64, limit: Int) throws -> [Campaign] {
        try pool.query("""
            SELECT * FROM campaign WHERE account_id = \(accountID) ORDER BY id DESC LIMIT \(max(0, limit))
            """).records.compactMap(PostgresStore.campaign)
    }

    public func activeCampaigns(now: Date) throws -> [Campaign] {
        try pool.query("""
            SELECT * FROM campaign WHERE state = 'sending'
                OR (state = 'scheduled' AND next_run_at <= \(now)) OR (state = 'testing' AND test_ends_at <= \(now))
            ORDER BY id
            """).records.compactMap(PostgresStore.campaign)
    }

    public func scheduleCampaign(id: Int64, accountID: Int64, now: Date) throws {
        guard let campaign = try campaign(id: id, accountID: accountID) else { throw CampaignError.notFound(id) }
        guard campaign.state == .draft else { throw CampaignError.invalidState(from: campaign.state, action: "scheduled") }
        let first = campaign.firstRun(now: now, in: try timeZone(accountID: accountID))
        _ = try pool.query("UPDATE campaign SET state = 'scheduled', next_run_at = \(first) WHERE id = \(id) AND state = 'draft'")
    }

    public func changeCampaign(id: Int64, accountID: Int64, action: CampaignAction) throws -> Campaign {
        try pool.transaction { transaction in
            guard let record = try transaction.query("""
                SELECT * FROM campaign WHERE id = \(id) AND account_id = \(accountID) FOR UPDATE
                """).records.first, let campaign = PostgresStore.campaign(record) else {
                throw CampaignError.notFound(id)
            }
            let pausedFrom = try record.decode("paused_from", as: String?.self).flatMap(Campaign.State.init(rawValue:))
            guard let next = Campaign.state(after: action, from: campaign.state, pausedFrom: pausedFrom) else {
                throw CampaignError.invalidState(from: campaign.state, action: action.past)
            }
            _ = try transaction.query("""
                UPDATE campaign SET state = \(next.rawValue),
                    paused_from = CASE WHEN \(next == .paused) THEN \(campaign.state.rawValue) ELSE paused_from END
                WHERE id = \(id)
                """)
            var changed = campaign
            changed.state = next
            return changed
        }
    }

    public func deleteCampaign(id: Int64, accountID: Int64) throws {
        if try pool.query("DELETE FROM campaign WHERE id = \(id) AND account_id = \(accountID)").changes == 0 {
            throw CampaignError.notFound(id)
        }
    }

    public func setTimeZone(_ zone: TimeZone, accountID: Int64, now: Date) throws {
        try pool.transaction { transaction in
            _ = try transaction.query("UPDATE account SET time_zone = \(zone.identifier) WHERE id = \(accountID)")
            for record in try transaction.query("""
                SELECT * FROM campaign WHERE account_id = \(accountID) AND state = 'scheduled' FOR UPDATE
                """).records {
                guard let campaign = PostgresStore.campaign(record), let daily = campaign.definition.dailyAt, campaign.definition.sendAt == nil,
                      let next = Campaign.nextDailyRun(at: daily, after: now, in: zone) else { continue }
                _ = try transaction.query("UPDATE campaign SET next_run_at = \(next) WHERE id = \(campaign.id)")
            }
        }
    }

    // MARK: Runs

    public func startCampaignRun(_ campaign: Campaign, occurrence: String, audience: SegmentQuery?, now: Date) throws -> CampaignProgress {
        let definition = campaign.definition
        return try pool.transaction { transaction in
            // Started only from `scheduled`: a pause or a cancel that came first stands. The row, locked, keeps
            // another node's runner from starting the same run at the same moment.
            guard try transaction.query("SELECT state FROM campaign WHERE id = \(campaign.id) FOR UPDATE").records.first?
                .decode("state", as: String.self) == Campaign.State.scheduled.rawValue else {
                return try PostgresStore.campaignProgress(campaign.id, occurrence: occurrence, transaction)
            }
            // A run over a million contacts is a few long statements, by design: not slow ones to cut off.
            _ = try transaction.query("SET LOCAL statement_timeout = 0")
            // The segment's arguments come first ($1…), then this statement's own.
            var binds = PostgresBindings()
            var conditions: [String] = []
            if let audience {
                binds = try PostgresStore.binds(audience).0
                conditions.append(audience.condition)
            }
            func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value) -> String {
                binds.append(value)
                return "$\(binds.count)"
            }
            conditions.insert("c.account_id = \(bind(campaign.accountID))", at: 0)
            if !definition.lists.isEmpty {
                conditions.append("EXISTS (SELECT 1 FROM contact_list_member m JOIN contact_list l ON l.id = m.list_id WHERE m.contact_id = c.id "
                                  + "AND l.account_id = c.account_id AND l.id = ANY(\(bind(definition.lists))))")
            }
            let audienceSQL = "FROM contact c WHERE " + conditions.joined(separator: " AND ")
            let total: Int = try transaction.queryWithoutDeadline(PostgresQuery(unsafeSQL: "SELECT count(*)::bigint AS total " + audienceSQL, binds: binds))
                .records.first?.decode("total") ?? 0
            let existing = try PostgresStore.campaignProgress(campaign.id, occurrence: occurrence, transaction).recipients
            let scope = definition.marketing ? "('all', 'marketing')" : "('all', 'transactional')"
            var excluded = "EXISTS (SELECT 1 FROM suppression s WHERE s.account_id = c.account_id AND s.address = c.address AND s.scope IN \(scope))"
            if let group = definition.unsubscribeGroup {
                excluded += " OR EXISTS (SELECT 1 FROM group_unsubscribe u JOIN unsubscribe_group g ON g.id = u.group_id "
                    + "WHERE u.group_id = \(bind(group)) AND g.account_id = c.account_id AND u.address = c.address)"
            }
            // A run started again (a daily run restarted the same day) adds no address it has already.
            if existing > 0 {
                excluded += " OR c.address IN (SELECT address FROM campaign_recipient WHERE campaign_id = \(bind(campaign.id)) "
                    + "AND occurrence = \(bind(occurrence)))"
            }
            let campaignParameter = bind(campaign.id)
            let occurrenceParameter = bind(occurrence)
            // Without a test every row is variant 0 as it is written.
            _ = try transaction.queryWithoutDeadline(PostgresQuery(unsafeSQL: """
                INSERT INTO campaign_recipient (campaign_id, occurrence, contact_id, address, variant)
                SELECT \(campaignParameter), \(occurrenceParameter), c.id, c.address, \(definition.abTest == nil ? "0" : "NULL::bigint")
                \(audienceSQL) AND NOT (\(excluded))
                ON CONFLICT DO NOTHING
                """, binds: binds))
            let rows = try PostgresStore.recount(campaign.id, occurrence: occurrence, transaction)
            if let test = definition.abTest {
                // The test share, split evenly at random; the rest waits for the winner (variant NULL).
                let unassigned: [Int64] = try transaction.queryWithoutDeadline("""
                    SELECT contact_id FROM campaign_recipient WHERE campaign_id = \(campaign.id) AND occurrence = \(occurrence)
                        AND variant IS NULL ORDER BY random()
                    """).records.map { try $0.decode("contact_id") }
                let testCount = min(unassigned.count, (rows * max(0, min(100, test.testPercent)) + 50) / 100)
                let chosen = Array(unassigned.prefix(testCount))
                let variants = chosen.indices.map { $0 % max(1, test.variants.count) }
                _ = try transaction.queryWithoutDeadline("""
                    UPDATE campaign_recipient r SET variant = v.variant
                    FROM unnest(\(chosen)::bigint[], \(variants)::bigint[]) AS v(contact_id, variant)
                    WHERE r.campaign_id = \(campaign.id) AND r.occurrence = \(occurrence) AND r.contact_id = v.contact_id
                    """)
            } else if existing > 0 {
                // Rows written by an earlier start of this run may still wait.
                _ = try transaction.query("""
                    UPDATE campaign_recipient SET variant = 0 WHERE campaign_id = \(campaign.id) AND occurrence = \(occurrence) AND variant IS NULL
                    """)
            }
            _ = try PostgresStore.recount(campaign.id, occurrence: occurrence, transaction)
            _ = try transaction.query("""
                UPDATE campaign SET state = 'sending', occurrence = \(occurrence), excluded = excluded + \(existing == 0 ? max(0, total - rows) : 0),
                    test_ends_at = NULL, winner = NULL, decision = NULL, note = NULL WHERE id = \(campaign.id)
                """)
            return try PostgresStore.campaignProgress(campaign.id, occurrence: occurrence, transaction)
        }
    }

    public func claimCampaignBatch(_ campaign: Campaign, limit: Int, recovering: Bool, queued: [CampaignRowMark],
                                   messageID: CampaignMessageIDMaker?, claim: CampaignClaim) throws -> [CampaignRecipient]? {
        let fields = try contactFields(accountID: campaign.accountID).filter { (1...ContactField.maximumPerAccount).contains($0.slot) }
        let occurrence = campaign.occurrence ?? ""
        return try pool.transaction { transaction in
            // The campaign's row, locked: claims (any node's) and marks of one campaign are one at a time.
            guard let now = try transaction.query("SELECT state, occurrence FROM campaign WHERE id = \(campaign.id) FOR UPDATE")
                .records.first else { return nil }
            try PostgresStore.markRows(campaign, queued, state: .queued, messageID: messageID, transaction)
            guard try now.decode("state", as: String.self) == Campaign.State.sending.rawValue,
                  try now.decode("occurrence", as: String?.self) ?? "" == occurrence else { return nil }
            let columns = fields.enumerated().map { index, field in
                ", c.\(field.kind == .text ? "t" : "n")\(field.slot) AS f\(index)"
            }.joined()
            // Where the run's claims end: rows after it are free, pending rows up to it were claimed before.
            let claimedThrough: Int64 = try transaction.query("""
                SELECT through_contact FROM campaign_claim WHERE campaign_id = \(campaign.id) AND occurrence = \(occurrence)
                ORDER BY through_contact DESC LIMIT 1
                """).records.first?.decode("through_contact") ?? Int64.min
            var batch: [CampaignRecipient] = []
            var fresh: [Int64] = []
            var skipped = true
            // Rows skipped make room: read on, so that an empty batch always means the run has nothing left.
            while batch.isEmpty && skipped {
                skipped = false
                var gone: [Int64] = []
                for pass in CampaignClaimPass.passes(recovering: recovering, claimedThrough: claimedThrough)
                    where batch.count < limit && pass.after < pass.through {
                    var covering: (through: Int64, claim: CampaignClaim)?
                    // Rows claimed earlier: only those of this node's own claims.
                    let own = pass.earlier && pass.state == "pending" ? """
                        AND EXISTS (SELECT 1 FROM campaign_claim k WHERE k.campaign_id = $1 AND k.occurrence = $2 AND k.node = $7
                            AND campaign_recipient.contact_id > k.after_contact AND campaign_recipient.contact_id <= k.through_contact)
                        """ : "AND $7::text IS NOT NULL"
                    let rows = try transaction.query(PostgresQuery(unsafeSQL: """
                        SELECT r.contact_id, r.address, r.variant, r.message_id, c.id AS present\(columns)
                        FROM (SELECT * FROM campaign_recipient WHERE campaign_id = $1 AND occurrence = $2 AND state = $3
                              AND variant IS NOT NULL AND contact_id > $4 AND contact_id <= $5 \(own) ORDER BY contact_id LIMIT $6) r
                        LEFT JOIN contact c ON c.id = r.contact_id
                        ORDER BY r.contact_id
                        """, binds: PostgresStore.binds(campaign.id, occurrence, pass.state, pass.after, pass.through, limit - batch.count,
                                                        nodeName)))
                        .records
                    for row in rows {
                        let contactID: Int64 = try row.decode("contact_id")
                        let present = try row.decode("present", as: Int64?.self) != nil
                        var rowClaim: CampaignClaim?
                        if pass.state == "pending" {
                            guard present || pass.earlier else {
                                gone.append(contactID)
                                skipped = true
                                continue
                            }
                            if pass.earlier {
                                // The claim whose range holds this contact (rows come in order: one lookup per claim).
                                if let known = covering, known.through >= contactID {
                                    rowClaim = known.claim
                                } else if let found = try transaction.query("""
                                    SELECT seed, claimed_at_ms, through_contact FROM campaign_claim
                                    WHERE campaign_id = \(campaign.id) AND occurrence = \(occurrence) AND through_contact >= \(contactID)
                                    ORDER BY through_contact LIMIT 1
                                    """).records.first {
                                    let claim = CampaignClaim(seed: try found.decode("seed"), milliseconds: try found.decode("claimed_at_ms"))
                                    covering = (try found.decode("through_contact"), claim)
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
                                let stored: ContactValue.PostgresColumnValue? = field.kind == .text
                                    ? try row.decode("f\(index)", as: String?.self).map { .text($0) }
                                    : try row.decode("f\(index)", as: Double?.self).map { .number($0) }
                                if let value = stored.flatMap({ ContactValue.fromPostgres($0, as: field.kind) }) { values[field.name] = value }
                            }
                        }
                        batch.append(CampaignRecipient(contactID: contactID, address: try row.decode("address"), variant: try row.decode("variant"),
                                                       messageID: try row.decode("message_id"), claim: rowClaim, fields: values,
                                                       contactGone: !present, claimedEarlier: pass.earlier))
                    }
                }
                // A pending row whose contact is gone is skipped (so the next read passes it).
                if !gone.isEmpty {
                    let changed = try transaction.query("""
                        UPDATE campaign_recipient SET state = 'skipped' WHERE campaign_id = \(campaign.id) AND occurrence = \(occurrence)
                            AND contact_id = ANY(\(gone)) AND state = 'pending'
                        """).changes
                    try PostgresStore.adjust(campaign.id, occurrence: occurrence, [("pending", false, -changed), ("skipped", false, changed)],
                                             transaction)
                }
            }
            if let last = fresh.last {
                _ = try transaction.query("""
                    INSERT INTO campaign_claim (campaign_id, occurrence, after_contact, through_contact, seed, claimed_at_ms, node)
                    VALUES (\(campaign.id), \(occurrence), \(claimedThrough), \(last), \(claim.seed), \(claim.milliseconds), \(nodeName))
                    """)
            }
            return batch
        }
    }

    public func markCampaignRows(_ campaign: Campaign, _ rows: [CampaignRowMark], state: CampaignRowMark.State,
                                 messageID: CampaignMessageIDMaker?) throws {
        guard !rows.isEmpty else { return }
        try pool.transaction { transaction in
            _ = try transaction.query("SELECT id FROM campaign WHERE id = \(campaign.id) FOR UPDATE")
            try PostgresStore.markRows(campaign, rows, state: state, messageID: messageID, transaction)
        }
    }

    /// Queued rows (pending ones with a variant) are marked by one statement with their ids, each a
    /// mark's own or made from its claim; any other change (a row claimed by an older version, a skip)
    /// by a second, which counts the rows by the state each leaves.
    static func markRows(_ campaign: Campaign, _ rows: [CampaignRowMark], state: CampaignRowMark.State,
                         messageID: CampaignMessageIDMaker?, _ transaction: PostgresTransaction) throws {
        guard !rows.isEmpty else { return }
        let occurrence = campaign.occurrence ?? ""
        var rest = rows
        if state == .queued {
            var contacts: [Int64] = []
            var ids: [String] = []
            for row in rows {
                guard let id = row.messageID ?? row.claim.flatMap({ claim in messageID.map { $0(claim, row.contactID) } }) else { continue }
                contacts.append(row.contactID)
                ids.append(id)
            }
            let changed = Set(try transaction.query("""
                UPDATE campaign_recipient r SET state = 'queued', message_id = m.message_id
                FROM unnest(\(contacts)::bigint[], \(ids)::text[]) AS m(contact_id, message_id)
                WHERE r.campaign_id = \(campaign.id) AND r.occurrence = \(occurrence) AND r.contact_id = m.contact_id
                    AND r.state = 'pending' AND r.variant IS NOT NULL
                RETURNING r.contact_id
                """).records.map { try $0.decode("contact_id", as: Int64.self) })
            try adjust(campaign.id, occurrence: occurrence, [("pending", false, -changed.count), ("queued", false, changed.count)],
                       transaction)
            rest = rows.filter { !changed.contains($0.contactID) }
        }
        guard !rest.isEmpty else { return }
        let contacts = rest.map(\.contactID)
        let before = try transaction.query("""
            SELECT state, variant IS NULL AS waiting, count(*)::bigint AS n FROM campaign_recipient
            WHERE campaign_id = \(campaign.id) AND occurrence = \(occurrence) AND contact_id = ANY(\(contacts)) AND state <> \(state.rawValue)
            GROUP BY state, variant IS NULL
            """).records
        _ = try transaction.query("""
            UPDATE campaign_recipient r SET state = \(state.rawValue), message_id = CASE WHEN m.given THEN m.message_id ELSE r.message_id END
            FROM unnest(\(contacts)::bigint[], \(rest.map { $0.messageID ?? "" })::text[], \(rest.map { $0.messageID != nil })::boolean[])
                AS m(contact_id, message_id, given)
            WHERE r.campaign_id = \(campaign.id) AND r.occurrence = \(occurrence) AND r.contact_id = m.contact_id
            """)
        var changes: [(String, Bool, Int)] = []
        for group in before {
            let count: Int = try group.decode("n")
            let waiting: Bool = try group.decode("waiting")
            changes.append((try group.decode("state"), waiting, -count))
            changes.append((state.rawValue, waiting, count))
        }
        try adjust(campaign.id, occurrence: occurrence, changes, transaction)
    }

    public func campaignProgress(_ campaign: Campaign) throws -> CampaignProgress {
        try pool.transaction { try PostgresStore.campaignProgress(campaign.id, occurrence: campaign.occurrence ?? "", $0) }
    }

    public func campaignTotals(_ campaignID: Int64) throws -> CampaignProgress {
        try pool.transaction { try PostgresStore.campaignProgress(campaignID, occurrence: nil, $0) }
    }

    public func finishCampaignRun(_ campaign: Campaign, now: Date) throws {
        let zone = try timeZone(accountID: campaign.accountID)
        let occurrence = campaign.occurrence ?? ""
        try pool.transaction { transaction in
            // Read under the campaign's lock: a winner chosen a moment ago adds pending rows.
            guard let record = try transaction.query("SELECT winner FROM campaign WHERE id = \(campaign.id) FOR UPDATE").records.first else {
                return
            }
            let progress = try PostgresStore.campaignProgress(campaign.id, occurrence: occurrence, transaction)
            guard progress.pending == 0 else { return }
            // Every claimed row is queued or skipped: the claims are done with (the rest after a test starts anew).
            _ = try transaction.query("DELETE FROM campaign_claim WHERE campaign_id = \(campaign.id) AND occurrence = \(occurrence)")
            let winner: Int64? = try record.decode("winner")
            if progress.waitingForWinner > 0 && winner == nil {
                _ = try transaction.query("""
                    UPDATE campaign SET state = 'testing', test_ends_at = coalesce(test_ends_at, \(now.addingTimeInterval(campaign.testWait)))
                    WHERE id = \(campaign.id) AND state = 'sending'
                    """)
                return
            }
            if let daily = campaign.definition.dailyAt {
                let next = Campaign.nextDailyRun(at: daily, after: now, in: zone)
                _ = try transaction.query("""
                    UPDATE campaign SET state = 'scheduled', next_run_at = \(next) WHERE id = \(campaign.id) AND state = 'sending'
                    """)
                return
            }
            _ = try transaction.query("UPDATE campaign SET state = 'sent' WHERE id = \(campaign.id) AND state = 'sending'")
        }
    }

    @discardableResult
    public func chooseCampaignWinner(_ campaign: Campaign, winner: Int, decision: String) throws -> Bool {
        try pool.transaction { transaction in
            guard try transaction.query("""
                UPDATE campaign SET winner = \(winner), decision = \(decision),
                    state = CASE WHEN state = 'paused' THEN state ELSE 'sending' END,
                    paused_from = CASE WHEN state = 'paused' THEN 'sending' ELSE paused_from END
                WHERE id = \(campaign.id) AND winner IS NULL AND state IN ('testing', 'sending', 'paused')
                RETURNING id
                """).records.first != nil else { return false }
            let occurrence = campaign.occurrence ?? ""
            _ = try transaction.query("""
                UPDATE campaign_recipient SET variant = \(winner) WHERE campaign_id = \(campaign.id) AND occurrence = \(occurrence) AND variant IS NULL
                """)
            _ = try PostgresStore.recount(campaign.id, occurrence: occurrence, transaction)
            return true
        }
    }

    public func campaignState(_ id: Int64) throws -> Campaign.State? {
        try pool.query("SELECT state FROM campaign WHERE id = \(id)").records.first.flatMap {
            Campaign.State(rawValue: try $0.decode("state"))
        }
    }

    public func noteCampaign(_ id: Int64, _ note: String?) throws {
        _ = try pool.query("UPDATE campaign SET note = \(note) WHERE id = \(id)")
    }

    public func campaignMessageIDs(_ id: Int64, messageID: (CampaignClaim, Int64) -> String) throws -> [String] {
        var ids: [String] = try pool.query("""
            SELECT message_id FROM campaign_recipient WHERE campaign_id = \(id) AND state IN ('queued', 'submitting') AND message_id IS NOT NULL
            """).records.map { try $0.decode("message_id") }
        for record in try pool.query("""
            SELECT r.contact_id, k.seed, k.claimed_at_ms FROM campaign_claim k
            JOIN campaign_recipient r ON r.campaign_id = k.campaign_id AND r.occurrence = k.occurrence AND r.state = 'pending'
                AND r.variant IS NOT NULL AND r.contact_id > k.after_contact AND r.contact_id <= k.through_contact
            WHERE k.campaign_id = \(id)
            """).records {
            ids.append(messageID(CampaignClaim(seed: try record.decode("seed"), milliseconds: try record.decode("claimed_at_ms")),
                                 try record.decode("contact_id")))
        }
        return ids
    }

    // MARK: Counts

    static func campaignProgress(_ id: Int64, occurrence: String?, _ transaction: PostgresTransaction) throws -> CampaignProgress {
        var progress = CampaignProgress()
        for record in try transaction.query("""
            SELECT state, waiting, sum(n)::bigint AS n FROM campaign_count
            WHERE campaign_id = \(id) AND (\(occurrence)::text IS NULL OR occurrence = \(occurrence)) GROUP BY state, waiting
            """).records {
            let count: Int = try record.decode("n")
            progress.recipients += count
            switch (try record.decode("state", as: String.self), try record.decode("waiting", as: Bool.self)) {
            case ("queued", _): progress.queued += count
            case ("skipped", _): progress.skipped += count
            case (_, true): progress.waitingForWinner += count
            default: progress.pending += count
            }
        }
        return progress
    }

    /// A run's counts made again from its rows; returns how many rows it has.
    static func recount(_ id: Int64, occurrence: String, _ transaction: PostgresTransaction) throws -> Int {
        _ = try transaction.query("DELETE FROM campaign_count WHERE campaign_id = \(id) AND occurrence = \(occurrence)")
        _ = try transaction.query("""
            INSERT INTO campaign_count (campaign_id, occurrence, state, waiting, n)
            SELECT campaign_id, occurrence, state, variant IS NULL, count(*) FROM campaign_recipient
            WHERE campaign_id = \(id) AND occurrence = \(occurrence) GROUP BY campaign_id, occurrence, state, variant IS NULL
            """)
        return try campaignProgress(id, occurrence: occurrence, transaction).recipients
    }

    /// Adds `delta` rows to each (state, waiting) count of a run.
    static func adjust(_ id: Int64, occurrence: String, _ changes: [(state: String, waiting: Bool, delta: Int)],
                       _ transaction: PostgresTransaction) throws {
        let changes = changes.filter { $0.delta != 0 }
        guard !changes.isEmpty else { return }
        _ = try transaction.query("""
            INSERT INTO campaign_count (campaign_id, occurrence, state, waiting, n)
            SELECT \(id), \(occurrence), state, waiting, sum(delta) FROM unnest(\(changes.map(\.state))::text[], \(changes.map(\.waiting))::boolean[],
                \(changes.map(\.delta))::bigint[]) AS change(state, waiting, delta)
            GROUP BY state, waiting
            ON CONFLICT (campaign_id, occurrence, state, waiting) DO UPDATE SET n = campaign_count.n + excluded.n
            """)
    }

    static func campaign(_ record: PostgresRecord) -> Campaign? {
        guard let state = (try? record.decode("state", as: String.self)).flatMap(Campaign.State.init(rawValue:)),
              let definition = (try? record.decode("definition", as: String.self)).flatMap(Campaign.definition) else {
            return nil
        }
        return try? Campaign(id: record.decode("id"), accountID: record.decode("account_id"), name: record.decode("name"), state: state,
                             definition: definition, nextRunAt: record.decode("next_run_at"), occurrence: record.decode("occurrence"),
                             testEndsAt: record.decode("test_ends_at"), winner: record.decode("winner"), decision: record.decode("decision"),
                             note: record.decode("note"), excluded: record.decode("excluded"), createdAt: record.decode("created_at"))
    }
}
