import Foundation
import Hummingbird
import NIOCore
import Relay
import Spool
import Store

/// Webhook endpoints in three dialects: the native `/v1/webhooks`,
/// SendGrid's Event Webhook settings, and SES v2 configuration sets whose
/// event destinations name an SNS topic (an `ses`-format endpoint). And the
/// public SNS paths an SNS subscriber visits (certificate, confirmation).
struct WebhookRoutes: Sendable {
    let services: APIServices
    let eventsOut: EventsOut

    struct CreateInput: Decodable, Sendable {
        var url: String
        var name: String?
        var format: String?
        var events: [String]?
        var enabled: Bool?
    }

    struct UpdateInput: Decodable, Sendable {
        var url: String?
        var events: [String]?
        var enabled: Bool?
    }

    struct ReplayInput: Decodable, Sendable {
        var since: FlexibleDate
        var until: FlexibleDate?
    }

    func register(on routes: Routes) {
        routes.post("/v1/webhooks") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(CreateInput.self, from: call.body)
            guard let format = WebhookFormat(rawValue: input.format ?? "native") else {
                throw APIError.badRequest("format must be native, sendgrid or ses", field: "format")
            }
            let created = try create(account: call.account.id, name: input.name, url: input.url, format: format,
                                     events: try WebhookRoutes.eventTypes(input.events))
            var body = WebhookRoutes.object(created.webhook)
            if let secret = created.secret { body["secret"] = secret }
            if input.enabled == false {
                body = WebhookRoutes.object(try services.store.updateWebhook(id: created.webhook.id, accountID: call.account.id, enabled: false))
                if let secret = created.secret { body["secret"] = secret }
            }
            return APIJSON.response(object: body, status: .created)
        }
        routes.get("/v1/webhooks") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            return APIJSON.response(object: ["webhooks": try services.store.webhooks(accountID: call.account.id).map(WebhookRoutes.object)])
        }
        routes.get("/v1/webhooks/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            return APIJSON.response(object: WebhookRoutes.object(try webhook(context, account: call.account.id)))
        }
        routes.patch("/v1/webhooks/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(UpdateInput.self, from: call.body)
            let current = try webhook(context, account: call.account.id)
            if let url = input.url { try check(url) }
            let updated = try services.store.updateWebhook(id: current.id, accountID: call.account.id, url: input.url,
                                                           eventTypes: try input.events.map(WebhookRoutes.eventTypes), enabled: input.enabled)
            return APIJSON.response(object: WebhookRoutes.object(updated))
        }
        routes.delete("/v1/webhooks/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let current = try webhook(context, account: call.account.id)
            try services.store.deleteWebhook(id: current.id, accountID: call.account.id)
            return APIJSON.empty(.noContent)
        }
        routes.post("/v1/webhooks/:id/test") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let current = try webhook(context, account: call.account.id)
            let attempt = await eventsOut.webhooks.sendTest(current, sender: "test@\(call.account.domains.first ?? "example.com")")
            return APIJSON.response(object: WebhookRoutes.object(attempt))
        }
        routes.get("/v1/webhooks/:id/deliveries") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let current = try webhook(context, account: call.account.id)
            let limit = try request.queryInteger("limit", default: 50, range: 1...500)
            return APIJSON.response(object: ["deliveries": try services.store.webhookAttempts(webhookID: current.id, limit: limit)
                .map(WebhookRoutes.object)])
        }
        routes.post("/v1/webhooks/:id/replay") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let current = try webhook(context, account: call.account.id)
            let input = try APIJSON.decode(ReplayInput.self, from: call.body)
            let until = input.until?.date ?? Date()
            guard input.since.date < until else { throw APIError.badRequest("since must be before until", field: "since") }
            guard let range = try services.index.eventIDRange(since: input.since.date, until: until) else {
                return APIJSON.response(object: ["replay": NSNull(), "message": "no events in the range"], status: .ok)
            }
            let replay = try services.store.addWebhookReplay(webhookID: current.id, after: range.after, through: range.through)
            return APIJSON.response(object: ["replay": ["id": replay.id, "after_event": replay.after, "through_event": replay.through]],
                                    status: .accepted)
        }
        SendGridEventWebhookRoutes(routes: self).register(on: routes)
        SESConfigurationSetRoutes(services: services).register(on: routes)
        SNSRoutes(services: services, eventsOut: eventsOut).register(on: routes)
    }

    func webhook(_ context: APIRequestContext, account: Int64) throws -> WebhookEndpoint {
        let id = try context.parameters.require("id")
        // Another account's endpoint is "not found", exactly like one that does not exist.
        guard let webhook = try services.store.webhook(id: id, accountID: account) else { throw APIError.notFound("webhook \(id)") }
        return webhook
    }

    func create(account: Int64, name: String?, url: String, format: WebhookFormat, events: [String]) throws -> NewWebhook {
        try check(url)
        if let name {
            guard !name.isEmpty, name.utf8.count <= 64,
                  name.utf8.allSatisfy({ $0.isASCIIAlphanumericByte || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else {
                throw APIError.badRequest("name is 1-64 letters, digits, - and _", field: "name")
            }
        }
        guard try services.store.webhooks(accountID: account).count < 20 else {
            throw APIError(.badRequest, "too_many_webhooks", "an account may have at most 20 webhook endpoints")
        }
        do {
            // A new endpoint hears of what happens from now on (a replay sends the past).
            return try services.store.createWebhook(accountID: account, name: name, url: url, format: format, eventTypes: events,
                                                    cursor: try services.index.lastEventID())
        } catch WebhookStoreError.duplicateName(let name) {
            throw APIError(.conflict, "already_exists", "a webhook named \(name) already exists", ses: "AlreadyExistsException")
        }
    }

    /// The URL's shape and, for an address literal, its range; host names are checked when resolved, at every request.
    func check(_ text: String) throws(APIError) {
        guard let url = WebhookURL(text) else {
            throw APIError.badRequest("url must be an http(s) URL without credentials, at most 2048 characters", field: "url")
        }
        if !url.secure && !eventsOut.allowPlainHTTP {
            throw APIError(.badRequest, "insecure_url", "url must be https (webhooks.allowPlainHttp is off)", field: "url")
        }
        if let address = try? SocketAddress(ipAddress: url.host, port: url.port), !eventsOut.allowNonPublicAddresses,
           !PublicAddress.isPublic(address) {
            throw APIError(.badRequest, "forbidden_address", "url names a non-public address", field: "url")
        }
    }

    static func eventTypes(_ names: [String]?) throws(APIError) -> [String] {
        var types: [String] = []
        for name in names ?? [] {
            guard DeliveryEvent.Kind(rawValue: name) != nil else {
                throw APIError.badRequest("events are \(DeliveryEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))", field: "events")
            }
            if !types.contains(name) { types.append(name) }
        }
        return types
    }

    static func object(_ webhook: WebhookEndpoint) -> [String: Any] {
        var body: [String: Any] = [
            "id": webhook.id, "name": webhook.name, "url": webhook.url, "format": webhook.format.rawValue,
            "events": webhook.eventTypes, "enabled": webhook.enabled, "created_at": NativeAPI.iso(webhook.createdAt),
            "position": webhook.cursor,
            "failing_since": webhook.failingSince.map(NativeAPI.iso) as Any? ?? NSNull(),
            "disabled_reason": webhook.disabledReason as Any? ?? NSNull(),
        ]
        switch webhook.format {
        case .native: break
        case .sendgrid: body["public_key"] = webhook.publicKey ?? ""
        case .ses:
            body["topic_arn"] = webhook.topicARN
            body["confirmed"] = webhook.confirmed
        }
        return body
    }

    static func object(_ attempt: WebhookAttempt) -> [String: Any] {
        ["at": NativeAPI.iso(attempt.at), "events": attempt.events, "first_event": attempt.firstEvent, "last_event": attempt.lastEvent,
         "status": attempt.status as Any? ?? NSNull(), "error": attempt.error as Any? ?? NSNull(), "succeeded": attempt.succeeded,
         "duration_ms": attempt.durationMilliseconds, "replay": attempt.replay, "test": attempt.test]
    }
}

extension UInt8 {
    var isASCIIAlphanumericByte: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self)
    }
}

/// SendGrid's Event Webhook settings (`/v3/user/webhooks/event/…`): the
/// account's one `sendgrid`-format endpoint, named `sendgrid-event-webhook`.
struct SendGridEventWebhookRoutes: Sendable {
    let routes: WebhookRoutes
    static let name = "sendgrid-event-webhook"
    /// SendGrid's boolean settings and the events they stand for.
    static let settings = ["processed": "processed", "delivered": "delivered", "deferred": "deferred", "bounce": "bounce",
                           "dropped": "dropped", "spam_report": "spamreport", "unsubscribe": "unsubscribe", "open": "open", "click": "click"]

    struct Input: Decodable, Sendable {
        var enabled: Bool?
        var url: String?
        var processed: Bool?
        var delivered: Bool?
        var deferred: Bool?
        var bounce: Bool?
        var dropped: Bool?
        var spamReport: Bool?
        var unsubscribe: Bool?
        var open: Bool?
        var click: Bool?
        var groupResubscribe: Bool?
        var groupUnsubscribe: Bool?

        var selected: [String: Bool?] {
            ["processed": processed, "delivered": delivered, "deferred": deferred, "bounce": bounce, "dropped": dropped,
             "spam_report": spamReport, "unsubscribe": unsubscribe, "open": open, "click": click]
        }
    }

    struct SignedInput: Decodable, Sendable { var enabled: Bool }

    var services: APIServices { routes.services }

    func register(on table: Routes) {
        table.get("/v3/user/webhooks/event/settings") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            return APIJSON.response(object: settings(try current(call.account.id)))
        }
        table.patch("/v3/user/webhooks/event/settings") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(Input.self, from: call.body)
            var webhook = try current(call.account.id)
            var wanted = Set(webhook.map { SendGridEventWebhookRoutes.names($0.eventTypes) } ?? [])
            for (setting, value) in input.selected {
                guard let value, let event = SendGridEventWebhookRoutes.settings[setting] else { continue }
                if value { wanted.insert(event) } else { wanted.remove(event) }
            }
            let types = wanted.flatMap { SendGridWebhookFormat.types(for: $0).map(\.rawValue) }.sorted()
            if let existing = webhook {
                if let url = input.url { try routes.check(url) }
                webhook = try services.store.updateWebhook(id: existing.id, accountID: call.account.id, url: input.url,
                                                           eventTypes: types, enabled: input.enabled)
            } else {
                guard let url = input.url else { throw APIError.badRequest("url is required", field: "url") }
                let created = try routes.create(account: call.account.id, name: SendGridEventWebhookRoutes.name, url: url,
                                                format: .sendgrid, events: types)
                webhook = created.webhook
                if input.enabled == false {
                    webhook = try services.store.updateWebhook(id: created.webhook.id, accountID: call.account.id, enabled: false)
                }
            }
            return APIJSON.response(object: settings(webhook))
        }
        table.get("/v3/user/webhooks/event/settings/signed") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            return APIJSON.response(object: ["public_key": try current(call.account.id)?.publicKey ?? ""])
        }
        table.patch("/v3/user/webhooks/event/settings/signed") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            _ = try APIJSON.decode(SignedInput.self, from: call.body)
            // Every request is signed; the key exists from the endpoint's creation and is shown here.
            guard let webhook = try current(call.account.id) else {
                throw APIError.notFound("event webhook (set its url with PATCH /v3/user/webhooks/event/settings first)")
            }
            return APIJSON.response(object: ["public_key": webhook.publicKey ?? ""])
        }
        table.post("/v3/user/webhooks/event/test") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            guard let webhook = try current(call.account.id) else { throw APIError.notFound("event webhook") }
            let attempt = await routes.eventsOut.webhooks.sendTest(webhook, sender: "test@\(call.account.domains.first ?? "example.com")")
            guard attempt.succeeded else {
                throw APIError(.badRequest, "test_failed", "the test event was not accepted: \(attempt.error ?? "HTTP \(attempt.status ?? 0)")")
            }
            return APIJSON.empty(.noContent)
        }
    }

    func current(_ account: Int64) throws -> WebhookEndpoint? {
        try services.store.webhook(named: SendGridEventWebhookRoutes.name, accountID: account)
    }

    /// SendGrid event names covered by a list of log types.
    static func names(_ types: [String]) -> [String] {
        let kinds = types.isEmpty ? DeliveryEvent.Kind.allCases : types.compactMap(DeliveryEvent.Kind.init(rawValue:))
        return Array(Set(kinds.compactMap(SendGridWebhookFormat.eventName)))
    }

    func settings(_ webhook: WebhookEndpoint?) -> [String: Any] {
        let names = Set(webhook.map { SendGridEventWebhookRoutes.names($0.eventTypes) } ?? [])
        var body: [String: Any] = ["enabled": webhook?.enabled ?? false, "url": webhook?.url ?? "", "group_resubscribe": false,
                                   "group_unsubscribe": false, "oauth_client_id": NSNull(), "oauth_token_url": NSNull()]
        for (setting, event) in SendGridEventWebhookRoutes.settings { body[setting] = webhook != nil && names.contains(event) }
        return body
    }
}

/// SES v2 configuration sets and their event destinations (SNS only).
struct SESConfigurationSetRoutes: Sendable {
    let services: APIServices

    struct CreateInput: Decodable, Sendable { var ConfigurationSetName: String }
    struct SNSDestination: Codable, Sendable { var TopicArn: String }
    struct DestinationInput: Decodable, Sendable {
        var Enabled: Bool?
        var MatchingEventTypes: [String]?
        var SnsDestination: SNSDestination?
        var KinesisFirehoseDestination: JSONValue?
        var CloudWatchDestination: JSONValue?
        var PinpointDestination: JSONValue?
        var EventBridgeDestination: JSONValue?
    }
    struct CreateDestinationInput: Decodable, Sendable { var EventDestinationName: String; var EventDestination: DestinationInput }
    struct UpdateDestinationInput: Decodable, Sendable { var EventDestination: DestinationInput }

    func register(on routes: Routes) {
        routes.post("/v2/email/configuration-sets") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(CreateInput.self, from: call.body, snakeCase: false)
            try SESConfigurationSetRoutes.checkName(input.ConfigurationSetName, field: "ConfigurationSetName")
            do { try services.store.createConfigurationSet(accountID: call.account.id, name: input.ConfigurationSetName) } catch
                ConfigurationSetError.alreadyExists(let name) {
                throw APIError(.badRequest, "already_exists", "configuration set \(name) already exists", ses: "AlreadyExistsException")
            }
            return APIJSON.empty(.ok)
        }
        routes.get("/v2/email/configuration-sets") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            return APIJSON.response(object: ["ConfigurationSets": try services.store.configurationSets(accountID: call.account.id)])
        }
        routes.get("/v2/email/configuration-sets/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let name = try set(context, account: call.account.id)
            return APIJSON.response(object: ["ConfigurationSetName": name, "Tags": [Any](),
                                             "SendingOptions": ["SendingEnabled": true]])
        }
        routes.delete("/v2/email/configuration-sets/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let name = try set(context, account: call.account.id)
            try services.store.deleteConfigurationSet(accountID: call.account.id, name: name)
            return APIJSON.empty(.ok)
        }
        routes.post("/v2/email/configuration-sets/:name/event-destinations") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let name = try set(context, account: call.account.id)
            let input = try APIJSON.decode(CreateDestinationInput.self, from: call.body, snakeCase: false)
            try SESConfigurationSetRoutes.checkName(input.EventDestinationName, field: "EventDestinationName")
            try save(input.EventDestinationName, input.EventDestination, set: name, account: call.account.id, replace: false)
            return APIJSON.empty(.ok)
        }
        routes.get("/v2/email/configuration-sets/:name/event-destinations") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let name = try set(context, account: call.account.id)
            let destinations = try services.store.eventDestinations(accountID: call.account.id, configurationSet: name)
            return APIJSON.response(object: ["EventDestinations": destinations.map {
                ["Name": $0.name, "Enabled": $0.enabled, "MatchingEventTypes": $0.matchingEventTypes,
                 "SnsDestination": ["TopicArn": $0.topicARN]] as [String: Any]
            }])
        }
        routes.put("/v2/email/configuration-sets/:name/event-destinations/:destination") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let name = try set(context, account: call.account.id)
            let input = try APIJSON.decode(UpdateDestinationInput.self, from: call.body, snakeCase: false)
            try save(SESAPI.pathValue(try context.parameters.require("destination")), input.EventDestination, set: name,
                     account: call.account.id, replace: true)
            return APIJSON.empty(.ok)
        }
        routes.delete("/v2/email/configuration-sets/:name/event-destinations/:destination") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let name = try set(context, account: call.account.id)
            let destination = SESAPI.pathValue(try context.parameters.require("destination"))
            do { try services.store.deleteEventDestination(accountID: call.account.id, configurationSet: name, name: destination) } catch {
                throw APIError(.notFound, "not_found", "event destination \(destination) not found", ses: "NotFoundException")
            }
            return APIJSON.empty(.ok)
        }
    }

    func set(_ context: APIRequestContext, account: Int64) throws -> String {
        let name = SESAPI.pathValue(try context.parameters.require("name"))
        guard try services.store.configurationSetExists(accountID: account, name: name) else {
            throw APIError(.notFound, "not_found", "configuration set \(name) does not exist", ses: "NotFoundException")
        }
        return name
    }

    func save(_ name: String, _ input: DestinationInput, set: String, account: Int64, replace: Bool) throws {
        guard input.KinesisFirehoseDestination == nil, input.CloudWatchDestination == nil, input.PinpointDestination == nil,
              input.EventBridgeDestination == nil else {
            throw APIError.badRequest("only SnsDestination is supported: events go to a Hikyaku webhook of format ses")
        }
        guard let arn = input.SnsDestination?.TopicArn else { throw APIError.badRequest("SnsDestination.TopicArn is required") }
        // The topic must be one of this account's own `ses` endpoints.
        guard let topic = WebhookEndpoint.parseTopicARN(arn), topic.accountID == account,
              let webhook = try services.store.webhook(named: topic.name, accountID: account), webhook.format == .ses else {
            throw APIError(.notFound, "not_found", "no topic \(arn): create one with hikyaku webhook create --format ses or POST /v1/webhooks",
                           ses: "NotFoundException")
        }
        let types = (input.MatchingEventTypes ?? []).map { $0.uppercased() }
        guard !types.isEmpty, types.allSatisfy(SESWebhookFormat.matchingTypes.contains) else {
            throw APIError.badRequest("MatchingEventTypes are \(SESWebhookFormat.matchingTypes.joined(separator: ", "))")
        }
        do {
            try services.store.saveEventDestination(EventDestination(name: name, enabled: input.Enabled ?? false, matchingEventTypes: types,
                                                                     topicARN: webhook.topicARN),
                                                    accountID: account, configurationSet: set, replace: replace)
        } catch ConfigurationSetError.alreadyExists(let name) {
            throw APIError(.badRequest, "already_exists", "event destination \(name) already exists", ses: "AlreadyExistsException")
        } catch ConfigurationSetError.notFound(let name) {
            throw APIError(.notFound, "not_found", "\(name) not found", ses: "NotFoundException")
        }
    }

    static func checkName(_ name: String, field: String) throws(APIError) {
        guard !name.isEmpty, name.utf8.count <= 64,
              name.utf8.allSatisfy({ $0.isASCIIAlphanumericByte || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else {
            throw APIError.badRequest("\(field) is 1-64 letters, digits, - and _", field: field)
        }
    }
}

/// What an SNS subscriber reaches without credentials: the signing
/// certificate and the SubscribeURL of a SubscriptionConfirmation.
struct SNSRoutes: Sendable {
    let services: APIServices
    let eventsOut: EventsOut

    func register(on routes: Routes) {
        routes.get("/sns/certificate.pem") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/x-pem-file"],
                     body: .init(byteBuffer: ByteBuffer(string: eventsOut.snsCertificatePEM)))
        }
        routes.get("/sns/confirm") { request, _ in
            // The token is 32 random characters; anything else is simply unknown.
            guard let token = request.query("token"), token.utf8.count == 32, let webhook = try services.store.confirmWebhook(token: token) else {
                return Response(status: .notFound, headers: [.contentType: "text/xml"],
                                body: .init(byteBuffer: ByteBuffer(string: "<ErrorResponse><Error><Code>NotFound</Code></Error></ErrorResponse>")))
            }
            let xml = """
                <ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><ConfirmSubscriptionResult>\
                <SubscriptionArn>\(webhook.topicARN):\(webhook.id)</SubscriptionArn></ConfirmSubscriptionResult>\
                </ConfirmSubscriptionResponse>
                """
            return Response(status: .ok, headers: [.contentType: "text/xml"], body: .init(byteBuffer: ByteBuffer(string: xml)))
        }
        routes.get("/sns/unsubscribe") { _, _ in
            // Anyone holding a notification could follow this; a subscription ends through the API instead.
            Response(status: .forbidden, headers: [.contentType: "text/plain; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: "Unsubscribe with DELETE /v1/webhooks/{id} or hikyaku webhook delete.\n")))
        }
    }
}
