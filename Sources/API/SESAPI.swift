import Foundation
import Hummingbird
import MIME
import NIOCore
import Relay
import Spool
import Store

/// The Amazon SES v2 subset (`/v2/email/…`), for boto3's `sesv2` client with
/// `endpoint_url=`: field names and error types as in the botocore model
/// (../reference: ses-v2.md). Requests are signed with Signature V4.
struct SESAPI: Sendable {
    let services: APIServices

    // Wire shapes, named as SES names them.
    struct Content: Decodable, Sendable { var Data: String; var Charset: String? }
    struct Body: Decodable, Sendable { var Text: Content?; var Html: Content? }
    struct Header: Decodable, Sendable { var Name: String; var Value: String }
    struct SESAttachment: Decodable, Sendable {
        var RawContent: String
        var FileName: String
        var ContentDisposition: String?
        var ContentId: String?
        var ContentType: String?
    }
    struct Simple: Decodable, Sendable {
        var Subject: Content
        var Body: Body
        var Headers: [Header]?
        var Attachments: [SESAttachment]?
    }
    struct Raw: Decodable, Sendable { var Data: String }
    struct TemplateContent: Codable, Sendable { var Subject: String?; var Text: String?; var Html: String? }
    struct TemplateReference: Decodable, Sendable {
        var TemplateName: String?
        var TemplateArn: String?
        var TemplateContent: TemplateContent?
        var TemplateData: String?
        var Headers: [Header]?
        var Attachments: [SESAttachment]?
    }
    struct EmailContent: Decodable, Sendable { var Simple: Simple?; var Raw: Raw?; var Template: TemplateReference? }
    struct Destination: Decodable, Sendable { var ToAddresses: [String]?; var CcAddresses: [String]?; var BccAddresses: [String]? }
    struct Tag: Decodable, Sendable { var Name: String; var Value: String }
    struct SendEmailRequest: Decodable, Sendable {
        var FromEmailAddress: String?
        var Destination: Destination?
        var ReplyToAddresses: [String]?
        var Content: EmailContent
        var EmailTags: [Tag]?
        var ConfigurationSetName: String?
    }
    struct ReplacementTemplate: Decodable, Sendable { var ReplacementTemplateData: String? }
    struct ReplacementContent: Decodable, Sendable { var ReplacementTemplate: ReplacementTemplate? }
    struct BulkEntry: Decodable, Sendable {
        var Destination: Destination
        var ReplacementTags: [Tag]?
        var ReplacementEmailContent: ReplacementContent?
        var ReplacementHeaders: [Header]?
    }
    struct BulkContent: Decodable, Sendable { var Template: TemplateReference? }
    struct SendBulkEmailRequest: Decodable, Sendable {
        var FromEmailAddress: String?
        var ReplyToAddresses: [String]?
        var DefaultEmailTags: [Tag]?
        var DefaultContent: BulkContent
        var BulkEmailEntries: [BulkEntry]
        var ConfigurationSetName: String?
    }
    struct TemplateRequest: Decodable, Sendable { var TemplateName: String?; var TemplateContent: TemplateContent }
    struct RenderRequest: Decodable, Sendable { var TemplateData: String }
    struct SuppressRequest: Decodable, Sendable { var EmailAddress: String; var Reason: String }
    struct SuppressionAttributes: Decodable, Sendable { var SuppressedReasons: [String]? }

    func register(on routes: Routes) {
        routes.post("/v2/email/outbound-emails") { request, context in try await sendEmail(request, context) }
        routes.post("/v2/email/outbound-bulk-emails") { request, context in try await sendBulkEmail(request, context) }
        routes.get("/v2/email/account") { request, context in try await getAccount(request, context) }
        routes.put("/v2/email/account/suppression") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(SuppressionAttributes.self, from: call.body, snakeCase: false)
            let reasons = try (input.SuppressedReasons ?? []).map { text throws(APIError) -> Suppression.Reason in
                guard let reason = SESAPI.reason(text) else { throw APIError.badRequest("SuppressedReasons are BOUNCE and COMPLAINT") }
                return reason
            }
            try services.store.setSuppressedReasons(Set(reasons), accountID: call.account.id)
            return APIJSON.empty(.ok)
        }
        routes.post("/v2/email/templates") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(TemplateRequest.self, from: call.body, snakeCase: false)
            guard let name = input.TemplateName else { throw APIError.badRequest("TemplateName is required") }
            try saveTemplate(name, input.TemplateContent, account: call.account, replace: false)
            return APIJSON.empty(.ok)
        }
        routes.get("/v2/email/templates") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .send)
            let size = try request.queryInteger("PageSize", default: 10, range: 1...100)
            let templates = try services.store.templates(accountID: call.account.id, after: request.query("NextToken"), limit: size)
            var body: [String: Any] = ["TemplatesMetadata": templates.map {
                ["TemplateName": $0.name, "CreatedTimestamp": $0.createdAt.timeIntervalSince1970] as [String: Any]
            }]
            if templates.count == size, let last = templates.last { body["NextToken"] = last.name }
            return APIJSON.response(object: body)
        }
        routes.get("/v2/email/templates/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .send)
            let (_, template) = try services.renderer(template: SESAPI.pathValue(try context.parameters.require("name")),
                                                      account: call.account)
            var content: [String: Any] = ["Subject": template.subject]
            content["Text"] = template.text
            content["Html"] = template.html
            return APIJSON.response(object: ["TemplateName": template.name, "TemplateContent": content])
        }
        routes.put("/v2/email/templates/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(TemplateRequest.self, from: call.body, snakeCase: false)
            try saveTemplate(SESAPI.pathValue(try context.parameters.require("name")), input.TemplateContent, account: call.account,
                             replace: true)
            return APIJSON.empty(.ok)
        }
        routes.delete("/v2/email/templates/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let name = SESAPI.pathValue(try context.parameters.require("name"))
            do { try services.store.deleteTemplate(accountID: call.account.id, name: name) } catch {
                throw TemplateRoutes.map(error, name: name)
            }
            return APIJSON.empty(.ok)
        }
        routes.post("/v2/email/templates/:name/render") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .send)
            let (renderer, _) = try services.renderer(template: SESAPI.pathValue(try context.parameters.require("name")),
                                                      account: call.account)
            let input = try APIJSON.decode(RenderRequest.self, from: call.body, snakeCase: false)
            let rendered = try renderer.render(try SESAPI.templateData(input.TemplateData))
            var composition = Composition(from: NameAddress(address: "sender@example.com"), subject: rendered.subject)
            composition.to = [NameAddress(address: "recipient@example.com")]
            composition.text = rendered.text
            composition.html = rendered.html
            let bytes: [UInt8]
            do { bytes = try services.builder.build(composition).bytes } catch let error as MIMEError { throw APIError.invalid(error.description) }
            return APIJSON.response(object: ["RenderedTemplate": String(decoding: bytes, as: UTF8.self)])
        }
        routes.put("/v2/email/suppression/addresses") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(SuppressRequest.self, from: call.body, snakeCase: false)
            guard let reason = SESAPI.reason(input.Reason) else {
                throw APIError.badRequest("Reason must be BOUNCE or COMPLAINT")
            }
            let address = try NameAddress.parse(input.EmailAddress, field: "EmailAddress").address
            try services.store.suppress(Suppression(address: address, reason: reason, scope: .all,
                                                    source: "ses api key \(call.principal.key.keyID)"), accountID: call.account.id)
            return APIJSON.empty(.ok)
        }
        routes.get("/v2/email/suppression/addresses") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let reasons = try request.queryAll("Reason").map { text throws(APIError) -> Suppression.Reason in
                guard let reason = SESAPI.reason(text) else { throw APIError.badRequest("Reason must be BOUNCE or COMPLAINT") }
                return reason
            }
            let size = try request.queryInteger("PageSize", default: 100, range: 1...1000)
            let offset = Int(request.query("NextToken") ?? "0") ?? 0
            let list = try services.store.suppressions(
                accountID: call.account.id, reasons: reasons.contains(.complaint) ? reasons + [.unsubscribe, .manual] : reasons,
                since: try request.queryDate("StartDate"), until: try request.queryDate("EndDate"), offset: offset, limit: size)
            var body: [String: Any] = ["SuppressedDestinationSummaries": list.map {
                ["EmailAddress": $0.address, "Reason": SESAPI.reasonName($0.reason), "LastUpdateTime": $0.createdAt.timeIntervalSince1970]
                    as [String: Any]
            }]
            if list.count == size { body["NextToken"] = String(offset + size) }
            return APIJSON.response(object: body)
        }
        routes.get("/v2/email/suppression/addresses/:address") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let address = SuppressionRoutes.pathAddress(try context.parameters.require("address"))
            guard let suppression = try services.store.suppression(accountID: call.account.id, address: address) else {
                throw APIError.notFound("\(address) is not on the suppression list")
            }
            return APIJSON.response(object: ["SuppressedDestination": [
                "EmailAddress": suppression.address, "Reason": SESAPI.reasonName(suppression.reason),
                "LastUpdateTime": suppression.createdAt.timeIntervalSince1970,
                "Attributes": ["MessageId": suppression.source ?? ""],
            ] as [String: Any]])
        }
        routes.delete("/v2/email/suppression/addresses/:address") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let address = SuppressionRoutes.pathAddress(try context.parameters.require("address"))
            do { try services.store.unsuppress(accountID: call.account.id, address: address) } catch {
                throw APIError.notFound("\(address) is not on the suppression list")
            }
            return APIJSON.empty(.ok)
        }
    }

    // MARK: Sending

    func sendEmail(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .send)
        let input = try APIJSON.decode(SendEmailRequest.self, from: call.body, snakeCase: false)
        let tags = try SESAPI.tags(input.EmailTags ?? [])
        var metadata = MessageMetadata(tags: tags, source: "ses")
        try services.configurationSet(input.ConfigurationSetName, account: call.account, metadata: &metadata)
        let messages: [OutgoingMessage]
        if let raw = input.Content.Raw {
            messages = [try rawMessage(raw, input: input, metadata: metadata)]
        } else {
            let draft = try draft(input, account: call.account, metadata: metadata)
            // Marketing mail may be one copy per recipient (its own unsubscribe link); SES names the first.
            messages = try draft.messages(builder: services.builder, unsubscribe: services.unsubscribe, tracking: services.tracking,
                                          limits: services.draftLimits)
        }
        // The intake holds a raw message to its own From, Sender and Resent-* fields, as it does SMTP mail.
        let ids = try await services.submitter.submit(messages, door: .ses, account: call.account, client: context.clientAddress)
        guard let first = ids.first else { throw APIError.invalid("no message") }
        return APIJSON.response(object: ["MessageId": first.rawValue])
    }

    func draft(_ input: SendEmailRequest, account: Account, metadata: MessageMetadata) throws(APIError) -> MessageDraft {
        guard let fromText = input.FromEmailAddress else { throw APIError.invalid("FromEmailAddress is required") }
        var personalization = Personalization(to: try SESAPI.addresses(input.Destination?.ToAddresses))
        personalization.cc = try SESAPI.addresses(input.Destination?.CcAddresses)
        personalization.bcc = try SESAPI.addresses(input.Destination?.BccAddresses)
        guard !(personalization.to + personalization.cc + personalization.bcc).isEmpty else {
            throw APIError.invalid("Destination has no addresses")
        }
        var base = Composition(from: try NameAddress.parse(fromText, field: "FromEmailAddress"), subject: "")
        base.replyTo = try SESAPI.addresses(input.ReplyToAddresses)
        var renderer: TemplateRenderer?
        var data: [String: JSONValue] = [:]
        var metadata = metadata
        if let simple = input.Content.Simple {
            base.subject = simple.Subject.Data
            base.text = simple.Body.Text?.Data
            base.html = simple.Body.Html?.Data
            base.charset = try SESAPI.charset(simple.Subject.Charset, simple.Body.Text?.Charset, simple.Body.Html?.Charset)
            base.headers = try SESAPI.headers(simple.Headers)
            base.attachments = try SESAPI.attachments(simple.Attachments)
        } else if let template = input.Content.Template {
            let (compiled, marketing) = try resolve(template, account: account)
            renderer = compiled
            metadata.marketing = marketing
            data = try SESAPI.templateData(template.TemplateData)
            base.headers = try SESAPI.headers(template.Headers)
            base.attachments = try SESAPI.attachments(template.Attachments)
        } else {
            throw APIError.badRequest("Content needs one of Simple, Raw or Template")
        }
        return MessageDraft(base: base, renderer: renderer, data: data, personalizations: [personalization], metadata: metadata)
    }

    /// A stored template (by name or ARN, whose last component is the name) or inline content.
    func resolve(_ reference: TemplateReference, account: Account) throws(APIError) -> (TemplateRenderer, Bool) {
        if let content = reference.TemplateContent {
            return (try TemplateRenderer(subject: content.Subject ?? "", text: content.Text, html: content.Html), false)
        }
        guard let name = reference.TemplateName ?? reference.TemplateArn?.split(separator: "/").last.map(String.init) else {
            throw APIError.badRequest("Template needs TemplateName, TemplateArn or TemplateContent")
        }
        let (renderer, stored) = try services.renderer(template: name, account: account)
        return (renderer, stored.marketing)
    }

    func rawMessage(_ raw: Raw, input: SendEmailRequest, metadata: MessageMetadata) throws(APIError) -> OutgoingMessage {
        guard let data = Data(base64Encoded: raw.Data, options: .ignoreUnknownCharacters), !data.isEmpty else {
            throw APIError.invalid("Raw.Data must be a base64 MIME message")
        }
        let bytes = try RawMessage.lineEndings(Array(data))
        let header: HeaderSection
        do { header = try HeaderSection(parsing: bytes) } catch {
            throw APIError(.badRequest, "invalid_header", "the message's header section is malformed: \(error)", ses: "MessageRejected")
        }
        let from = try input.FromEmailAddress.map { text throws(APIError) in try NameAddress.parse(text, field: "FromEmailAddress").address }
            ?? RawMessage.mailboxes(in: header, of: bytes, named: ["From"]).first
        guard let from else { throw APIError.invalid("no From address in FromEmailAddress or the message") }
        var recipients: [String]
        if let destination = input.Destination {
            recipients = try SESAPI.addresses(destination.ToAddresses).map(\.address) + SESAPI.addresses(destination.CcAddresses).map(\.address)
                + SESAPI.addresses(destination.BccAddresses).map(\.address)
        } else {
            recipients = RawMessage.mailboxes(in: header, of: bytes, named: ["To", "Cc", "Bcc"])
        }
        var seen = Set<String>()
        recipients = recipients.filter { seen.insert($0.lowercased()).inserted }
        guard !recipients.isEmpty else { throw APIError.invalid("no recipients in Destination or the message") }
        // The intake removes Bcc fields, as SES does; it checks From, Sender and Resent-* against the account.
        return OutgoingMessage(sender: from, recipients: recipients, bytes: bytes, metadata: metadata)
    }

    func sendBulkEmail(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .send)
        let input = try APIJSON.decode(SendBulkEmailRequest.self, from: call.body, snakeCase: false)
        guard let fromText = input.FromEmailAddress else { throw APIError.invalid("FromEmailAddress is required") }
        guard let template = input.DefaultContent.Template else { throw APIError.badRequest("DefaultContent.Template is required") }
        guard !input.BulkEmailEntries.isEmpty else { throw APIError.badRequest("BulkEmailEntries is empty") }
        guard input.BulkEmailEntries.count <= MessageDraft.maximumPersonalizations else {
            throw APIError.badRequest("at most \(MessageDraft.maximumPersonalizations) BulkEmailEntries per request")
        }
        let (renderer, marketing) = try resolve(template, account: call.account)
        var base = Composition(from: try NameAddress.parse(fromText, field: "FromEmailAddress"), subject: "")
        base.replyTo = try SESAPI.addresses(input.ReplyToAddresses)
        base.headers = try SESAPI.headers(template.Headers)
        base.attachments = try SESAPI.attachments(template.Attachments)
        let personalizations = try input.BulkEmailEntries.map { entry throws(APIError) in
            var personalization = Personalization(to: try SESAPI.addresses(entry.Destination.ToAddresses))
            personalization.cc = try SESAPI.addresses(entry.Destination.CcAddresses)
            personalization.bcc = try SESAPI.addresses(entry.Destination.BccAddresses)
            personalization.data = try SESAPI.templateData(entry.ReplacementEmailContent?.ReplacementTemplate?.ReplacementTemplateData)
            personalization.headers = try SESAPI.headers(entry.ReplacementHeaders)
            personalization.tags = try SESAPI.tags(entry.ReplacementTags ?? [])
            return personalization
        }
        var metadata = MessageMetadata(tags: try SESAPI.tags(input.DefaultEmailTags ?? []), marketing: marketing, source: "ses")
        try services.configurationSet(input.ConfigurationSetName, account: call.account, metadata: &metadata)
        let draft = MessageDraft(base: base, renderer: renderer, data: try SESAPI.templateData(template.TemplateData),
                                 personalizations: personalizations, metadata: metadata)
        // Entries are rendered one by one, so that one entry's bad data fails only that entry.
        var results: [[String: Any]] = []
        var ready: [(Int, OutgoingMessage)] = []
        // The entries share one limit on what the request may build (MessageDraft.Limits).
        var limits = services.draftLimits
        for (index, personalization) in personalizations.enumerated() {
            var single = draft
            single.personalizations = [personalization]
            do {
                let built = try single.messages(builder: services.builder, unsubscribe: services.unsubscribe, tracking: services.tracking,
                                                limits: limits)
                limits.maximumExpandedSize -= built.reduce(0) { $0 + $1.bytes.count }
                ready += built.map { (index, $0) }
                results.append([:])
            } catch {
                results.append(["Status": error.code == "missing_variables" ? "INVALID_PARAMETER" : "MESSAGE_REJECTED",
                                "Error": error.message])
            }
        }
        if !ready.isEmpty {
            let outcome = await submit(ready.map(\.1), account: call.account, client: context.clientAddress)
            switch outcome {
            case .success(let ids):
                // An entry built as several copies is reported by its first.
                for ((index, _), id) in zip(ready, ids).reversed() { results[index] = ["Status": "SUCCESS", "MessageId": id.rawValue] }
            case .failure(let error) where error.status == .tooManyRequests:
                let status = error.code == "daily_quota_exceeded" ? "ACCOUNT_DAILY_QUOTA_EXCEEDED" : "ACCOUNT_THROTTLED"
                for (index, _) in ready { results[index] = ["Status": status, "Error": error.message] }
            case .failure(let error):
                throw error
            }
        }
        return APIJSON.response(object: ["BulkEmailEntryResults": results])
    }

    func submit(_ messages: [OutgoingMessage], account: Account, client: String) async -> Result<[MessageID], APIError> {
        do { return .success(try await services.submitter.submit(messages, door: .ses, account: account, client: client)) } catch {
            return .failure(error)
        }
    }

    func getAccount(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .read)
        let account = (try services.store.account(id: call.account.id)) ?? call.account
        let quota = account.quota
        return APIJSON.response(object: [
            "SendQuota": [
                "Max24HourSend": Double(quota.max24HourSend),
                "MaxSendRate": quota.maxSendRate,
                "SentLast24Hours": Double(services.meter.sentLast24Hours(accountID: call.account.id)),
            ],
            "ProductionAccessEnabled": !quota.sandbox,
            "SendingEnabled": !account.disabled,
            "EnforcementStatus": "HEALTHY",
            "DedicatedIpAutoWarmupEnabled": false,
            "SuppressionAttributes": ["SuppressedReasons": account.suppressedReasons.filter { $0 == .bounce || $0 == .complaint }
                .map(SESAPI.reasonName).sorted()],
        ])
    }

    func saveTemplate(_ name: String, _ content: TemplateContent, account: Account, replace: Bool) throws(APIError) {
        guard content.Text != nil || content.Html != nil else { throw APIError.badRequest("TemplateContent needs Text or Html") }
        // SES renders a missing variable as empty; so do templates made through this API.
        let template = Template(name: name, subject: content.Subject ?? "", text: content.Text, html: content.Html, missing: .default)
        _ = try TemplateRenderer(template)
        do { try services.store.saveTemplate(template, accountID: account.id, replace: replace) } catch {
            throw TemplateRoutes.map(error, name: name)
        }
    }

    // MARK: Field conversions

    static func pathValue(_ raw: String) -> String { raw.removingPercentEncoding ?? raw }

    static func addresses(_ list: [String]?) throws(APIError) -> [NameAddress] {
        try (list ?? []).map { text throws(APIError) in try NameAddress.parse(text, field: "Destination") }
    }

    static func headers(_ list: [Header]?) throws(APIError) -> [(name: String, value: String)] {
        guard let list else { return [] }
        guard list.count <= 15 else { throw APIError.badRequest("at most 15 Headers") }
        return list.map { ($0.Name, $0.Value) }
    }

    static func attachments(_ list: [SESAttachment]?) throws(APIError) -> [Attachment] {
        try (list ?? []).map { item throws(APIError) in
            guard let data = Data(base64Encoded: item.RawContent, options: .ignoreUnknownCharacters) else {
                throw APIError.badRequest("Attachments RawContent must be base64")
            }
            return Attachment(filename: item.FileName, contentType: item.ContentType, data: Array(data),
                              inline: item.ContentDisposition == "INLINE", contentID: item.ContentId)
        }
    }

    static func charset(_ names: String?...) throws(APIError) -> Charset {
        var result = Charset.utf8
        for name in names.compactMap({ $0 }) {
            guard let charset = Charset(name: name) else { throw APIError.badRequest("unsupported Charset \(name)") }
            if charset == .iso2022JP { result = .iso2022JP }
        }
        return result
    }

    static func templateData(_ text: String?) throws(APIError) -> [String: JSONValue] {
        guard let text, !text.isEmpty else { return [:] }
        guard let data = try? JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8)) else {
            throw APIError.badRequest("TemplateData must be a JSON object")
        }
        return data
    }

    /// SES allows ASCII letters, digits, `_` and `-` in tag names and values; kept as `name:value`.
    static func tags(_ list: [Tag]) throws(APIError) -> [String] {
        try list.map { tag throws(APIError) in
            let allowed = { (text: String) in
                !text.isEmpty && text.count <= 256 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
            }
            guard allowed(tag.Name), allowed(tag.Value) else {
                throw APIError.badRequest("EmailTags names and values are ASCII letters, digits, _ and - (1-256)")
            }
            return "\(tag.Name):\(tag.Value)"
        }
    }

    static func reason(_ text: String) -> Suppression.Reason? {
        switch text {
        case "BOUNCE": return .bounce
        case "COMPLAINT": return .complaint
        default: return nil
        }
    }

    /// SES knows two reasons; unsubscribes and manual entries are reported as COMPLAINT.
    static func reasonName(_ reason: Suppression.Reason) -> String { reason == .bounce ? "BOUNCE" : "COMPLAINT" }
}

/// What the SES Raw path reads of a caller's message, through the one
/// header parser (`HeaderSection`, `AddressList`).
enum RawMessage {
    /// CRLF line ends. A message with no CR at all (a Unix file, Python's
    /// `as_string()`) has each LF made CRLF: every reader agrees where its
    /// lines end. A message with CRs must use them only before LF: a bare CR,
    /// or a bare LF beside CRLFs, is read differently by different readers
    /// and is refused rather than guessed at.
    static func lineEndings(_ bytes: [UInt8]) throws(APIError) -> [UInt8] {
        guard bytes.contains(0x0D) else {
            var output: [UInt8] = []
            output.reserveCapacity(bytes.count + bytes.count / 40)
            for byte in bytes {
                if byte == 0x0A { output.append(0x0D) }
                output.append(byte)
            }
            return output
        }
        for index in bytes.indices {
            let bare = bytes[index] == 0x0D ? index + 1 >= bytes.count || bytes[index + 1] != 0x0A
                : bytes[index] == 0x0A && (index == 0 || bytes[index - 1] != 0x0D)
            if bare {
                throw APIError(.badRequest, "invalid_line_ending", "the message has a bare CR or LF (lines end with CRLF)",
                               ses: "MessageRejected")
            }
        }
        return bytes
    }

    /// The addresses of every mailbox in the fields called `names` (group members included); fields that do not parse give none.
    static func mailboxes(in header: HeaderSection, of bytes: [UInt8], named names: [String]) -> [String] {
        header.fields.filter { field in names.contains { field.hasName($0) } }.flatMap { field in
            (try? MIME.AddressList(parsing: field.unfoldedBytes(in: bytes[...])).mailboxes.map(\.address)) ?? []
        }
    }
}
