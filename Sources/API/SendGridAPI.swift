import Foundation
import Hummingbird
import MIME
import NIOCore
import Relay
import Spool
import Store

/// The SendGrid v3 subset (`/v3/…`), for the official SDKs with `host=`:
/// `POST /v3/mail/send` and the suppression reads (../reference: sendgrid-v3.md).
struct SendGridAPI: Sendable {
    let services: APIServices

    struct Email: Decodable, Sendable { var email: String; var name: String? }
    struct PersonalizationInput: Decodable, Sendable {
        var to: [Email]?
        var cc: [Email]?
        var bcc: [Email]?
        var from: Email?
        var subject: String?
        var headers: [String: String]?
        var substitutions: [String: String]?
        var dynamicTemplateData: [String: JSONValue]?
        var customArgs: [String: String]?
        var sendAt: Int?
    }
    struct ContentItem: Decodable, Sendable { var type: String; var value: String }
    struct SGAttachment: Decodable, Sendable {
        var content: String
        var filename: String
        var type: String?
        var disposition: String?
        var contentId: String?
    }
    struct Setting: Decodable, Sendable { var enable: Bool? }
    struct MailSettings: Decodable, Sendable { var sandboxMode: Setting? }
    struct TrackingSettingsInput: Decodable, Sendable { var clickTracking: Setting?; var openTracking: Setting? }
    /// `categories` may be one string or an array.
    struct Categories: Decodable, Sendable {
        var values: [String]
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let one = try? container.decode(String.self) { values = [one] } else { values = try container.decode([String].self) }
        }
    }
    /// The unsubscribe group the mail is sent in (`groups_to_display` is for SendGrid's own preference page and is not kept).
    struct ASM: Decodable, Sendable {
        var groupId: Int64
        var groupsToDisplay: [Int64]?
    }

    struct MailSend: Decodable, Sendable {
        var personalizations: [PersonalizationInput]
        var from: Email
        var replyTo: Email?
        var replyToList: [Email]?
        var subject: String?
        var content: [ContentItem]?
        var attachments: [SGAttachment]?
        var templateId: String?
        var asm: ASM?
        var headers: [String: String]?
        var categories: Categories?
        var customArgs: [String: String]?
        var sendAt: Int?
        var mailSettings: MailSettings?
        var trackingSettings: TrackingSettingsInput?
    }

    func register(on routes: Routes) {
        routes.post("/v3/mail/send") { request, context in try await send(request, context) }
        routes.get("/v3/suppression/bounces") { request, context in try await list(request, context, reasons: [.bounce]) }
        routes.get("/v3/suppression/unsubscribes") { request, context in
            try await list(request, context, reasons: [.unsubscribe])
        }
        routes.get("/v3/suppression/spam_reports") { request, context in try await list(request, context, reasons: [.complaint]) }
    }

    func send(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .send)
        let input = try APIJSON.decode(MailSend.self, from: call.body)
        let draft = try draft(input, account: call.account)
        let messages = try draft.messages(builder: services.builder, unsubscribe: services.unsubscribe, tracking: services.tracking,
                                          limits: services.draftLimits)
        var headers: HTTPFields = [:]
        if input.mailSettings?.sandboxMode?.enable == true {
            try services.submitter.validate(messages, door: .sendgrid, account: call.account, client: context.clientAddress)
            // Validated and built, not sent (SendGrid's sandbox mode).
            headers[.messageID] = "sandbox"
            return Response(status: .ok, headers: headers)
        }
        let ids = try await services.submitter.submit(messages, door: .sendgrid, account: call.account, client: context.clientAddress)
        headers[.messageID] = ids.map(\.rawValue).joined(separator: ",")
        return Response(status: .accepted, headers: headers)
    }

    func draft(_ input: MailSend, account: Account) throws(APIError) -> MessageDraft {
        guard !input.personalizations.isEmpty else {
            throw APIError.badRequest("The personalizations field is required and must have at least one personalization.",
                                      field: "personalizations")
        }
        guard input.replyTo == nil || input.replyToList == nil else {
            throw APIError.badRequest("reply_to and reply_to_list are mutually exclusive", field: "reply_to_list")
        }
        var base = Composition(from: try SendGridAPI.address(input.from, field: "from"), subject: input.subject ?? "")
        base.replyTo = try (input.replyToList ?? input.replyTo.map { [$0] } ?? []).map { item throws(APIError) in
            try SendGridAPI.address(item, field: "reply_to")
        }
        for item in input.content ?? [] {
            switch item.type.lowercased() {
            case "text/plain": base.text = item.value
            case "text/html": base.html = item.value
            default: throw APIError.badRequest("content type \(item.type) is not supported (text/plain, text/html)", field: "content")
            }
        }
        base.headers = try SendGridAPI.headers(input.headers, field: "headers")
        base.attachments = try (input.attachments ?? []).enumerated().map { index, item throws(APIError) in
            guard let data = Data(base64Encoded: item.content, options: .ignoreUnknownCharacters) else {
                throw APIError.badRequest("attachment content must be base64", field: "attachments.\(index).content")
            }
            return Attachment(filename: item.filename, contentType: item.type, data: Array(data), inline: item.disposition == "inline",
                              contentID: item.contentId)
        }
        var renderer: TemplateRenderer?
        var marketing = false
        let dynamic = input.personalizations.contains { $0.dynamicTemplateData != nil }
        if let name = input.templateId {
            let (compiled, stored) = try services.renderer(template: name, account: account)
            renderer = compiled
            marketing = stored.marketing
        } else if dynamic {
            renderer = try TemplateRenderer(subject: base.subject, text: base.text, html: base.html)
        }
        if renderer == nil && base.text == nil && base.html == nil && base.attachments.isEmpty {
            throw APIError.badRequest("Unless a valid template_id is provided, the content parameter is required.", field: "content")
        }
        let categories = input.categories?.values ?? []
        guard categories.count <= 10 else { throw APIError.badRequest("at most 10 categories", field: "categories") }
        try NativeAPI.checkTags(categories)
        let personalizations = try input.personalizations.enumerated().map { index, item throws(APIError) in
            let field = "personalizations.\(index)"
            var personalization = Personalization(to: try (item.to ?? []).map { email throws(APIError) in
                try SendGridAPI.address(email, field: "\(field).to")
            })
            personalization.cc = try (item.cc ?? []).map { email throws(APIError) in try SendGridAPI.address(email, field: "\(field).cc") }
            personalization.bcc = try (item.bcc ?? []).map { email throws(APIError) in try SendGridAPI.address(email, field: "\(field).bcc") }
            guard !personalization.to.isEmpty else {
                throw APIError.badRequest("The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
                                          field: "\(field).to")
            }
            personalization.subject = item.subject
            personalization.data = item.dynamicTemplateData ?? [:]
            personalization.substitutions = item.substitutions ?? [:]
            personalization.headers = try SendGridAPI.headers(item.headers, field: "\(field).headers")
            personalization.customArguments = item.customArgs ?? [:]
            personalization.notBefore = item.sendAt.map { Date(timeIntervalSince1970: Double($0)) }
            return personalization
        }
        if renderer == nil && base.subject.isEmpty && personalizations.contains(where: { $0.subject == nil }) {
            throw APIError.badRequest("The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
                                      field: "subject")
        }
        var metadata = MessageMetadata(tags: categories, customArguments: input.customArgs ?? [:], marketing: marketing,
                                       notBefore: input.sendAt.map { Date(timeIntervalSince1970: Double($0)) }, source: "sendgrid")
        metadata.tracking = try services.trackingSettings(account: account, opens: input.trackingSettings?.openTracking?.enable,
                                                          clicks: input.trackingSettings?.clickTracking?.enable)
        if let asm = input.asm {
            let group: UnsubscribeGroup?
            do { group = try services.store.unsubscribeGroup(accountID: account.id, id: asm.groupId) } catch { throw APIError.storeFailure(error) }
            guard group != nil else { throw APIError.badRequest("asm.group_id \(asm.groupId) is not a group of this account", field: "asm.group_id") }
            metadata.unsubscribeGroup = asm.groupId
        }
        return MessageDraft(base: base, renderer: renderer, personalizations: personalizations, metadata: metadata)
    }

    func list(_ request: Request, _ context: APIRequestContext, reasons: [Suppression.Reason]) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .read)
        let limit = try request.queryInteger("limit", default: 500, range: 1...500)
        let offset = try request.queryInteger("offset", default: 0, range: 0...Int(Int32.max))
        let since = try request.query("start_time").map { text throws(APIError) -> Date in
            guard let seconds = Double(text), FlexibleDate.range.contains(seconds) else {
                throw APIError.badRequest("start_time must be Unix seconds", field: "start_time")
            }
            return Date(timeIntervalSince1970: seconds)
        }
        let until = try request.query("end_time").map { text throws(APIError) -> Date in
            guard let seconds = Double(text), FlexibleDate.range.contains(seconds) else {
                throw APIError.badRequest("end_time must be Unix seconds", field: "end_time")
            }
            return Date(timeIntervalSince1970: seconds)
        }
        let list = try services.store.suppressions(accountID: call.account.id, reasons: reasons, since: since, until: until,
                                                   offset: offset, limit: limit)
        return APIJSON.response(object: list.map { item -> [String: Any] in
            var object: [String: Any] = ["email": item.address, "created": Int(exactly: item.createdAt.timeIntervalSince1970.rounded(.down)) ?? 0]
            if item.reason == .bounce {
                object["reason"] = item.source ?? ""
                object["status"] = ""
            }
            return object
        })
    }

    static func address(_ email: Email, field: String) throws(APIError) -> NameAddress {
        if let name = email.name { try NativeAPI.checkLine(name, field: field) }
        let parsed = try NameAddress.parse(email.email, field: field)
        return NameAddress(name: email.name, address: parsed.address)
    }

    static func headers(_ headers: [String: String]?, field: String) throws(APIError) -> [(name: String, value: String)] {
        (headers ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}
