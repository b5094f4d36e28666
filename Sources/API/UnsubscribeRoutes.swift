import Foundation
import Hummingbird
import NIOCore
import Relay
import Spool
import Store

/// `/u/{token}`: where List-Unsubscribe leads. POST with
/// `List-Unsubscribe=One-Click` (RFC 8058) unsubscribes at once, with no
/// login: the token is the proof. GET shows a page with a button (in
/// Japanese and English) and changes nothing, because link scanners follow GETs.
struct UnsubscribeRoutes: Sendable {
    let services: APIServices
    let links: UnsubscribeLinks

    func register(on routes: Routes) {
        registerPreferences(on: routes)
        routes.get("/u/:token") { _, context in
            let token = try context.parameters.require("token")
            guard links.decode(token) != nil else { return UnsubscribeRoutes.page(.notFound) }
            return UnsubscribeRoutes.page(.confirm, token: token)
        }
        routes.post("/u/:token") { request, context in
            guard let target = links.decode(try context.parameters.require("token")) else { return UnsubscribeRoutes.page(.notFound) }
            // RFC 8058's body is one short form field; strangers reach this, so nothing more is read.
            let body = try await services.gate.readBody(request, limit: 1024)
            let form = String(decoding: body, as: UTF8.self)
            guard form.split(separator: "&").contains(where: { $0.removingPercentEncoding == "List-Unsubscribe=One-Click" }) else {
                return UnsubscribeRoutes.page(.badRequest)
            }
            var recipient: String?
            do {
                recipient = try Unsubscription.record(index: services.index, store: services.store, message: target.message,
                                                      position: target.position, via: "one-click")
                // In a cluster another node may hold the message: it applies the unsubscribe within seconds.
                if recipient == nil, let inbox = services.store as? any ClusterInbox, try services.index.details(of: target.message) == nil {
                    try FeedbackForwarder(inbox: inbox, logger: context.logger)
                        .forward(.unsubscribe(position: target.position, via: "one-click", at: Date()), about: target.message)
                    recipient = ""
                }
            } catch {
                context.logger.error("unsubscribe not recorded", metadata: ["error": "\(error)"])
                return UnsubscribeRoutes.page(.failed)
            }
            context.logger.info("unsubscribed", metadata: ["message": "\(target.message)"])
            return recipient == nil ? UnsubscribeRoutes.page(.notFound)
                : UnsubscribeRoutes.page(.done, token: try context.parameters.require("token"))
        }
    }

    /// `/u/{token}/preferences`: the recipient's topics (the account's unsubscribe groups), each with a
    /// box to stay in or leave, and "no marketing mail at all". Public; the token is the proof, as for
    /// one-click. GET shows, POST saves what the form says.
    func registerPreferences(on routes: Routes) {
        routes.get("/u/:token/preferences") { _, context in
            guard let target = links.decode(try context.parameters.require("token")),
                  let recipient = try? recipient(target) else { return UnsubscribeRoutes.page(.notFound) }
            return try preferences(recipient, saved: false)
        }
        routes.post("/u/:token/preferences") { request, context in
            guard let target = links.decode(try context.parameters.require("token")),
                  let recipient = try? recipient(target) else { return UnsubscribeRoutes.page(.notFound) }
            // A form of a few hundred checkboxes at most; strangers reach this, so nothing more is read.
            let body = try await services.gate.readBody(request, limit: 16 * 1024)
            let fields = String(decoding: body, as: UTF8.self).split(separator: "&").compactMap { pair -> (String, String)? in
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
                return parts.count == 2 ? (parts[0], parts[1]) : nil
            }
            // The page's own form says `save`; a bare POST (a scanner, a stray request) changes nothing.
            guard fields.contains(where: { $0 == ("save", "1") }) else { return UnsubscribeRoutes.page(.badRequest) }
            let staying = Set(fields.filter { $0.0 == "group" }.prefix(1000).compactMap { ContactRoutes.id($0.1) })
            let leaveAll = fields.contains { $0 == ("all", "leave") }
            do {
                let saved = try services.store.saveTopicPreferences(accountID: recipient.account, address: recipient.address, staying: staying,
                                                                    leaveAll: leaveAll, source: "preference page of message \(target.message)")
                // Only a recipient who left something is an unsubscribe (in the log, the reports and webhooks).
                if saved.left {
                    try services.index.recordFeedback(DeliveryEvent(at: Date(), messageID: target.message, recipient: recipient.address,
                                                                    type: .unsubscribed, replyText: "preferences saved on the preference page",
                                                                    site: "feedback"), failed: false)
                }
            } catch {
                context.logger.error("preferences not saved", metadata: ["error": "\(error)"])
                return UnsubscribeRoutes.page(.failed)
            }
            return try preferences(recipient, saved: true)
        }
    }

    /// Whose token it is: the account and the address of the message's recipient at that position.
    func recipient(_ target: (message: MessageID, position: Int)) throws -> (account: Int64, address: String)? {
        guard let details = try services.index.details(of: target.message), let account = details.accountID,
              details.recipients.indices.contains(target.position) else { return nil }
        return (account, details.recipients[target.position].address)
    }

    func preferences(_ recipient: (account: Int64, address: String), saved: Bool) throws -> Response {
        let groups = try services.store.unsubscribeGroups(accountID: recipient.account)
        let left = try services.store.groupsUnsubscribed(accountID: recipient.account, address: recipient.address)
        let suppressed = try services.store.suppression(accountID: recipient.account, address: recipient.address)
        let noMarketing = suppressed.map { $0.scope.covers(marketing: true) } ?? false
        var rows = ""
        for group in groups {
            let checked = !left.contains(group.id) && !noMarketing ? " checked" : ""
            rows += "<p><label><input type=\"checkbox\" name=\"group\" value=\"\(group.id)\"\(checked)> <b>\(SVGChart.escape(group.name))</b>"
                + (group.description.isEmpty ? "" : " — " + SVGChart.escape(group.description)) + "</label></p>"
        }
        let html = """
            <!doctype html><html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <meta name="robots" content="noindex"><title>配信設定 / Email preferences</title></head>
            <body><h1>配信設定 <span lang="en">/ Email preferences</span></h1>
            <p>\(SVGChart.escape(recipient.address))</p>
            \(saved ? "<p role=\"status\">保存しました。 <span lang=\"en\">Your preferences were saved.</span></p>" : "")
            <form method="post">
            <p>受け取るお知らせ <span lang="en">/ Topics you receive</span></p>
            \(rows)
            <p><label><input type="checkbox" name="all" value="leave"\(noMarketing ? " checked" : "")> すべてのお知らせを停止 <span lang="en">/ Unsubscribe from all marketing email</span></label></p>
            <input type="hidden" name="save" value="1"><button type="submit">保存 / Save</button></form></body></html>
            """
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    enum Page {
        case confirm, done, notFound, badRequest, failed

        var status: HTTPResponse.Status {
            switch self {
            case .confirm, .done: return .ok
            case .notFound: return .notFound
            case .badRequest: return .badRequest
            case .failed: return .serviceUnavailable
            }
        }

        var text: (ja: String, en: String) {
            switch self {
            case .confirm: return ("今後のお知らせメールの配信を停止しますか？", "Stop receiving these emails?")
            case .done: return ("配信を停止しました。今後このお知らせは届きません。", "You have been unsubscribed. You will not receive these emails any more.")
            case .notFound: return ("このリンクは無効です。", "This link is not valid.")
            case .badRequest: return ("リクエストが正しくありません。", "The request is not a valid unsubscribe request.")
            case .failed: return ("処理できませんでした。しばらくしてからもう一度お試しください。", "This could not be done now. Please try again later.")
            }
        }
    }

    /// `token`: a link to the preference page goes with the page (the token is the link's own, already checked).
    static func page(_ page: Page, token: String? = nil) -> Response {
        let (ja, en) = page.text
        let manage = token.map { token in
            "<p><a href=\"/u/\(SVGChart.escape(token))/preferences\">配信するお知らせを選ぶ / Choose the topics you receive</a></p>"
        } ?? ""
        let form = page == .confirm ? """
            <form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
            <button type="submit">配信停止 / Unsubscribe</button></form>
            """ : ""
        let html = """
            <!doctype html><html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <meta name="robots" content="noindex"><title>配信停止 / Unsubscribe</title></head>
            <body><p>\(ja)</p><p lang="en">\(en)</p>\(form)\(manage)</body></html>
            """
        return Response(status: page.status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}
