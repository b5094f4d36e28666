import Foundation
import Hummingbird
import MIME
import NIOCore
import Relay
import Spool
import Store

/// The native API under `/v1` (described by `/openapi.json`).
struct NativeAPI: Sendable {
    let services: APIServices

    func register(on routes: Routes) {
        routes.post("/v1/messages") { request, context in try await send(request, context) }
        routes.get("/v1/messages/:id") { request, context in try await status(request, context) }
        routes.post("/v1/messages/:id/resend") { request, context in try await resendMessage(request, context) }
        routes.post("/v1/resend") { request, context in try await resendByFilter(request, context) }
        routes.get("/v1/events") { request, context in try await events(request, context) }
        routes.get("/v1/stats") { request, context in try await stats(request, context) }
        routes.get("/v1/stats/bounces") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let until = try request.queryDate("until") ?? Date()
            let since = try request.queryDate("since") ?? until.addingTimeInterval(-7 * 86400)
            let limit = try request.queryInteger("limit", default: 1000, range: 1...10_000)
            return try APIJSON.response(try services.log.bounceAnalysis(accountID: call.account.id, since: since, until: until,
                                                                        topPerCategory: 5, recipientLimit: limit))
        }
        routes.get("/v1/account") { request, context in try await account(request, context) }
        routes.get("/v1/account/usage") { request, context in try await usage(request, context) }
        routes.put("/v1/account/suppression") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(SuppressionSettings.self, from: call.body)
            guard input.reasons.allSatisfy({ $0 == .bounce || $0 == .complaint }) else {
                throw APIError.badRequest("automatic suppression reasons are bounce and complaint (unsubscribes always apply)",
                                          field: "reasons")
            }
            try services.store.setSuppressedReasons(Set(input.reasons), accountID: call.account.id)
            return APIJSON.response(object: ["suppressed_reasons": input.reasons.map(\.rawValue).sorted()])
        }
        routes.put("/v1/account/tracking") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(TrackingInput.self, from: call.body)
            let current = try services.store.trackingDefaults(accountID: call.account.id)
            let opens = input.opens ?? current.opens
            let clicks = input.clicks ?? current.clicks
            try services.store.setTrackingDefaults(accountID: call.account.id, opens: opens, clicks: clicks)
            return APIJSON.response(object: ["opens": opens, "clicks": clicks])
        }
        TemplateRoutes(services: services).register(on: routes)
        SuppressionRoutes(services: services).register(on: routes)
        ManagementRoutes(services: services).register(on: routes)
        ContactRoutes(services: services).register(on: routes)
        CampaignRoutes(services: services).register(on: routes)
    }

    // MARK: Sending

    struct AttachmentInput: Decodable, Sendable {
        var filename: String
        var content: String
        var contentType: String?
        var inline: Bool?
        var contentId: String?
    }

    struct RecipientInput: Decodable, Sendable {
        var to: AddressList
        var cc: AddressList?
        var bcc: AddressList?
        var data: [String: JSONValue]?
        var tags: [String]?
        var customArgs: [String: String]?
    }

    struct SendRequest: Decodable, Sendable {
        var from: AddressInput
        var to: AddressList?
        var cc: AddressList?
        var bcc: AddressList?
        var replyTo: AddressList?
        var subject: String?
        var text: String?
        var html: String?
        var template: String?
        var templateData: [String: JSONValue]?
        var attachments: [AttachmentInput]?
        var headers: [String: String]?
        var charset: String?
        var tags: [String]?
        var customArgs: [String: String]?
        var marketing: Bool?
        var sendAt: FlexibleDate?
        var recipients: [RecipientInput]?
        var tracking: TrackingInput?
    }

    /// Open and click tracking for this send; an omitted one follows the account's default.
    struct TrackingInput: Decodable, Sendable {
        var opens: Bool?
        var clicks: Bool?
    }

    func send(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .send)
        let input = try APIJSON.decode(SendRequest.self, from: call.body)
        let draft = try draft(input, account: call.account)
        let messages = try draft.messages(builder: services.builder, unsubscribe: services.unsubscribe, tracking: services.tracking,
                                          limits: services.draftLimits)
        let ids = try await services.submitter.submit(messages, door: .api, account: call.account, client: context.clientAddress)
        // Written by hand: for a batch of 1,000 JSONSerialization cost a sixth of the request.
        var body = "{"
        if ids.count == 1 { body += "\"id\":\"\(ids[0].rawValue)\"," }
        body += "\"messages\":["
        body += zip(ids, messages).map { "{\"id\":\"\($0.rawValue)\",\"recipients\":\(JSONText.array($1.recipients))}" }
            .joined(separator: ",")
        body += "]}"
        return Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func draft(_ input: SendRequest, account: Account) throws(APIError) -> MessageDraft {
        guard let charset = Charset(name: input.charset ?? "UTF-8") else {
            throw APIError.badRequest("charset must be UTF-8 or ISO-2022-JP", field: "charset")
        }
        var base = Composition(from: try NativeAPI.address(input.from, field: "from"), subject: input.subject ?? "")
        base.charset = charset
        base.replyTo = try NativeAPI.addresses(input.replyTo, field: "reply_to")
        base.text = input.text
        base.html = input.html
        base.headers = (input.headers ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        base.attachments = try (input.attachments ?? []).enumerated().map { index, item throws(APIError) in
            guard let data = Data(base64Encoded: item.content, options: .ignoreUnknownCharacters) else {
                throw APIError.badRequest("attachment content must be base64", field: "attachments[\(index)].content")
            }
            return Attachment(filename: item.filename, contentType: item.contentType, data: Array(data),
                              inline: item.inline ?? false, contentID: item.contentId)
        }
        var renderer: TemplateRenderer?
        var marketing = input.marketing ?? false
        if let name = input.template {
            let (compiled, stored) = try services.renderer(template: name, account: account)
            renderer = compiled
            marketing = input.marketing ?? stored.marketing
        } else if input.templateData != nil || input.recipients?.contains(where: { $0.data != nil }) == true {
            guard input.subject != nil else { throw APIError.badRequest("subject is required", field: "subject") }
            renderer = try TemplateRenderer(subject: input.subject ?? "", text: input.text, html: input.html)
        } else if input.subject == nil {
            throw APIError.badRequest("subject is required (or a template)", field: "subject")
        }
        var personalizations: [Personalization]
        if let recipients = input.recipients {
            guard input.to == nil && input.cc == nil && input.bcc == nil else {
                throw APIError.badRequest("give either to/cc/bcc or recipients, not both", field: "recipients")
            }
            personalizations = try recipients.enumerated().map { index, item throws(APIError) in
                var personalization = Personalization(to: try NativeAPI.addresses(item.to, field: "recipients[\(index)].to"))
                personalization.cc = try NativeAPI.addresses(item.cc, field: "recipients[\(index)].cc")
                personalization.bcc = try NativeAPI.addresses(item.bcc, field: "recipients[\(index)].bcc")
                personalization.data = item.data ?? [:]
                personalization.tags = item.tags ?? []
                personalization.customArguments = item.customArgs ?? [:]
                return personalization
            }
        } else {
            var personalization = Personalization(to: try NativeAPI.addresses(input.to, field: "to"))
            personalization.cc = try NativeAPI.addresses(input.cc, field: "cc")
            personalization.bcc = try NativeAPI.addresses(input.bcc, field: "bcc")
            guard !(personalization.to + personalization.cc + personalization.bcc).isEmpty else {
                throw APIError.badRequest("at least one recipient is required", field: "to")
            }
            personalizations = [personalization]
        }
        try NativeAPI.checkTags(input.tags ?? [])
        var metadata = MessageMetadata(tags: input.tags ?? [], customArguments: input.customArgs ?? [:], marketing: marketing,
                                       notBefore: input.sendAt?.date, source: "api")
        metadata.tracking = try services.trackingSettings(account: account, opens: input.tracking?.opens, clicks: input.tracking?.clicks)
        return MessageDraft(base: base, renderer: renderer, data: input.templateData ?? [:], personalizations: personalizations,
                            metadata: metadata)
    }

    static func address(_ input: AddressInput, field: String) throws(APIError) -> NameAddress {
        if let text = input.text { return try NameAddress.parse(text, field: field) }
        if let name = input.name { try checkLine(name, field: field) }
        let parsed = try NameAddress.parse(input.email ?? "", field: field)
        return NameAddress(name: input.name, address: parsed.address)
    }

    static func addresses(_ list: AddressList?, field: String) throws(APIError) -> [NameAddress] {
        try (list?.items ?? []).enumerated().map { index, item throws(APIError) in try address(item, field: "\(field)[\(index)]") }
    }

    static func checkLine(_ text: String, field: String) throws(APIError) {
        if text.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) {
            throw APIError.invalid("\(field) contains a line break (CR or LF)", field: field)
        }
    }

    static func checkTags(_ tags: [String]) throws(APIError) {
        for tag in tags where tag.isEmpty || tag.count > 255 || tag.contains(where: { $0.isNewline }) {
            throw APIError.badRequest("tags must be 1-255 characters on one line", field: "tags")
        }
    }

    // MARK: Status, events, statistics

    func status(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .read)
        let text = try context.parameters.require("id")
        let found: Result<QueuedMessageDetails, APIError>
        do { found = .success(try await services.message(text, account: call.account)) } catch { found = .failure(error) }
        if case .failure(let error) = found, error.status == .notFound, let shared = services.store as? any SharedDeliveryLog,
           let id = MessageID(text), let object = try NativeAPI.sharedStatus(id, account: call.account.id, log: shared) {
            // In a cluster another node may hold it: what the shared log knows of it.
            return APIJSON.response(object: object)
        }
        let details = try found.get()
        let events = try services.index.events(DeliveryLogFilter(messageID: details.id, limit: 10_000)).reversed()
        let body: [String: Any] = [
            "id": details.id.rawValue,
            "received_at": NativeAPI.iso(details.receivedAt),
            "from": details.sender,
            "size": details.size,
            "held": details.held,
            "tags": details.metadata?.tags ?? [],
            "custom_args": details.metadata?.customArguments ?? [:],
            "marketing": details.metadata?.marketing ?? false,
            "source": details.metadata?.source ?? "smtp",
            "send_at": details.metadata?.notBefore.map(NativeAPI.iso) ?? NSNull(),
            "resend_of": details.metadata?.resendOf?.rawValue ?? NSNull(),
            "recipients": details.recipients.map {
                ["address": $0.address, "state": $0.state, "attempts": $0.attempts, "last_reply": $0.lastReply ?? NSNull()] as [String: Any]
            },
            "events": events.map(NativeAPI.eventObject),
        ]
        return APIJSON.response(object: body)
    }

    /// A message another node of the cluster holds, as its copied events tell it: its recipients' states
    /// (each one's latest delivery event), attempts and last replies, and the events themselves. What only
    /// the holding node's queue has (size, hold, custom arguments, schedule) is not there, and `node` says so.
    static func sharedStatus(_ id: MessageID, account: Int64, log: any SharedDeliveryLog) throws(APIError) -> [String: Any]? {
        do { return try statusFromSharedLog(id, account: account, log: log) } catch { throw APIError.storeFailure(error) }
    }

    static func statusFromSharedLog(_ id: MessageID, account: Int64, log: any SharedDeliveryLog) throws -> [String: Any]? {
        let events = try log.events(DeliveryLogFilter(accountID: account, messageID: id, limit: 10_000)).reversed()
        guard let envelope = try log.messageEnvelope(id, accountID: account), !events.isEmpty else { return nil }
        let states: Set<DeliveryEvent.Kind> = [.accepted, .deferred, .delivered, .bounced, .expired, .cancelled, .suppressed]
        var recipients: [(address: String, state: String, attempts: Int, reply: String?)] = []
        for event in events {
            if !recipients.contains(where: { $0.address == event.recipient }) { recipients.append((event.recipient, "queued", 0, nil)) }
            guard let index = recipients.firstIndex(where: { $0.address == event.recipient }) else { continue }
            if event.attempt != nil {
                recipients[index].attempts += 1
                recipients[index].reply = event.replyText
            }
            if states.contains(event.type) { recipients[index].state = event.type == .accepted ? "queued" : event.type.rawValue }
        }
        return [
            "id": id.rawValue,
            "received_at": NativeAPI.iso(events.first(where: { $0.type == .accepted })?.at ?? id.timestamp),
            "from": envelope.sender ?? "",
            "tags": envelope.tags,
            "node": "another node of the cluster holds this message; its queue details are there",
            "recipients": recipients.map {
                ["address": $0.address, "state": $0.state, "attempts": $0.attempts, "last_reply": $0.reply ?? NSNull()] as [String: Any]
            },
            "events": events.map(NativeAPI.eventObject),
        ]
    }

    func filter(_ request: Request, account: Account) throws(APIError) -> DeliveryLogFilter {
        var filter = DeliveryLogFilter(accountID: account.id)
        filter.recipient = request.query("recipient")
        if let text = request.query("message_id") {
            guard let id = MessageID(text) else { throw APIError.badRequest("message_id is not a message id", field: "message_id") }
            filter.messageID = id
        }
        filter.tag = request.query("tag")
        filter.category = request.query("category")
        filter.sender = request.query("sender")
        filter.subject = request.query("subject").flatMap { $0.isEmpty ? nil : $0 }
        filter.provider = request.query("provider")
        for status in request.queryAll("status").flatMap({ $0.split(separator: ",") }) {
            guard let kind = DeliveryEvent.Kind(rawValue: String(status)) else {
                throw APIError.badRequest("status must be one of \(DeliveryEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))",
                                          field: "status")
            }
            filter.types.append(kind)
        }
        filter.since = try request.queryDate("since")
        filter.until = try request.queryDate("until")
        return filter
    }

    func events(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .read)
        var filter = try filter(request, account: call.account)
        let csv = request.headers[.accept]?.contains("text/csv") == true || request.query("format") == "csv"
        filter.limit = try request.queryInteger("limit", default: csv ? 10_000 : 100, range: 1...(csv ? 100_000 : 1000))
        if let cursor = request.query("cursor") {
            guard let position = DeliveryLogCursor(cursor) else { throw APIError.badRequest("invalid cursor", field: "cursor") }
            filter.before = position
        }
        let page = try services.log.eventPage(filter)
        if csv {
            var text = EventCSV.header
            for event in page.events { text += EventCSV.row(event) }
            var headers: HTTPFields = [.contentType: "text/csv; charset=utf-8",
                                       .contentDisposition: "attachment; filename=\"events.csv\""]
            if let next = page.next { headers[.nextCursor] = next.description }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        return APIJSON.response(object: ["events": page.events.map(NativeAPI.eventObject),
                                         "next_cursor": page.next?.description as Any? ?? NSNull()])
    }

    func stats(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .read)
        let until = try request.queryDate("until") ?? Date()
        let since = try request.queryDate("since") ?? until.addingTimeInterval(-86400)
        let interval: Int
        switch request.query("interval") ?? "hour" {
        case "hour": interval = 3600
        case "day": interval = 86400
        default: throw APIError.badRequest("interval must be hour or day", field: "interval")
        }
        guard let grouping = QueueIndex.StatsGrouping(rawValue: request.query("group_by") ?? "none") else {
            throw APIError.badRequest("group_by must be none, tag or provider", field: "group_by")
        }
        let stats = try services.log.stats(accountID: call.account.id, since: since, until: until, interval: interval,
                                             groupBy: grouping)
        let engagement = try services.log.engagementCounts(accountID: call.account.id, since: since, until: until)
        return APIJSON.response(object: [
            "since": NativeAPI.iso(since), "until": NativeAPI.iso(until), "interval": request.query("interval") ?? "hour",
            // Opens and clicks, total and unique (one per message and recipient), people and machines apart.
            "engagement": ["opened", "clicked"].reduce(into: [String: [String: Int]]()) { result, type in
                var counts = engagement[type] ?? [:]
                for key in ["human_total", "human_unique", "machine_total", "machine_unique"] where counts[key] == nil { counts[key] = 0 }
                result[type] = counts
            },
            "stats": stats.map { row -> [String: Any] in
                var item: [String: Any] = ["period": NativeAPI.iso(row.period), "counts": row.counts]
                if grouping != .none { item[grouping.rawValue] = row.group ?? "" }
                return item
            },
        ])
    }

    func account(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .read)
        let account = (try services.store.account(id: call.account.id)) ?? call.account
        let quota = account.quota
        return APIJSON.response(object: [
            "name": account.name,
            "domains": account.domains,
            "verified_domains": account.verifiedDomains,
            "suppressed_reasons": account.suppressedReasons.map(\.rawValue).sorted(),
            "quota": [
                "max_send_rate": quota.maxSendRate,
                "max_24h_send": quota.max24HourSend,
                "sent_last_24h": services.meter.sentLast24Hours(accountID: call.account.id),
                "sandbox": quota.sandbox,
            ] as [String: Any],
            "key": ["id": call.principal.key.keyID, "scope": call.principal.key.scope.rawValue],
        ])
    }

    func usage(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .read)
        let until = try request.queryDate("until") ?? Date()
        let since = try request.queryDate("since") ?? until.addingTimeInterval(-30 * 86400)
        try? services.meter.flush(waitingAtMost: 2)
        let days = try services.store.dailyUsage(accountID: call.account.id, since: since, until: until)
        return APIJSON.response(object: [
            "since": NativeAPI.iso(since), "until": NativeAPI.iso(until),
            "usage": days.map { ["day": $0.day, "messages": $0.messages, "recipients": $0.recipients, "bytes": $0.bytes] },
        ])
    }

    // MARK: Resend

    struct SuppressionSettings: Decodable, Sendable {
        var reasons: [Suppression.Reason]
    }

    struct ResendRequest: Decodable, Sendable {
        var recipients: [String]?
    }

    struct ResendFilter: Decodable, Sendable {
        var status: [String]?
        var category: String?
        var recipient: String?
        var tag: String?
        var since: FlexibleDate?
        var until: FlexibleDate?
        var limit: Int?
    }

    /// Recipients that did not get the message: those may be sent it again.
    static let resendable: Set<String> = [RecipientState.bounced.rawValue, RecipientState.expired.rawValue,
                                          RecipientState.cancelled.rawValue]

    /// Unnamed: every recipient that bounced, expired or was cancelled. Named
    /// ones may also have been delivered (a recipient who says the mail never
    /// came); one still queued is never sent twice.
    static func resendRecipients(_ details: QueuedMessageDetails, chosen: [String]?) throws(APIError) -> [String] {
        let named = chosen.map { Set($0.map { $0.lowercased() }) }
        let recipients = details.recipients.filter { recipient in
            guard let named else { return resendable.contains(recipient.state) }
            return named.contains(recipient.address.lowercased())
                && (resendable.contains(recipient.state) || recipient.state == RecipientState.delivered.rawValue)
        }.map(\.address)
        guard !recipients.isEmpty else {
            throw APIError(.conflict, "nothing_to_resend", named == nil
                ? "no recipient of this message bounced, expired or was cancelled"
                : "none of the named recipients is a finished recipient of this message")
        }
        return recipients
    }

    func resendMessage(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .send)
        let details = try await services.message(try context.parameters.require("id"), account: call.account)
        let input = call.body.isEmpty ? ResendRequest() : try APIJSON.decode(ResendRequest.self, from: call.body)
        let recipients = try NativeAPI.resendRecipients(details, chosen: input.recipients)
        let id = try await resend(details, recipients: recipients, account: call.account, client: context.clientAddress)
        return APIJSON.response(object: ["id": id.rawValue, "resend_of": details.id.rawValue, "recipients": recipients],
                                status: .accepted)
    }

    func resendByFilter(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .send)
        let input = try APIJSON.decode(ResendFilter.self, from: call.body)
        var filter = DeliveryLogFilter(accountID: call.account.id)
        let statuses = input.status ?? ["bounced", "expired"]
        for status in statuses {
            guard let kind = DeliveryEvent.Kind(rawValue: status), NativeAPI.resendable.contains(status) else {
                throw APIError.badRequest("status must be bounced, expired or cancelled", field: "status")
            }
            filter.types.append(kind)
        }
        filter.category = input.category
        filter.recipient = input.recipient
        filter.tag = input.tag
        filter.since = input.since?.date
        filter.until = input.until?.date
        let limit = input.limit ?? 1000
        guard (1...10_000).contains(limit) else { throw APIError.badRequest("limit must be 1-10000", field: "limit") }
        filter.limit = limit
        let events = try services.index.events(filter)
        var byMessage: [MessageID: Set<String>] = [:]
        for event in events { byMessage[event.messageID, default: []].insert(event.recipient.lowercased()) }
        var resent: [[String: Any]] = []
        var skipped: [[String: Any]] = []
        for (id, addresses) in byMessage.sorted(by: { $0.key < $1.key }) {
            guard let details = try services.index.details(of: id), details.accountID == call.account.id else {
                skipped.append(["message_id": id.rawValue, "reason": "message no longer on record"])
                continue
            }
            // Only recipients still in a failed state: one resent already is queued or delivered now.
            let recipients = details.recipients.filter {
                NativeAPI.resendable.contains($0.state) && addresses.contains($0.address.lowercased())
            }.map(\.address)
            guard !recipients.isEmpty else { continue }
            do {
                let newID = try await resend(details, recipients: recipients, account: call.account, client: context.clientAddress)
                resent.append(["message_id": id.rawValue, "id": newID.rawValue, "recipients": recipients])
            } catch let error as APIError where error.code == "content_expired" {
                skipped.append(["message_id": id.rawValue, "reason": error.message])
            }
        }
        return APIJSON.response(object: ["resent": resent, "skipped": skipped], status: .accepted)
    }

    /// Spools the original bytes again for `recipients`, as a new message
    /// that names the original. A recipient's failed state is left as the
    /// record of what happened; the new message has its own.
    func resend(_ details: QueuedMessageDetails, recipients: [String], account: Account, client: String) async throws -> MessageID {
        guard let bytes = services.contents(of: details) else {
            throw APIError(.gone, "content_expired", "the content of message \(details.id) is no longer stored")
        }
        // Drop our own Received line from the stored copy; the new submission adds its own.
        let content = NativeAPI.droppingFirstReceived(bytes)
        var metadata = details.metadata ?? MessageMetadata(source: "smtp")
        metadata.resendOf = details.id
        metadata.notBefore = nil
        let message = OutgoingMessage(sender: details.sender, recipients: recipients, bytes: content, metadata: metadata)
        // The intake checks the sender again: a domain no longer verified cannot send, even a resend.
        return try await services.submitter.submit([message], door: .resend, account: account, client: client)[0]
    }

    static func droppingFirstReceived(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.starts(with: Array("Received:".utf8)) else { return bytes }
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 0x0D, bytes[index + 1] == 0x0A {
                let next = index + 2
                if next >= bytes.count || (bytes[next] != 0x20 && bytes[next] != 0x09) { return Array(bytes[next...]) }
            }
            index += 1
        }
        return bytes
    }

    // MARK: Shapes

    static func iso(_ date: Date) -> String { MailDate.iso8601(date) }

    static func eventObject(_ event: DeliveryEvent) -> [String: Any] {
        var object: [String: Any] = ["at": iso(event.at), "message_id": event.messageID.rawValue, "recipient": event.recipient,
                                     "type": event.type.rawValue]
        object["attempt"] = event.attempt
        object["reply_code"] = event.replyCode
        object["enhanced_code"] = event.enhancedCode
        object["reply_text"] = event.replyText
        object["category"] = event.category
        object["hard"] = event.hard
        object["site"] = event.site
        object["mx_host"] = event.mxHost
        object["remote_ip"] = event.remoteIP
        object["source_ip"] = event.sourceIP
        object["tls_version"] = event.tlsVersion
        object["duration_ms"] = event.durationMilliseconds
        // The id webhooks carry (`ev_…`), so a log line and a webhook event can be matched.
        object["id"] = event.id.map { "ev_\($0)" }
        object["user_agent"] = event.userAgent
        object["ip"] = event.clientIP
        object["url"] = event.url
        object["machine"] = event.machine
        return object
    }
}

/// The CSV export of the event log (RFC 4180: CRLF, fields quoted when needed).
enum EventCSV {
    static let header = "at,message_id,recipient,type,attempt,reply_code,enhanced_code,reply_text,category,hard,site,mx_host,remote_ip,source_ip,tls_version,duration_ms\r\n"

    static func row(_ event: DeliveryEvent) -> String {
        let fields: [String?] = [
            NativeAPI.iso(event.at), event.messageID.rawValue, event.recipient, event.type.rawValue, event.attempt.map(String.init),
            event.replyCode.map(String.init), event.enhancedCode, event.replyText, event.category, event.hard.map { $0 ? "true" : "false" },
            event.site, event.mxHost, event.remoteIP, event.sourceIP, event.tlsVersion, event.durationMilliseconds.map(String.init),
        ]
        return fields.map { quote($0 ?? "") }.joined(separator: ",") + "\r\n"
    }

    static func quote(_ field: String) -> String {
        // A leading =, +, -, @, TAB or CR would start a formula in a spreadsheet (OWASP CSV injection).
        let neutral = field.unicodeScalars.first.map { "=+-@\t\r".unicodeScalars.contains($0) } == true ? "'" + field : field
        guard neutral.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return neutral }
        return "\"" + neutral.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
