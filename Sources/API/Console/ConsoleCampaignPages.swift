import Foundation
import Hummingbird
import NIOCore
import Store

/// The console's contacts and campaigns: fields, a contact search, CSV
/// import (UTF-8 or Shift_JIS, read in the browser into the form), the
/// segment preview, campaigns with their progress, report and chart, and
/// creating, pausing, resuming and cancelling them. The same store calls and
/// checks as the API (docs/campaigns.md).
struct ConsoleCampaignPages: Sendable {
    let console: ConsoleRoutes
    var services: APIServices { console.services }
    var store: any HikyakuStore { console.services.store }

    /// The largest CSV pasted or picked in the console; larger files go through the API.
    static let maximumFormCSV = 8 << 20

    func register(on routes: Routes) {
        console.page(routes, .get, "/console/contacts") { request, _, viewer in
            let account = try ConsoleRoutes.account(viewer)
            let t = console.views.catalog(viewer.language)
            var context: [String: Any] = [
                "can_change": viewer.canChange,
                "total": ConsoleFormat.number(try store.contactCount(accountID: account.id)),
                "fields": try store.contactFields(accountID: account.id).map { ["name": $0.name, "type": t["field_\($0.kind.rawValue)"] ?? $0.kind.rawValue] },
                "types": ContactField.Kind.allCases.map { ["code": $0.rawValue, "label": t["field_\($0.rawValue)"] ?? $0.rawValue] },
                "imports": try store.contactImports(accountID: account.id, limit: 10).map { item -> [String: Any] in
                    ["id": item.id, "state": t["import_\(item.state.rawValue)"] ?? item.state.rawValue,
                     "read": ConsoleFormat.number(item.rowsRead), "applied": ConsoleFormat.number(item.applied),
                     "invalid": ConsoleFormat.number(item.rowsInvalid), "at": ConsoleFormat.time(item.startedAt, viewer.timeZone),
                     "errors": item.errors.prefix(20).map { ["line": $0.line, "message": $0.message] as [String: Any] },
                     "has_errors": !item.errors.isEmpty]
                },
                "imported": request.query("imported") != nil,
            ]
            if let q = request.query("q"), !q.isEmpty {
                context["q"] = q
                if let contact = try store.contact(address: q.trimmingCharacters(in: .whitespaces), accountID: account.id) {
                    context["contact"] = ["email": contact.address, "updated": ConsoleFormat.time(contact.updatedAt, viewer.timeZone),
                                          "values": contact.fields.sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value.display] },
                                          "activity": [("last_delivered", contact.lastDeliveredAt), ("last_opened", contact.lastOpenedAt),
                                                       ("last_clicked", contact.lastClickedAt), ("last_bounced", contact.lastBouncedAt)]
                                              .compactMap { key, date in date.map { ["name": t[key] ?? key, "value": ConsoleFormat.time($0, viewer.timeZone)] } }]
                } else {
                    context["no_contact"] = true
                }
            }
            if let text = request.query("segment"), !text.isEmpty {
                context["segment"] = text
                do {
                    let json = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
                    let query = try ContactRoutes(services: services).query(json, account: account.id)
                    let counts = try store.segmentCounts(query, accountID: account.id)
                    context["count"] = ConsoleFormat.number(counts.all)
                    context["sendable"] = ConsoleFormat.number(counts.sendable)
                    context["sample"] = try store.segmentContacts(query, accountID: account.id, after: 0, limit: 10).map(\.address)
                } catch let error as APIError {
                    context["segment_error"] = error.message
                } catch {
                    context["segment_error"] = t["error_segment_json"] ?? "\(error)"
                }
            }
            return console.render("contacts", context, viewer: viewer, title: "nav_contacts", current: "nav_contacts", path: request.uri.path)
        }
        console.post(routes, "/console/contacts/fields") { form, _, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            guard let name = form["name"], let kind = form["type"].flatMap(ContactField.Kind.init(rawValue:)) else {
                throw APIError.badRequest("a name and a type are required", field: "name")
            }
            try ContactRoutes(services: services).store { try store.addContactField(ContactField(name: name, kind: kind), accountID: account.id) }
            return ConsoleHeaders.redirect("/console/contacts")
        }
        console.post(routes, "/console/contacts/import", limit: ConsoleCampaignPages.maximumFormCSV) { form, context, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            guard let csv = form["csv"], !csv.isEmpty else { throw APIError.badRequest("the CSV is empty", field: "csv") }
            let id = try ContactRoutes.beginImport(services: services, account: account.id, list: nil)
            // The browser decoded the file (UTF-8 or Shift_JIS); the form carries it as UTF-8.
            let directory = services.layout.directory + "/imports"
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let path = directory + "/" + UUID().uuidString + ".csv"
            guard FileManager.default.createFile(atPath: path, contents: Data(csv.utf8)) else {
                try? store.failContactImport(importID: id, reason: "the upload could not be stored", line: 0)
                throw APIError(.serviceUnavailable, "import_unavailable", "the upload could not be stored", ses: "InternalFailure")
            }
            ContactRoutes.runImportJob(services: services, id: id, account: account.id, path: path, charset: .utf8, logger: context.logger)
            return ConsoleHeaders.redirect("/console/contacts?imported=1")
        }
        console.page(routes, .get, "/console/campaigns") { request, _, viewer in
            let account = try ConsoleRoutes.account(viewer)
            let t = console.views.catalog(viewer.language)
            let campaigns = try store.campaigns(accountID: account.id, limit: 100)
            let context: [String: Any] = [
                "can_change": viewer.canChange, "empty": campaigns.isEmpty,
                "campaigns": try campaigns.map { campaign -> [String: Any] in
                    // The current run's rows only: a daily campaign's every run would be read on each page.
                    let progress = try store.campaignProgress(campaign)
                    return ["id": campaign.id, "name": campaign.name, "state": t["campaign_\(campaign.state.rawValue)"] ?? campaign.state.rawValue,
                            "recipients": ConsoleFormat.number(progress.recipients), "queued": ConsoleFormat.number(progress.queued),
                            "created": ConsoleFormat.time(campaign.createdAt, viewer.timeZone)]
                },
                "segments": try store.segments(accountID: account.id).map { ["id": $0.id, "name": $0.name] },
            ]
            return console.render("campaigns", context, viewer: viewer, title: "nav_campaigns", current: "nav_campaigns", path: request.uri.path)
        }
        console.post(routes, "/console/campaigns", limit: 2 << 20) { form, _, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            var segment: JSONValue?
            if let text = form["segment"], !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
                    throw ConsoleRefusal(status: .badRequest, key: "error_segment_json")
                }
                segment = json
            }
            let input = CampaignRoutes.CampaignInput(
                name: form["name"] ?? "", from: form["from"] ?? "", fromName: form["from_name"].flatMap { $0.isEmpty ? nil : $0 },
                subject: form["subject"], text: form["text"].flatMap { $0.isEmpty ? nil : $0 },
                html: form["html"].flatMap { $0.isEmpty ? nil : $0 }, template: form["template"].flatMap { $0.isEmpty ? nil : $0 },
                segmentId: form["segment_id"].flatMap(ContactRoutes.id), segment: segment, marketing: true,
                trackOpens: form["track_opens"] != nil, trackClicks: form["track_clicks"] != nil, schedule: form["draft"] == nil)
            let routes = CampaignRoutes(services: services)
            let definition = try routes.definition(input, account: account)
            let campaign = try routes.store {
                try store.createCampaign(name: input.name, definition: definition, accountID: account.id, schedule: input.schedule ?? true)
            }
            services.campaignBell.ring()
            return ConsoleHeaders.redirect("/console/campaigns/\(campaign.id)")
        }
        console.page(routes, .get, "/console/campaigns/:id") { request, context, viewer in
            let account = try ConsoleRoutes.account(viewer)
            guard let id = ContactRoutes.id(try context.parameters.require("id")),
                  let campaign = try store.campaign(id: id, accountID: account.id) else { throw APIError.notFound("campaign") }
            let t = console.views.catalog(viewer.language)
            let report = try CampaignRoutes(services: services).report(campaign)
            let totals = report["totals"] as? [String: Any] ?? [:]
            let outcomes = totals["outcomes"] as? [String: Int] ?? [:]
            let opens = totals["opens"] as? [String: Int] ?? [:]
            let clicks = totals["clicks"] as? [String: Int] ?? [:]
            let progress = report["progress"] as? [String: Int] ?? [:]
            let bars = [("delivered", outcomes["delivered"] ?? 0), ("bounced", outcomes["bounced"] ?? 0),
                        ("deferred", (outcomes["deferred"] ?? 0) + (outcomes["queued"] ?? 0)), ("suppressed", outcomes["suppressed"] ?? 0),
                        ("opened", opens["unique"] ?? 0), ("clicked", clicks["unique"] ?? 0)]
            var page: [String: Any] = [
                "id": campaign.id, "name": campaign.name, "state": t["campaign_\(campaign.state.rawValue)"] ?? campaign.state.rawValue,
                "can_change": viewer.canChange,
                "can_pause": [.sending, .scheduled, .testing].contains(campaign.state), "can_resume": campaign.state == .paused,
                "can_cancel": [.draft, .scheduled, .sending, .paused, .testing].contains(campaign.state),
                "can_schedule": campaign.state == .draft,
                "counts": [("recipients", progress["recipients"] ?? 0), ("queued", progress["queued"] ?? 0), ("pending", progress["pending"] ?? 0),
                           ("waiting_for_winner", progress["waiting_for_winner"] ?? 0), ("skipped", progress["skipped"] ?? 0),
                           ("excluded", campaign.excluded), ("accepted", totals["accepted"] as? Int ?? 0),
                           ("unsubscribes", totals["unsubscribes"] as? Int ?? 0), ("complaints", totals["complaints"] as? Int ?? 0),
                           ("machine_opens", opens["machine_unique"] ?? 0)]
                    .map { ["name": t["count_\($0.0)"] ?? $0.0, "value": ConsoleFormat.number($0.1)] },
                "chart": ConsoleCampaignPages.barChart(bars.map { (t["outcome_\($0.0)"] ?? $0.0, $0.1) }),
                "bounces": (totals["bounces"] as? [[String: Any]] ?? []).prefix(20).map { item -> [String: Any] in
                    ["category": item["category"] ?? "", "site": item["site"] ?? "", "count": ConsoleFormat.number(item["count"] as? Int ?? 0)]
                },
                "links": (totals["links"] as? [[String: Any]] ?? []).prefix(20).map { item -> [String: Any] in
                    ["url": item["url"] ?? "", "unique": ConsoleFormat.number(item["unique"] as? Int ?? 0),
                     "total": ConsoleFormat.number(item["total"] as? Int ?? 0)]
                },
                "open_rate_warning": totals["open_rate_warning"] != nil,
            ]
            if let note = campaign.note { page["note"] = note }
            if let decision = campaign.decision { page["decision"] = decision }
            if let variants = report["variants"] as? [[String: Any]] {
                page["variants"] = variants.map { item -> [String: Any] in
                    let opens = item["opens"] as? [String: Int] ?? [:]
                    let clicks = item["clicks"] as? [String: Int] ?? [:]
                    return ["variant": item["variant"] ?? "", "subject": item["subject"] ?? "",
                            "delivered": ConsoleFormat.number(item["delivered"] as? Int ?? 0),
                            "opens": ConsoleFormat.number(opens["unique"] ?? 0), "clicks": ConsoleFormat.number(clicks["unique"] ?? 0),
                            "open_rate": (item["open_rate"] as? Double).map { ABTestDecision.percent($0) } ?? "—",
                            "click_rate": (item["click_rate"] as? Double).map { ABTestDecision.percent($0) } ?? "—"]
                }
                page["has_variants"] = true
                if let test = report["ab_test"] as? [String: Any] { page["explanation"] = test["explanation"] as? String ?? "" }
            }
            return console.render("campaign", page, viewer: viewer, title: "nav_campaigns", current: "nav_campaigns", path: request.uri.path)
        }
        console.page(routes, .get, "/console/campaigns/:id/report.csv") { _, context, viewer in
            let account = try ConsoleRoutes.account(viewer)
            guard let id = ContactRoutes.id(try context.parameters.require("id")),
                  let campaign = try store.campaign(id: id, accountID: account.id) else { throw APIError.notFound("campaign") }
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8",
                                                   .contentDisposition: "attachment; filename=\"campaign-\(campaign.id).csv\""],
                            body: .init(byteBuffer: ByteBuffer(string: try CampaignRoutes(services: services).csv(campaign))))
        }
        console.page(routes, .get, "/console/contacts.csv") { _, _, viewer in
            let account = try ConsoleRoutes.account(viewer).id
            let fields = try store.contactFields(accountID: account)
            let store = store
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8",
                                                   .contentDisposition: "attachment; filename=\"contacts.csv\""],
                            body: ContactCSV.exportBody(store: store, accountID: account, fields: fields))
        }
        console.post(routes, "/console/campaigns/:id/action") { form, context, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            guard let id = ContactRoutes.id(try context.parameters.require("id")),
                  let campaign = try store.campaign(id: id, accountID: account.id) else { throw APIError.notFound("campaign") }
            let routes = CampaignRoutes(services: services)
            switch form["action"] {
            case "schedule":
                try routes.store { try store.scheduleCampaign(id: campaign.id, accountID: account.id) }
            case let name?:
                guard let action = CampaignAction(rawValue: name) else { throw APIError.badRequest("unknown action", field: "action") }
                _ = try routes.store { try store.changeCampaign(id: campaign.id, accountID: account.id, action: action) }
                if action == .cancel { await routes.withdraw(campaign) }
            case nil:
                throw APIError.badRequest("unknown action", field: "action")
            }
            services.campaignBell.ring()
            return ConsoleHeaders.redirect("/console/campaigns/\(campaign.id)")
        }
    }

    /// Horizontal bars with the numbers written beside them (and as a table for screen readers).
    static func barChart(_ bars: [(String, Int)]) -> String {
        let largest = max(1, bars.map(\.1).max() ?? 1)
        let colours = ["#2e7d32", "#c62828", "#f9a825", "#6d4c41", "#1565c0", "#6a1b9a"]
        let rowHeight = 26
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 640 \(bars.count * rowHeight + 8)\" aria-hidden=\"true\">"
        for (index, bar) in bars.enumerated() {
            let y = index * rowHeight + 4
            let width = bar.1 > 0 ? max(2, bar.1 * 400 / largest) : 0
            svg += "<text x=\"0\" y=\"\(y + 15)\" font-size=\"12\" fill=\"#333\">\(SVGChart.escape(bar.0))</text>"
                + "<rect x=\"160\" y=\"\(y)\" width=\"\(width)\" height=\"20\" fill=\"\(colours[index % colours.count])\"></rect>"
                + "<text x=\"\(166 + width)\" y=\"\(y + 15)\" font-size=\"12\" fill=\"#333\">\(ConsoleFormat.number(bar.1))</text>"
        }
        svg += "</svg><table class=\"visually-hidden\"><tbody>"
        for bar in bars { svg += "<tr><th scope=\"row\">\(SVGChart.escape(bar.0))</th><td>\(ConsoleFormat.number(bar.1))</td></tr>" }
        return svg + "</tbody></table>"
    }
}

extension ContactValue {
    /// As the console shows it.
    var display: String {
        switch self {
        case .text(let text), .date(let text): return text
        case .number: return csv
        case .boolean(let flag): return flag ? "true" : "false"
        }
    }
}
