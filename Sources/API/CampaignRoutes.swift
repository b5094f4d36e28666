import Foundation
import Hummingbird
import MIME
import NIOCore
import Spool
import Store

/// `/v1/campaigns`: create, schedule, pause, resume, cancel, choose an A/B
/// winner by hand, and the report (JSON and CSV). Sending is the runner's.
struct CampaignRoutes: Sendable {
    let services: APIServices

    struct ContentInput: Decodable, Sendable {
        var fromName: String?
        var subject: String?
        var text: String?
        var html: String?
        var template: String?
        var delayMinutes: Int?

        var content: Campaign.Content {
            Campaign.Content(fromName: fromName, subject: subject, text: text, html: html, template: template, delayMinutes: delayMinutes)
        }
    }

    struct ABTestInput: Decodable, Sendable {
        var variants: [ContentInput]
        var testPercent: Int?
        var criterion: String?
        var waitMinutes: Int?
        /// Seconds instead of minutes (a short test).
        var waitSeconds: Int?
    }

    struct CampaignInput: Decodable, Sendable {
        var name: String
        var from: String
        var fromName: String?
        var replyTo: String?
        var subject: String?
        var text: String?
        var html: String?
        var template: String?
        var segmentId: Int64?
        var segment: JSONValue?
        var lists: [Int64]?
        var marketing: Bool?
        var unsubscribeGroup: Int64?
        var trackOpens: Bool?
        var trackClicks: Bool?
        var tags: [String]?
        var sendAt: FlexibleDate?
        var dailyAt: String?
        var abTest: ABTestInput?
        /// false: saved as a draft, scheduled later with `/schedule`.
        var schedule: Bool?
    }

    struct WinnerInput: Decodable, Sendable {
        var variant: String
    }

    func register(on routes: Routes) {
        routes.get("/v1/campaigns") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let campaigns = try store { try services.store.campaigns(accountID: call.account.id) }
            return APIJSON.response(object: ["campaigns": campaigns.map { CampaignRoutes.object($0, progress: nil) }])
        }
        routes.post("/v1/campaigns") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(CampaignInput.self, from: call.body)
            let definition = try definition(input, account: call.account)
            let campaign = try store {
                try services.store.createCampaign(name: input.name, definition: definition, accountID: call.account.id,
                                                  schedule: input.schedule ?? true)
            }
            services.campaignBell.ring()
            return APIJSON.response(object: CampaignRoutes.object(campaign, progress: nil), status: .created)
        }
        routes.get("/v1/campaigns/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let campaign = try campaign(context, account: call.account.id)
            let progress = try store { try services.store.campaignTotals(campaign.id) }
            return APIJSON.response(object: CampaignRoutes.object(campaign, progress: progress))
        }
        routes.delete("/v1/campaigns/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let campaign = try campaign(context, account: call.account.id)
            guard [.draft, .sent, .cancelled].contains(campaign.state) else {
                throw APIError(.conflict, "invalid_state", "cancel the campaign before deleting it", ses: "ConflictException")
            }
            try store { try services.store.deleteCampaign(id: campaign.id, accountID: call.account.id) }
            return Response(status: .noContent)
        }
        routes.post("/v1/campaigns/:id/schedule") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let campaign = try campaign(context, account: call.account.id)
            try store { try services.store.scheduleCampaign(id: campaign.id, accountID: call.account.id) }
            services.campaignBell.ring()
            return APIJSON.response(object: CampaignRoutes.object(try self.campaign(context, account: call.account.id), progress: nil))
        }
        for action in [CampaignAction.pause, .resume, .cancel] {
            routes.post("/v1/campaigns/:id/\(action.rawValue)") { request, context in
                let call = try await services.gate.open(request, context: context, scope: .admin)
                let campaign = try campaign(context, account: call.account.id)
                let changed = try store { try services.store.changeCampaign(id: campaign.id, accountID: call.account.id, action: action) }
                services.campaignBell.ring()
                let cancelledMessages = action == .cancel ? await withdraw(campaign) : 0
                var object = CampaignRoutes.object(changed, progress: nil)
                if action == .cancel { object["messages_cancelled"] = cancelledMessages }
                return APIJSON.response(object: object)
            }
        }
        routes.post("/v1/campaigns/:id/winner") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let campaign = try campaign(context, account: call.account.id)
            let input = try APIJSON.decode(WinnerInput.self, from: call.body)
            guard let test = campaign.definition.abTest,
                  let index = test.variants.indices.first(where: { Campaign.variantName($0) == input.variant.uppercased() }) else {
                throw APIError.badRequest("variant must name one of the campaign's A/B variants (A, B, …)", field: "variant")
            }
            guard campaign.winner == nil, campaign.state == .testing || campaign.state == .sending || campaign.state == .paused else {
                throw APIError(.conflict, "invalid_state", "the campaign's winner is already chosen or it has no test running",
                               ses: "ConflictException")
            }
            _ = try store { try services.store.chooseCampaignWinner(campaign, winner: index, decision: "chosen by hand: variant \(input.variant.uppercased())") }
            services.campaignBell.ring()
            return APIJSON.response(object: CampaignRoutes.object(try self.campaign(context, account: call.account.id), progress: nil))
        }
        routes.get("/v1/campaigns/:id/report") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let campaign = try campaign(context, account: call.account.id)
            return APIJSON.response(object: try report(campaign))
        }
        routes.get("/v1/campaigns/:id/report.csv") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let campaign = try campaign(context, account: call.account.id)
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8",
                                                   .contentDisposition: "attachment; filename=\"campaign-\(campaign.id).csv\""],
                            body: .init(byteBuffer: ByteBuffer(string: try csv(campaign))))
        }
    }

    /// A cancelled campaign's mail still in the queue is cancelled too; how many messages were.
    /// The runner stops at the state change; a batch the spool acknowledged before it may not be
    /// indexed yet, and is waited for: a message the index does not have yet cannot be withdrawn.
    /// In a cluster the other nodes withdraw theirs within 5 s (`CampaignRunner.withdrawCancelled`).
    @discardableResult
    func withdraw(_ campaign: Campaign) async -> Int {
        (try? await services.withdrawCampaignMail(campaign.id)) ?? 0
    }

    func campaign(_ context: APIRequestContext, account: Int64) throws -> Campaign {
        guard let id = ContactRoutes.id(try context.parameters.require("id")),
              let campaign = try store({ try services.store.campaign(id: id, accountID: account) }) else {
            throw APIError.notFound("campaign")
        }
        return campaign
    }

    /// The definition checked: addresses, content that compiles, a valid segment, a sensible A/B test.
    func definition(_ input: CampaignInput, account: Account) throws(APIError) -> Campaign.Definition {
        try ContactRoutes.checkName(input.name)
        let from = try NativeAPI.address(AddressInput(text: input.from), field: "from")
        if let name = input.fromName { try NativeAPI.checkLine(name, field: "from_name") }
        if let replyTo = input.replyTo { _ = try NameAddress.parse(replyTo, field: "reply_to") }
        try NativeAPI.checkTags(input.tags ?? [])
        let content = Campaign.Content(fromName: input.fromName ?? from.name, subject: input.subject, text: input.text, html: input.html,
                                       template: input.template)
        var definition = Campaign.Definition(from: from.address, replyTo: input.replyTo, content: content, segmentID: input.segmentId,
                                             segment: input.segment, lists: Array(Set(input.lists ?? [])).sorted(), marketing: input.marketing ?? true,
                                             unsubscribeGroup: input.unsubscribeGroup, trackOpens: input.trackOpens ?? false,
                                             trackClicks: input.trackClicks ?? false, tags: input.tags ?? [], sendAt: input.sendAt?.date,
                                             dailyAt: input.dailyAt)
        if let daily = input.dailyAt, Campaign.nextDailyRun(at: daily, after: Date(), in: TimeZone(identifier: "UTC") ?? .current) == nil {
            throw APIError.badRequest("daily_at must be a time of day HH:MM", field: "daily_at")
        }
        guard (input.lists ?? []).count <= 100 else { throw APIError.badRequest("at most 100 lists", field: "lists") }
        if let test = input.abTest {
            guard input.dailyAt == nil else {
                throw APIError.badRequest("an A/B test is decided once: not with daily_at", field: "ab_test")
            }
            guard (2...4).contains(test.variants.count) else {
                throw APIError.badRequest("an A/B test has 2 to 4 variants", field: "ab_test.variants")
            }
            let percent = test.testPercent ?? 20
            guard (1...100).contains(percent) else { throw APIError.badRequest("test_percent is 1 to 100", field: "ab_test.test_percent") }
            guard let criterion = Campaign.WinnerCriterion(rawValue: test.criterion ?? "opens") else {
                throw APIError.badRequest("criterion is opens, clicks or manual", field: "ab_test.criterion")
            }
            guard test.waitMinutes.map({ (0...10_080).contains($0) }) ?? true, test.waitSeconds.map({ (0...604_800).contains($0) }) ?? true else {
                throw APIError.badRequest("the wait is at most a week (wait_minutes 0 to 10080)", field: "ab_test.wait_minutes")
            }
            let wait = test.waitSeconds ?? (test.waitMinutes ?? 240) * 60
            for (index, variant) in test.variants.enumerated() {
                if let delay = variant.delayMinutes, !(0...4320).contains(delay) {
                    throw APIError.badRequest("delay_minutes is 0 to 4320", field: "ab_test.variants[\(index)].delay_minutes")
                }
                if let name = variant.fromName { try NativeAPI.checkLine(name, field: "ab_test.variants[\(index)].from_name") }
            }
            definition.abTest = Campaign.ABTest(variants: test.variants.map(\.content), testPercent: percent, criterion: criterion,
                                                waitSeconds: wait)
        }
        for (index, variant) in definition.variants.enumerated() {
            let field = definition.abTest == nil ? "subject" : "ab_test.variants[\(index)]"
            if let template = variant.template {
                _ = try services.renderer(template: template, account: account)
            } else {
                guard let subject = variant.subject, !subject.isEmpty, variant.text != nil || variant.html != nil else {
                    throw APIError.badRequest("a campaign needs a template, or a subject and text or html", field: field)
                }
                _ = try TemplateRenderer(subject: subject, text: variant.text, html: variant.html)
            }
        }
        if let segment = input.segment {
            _ = try ContactRoutes(services: services).query(segment, account: account.id)
        }
        if let id = input.segmentId {
            guard try store({ try services.store.segment(id: id, accountID: account.id) }) != nil else {
                throw APIError.notFound("segment \(id)")
            }
        }
        let lists = Set(try store { try services.store.contactLists(accountID: account.id) }.map(\.id))
        for id in definition.lists where !lists.contains(id) { throw APIError.notFound("list \(id)") }
        if let group = definition.unsubscribeGroup {
            guard try store({ try services.store.unsubscribeGroup(accountID: account.id, id: group) }) != nil else {
                throw APIError.notFound("unsubscribe group \(group)")
            }
        }
        return definition
    }

    func store<T>(_ body: () throws -> T) throws(APIError) -> T { try ContactRoutes(services: services).store(body) }

    // MARK: Reports

    /// The campaign as a whole and per variant, from the delivery log (by the campaign's tags).
    func report(_ campaign: Campaign) throws -> [String: Any] {
        let progress = try store { try services.store.campaignTotals(campaign.id) }
        let total = try services.index.tagReport(accountID: campaign.accountID, tag: campaign.tag)
        var object = CampaignRoutes.object(campaign, progress: progress)
        object["totals"] = CampaignRoutes.object(total)
        let variants = campaign.definition.variants
        if variants.count > 1 {
            var arms: [ABTestDecision.Arm] = []
            var items: [[String: Any]] = []
            for (index, variant) in variants.enumerated() {
                let report = try services.index.tagReport(accountID: campaign.accountID, tag: campaign.tag(variant: index))
                var item = CampaignRoutes.object(report)
                item["variant"] = Campaign.variantName(index)
                item["subject"] = variant.subject ?? ""
                items.append(item)
                let criterion = campaign.definition.abTest?.criterion ?? .opens
                arms.append(.init(delivered: report.delivered, successes: criterion == .clicks ? report.clicks.humanUnique : report.opens.humanUnique,
                                  machineOpens: report.opens.machineUnique))
            }
            object["variants"] = items
            let criterion = campaign.definition.abTest?.criterion ?? .opens
            let current = ABTestDecision(arms: arms, criterion: criterion == .clicks ? "clicks" : "opens")
            var test: [String: Any] = ["criterion": criterion.rawValue, "leader": Campaign.variantName(current.winner),
                                       "outcome": current.outcome, "explanation": current.explanation]
            if let confidence = current.confidence { test["confidence"] = confidence }
            if let z = current.z { test["z"] = z }
            object["ab_test"] = test
        }
        return object
    }

    func csv(_ campaign: Campaign) throws -> String {
        var text = "variant,subject,accepted,delivered,bounced,deferred,suppressed,opens_unique,opens_total,machine_opens_unique,"
            + "clicks_unique,clicks_total,unsubscribes,complaints,open_rate,click_rate\r\n"
        var rows: [(String, String, TagReport)] = [("all", campaign.definition.content.subject ?? "",
                                                    try services.index.tagReport(accountID: campaign.accountID, tag: campaign.tag))]
        let variants = campaign.definition.variants
        if variants.count > 1 {
            for (index, variant) in variants.enumerated() {
                rows.append((Campaign.variantName(index), variant.subject ?? "",
                             try services.index.tagReport(accountID: campaign.accountID, tag: campaign.tag(variant: index))))
            }
        }
        for (name, subject, report) in rows {
            let delivered = report.delivered
            let rate = { (count: Int) in delivered > 0 ? ABTestDecision.percent(Double(count) / Double(delivered)) : "" }
            let cells = [name, subject, String(report.accepted), String(delivered), String(report.outcomes["bounced"] ?? 0),
                         String(report.outcomes["deferred"] ?? 0), String(report.outcomes["suppressed"] ?? 0),
                         String(report.opens.humanUnique), String(report.opens.humanTotal), String(report.opens.machineUnique),
                         String(report.clicks.humanUnique), String(report.clicks.humanTotal), String(report.unsubscribes),
                         String(report.complaints), rate(report.opens.humanUnique), rate(report.clicks.humanUnique)]
            text += cells.map(EventCSV.quote).joined(separator: ",") + "\r\n"
        }
        return text
    }

    static func object(_ report: TagReport) -> [String: Any] {
        let delivered = report.delivered
        var object: [String: Any] = [
            "accepted": report.accepted, "outcomes": report.outcomes, "delivered": delivered,
            "opens": engagement(report.opens), "clicks": engagement(report.clicks),
            "unsubscribes": report.unsubscribes, "complaints": report.complaints,
            "bounces": report.bounces.map { ["category": $0.category, "site": $0.site, "count": $0.count] as [String: Any] },
            "links": report.links.map { ["url": $0.url, "unique": $0.humanUnique, "total": $0.total] as [String: Any] },
        ]
        if delivered > 0 {
            object["open_rate"] = Double(report.opens.humanUnique) / Double(delivered)
            object["click_rate"] = Double(report.clicks.humanUnique) / Double(delivered)
        }
        // Privacy proxies fetch every image: when machines are most of the opens, the open rate says little.
        let machines = report.opens.machineUnique
        object["open_rate_reliable"] = machines <= report.opens.humanUnique
        if machines > report.opens.humanUnique {
            object["open_rate_warning"] = "most opens are machine opens (mail privacy proxies); compare click rates instead"
        }
        return object
    }

    static func engagement(_ value: TagReport.Engagement) -> [String: Any] {
        ["unique": value.humanUnique, "total": value.humanTotal, "machine_unique": value.machineUnique, "machine_total": value.machineTotal]
    }

    static func object(_ campaign: Campaign, progress: CampaignProgress?) -> [String: Any] {
        let definition = campaign.definition
        var object: [String: Any] = ["id": campaign.id, "name": campaign.name, "state": campaign.state.rawValue, "from": definition.from,
                                     "marketing": definition.marketing, "tags": definition.tags, "lists": definition.lists,
                                     "excluded": campaign.excluded, "created_at": NativeAPI.iso(campaign.createdAt),
                                     "variants": definition.variants.count]
        if let subject = definition.content.subject { object["subject"] = subject }
        if let template = definition.content.template { object["template"] = template }
        if let id = definition.segmentID { object["segment_id"] = id }
        if let segment = definition.segment { object["segment"] = segment.plain }
        if let daily = definition.dailyAt { object["daily_at"] = daily }
        if let next = campaign.nextRunAt { object["next_run_at"] = NativeAPI.iso(next) }
        if let occurrence = campaign.occurrence { object["occurrence"] = occurrence }
        if let ends = campaign.testEndsAt { object["test_ends_at"] = NativeAPI.iso(ends) }
        if let winner = campaign.winner { object["winner"] = Campaign.variantName(winner) }
        if let decision = campaign.decision { object["decision"] = decision }
        if let note = campaign.note { object["note"] = note }
        if let group = definition.unsubscribeGroup { object["unsubscribe_group"] = group }
        if let progress {
            object["progress"] = ["recipients": progress.recipients, "pending": progress.pending, "queued": progress.queued,
                                  "waiting_for_winner": progress.waitingForWinner, "skipped": progress.skipped]
        }
        return object
    }
}
