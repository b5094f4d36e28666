import Foundation
import Hummingbird
import NIOCore
import Relay
import Spool

/// `/t/o/{token}` (the 1×1 image) and `/t/c/{token}` (a tracked link).
/// Public and anonymous: each request decodes and checks its token (no
/// store read), hands the engagement to the recorder and answers at once.
/// A token that does not verify is a plain 404, whatever was changed in it,
/// so the endpoints say nothing about other messages or accounts, and a
/// click goes only to the URL sealed in its token.
struct TrackingRoutes: Sendable {
    let services: APIServices
    let eventsOut: EventsOut

    /// A transparent 1×1 GIF.
    static let pixel: [UInt8] = [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x21,
        0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44,
        0x01, 0x00, 0x3B,
    ]

    func register(on routes: Routes) {
        routes.get("/t/o/:token") { request, context in open(request, context, head: false) }
        routes.head("/t/o/:token") { request, context in open(request, context, head: true) }
        routes.get("/t/c/:token") { request, context in click(request, context, head: false) }
        routes.head("/t/c/:token") { request, context in click(request, context, head: true) }
    }

    func open(_ request: Request, _ context: APIRequestContext, head: Bool) -> Response {
        guard let token = context.parameters.get("token"), let target = eventsOut.tracking.decode(token), target.kind == .open else {
            return TrackingRoutes.notFound
        }
        record(target, request, context, head: head)
        return Response(status: .ok, headers: [.contentType: "image/gif", .cacheControl: "no-store, no-cache, must-revalidate, private"],
                        body: .init(byteBuffer: ByteBuffer(bytes: TrackingRoutes.pixel)))
    }

    func click(_ request: Request, _ context: APIRequestContext, head: Bool) -> Response {
        guard let token = context.parameters.get("token"), let target = eventsOut.tracking.decode(token), target.kind == .click,
              let url = target.url else {
            return TrackingRoutes.notFound
        }
        record(target, request, context, head: head)
        return Response(status: .found, headers: [.location: url, .cacheControl: "no-store", .referrerPolicy: "no-referrer"])
    }

    func record(_ target: TrackingLinks.Target, _ request: Request, _ context: APIRequestContext, head: Bool) {
        // A user agent is kept to 512 bytes: it is stored and sent on in webhooks.
        let agent = request.headers[.userAgent].map { String($0.utf8.prefix(512)) ?? "" }
        eventsOut.engagements.record(Engagement(at: Date(), clicked: target.kind == .click, message: target.message,
                                                position: target.position, userAgent: agent, clientIP: context.clientAddress,
                                                url: target.url, head: head))
    }

    static var notFound: Response {
        Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: "not found\n")))
    }
}
