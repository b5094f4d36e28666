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
        routes.get("/u/:token") { _, context in
            guard links.decode(try context.parameters.require("token")) != nil else { return UnsubscribeRoutes.page(.notFound) }
            return UnsubscribeRoutes.page(.confirm)
        }
        routes.post("/u/:token") { request, context in
            guard let target = links.decode(try context.parameters.require("token")) else { return UnsubscribeRoutes.page(.notFound) }
            // RFC 8058's body is one short form field; strangers reach this, so nothing more is read.
            let body = try await services.gate.readBody(request, limit: 1024)
            let form = String(decoding: body, as: UTF8.self)
            guard form.split(separator: "&").contains(where: { $0.removingPercentEncoding == "List-Unsubscribe=One-Click" }) else {
                return UnsubscribeRoutes.page(.badRequest)
            }
            let recipient: String?
            do {
                recipient = try Unsubscription.record(index: services.index, store: services.store, message: target.message,
                                                      position: target.position, via: "one-click")
            } catch {
                context.logger.error("unsubscribe not recorded", metadata: ["error": "\(error)"])
                return UnsubscribeRoutes.page(.failed)
            }
            context.logger.info("unsubscribed", metadata: ["message": "\(target.message)"])
            return UnsubscribeRoutes.page(recipient == nil ? .notFound : .done)
        }
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

    static func page(_ page: Page) -> Response {
        let (ja, en) = page.text
        let form = page == .confirm ? """
            <form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
            <button type="submit">配信停止 / Unsubscribe</button></form>
            """ : ""
        let html = """
            <!doctype html><html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <meta name="robots" content="noindex"><title>配信停止 / Unsubscribe</title></head>
            <body><p>\(ja)</p><p lang="en">\(en)</p>\(form)</body></html>
            """
        return Response(status: page.status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}
