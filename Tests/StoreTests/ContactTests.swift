import Foundation
import GRDB
import Testing
@testable import Store

struct ContactTests {
    func makeStore() throws -> (SQLiteStore, Int64, Int64) {
        let path = NSTemporaryDirectory() + "hikyaku-contacts-" + UUID().uuidString + ".sqlite"
        let store = try SQLiteStore(path: path, hashParameters: PasswordHash.Parameters(rounds: 1 << 10, blockSize: 8, parallelism: 1))
        let acme = try store.createAccount(name: "acme", domains: ["acme.example"]).account.id
        let other = try store.createAccount(name: "other", domains: ["other.example"]).account.id
        for (name, kind) in [("氏名", ContactField.Kind.text), ("誕生日", .date), ("ポイント", .number), ("会員", .boolean)] {
            try store.addContactField(ContactField(name: name, kind: kind), accountID: acme)
        }
        return (store, acme, other)
    }

    func count(_ store: SQLiteStore, _ account: Int64, _ json: String, now: Date = Date()) throws -> Int {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        return try store.segmentCount(try store.segmentQuery(try SegmentExpression(json: value), accountID: account, now: now), accountID: account)
    }

    @Test func fieldsAreTypedAndNamedSafely() throws {
        let (store, acme, other) = try makeStore()
        #expect(throws: ContactError.invalidFieldName("email")) { try store.addContactField(ContactField(name: "email", kind: .text), accountID: acme) }
        #expect(throws: ContactError.invalidFieldName("a\"b")) { try store.addContactField(ContactField(name: "a\"b", kind: .text), accountID: acme) }
        #expect(throws: ContactError.fieldExists("氏名")) { try store.addContactField(ContactField(name: "氏名", kind: .text), accountID: acme) }
        #expect(throws: ContactError.unknownField("氏名")) {
            try store.upsertContact(address: "a@x.jp", fields: ["氏名": .text("x")], accountID: other)
        }
        #expect(throws: ContactError.invalidValue(field: "ポイント", kind: .number)) {
            try store.upsertContact(address: "a@x.jp", fields: ["ポイント": .text("x")], accountID: acme)
        }
        try store.upsertContact(address: "Taro@X.jp", fields: ["氏名": .text("山田"), "ポイント": .number(10)], accountID: acme)
        let changed = try store.upsertContact(address: "taro@x.jp", fields: ["ポイント": .number(20.5), "会員": .boolean(true)], accountID: acme)
        #expect(changed.fields == ["氏名": .text("山田"), "ポイント": .number(20.5), "会員": .boolean(true)], "new values merge over the old")
        #expect(try store.contactCount(accountID: acme) == 1)
        #expect(try store.contact(address: "taro@x.jp", accountID: other) == nil)
        try store.deleteContactField(named: "ポイント", accountID: acme)
        #expect(try store.contact(address: "taro@x.jp", accountID: acme)?.fields["ポイント"] == nil)
        #expect(try store.deleteContact(address: "TARO@x.jp", accountID: acme))
        #expect(try store.contact(address: "taro@x.jp", accountID: acme) == nil)
    }

    @Test func valuesAreReadAsSpreadsheetsWriteThem() {
        #expect(ContactValue.parse("1990/4/1", as: .date) == .date("1990-04-01"))
        #expect(ContactValue.parse("19900401", as: .date) == .date("1990-04-01"))
        #expect(ContactValue.parse("1990-02-30", as: .date) == nil)
        #expect(ContactValue.parse("2024-02-29", as: .date) == .date("2024-02-29"))
        #expect(ContactValue.parse("1,200", as: .number) == .number(1200))
        #expect(ContactValue.parse("1e400", as: .number) == nil)
        #expect(ContactValue.parse("はい", as: .boolean) == .boolean(true))
        #expect(ContactValue.parse("maybe", as: .boolean) == nil)
    }

    @Test func segmentsCompareByTypeAndNeverSplice() throws {
        let (store, acme, other) = try makeStore()
        let now = try #require(ISO8601DateFormatter().date(from: "2026-04-10T03:00:00Z"))
        for (index, (birthday, points)) in [("1990-04-10", 1500.0), ("1985-04-01", 900.0), ("1970-05-10", 3000.0), ("2000-04-30", 1000.0)].enumerated() {
            try store.upsertContact(address: "c\(index)@x.jp", fields: ["誕生日": .date(birthday), "ポイント": .number(points),
                                                                       "氏名": .text("名前\(index)")], accountID: acme)
        }
        try store.upsertContact(address: "nofields@x.jp", fields: [:], accountID: acme)
        try store.upsertContact(address: "c0@x.jp", fields: [:], accountID: other)
        #expect(try count(store, acme, #"{"all":[{"field":"誕生日","part":"month","op":"eq","value":"this_month"},{"field":"ポイント","op":"gte","value":1000}]}"#, now: now) == 2)
        #expect(try count(store, acme, #"{"field":"誕生日","part":"month_day","op":"eq","value":"today"}"#, now: now) == 1)
        #expect(try count(store, acme, #"{"field":"ポイント","op":"in","value":[900,3000]}"#) == 2)
        #expect(try count(store, acme, #"{"field":"氏名","op":"contains","value":"%"}"#) == 0, "% is a letter, not a wildcard")
        #expect(try count(store, acme, #"{"field":"氏名","op":"starts_with","value":"名前"}"#) == 4)
        #expect(try count(store, acme, #"{"not":{"field":"ポイント","op":"gte","value":1000}}"#) == 2, "a missing value is not ≥ 1000")
        #expect(try count(store, acme, #"{"field":"ポイント","op":"missing"}"#) == 1)
        #expect(try count(store, acme, #"{"field":"email","op":"eq","value":"x' OR 1=1 --"}"#) == 0)
        #expect(try count(store, acme, #"{"field":"created_at","op":"within_last_days","value":1}"#) == 5)
        #expect(try count(store, acme, #"{"activity":"opened","within_days":30}"#) == 0)
        try store.recordContactActivity([ContactActivity(accountID: acme, address: "c1@x.jp", kind: .opened, at: Date())], through: 7)
        #expect(try count(store, acme, #"{"activity":"opened","within_days":30}"#) == 1)
        #expect(try store.contactActivityCursor() == 7)
        for bad in [#"{"field":"誕生月","op":"eq","value":1}"#, #"{"field":"ポイント","op":"eq","value":"many"}"#,
                    #"{"field":"氏名","part":"month","op":"eq","value":1}"#, #"{"all":[]}"#, #"{"field":"氏名","op":"like","value":"x"}"#,
                    String(repeating: #"{"not":"#, count: 20) + #"{"list":1}"# + String(repeating: "}", count: 20)] {
            let value = try JSONDecoder().decode(JSONValue.self, from: Data(bad.utf8))
            #expect(throws: SegmentError.self) {
                _ = try store.segmentQuery(try SegmentExpression(json: value), accountID: acme, now: now)
            }
        }
    }

    /// An A/B test of two variants (winner chosen by hand) over the account's contacts, its run started.
    func startedABTest(_ store: SQLiteStore, accountID: Int64, testPercent: Int) throws -> Campaign {
        var tested = Campaign.Definition(from: "news@acme.example", content: Campaign.Content(subject: "s", text: "x"))
        tested.abTest = Campaign.ABTest(variants: [Campaign.Content(subject: "a"), Campaign.Content(subject: "b")], testPercent: testPercent,
                                        criterion: .manual, waitSeconds: 60)
        let test = try store.createCampaign(name: "t", definition: tested, accountID: accountID, schedule: true, now: Date())
        _ = try store.startCampaignRun(test, occurrence: "once", audience: nil, now: Date())
        return try #require(try store.campaign(id: test.id, accountID: accountID))
    }

    /// Batches claimed one after another never share a row; a refused batch's rows come back, with their
    /// claim, only to a recovering claim; a claim writes one row, not one per recipient; progress is counted
    /// and agrees with the rows.
    @Test func claimsNeverShareARowAndProgressIsCounted() throws {
        let (store, acme, _) = try makeStore()
        for index in 0..<25 {
            try store.upsertContact(address: "c\(index)@x.jp", fields: ["ポイント": .number(Double(index))], accountID: acme)
        }
        let definition = Campaign.Definition(from: "news@acme.example", content: Campaign.Content(subject: "s", text: "x"))
        var campaign = try store.createCampaign(name: "c", definition: definition, accountID: acme, schedule: true, now: Date())
        _ = try store.startCampaignRun(campaign, occurrence: "once", audience: nil, now: Date())
        campaign = try #require(try store.campaign(id: campaign.id, accountID: acme))
        #expect(try store.campaignProgress(campaign) == CampaignProgress(recipients: 25, pending: 25))
        var made: Int64 = 0
        func claim() -> CampaignClaim {
            made += 1
            return CampaignClaim(seed: made, milliseconds: 1_000 * made)
        }
        let firstClaim = claim(), secondClaim = claim()
        let first = try #require(try store.claimCampaignBatch(campaign, limit: 10, recovering: true, claim: firstClaim))
        let second = try #require(try store.claimCampaignBatch(campaign, limit: 10, recovering: false, claim: secondClaim))
        #expect(first.count == 10 && second.count == 10)
        #expect(Set(first.map(\.contactID)).isDisjoint(with: second.map(\.contactID)))
        #expect(first.allSatisfy { !$0.claimedEarlier && $0.claim == firstClaim } && first[0].fields["ポイント"] == .number(0))
        #expect(second.allSatisfy { $0.claim == secondClaim })
        let claims = try store.database.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM campaign_claim") }
        #expect(claims == 2, "one row per batch")
        try store.markCampaignRows(campaign, first.map { CampaignRowMark($0.contactID, messageID: "m\($0.contactID)") }, state: .queued)
        #expect(try store.claimCampaignBatch(campaign, limit: 10, recovering: false, claim: claim())?.count == 5,
                "without recovering, the second batch's rows (still with the intake) are left alone")
        let again = try #require(try store.claimCampaignBatch(campaign, limit: 20, recovering: true, claim: claim()))
        #expect(again.prefix(10).map(\.contactID) == second.map(\.contactID) && again.prefix(10).map(\.claim) == second.map(\.claim),
                "a row claimed earlier comes back with the claim its id is made from")
        #expect(again.allSatisfy(\.claimedEarlier) && again.count == 15)
        #expect(try store.campaignProgress(campaign) == CampaignProgress(recipients: 25, pending: 15, queued: 10))
        let rows = try store.database.read { db in
            try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n, COUNT(message_id) AS ids FROM campaign_recipient GROUP BY state").map {
                ($0["state"] as String, $0["n"] as Int, $0["ids"] as Int)
            }
        }
        #expect(rows.map(\.0) == ["pending", "queued"] && rows.map(\.1) == [15, 10] && rows.map(\.2) == [0, 10],
                "a queued row keeps the id its message was stored under")
        // A cancelled campaign's mail is found by the ids written down and by those its claims make.
        let ids = try store.campaignMessageIDs(campaign.id) { claim, contact in "\(claim.seed):\(contact)" }
        #expect(Set(ids) == Set(first.map { "m\($0.contactID)" } + again.map { "\($0.claim?.seed ?? 0):\($0.contactID)" }))
        // Rows of an A/B test's rest inside a claim's range were never sent: cancelling does not look for them.
        let test = try startedABTest(store, accountID: acme, testPercent: 20)
        let testRows = try #require(try store.claimCampaignBatch(test, limit: 100, recovering: true, claim: claim()))
        #expect(testRows.count == 5 && testRows.allSatisfy { $0.claim != nil })
        #expect(try store.campaignMessageIDs(test.id) { claim, contact in "\(claim.seed):\(contact)" }.count == 5)
        // Paused: nothing more is claimed (nil, not an empty batch, which would end the run).
        campaign = try store.changeCampaign(id: campaign.id, accountID: acme, action: .pause)
        #expect(try store.claimCampaignBatch(campaign, limit: 10, recovering: true, claim: claim()) == nil)
        try store.deleteCampaign(id: campaign.id, accountID: acme)
        try store.deleteCampaign(id: test.id, accountID: acme)
        #expect(try store.database.read { try Int.fetchOne($0, sql: "SELECT COALESCE(SUM(n), 0) FROM campaign_count") } == 0)
        #expect(try store.database.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM campaign_claim") } == 0)
    }

    /// A claim's rows marked queued by one statement get the ids made from their claim; when more rows than
    /// those changed (an A/B test's rest given its winner while a test batch was with the intake), that is
    /// undone and the marked rows alone become queued, row by row.
    @Test func aClaimsRowsAreMarkedAtOnceOnlyWhenExactlyThoseChange() throws {
        let (store, acme, _) = try makeStore()
        for index in 0..<30 { _ = try store.upsertContact(address: "m\(index)@x.jp", fields: [:], accountID: acme) }
        let maker: CampaignMessageIDMaker = { claim, contact in "\(claim.seed)-\(contact)" }
        let ids = { (campaign: Int64) in
            try store.database.read { db in
                try Row.fetchAll(db, sql: "SELECT contact_id, state, message_id FROM campaign_recipient WHERE campaign_id = ? ORDER BY contact_id",
                                 arguments: [campaign]).map { ($0["contact_id"] as Int64, $0["state"] as String, $0["message_id"] as String?) }
            }
        }
        var plain = try store.createCampaign(name: "p", definition: Campaign.Definition(from: "news@acme.example",
                                             content: Campaign.Content(subject: "s", text: "x")), accountID: acme, schedule: true, now: Date())
        _ = try store.startCampaignRun(plain, occurrence: "once", audience: nil, now: Date())
        plain = try #require(try store.campaign(id: plain.id, accountID: acme))
        let claim = CampaignClaim(seed: 7, milliseconds: 1_000)
        let rows = try #require(try store.claimCampaignBatch(plain, limit: 10, recovering: false, claim: claim))
        let marks = rows.map { CampaignRowMark($0.contactID, messageID: maker(claim, $0.contactID), claim: $0.claim) }
        try store.markCampaignRows(plain, marks, state: .queued, messageID: maker)
        let plainRows = try ids(plain.id)
        #expect(plainRows.filter { $0.1 == "queued" }.map(\.0) == rows.map(\.contactID))
        #expect(plainRows.filter { $0.1 == "queued" }.allSatisfy { $0.2 == maker(claim, $0.0) })
        #expect(try store.campaignProgress(plain) == CampaignProgress(recipients: 30, pending: 20, queued: 10))

        let test = try startedABTest(store, accountID: acme, testPercent: 50)
        let testClaim = CampaignClaim(seed: 8, milliseconds: 2_000)
        let testRows = try #require(try store.claimCampaignBatch(test, limit: 100, recovering: false, claim: testClaim))
        #expect(testRows.count == 15)
        #expect(try store.chooseCampaignWinner(test, winner: 1, decision: "by hand, while the test batch is out"))
        try store.markCampaignRows(test, testRows.map { CampaignRowMark($0.contactID, messageID: maker(testClaim, $0.contactID), claim: $0.claim) },
                                   state: .queued, messageID: maker)
        let testState = try ids(test.id)
        #expect(testState.filter { $0.1 == "queued" }.map(\.0) == testRows.map(\.contactID), "the rest given its winner stays pending")
        #expect(testState.filter { $0.1 == "queued" }.allSatisfy { $0.2 == maker(testClaim, $0.0) })
        #expect(testState.filter { $0.1 == "pending" }.count == 15 && testState.filter { $0.1 == "pending" }.allSatisfy { $0.2 == nil })
        #expect(try store.campaignProgress(test) == CampaignProgress(recipients: 30, pending: 15, queued: 15))
    }

    @Test func anImportAppliesAllOrNothing() throws {
        let (store, acme, other) = try makeStore()
        let first = try store.beginContactImport(accountID: acme, listID: nil)
        let slot = try #require(try store.contactFields(accountID: acme).first { $0.name == "ポイント" }?.slot)
        try store.stageContactRows(importID: first, slots: [slot], rows: [("a@x.jp", [.number(1)]), ("a@x.jp", [.number(2)])],
                                   errors: [ContactImport.RowError(line: 3, message: "bad")], invalid: 1, rowsRead: 3)
        let done = try store.finishContactImport(importID: first, accountID: acme)
        #expect(done.state == .done && done.applied == 1 && done.rowsInvalid == 1 && done.errors.map(\.line) == [3])
        #expect(try store.contact(address: "a@x.jp", accountID: acme)?.fields["ポイント"] == .number(2), "a later row wins")
        let second = try store.beginContactImport(accountID: acme, listID: nil)
        try store.stageContactRows(importID: second, slots: [], rows: [("b@x.jp", [])], errors: [], invalid: 0, rowsRead: 1)
        #expect(throws: ContactError.importRunning(thisAccount: true)) { _ = try store.beginContactImport(accountID: acme, listID: nil) }
        #expect(throws: ContactError.importRunning(thisAccount: false)) {
            _ = try store.beginContactImport(accountID: other, listID: nil, maximumRunning: 1)
        }
        #expect(try store.abandonUnfinishedContactImports() == 1)
        // A field deleted while an import runs ends it: its staged values would reach the field made next in its slot.
        let third = try store.beginContactImport(accountID: acme, listID: nil)
        try store.stageContactRows(importID: third, slots: [slot], rows: [("c@x.jp", [.number(9)])], errors: [], invalid: 0, rowsRead: 1)
        try store.deleteContactField(named: "ポイント", accountID: acme)
        try store.addContactField(ContactField(name: "会員番号", kind: .number), accountID: acme)
        #expect(try store.contactFields(accountID: acme).first { $0.name == "会員番号" }?.slot == slot, "the slot is reused")
        #expect(throws: ContactError.self) { _ = try store.finishContactImport(importID: third, accountID: acme) }
        #expect(try store.contactImport(id: third)?.state == .failed)
        #expect(try store.contact(address: "c@x.jp", accountID: acme) == nil)
        #expect(try store.contact(address: "a@x.jp", accountID: acme)?.fields["会員番号"] == nil, "the old field's values are gone")
        #expect(try store.contactImport(id: second)?.state == .failed)
        #expect(try store.contact(address: "b@x.jp", accountID: acme) == nil, "an interrupted import applies nothing")
    }
}
