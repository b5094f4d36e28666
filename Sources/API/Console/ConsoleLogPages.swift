import Foundation
import Hummingbird
import MIME
import NIOCore
import Relay
import Spool
import Store

/// The support person's pages: log search (and its CSV), a message's
/// timeline with a resend, and the bounce analysis.
struct ConsoleLogPages: Sendable {
    let console: ConsoleRoutes
    var services: APIServices { console.services }

    func register(on routes: Routes) {
        console.page(routes, .get, "/console/log") { request, _, viewer in try search(request, viewer) }
        console.page(routes, .get, "/console/log.csv") { request, _, viewer in try export(request, viewer) }
        console.page(routes, .get, "/console/messages/:id") { request, context, viewer in
            try await timeline(request, id: try context.parameters.require("id"), viewer, notice: nil)
        }
        console.post(routes, "/console/messages/:id/resend") { form, context, viewer, request in
            let account = try ConsoleRoutes.account(viewer)
            let details = try await services.message(try context.parameters.require("id"), account: account)
            let recipients = try NativeAPI.resendRecipients(details, chosen: form.all("recipient"))
            let id = try await NativeAPI(services: services).resend(details, recipients: recipients, account: account,
                                                                    client: context.clientAddress)
            return ConsoleHeaders.redirect("/console/messages/\(id.rawValue)?resent_from=\(details.id.rawValue)")
        }
        console.page(routes, .get, "/console/bounces") { request, _, viewer in try bounces(request, viewer) }
    }

    /// The log filter from the search form; dates are read in the viewer's zone.
    func filter(_ request: Request, _ viewer: ConsoleViewer, account: Account) throws -> DeliveryLogFilter {
        var filter = DeliveryLogFilter(accountID: account.id)
        filter.recipient = request.query("recipient")?.trimmingCharacters(in: .whitespaces)
        if let text = request.query("message_id")?.trimmingCharacters(in: .whitespaces) {
            guard let id = MessageID(text) else { throw ConsoleRefusal(status: .badRequest, key: "error_message_id") }
            filter.messageID = id
        }
        filter.tag = request.query("tag")
        filter.category = request.query("category")
        filter.sender = request.query("sender")?.trimmingCharacters(in: .whitespaces)
        filter.subject = request.query("subject")
        filter.provider = request.query("provider")?.trimmingCharacters(in: .whitespaces)
        if let status = request.query("status") {
            guard let kind = DeliveryEvent.Kind(rawValue: status) else { throw ConsoleRefusal(status: .badRequest, key: "error_status") }
            filter.types = [kind]
        }
        filter.since = ConsoleFormat.localInput(request.query("since"), viewer.timeZone)
        filter.until = ConsoleFormat.localInput(request.query("until"), viewer.timeZone)
        if let before = request.query("before") {
            guard let cursor = DeliveryLogCursor(before) else { throw ConsoleRefusal(status: .badRequest, key: "error_cursor") }
            filter.before = cursor
        }
        return filter
    }

    func search(_ request: Request, _ viewer: ConsoleViewer) throws -> Response {
        let account = try ConsoleRoutes.account(viewer)
        let t = console.views.catalog(viewer.language)
        var filter = try filter(request, viewer, account: account)
        filter.limit = 50
        let page = try services.log.eventPage(filter)
        // The same query again, for the next page's link and the CSV export.
        let keep = ["recipient", "sender", "subject", "message_id", "tag", "category", "provider", "status", "since", "until"]
        let query = keep.compactMap { name in request.query(name).map { "\(name)=" + ConsoleRoutes.percentEncoded($0) } }
            .joined(separator: "&")
        let context: [String: Any] = [
            "form": Dictionary(uniqueKeysWithValues: keep.map { ($0, request.query($0) ?? "") }),
            "statuses": [[String: Any]](
                [["code": "", "label": t["any"] ?? "", "selected": request.query("status") == nil]]
                + DeliveryEvent.Kind.allCases.map { kind in
                    ["code": kind.rawValue, "label": t["event_\(kind.rawValue)"] ?? kind.rawValue,
                     "selected": request.query("status") == kind.rawValue]
                }),
            "providers": console.auth.options.courier?.shapingRuleNames ?? TrafficShaping.presets.map(\.name),
            "events": page.events.map { console.eventRow($0, viewer) },
            "empty": page.events.isEmpty,
            "next": page.next.map { "/console/log?" + (query.isEmpty ? "" : query + "&") + "before=" + ConsoleRoutes.percentEncoded($0.description) }
                as Any? ?? false,
            "csv": "/console/log.csv" + (query.isEmpty ? "" : "?" + query),
        ]
        return console.render("log", context, viewer: viewer, title: "nav_log", current: "nav_log", path: request.uri.path)
    }

    /// The search's result as CSV (at most 100,000 rows), streamed page by page.
    func export(_ request: Request, _ viewer: ConsoleViewer) throws -> Response {
        let account = try ConsoleRoutes.account(viewer)
        var filter = try filter(request, viewer, account: account)
        filter.limit = 5000
        var text = EventCSV.header
        var rows = 0
        while rows < 100_000 {
            let page = try services.log.eventPage(filter)
            for event in page.events { text += EventCSV.row(event) }
            rows += page.events.count
            guard let next = page.next else { break }
            filter.before = next
        }
        var headers: HTTPFields = [.contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"hikyaku-log.csv\""]
        ConsoleHeaders.apply(&headers)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func timeline(_ request: Request, id: String, _ viewer: ConsoleViewer, notice: String?) async throws -> Response {
        let account = try ConsoleRoutes.account(viewer)
        let details = try await services.message(id, account: account)
        let events = try services.index.events(DeliveryLogFilter(messageID: details.id, limit: 10_000)).reversed()
        // The header section as received, when the bytes are still kept.
        var headers: String?
        var subject: String?
        if let bytes = services.contents(of: details) {
            let end = ConsoleLogPages.headerEnd(bytes)
            headers = String(decoding: bytes[0..<min(end, 64 << 10)], as: UTF8.self)
            // The subject as a mail reader shows it (RFC 2047 words decoded); bounded by the parser's limits.
            if let section = try? HeaderSection(parsing: bytes), let field = section.first("Subject") {
                subject = EncodedWords.decodeText(field.unfoldedValue(in: bytes))
            }
        }
        let resendable = details.recipients.filter {
            NativeAPI.resendable.contains($0.state) || $0.state == RecipientState.delivered.rawValue
        }
        let t = console.views.catalog(viewer.language)
        let context: [String: Any] = [
            "id": details.id.rawValue, "from": details.sender, "subject": subject ?? "", "size": ConsoleFormat.number(details.size),
            "received": ConsoleFormat.time(details.receivedAt, viewer.timeZone), "client": details.clientAddress,
            "source": details.metadata?.source ?? "smtp", "tags": (details.metadata?.tags ?? []).joined(separator: ", "),
            "resend_of": details.metadata?.resendOf?.rawValue ?? false,
            "resent_from": request.query("resent_from").flatMap(MessageID.init).map(\.rawValue) ?? false,
            "recipients": details.recipients.map { recipient -> [String: Any] in
                ["address": recipient.address, "state": t["state_\(recipient.state)"] ?? recipient.state,
                 "attempts": recipient.attempts, "reply": recipient.lastReply ?? ""]
            },
            "events": events.map { console.eventRow($0, viewer) },
            "headers": headers ?? false,
            "resendable": resendable.map { ["address": $0.address] }, "can_resend": !resendable.isEmpty,
        ]
        return console.render("message", context, viewer: viewer, title: "message_title", current: "nav_log", path: request.uri.path)
    }

    /// Where the header section ends (the empty line), or the whole length.
    static func headerEnd(_ bytes: [UInt8]) -> Int {
        var index = 0
        while index + 3 < bytes.count {
            if bytes[index] == 0x0D, bytes[index + 1] == 0x0A, bytes[index + 2] == 0x0D, bytes[index + 3] == 0x0A { return index }
            index += 1
        }
        return bytes.count
    }

    func bounces(_ request: Request, _ viewer: ConsoleViewer) throws -> Response {
        let account = try ConsoleRoutes.account(viewer)
        let t = console.views.catalog(viewer.language)
        let days = (request.query("days").flatMap(Int.init)).map { min(max($0, 1), 90) } ?? 7
        let until = Date()
        let analysis = try services.log.bounceAnalysis(accountID: account.id, since: until.addingTimeInterval(-Double(days) * 86400),
                                                       until: until, topPerCategory: 5, recipientLimit: 200)
        let chart = SVGChart(title: t["bounces_by_provider"] ?? "", xLabel: t["provider"] ?? "", yLabel: t["bounces"] ?? "",
                             labels: analysis.byProvider.prefix(12).map(\.name),
                             series: [SVGChart.Series(name: t["hard"] ?? "", colour: SVGChart.palette[3],
                                                      values: analysis.byProvider.prefix(12).map(\.hard)),
                                      SVGChart.Series(name: t["soft"] ?? "", colour: SVGChart.palette[2],
                                                      values: analysis.byProvider.prefix(12).map { $0.bounces - $0.hard })])
        func counts(_ list: [BounceAnalysis.Count]) -> [[String: Any]] {
            list.map { ["name": $0.name.isEmpty ? "–" : $0.name, "bounces": ConsoleFormat.number($0.bounces),
                        "hard": ConsoleFormat.number($0.hard)] }
        }
        let context: [String: Any] = [
            "days": days, "total": ConsoleFormat.number(analysis.total),
            "ranges": [1, 7, 30, 90].map { ["days": $0, "current": $0 == days] as [String: Any] },
            "by_category": counts(analysis.byCategory), "by_provider": counts(analysis.byProvider),
            "chart_svg": chart.svg, "chart_table": chart.table(period: t["period"] ?? ""),
            "replies": analysis.topReplies.map { ["category": $0.category, "text": $0.text, "count": ConsoleFormat.number($0.count)] },
            "recipients": analysis.recipients.prefix(100).map { recipient -> [String: Any] in
                ["recipient": recipient.recipient, "category": recipient.category, "message": recipient.messageID.rawValue,
                 "at": ConsoleFormat.time(recipient.at, viewer.timeZone), "reply": recipient.replyText ?? ""]
            },
        ]
        return console.render("bounces", context, viewer: viewer, title: "nav_bounces", current: "nav_bounces", path: request.uri.path)
    }
}
