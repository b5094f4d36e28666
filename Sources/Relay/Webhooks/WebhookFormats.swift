import Crypto
import Foundation
import Spool
import Store

/// A JSON value with its keys in the order given: webhook bodies are
/// written directly, without a dictionary round trip per event.
public indirect enum JSONOut: Sendable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case null
    case array([JSONOut])
    case object([(String, JSONOut)])

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public var bytes: [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        write(to: &output)
        return output
    }

    /// Written as UTF-8 bytes: `"`, `\` and C0 controls escaped (RFC 8259 §7), everything else copied.
    func write(to output: inout [UInt8]) {
        switch self {
        case .string(let value): JSONOut.quote(value, into: &output)
        case .int(let value): output.append(contentsOf: String(value).utf8)
        case .bool(let value): output.append(contentsOf: value ? JSONOut.true : JSONOut.false)
        case .null: output.append(contentsOf: JSONOut.nullBytes)
        case .array(let items):
            output.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                item.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let fields):
            output.append(UInt8(ascii: "{"))
            for (index, (key, value)) in fields.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                JSONOut.quote(key, into: &output)
                output.append(UInt8(ascii: ":"))
                value.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    static let `true` = Array("true".utf8)
    static let `false` = Array("false".utf8)
    static let nullBytes = Array("null".utf8)
    static let hex = Array("0123456789abcdef".utf8)

    static func quote(_ text: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                           hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    static func optional(_ value: String?) -> JSONOut { value.map { .string($0) } ?? .null }
}

/// Timestamps as the formats write them.
enum WebhookTime {
    /// ISO 8601 in UTC with milliseconds (`2026-12-05T07:48:14.123Z`), as SES and SNS write them.
    /// Seconds since 1970, clamped so that no stored time can make the conversion trap.
    static func seconds(_ interval: TimeInterval) -> Int64 {
        guard interval.isFinite else { return 0 }
        return Int64(min(max(interval, -1e15), 1e15).rounded(.down))
    }

    static func iso(_ date: Date) -> String {
        let milliseconds = seconds(date.timeIntervalSince1970 * 1000)
        let seconds = milliseconds / 1000
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = milliseconds - seconds * 1000
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay % 3600 / 60)):\(two(secondOfDay % 60)).\(ms)Z"
    }
}

/// The native format: one JSON object per event, names as in `GET /v1/events`.
public enum NativeWebhookFormat {
    public static func event(_ item: OutboxEvent) -> JSONOut {
        let event = item.event
        var fields: [(String, JSONOut)] = [
            ("id", .string("ev_\(item.id)")),
            ("type", .string(event.type.rawValue)),
            ("timestamp", .string(WebhookTime.iso(event.at))),
            ("account_id", .int(item.accountID)),
            ("message_id", .string(event.messageID.rawValue)),
            ("recipient", .string(event.recipient)),
            ("sender", .optional(item.sender)),
            ("tags", .array((item.metadata?.tags ?? []).map { .string($0) })),
            ("custom_args", .object((item.metadata?.customArguments ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ("configuration_set", .optional(item.metadata?.configurationSet)),
        ]
        if let attempt = event.attempt { fields.append(("attempt", .int(Int64(attempt)))) }
        if event.replyCode != nil || event.replyText != nil {
            fields.append(("reply", .object([("code", event.replyCode.map { .int(Int64($0)) } ?? .null),
                                             ("enhanced_code", .optional(event.enhancedCode)),
                                             ("text", .optional(event.replyText))])))
        }
        if let category = event.category { fields.append(("category", .string(category))) }
        if let hard = event.hard { fields.append(("hard", .bool(hard))) }
        if let site = event.site { fields.append(("site", .string(site))) }
        if let host = event.mxHost { fields.append(("mx_host", .string(host))) }
        if let ip = event.remoteIP { fields.append(("remote_ip", .string(ip))) }
        if let tls = event.tlsVersion { fields.append(("tls", .string(tls))) }
        if let agent = event.userAgent { fields.append(("user_agent", .string(agent))) }
        if let ip = event.clientIP { fields.append(("ip", .string(ip))) }
        if let url = event.url { fields.append(("url", .string(url))) }
        if let machine = event.machine { fields.append(("machine", .bool(machine))) }
        return .object(fields)
    }

    /// The body of one request: `{"type":"events","timestamp":…,"data":{"events":[…]}}`,
    /// the Standard Webhooks payload shape around a batch.
    public static func body(_ events: [OutboxEvent], at time: Date) -> [UInt8] {
        JSONOut.object([("type", .string("events")), ("timestamp", .string(WebhookTime.iso(time))),
                        ("data", .object([("events", .array(events.map(event)))]))]).bytes
    }

    /// Standard Webhooks headers: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the secret's bytes.
    public static func headers(id: String, timestamp: Int64, body: [UInt8], key: SymmetricKey) -> [(String, String)] {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Array("\(id).\(timestamp).".utf8))
        mac.update(data: body)
        let signature = Data(mac.finalize()).base64EncodedString()
        return [("Content-Type", "application/json"), ("webhook-id", id), ("webhook-timestamp", String(timestamp)),
                ("webhook-signature", "v1,\(signature)")]
    }
}

/// SendGrid's Event Webhook: a JSON array of flat events, unique arguments
/// at top level, signed with ECDSA P-256 over timestamp + payload.
public enum SendGridWebhookFormat {
    /// SendGrid's name for a log type; nil: SendGrid has no such event.
    public static func eventName(_ type: DeliveryEvent.Kind) -> String? {
        switch type {
        case .accepted: return "processed"
        case .delivered: return "delivered"
        case .deferred: return "deferred"
        case .bounced, .expired: return "bounce"
        case .suppressed, .cancelled: return "dropped"
        case .complained: return "spamreport"
        case .unsubscribed: return "unsubscribe"
        case .opened: return "open"
        case .clicked: return "click"
        case .delayed: return nil
        }
    }

    /// The log types a SendGrid event name stands for (the settings' booleans).
    public static func types(for name: String) -> [DeliveryEvent.Kind] {
        DeliveryEvent.Kind.allCases.filter { eventName($0) == name }
    }

    public static func event(_ item: OutboxEvent) -> JSONOut? {
        let event = item.event
        guard let name = eventName(event.type) else { return nil }
        // Unique arguments first, so that SendGrid's own fields win a clash of names.
        var fields: [(String, JSONOut)] = (item.metadata?.customArguments ?? [:]).sorted { $0.key < $1.key }
            .filter { !reserved.contains($0.key) }.map { ($0.key, .string($0.value)) }
        fields += [
            ("email", .string(event.recipient)),
            ("timestamp", .int(WebhookTime.seconds(event.at.timeIntervalSince1970))),
            ("event", .string(name)),
            ("sg_event_id", .string("ev_\(item.id)")),
            ("sg_message_id", .string(event.messageID.rawValue)),
            ("smtp-id", .string("<\(event.messageID.rawValue)@hikyaku>")),
        ]
        let tags = item.metadata?.tags ?? []
        if !tags.isEmpty { fields.append(("category", .array(tags.map { .string($0) }))) }
        if item.metadata?.marketing == true { fields.append(("marketing_campaign_id", .null)) }
        switch event.type {
        case .delivered:
            fields.append(("response", .optional(event.replyText.map { "\(event.replyCode.map(String.init) ?? "250") \($0)" })))
            if let ip = event.sourceIP { fields.append(("ip", .string(ip))) }
            if let tls = event.tlsVersion { fields.append(("tls", .int(tls.isEmpty ? 0 : 1))) }
        case .deferred:
            fields.append(("response", .optional(event.replyText)))
            fields.append(("attempt", .string(String(event.attempt ?? 1))))
        case .bounced, .expired:
            fields.append(("reason", .optional(event.replyText)))
            fields.append(("status", .string(event.enhancedCode ?? (event.hard == false ? "4.0.0" : "5.0.0"))))
            // SendGrid's "blocked" is a refusal of the sender or its content, not of the address.
            let blocked = ["block", "spam_content", "policy", "reputation", "authentication", "rate_limit", "filtered"]
                .contains(event.category ?? "")
            fields.append(("type", .string(blocked ? "blocked" : "bounce")))
            if let category = event.category { fields.append(("bounce_classification", .string(category))) }
        case .suppressed, .cancelled:
            fields.append(("reason", .string(event.replyText ?? (event.type == .cancelled ? "cancelled" : "Bounced Address"))))
        case .opened:
            fields.append(("useragent", .optional(event.userAgent)))
            fields.append(("ip", .optional(event.clientIP)))
            fields.append(("sg_machine_open", .bool(event.machine ?? false)))
        case .clicked:
            fields.append(("useragent", .optional(event.userAgent)))
            fields.append(("ip", .optional(event.clientIP)))
            fields.append(("url", .optional(event.url)))
        default:
            break
        }
        return .object(fields)
    }

    static let reserved: Set<String> = ["email", "timestamp", "event", "sg_event_id", "sg_message_id", "smtp-id", "category",
                                        "response", "reason", "status", "type", "attempt", "ip", "url", "useragent", "tls"]

    public static func body(_ events: [OutboxEvent]) -> [UInt8] {
        JSONOut.array(events.compactMap(event)).bytes
    }

    /// `X-Twilio-Email-Event-Webhook-Signature`: base64 DER ECDSA-SHA256 over timestamp + payload.
    public static func headers(timestamp: Int64, body: [UInt8], key: P256.Signing.PrivateKey) throws -> [(String, String)] {
        let signature = try key.signature(for: Array(String(timestamp).utf8) + body)
        return [("Content-Type", "application/json"),
                ("X-Twilio-Email-Event-Webhook-Signature", signature.derRepresentation.base64EncodedString()),
                ("X-Twilio-Email-Event-Webhook-Timestamp", String(timestamp))]
    }
}

/// SES event publishing: one SES event JSON per SNS notification.
public enum SESWebhookFormat {
    /// The SES event type for a log type (and the MatchingEventTypes name); nil: SES has none.
    public static func eventType(_ type: DeliveryEvent.Kind) -> (eventType: String, matching: String)? {
        switch type {
        case .accepted: return ("Send", "SEND")
        case .delivered: return ("Delivery", "DELIVERY")
        case .bounced, .expired, .suppressed: return ("Bounce", "BOUNCE")
        case .complained: return ("Complaint", "COMPLAINT")
        case .deferred: return ("DeliveryDelay", "DELIVERY_DELAY")
        case .unsubscribed: return ("Subscription", "SUBSCRIPTION")
        case .opened: return ("Open", "OPEN")
        case .clicked: return ("Click", "CLICK")
        case .cancelled, .delayed: return nil
        }
    }

    public static let matchingTypes = ["SEND", "REJECT", "BOUNCE", "COMPLAINT", "DELIVERY", "OPEN", "CLICK", "RENDERING_FAILURE",
                                       "DELIVERY_DELAY", "SUBSCRIPTION"]

    public static func message(_ item: OutboxEvent, accountID: Int64) -> JSONOut? {
        let event = item.event
        guard let (eventType, _) = eventType(event.type) else { return nil }
        var tags: [(String, JSONOut)] = []
        if let set = item.metadata?.configurationSet { tags.append(("ses:configuration-set", .array([.string(set)]))) }
        // Tags are `name:value` (SES EmailTags as stored); a tag without a colon is a name with an empty value.
        for tag in item.metadata?.tags ?? [] {
            let name = tag.prefix { $0 != ":" }
            tags.append((String(name), .array([.string(String(tag.dropFirst(name.count + 1)))])))
        }
        let time = WebhookTime.iso(event.at)
        let mail: JSONOut = .object([
            ("timestamp", .string(WebhookTime.iso(event.messageID.timestamp))),
            ("source", .optional(item.sender)),
            ("sendingAccountId", .string(String(accountID))),
            ("messageId", .string(event.messageID.rawValue)),
            ("destination", .array([.string(event.recipient)])),
            ("headersTruncated", .bool(false)),
            ("tags", .object(tags)),
        ])
        var fields: [(String, JSONOut)] = [("eventType", .string(eventType)), ("mail", mail)]
        switch event.type {
        case .accepted:
            fields.append(("send", .object([])))
        case .delivered:
            fields.append(("delivery", .object([
                ("timestamp", .string(time)),
                ("processingTimeMillis", .int(WebhookTime.seconds(max(0, event.at.timeIntervalSince(event.messageID.timestamp)) * 1000))),
                ("recipients", .array([.string(event.recipient)])),
                ("smtpResponse", .string("\(event.replyCode.map(String.init) ?? "250") \(event.replyText ?? "")")),
                ("reportingMTA", .optional(event.sourceIP)),
                ("remoteMtaIp", .optional(event.remoteIP)),
            ])))
        case .bounced, .expired, .suppressed:
            let permanent = event.type == .suppressed || event.hard != false
            let subType: String
            switch (event.type, event.category) {
            case (.suppressed, _): subType = "OnAccountSuppressionList"
            case (_, "invalid_recipient"?): subType = "NoEmail"
            case (_, "mailbox_full"?): subType = "MailboxFull"
            case (_, "message_too_large"?): subType = "MessageTooLarge"
            case (_, "spam_content"?), (_, "block"?), (_, "policy"?): subType = "ContentRejected"
            default: subType = "General"
            }
            var recipient: [(String, JSONOut)] = [("emailAddress", .string(event.recipient)), ("action", .string("failed"))]
            if let status = event.enhancedCode { recipient.append(("status", .string(status))) }
            if let text = event.replyText {
                recipient.append(("diagnosticCode", .string("smtp; \(event.replyCode.map { "\($0) " } ?? "")\(text)")))
            }
            fields.append(("bounce", .object([
                ("bounceType", .string(permanent ? "Permanent" : "Transient")),
                ("bounceSubType", .string(subType)),
                ("bouncedRecipients", .array([.object(recipient)])),
                ("timestamp", .string(time)),
                ("feedbackId", .string("ev_\(item.id)")),
                ("reportingMTA", .optional(event.mxHost.map { "dns; \($0)" })),
            ])))
        case .complained:
            fields.append(("complaint", .object([
                ("complainedRecipients", .array([.object([("emailAddress", .string(event.recipient))])])),
                ("timestamp", .string(time)),
                ("feedbackId", .string("ev_\(item.id)")),
                ("complaintFeedbackType", .string("abuse")),
            ])))
        case .deferred:
            fields.append(("deliveryDelay", .object([
                ("timestamp", .string(time)),
                ("delayType", .string(event.category == "mailbox_full" ? "MailboxFull" : "TransientCommunicationFailure")),
                ("expirationTime", .null),
                ("delayedRecipients", .array([.object([
                    ("emailAddress", .string(event.recipient)),
                    ("status", .optional(event.enhancedCode)),
                    ("diagnosticCode", .optional(event.replyText)),
                ])])),
            ])))
        case .unsubscribed:
            fields.append(("subscription", .object([
                ("contactList", .null), ("timestamp", .string(time)), ("source", .string("UnsubscribeHeader")),
                ("newTopicPreferences", .object([("unsubscribeAll", .bool(true))])),
            ])))
        case .opened:
            fields.append(("open", .object([("ipAddress", .optional(event.clientIP)), ("timestamp", .string(time)),
                                            ("userAgent", .optional(event.userAgent))])))
        case .clicked:
            fields.append(("click", .object([("ipAddress", .optional(event.clientIP)), ("timestamp", .string(time)),
                                             ("userAgent", .optional(event.userAgent)), ("link", .optional(event.url)),
                                             ("linkTags", .object([]))])))
        case .cancelled, .delayed:
            return nil
        }
        return .object(fields)
    }
}
