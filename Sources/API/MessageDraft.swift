import Foundation
import MIME
import Relay
import Spool
import Store

/// One recipient group of a send: its own addresses and data. A plain send
/// has one; a personalised batch one per recipient.
struct Personalization: Sendable {
    var to: [NameAddress]
    var cc: [NameAddress] = []
    var bcc: [NameAddress] = []
    /// Template data (merged over the request's own).
    var data: [String: JSONValue] = [:]
    /// SendGrid's literal substitutions (`-name-` → value), applied before rendering.
    var substitutions: [String: String] = [:]
    var subject: String?
    var headers: [(name: String, value: String)] = []
    var tags: [String] = []
    var customArguments: [String: String] = [:]
    var notBefore: Date?
    /// The id of the one message this personalization becomes, chosen by the caller (a campaign
    /// writes it down before submitting, so a restart can tell whether it was stored).
    var messageID: MessageID?
}

/// A send as every API describes it, before building messages: common
/// parts, the content (literal or a template), and the personalizations.
struct MessageDraft: Sendable {
    var base: Composition
    /// Renders subject, text and HTML per personalization; nil: literal content.
    var renderer: TemplateRenderer?
    var data: [String: JSONValue] = [:]
    var personalizations: [Personalization]
    var metadata: MessageMetadata

    static let maximumPersonalizations = 1000
    static let maximumScheduleAhead: TimeInterval = 72 * 3600

    /// What one request may build, checked before building anything.
    struct Limits: Sendable {
        /// One message, as the intake's limit.
        var maximumMessageSize: Int
        /// All the messages of the request together: messages × (content + attachments).
        var maximumExpandedSize: Int
    }

    /// The messages this draft becomes: one per personalization, and for
    /// marketing mail with one-click unsubscribe one per recipient, so that
    /// each copy's link unsubscribes its own recipient.
    func messageCount(unsubscribe: UnsubscribeLinks?, tracking: TrackingLinks? = nil) -> Int {
        guard copiesPerRecipient(unsubscribe: unsubscribe, tracking: tracking) else { return personalizations.count }
        return personalizations.reduce(0) { $0 + max(1, $1.to.count + $1.cc.count + $1.bcc.count) }
    }

    /// Each recipient gets a copy of its own when its copy names it: the
    /// one-click unsubscribe link of marketing mail, tracked links and image.
    func copiesPerRecipient(unsubscribe: UnsubscribeLinks?, tracking: TrackingLinks?) -> Bool {
        (carriesUnsubscribe && unsubscribe != nil) || (tracked(tracking) && (base.html != nil || renderer != nil))
    }

    /// Marketing mail, and mail sent in an unsubscribe group (whose link leaves that group), carry one-click unsubscribe.
    var carriesUnsubscribe: Bool { metadata.marketing || metadata.unsubscribeGroup != nil }

    func tracked(_ tracking: TrackingLinks?) -> Bool { tracking != nil && metadata.tracking?.any == true }

    /// A bound on the bytes a message takes before rendering: the literal
    /// content, attachments as base64, every header the request sets (the
    /// sender, Reply-To, custom fields) and, for `personalization`, its
    /// addresses, subject and fields. Templates are bounded while they render.
    func estimatedMessageSize(_ personalization: Personalization? = nil) -> Int {
        func size(_ addresses: [NameAddress]) -> Int {
            addresses.reduce(0) { $0 + $1.address.utf8.count + ($1.name?.utf8.count ?? 0) * 2 + 8 }
        }
        let attachments = base.attachments.reduce(0) { $0 + ($1.data.count / 3 + 1) * 4 + $1.filename.utf8.count * 2 + 200 }
        let content = (base.subject.utf8.count + (base.text?.utf8.count ?? 0) + (base.html?.utf8.count ?? 0)) * 2
        let headers = base.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count * 2 + 4 }
        var total = 2048 + attachments + content + headers + size([base.from]) + size(base.replyTo)
        if let personalization {
            total += size(personalization.to) + size(personalization.cc) + (personalization.subject?.utf8.count ?? 0) * 2
            total += personalization.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count * 2 + 4 }
        }
        return total
    }

    /// One message per personalization (per recipient for marketing mail), each checked and built.
    /// `unsubscribe` adds List-Unsubscribe (RFC 2369) and List-Unsubscribe-Post
    /// (RFC 8058) to marketing mail, naming the copy's one recipient.
    func messages(builder: MessageBuilder, unsubscribe: UnsubscribeLinks? = nil, tracking: TrackingLinks? = nil,
                  limits: Limits) throws(APIError) -> [OutgoingMessage] {
        guard !personalizations.isEmpty else { throw APIError.badRequest("no recipients", field: "personalizations") }
        // SendGrid's rule for send_at, for every API: at most 72 hours ahead (a past time sends now).
        let latest = Date().addingTimeInterval(MessageDraft.maximumScheduleAhead)
        for notBefore in [metadata.notBefore] + personalizations.map(\.notBefore) {
            if let notBefore, !(notBefore <= latest) {
                throw APIError.badRequest("send_at may be at most 72 hours ahead", field: "send_at")
            }
        }
        let count = messageCount(unsubscribe: unsubscribe, tracking: tracking)
        let perRecipient = copiesPerRecipient(unsubscribe: unsubscribe, tracking: tracking)
        guard personalizations.count <= MessageDraft.maximumPersonalizations, count <= MessageDraft.maximumPersonalizations else {
            throw APIError.badRequest("at most \(MessageDraft.maximumPersonalizations) recipients or personalizations per request",
                                      field: "personalizations")
        }
        // Memory per request is bounded before a byte is built: every copy of every message, estimated.
        var expanded = 0
        for personalization in personalizations {
            let estimate = estimatedMessageSize(personalization)
            guard estimate <= limits.maximumMessageSize || renderer != nil else {
                throw APIError(.contentTooLarge, "message_too_large",
                               "message of about \(estimate) bytes exceeds the limit of \(limits.maximumMessageSize)", ses: "MessageRejected")
            }
            let copies = perRecipient ? max(1, personalization.to.count + personalization.cc.count + personalization.bcc.count) : 1
            let (product, overflow) = estimate.multipliedReportingOverflow(by: copies)
            let (sum, overflowed) = expanded.addingReportingOverflow(product)
            guard !overflow, !overflowed, sum <= limits.maximumExpandedSize else {
                throw APIError(.contentTooLarge, "request_too_large",
                               "\(count) messages would exceed the limit of \(limits.maximumExpandedSize) bytes per request",
                               ses: "MessageRejected")
            }
            expanded = sum
        }
        // What rendering and building may still spend across the whole request.
        var remaining = limits.maximumExpandedSize
        var messages: [OutgoingMessage] = []
        messages.reserveCapacity(count)
        for personalization in personalizations {
            var composition = base
            composition.to = personalization.to
            composition.cc = personalization.cc
            composition.bcc = personalization.bcc
            composition.headers += personalization.headers
            if let subject = personalization.subject { composition.subject = subject }
            let data = self.data.merging(personalization.data) { _, new in new }
            if let renderer {
                let budget = min(limits.maximumMessageSize, max(0, remaining))
                let rendered = try renderer.render(data, budget: budget)
                composition.subject = personalization.subject.map { MessageDraft.renderLiteral($0, data) } ?? rendered.subject
                composition.text = rendered.text
                composition.html = rendered.html
            }
            if !personalization.substitutions.isEmpty {
                let budget = min(limits.maximumMessageSize, max(0, remaining))
                composition.subject = try MessageDraft.substitute(composition.subject, personalization.substitutions, limit: budget)
                composition.text = try composition.text.map { text throws(APIError) in
                    try MessageDraft.substitute(text, personalization.substitutions, limit: budget)
                }
                composition.html = try composition.html.map { html throws(APIError) in
                    try MessageDraft.substitute(html, personalization.substitutions, limit: budget)
                }
            }
            var metadata = self.metadata
            metadata.tags += personalization.tags
            metadata.customArguments.merge(personalization.customArguments) { _, new in new }
            if let notBefore = personalization.notBefore { metadata.notBefore = notBefore }
            let marketingCopies = carriesUnsubscribe && unsubscribe != nil
                && !composition.headers.contains(where: { $0.name.lowercased() == "list-unsubscribe" })
            let trackedCopies = tracked(tracking) && composition.html != nil
            // Recorded as tracked only when its HTML really was rewritten.
            if !trackedCopies { metadata.tracking = nil }
            // Each marketing or tracked copy carries its own recipient's links; other mail is one message for all.
            let copies: [[String]] = marketingCopies || trackedCopies ? composition.recipients.map { [$0] } : [composition.recipients]
            for recipients in copies {
                let id = (copies.count == 1 ? personalization.messageID : nil) ?? Intake.newMessageID()
                var copy = composition
                if marketingCopies, let unsubscribe { copy.headers += unsubscribe.headers(message: id, position: 0) }
                // Rewritten before building, so DKIM (at the intake) signs what the recipient gets.
                if trackedCopies, let tracking, let html = copy.html, let settings = metadata.tracking {
                    copy.html = tracking.rewrite(html, message: id, position: 0, opens: settings.opens, clicks: settings.clicks)
                }
                let bytes: [UInt8]
                do {
                    bytes = try builder.build(copy).bytes
                } catch {
                    throw APIError.invalid(error.description)
                }
                // What was really built counts, whatever the estimate said.
                remaining -= bytes.count
                guard remaining >= 0 else {
                    throw APIError(.contentTooLarge, "request_too_large",
                                   "the messages exceed the limit of \(limits.maximumExpandedSize) bytes per request", ses: "MessageRejected")
                }
                messages.append(OutgoingMessage(id: id, sender: composition.from.address, recipients: recipients, bytes: bytes,
                                                metadata: metadata, subject: copy.subject))
            }
        }
        return messages
    }

    /// SendGrid's substitutions: each key replaced by its value, the result
    /// at most `limit` bytes (a short key with a long value multiplies).
    static func substitute(_ text: String, _ substitutions: [String: String], limit: Int) throws(APIError) -> String {
        var result = text
        for (key, value) in substitutions.sorted(by: { $0.key < $1.key }) where !key.isEmpty {
            let occurrences = result.components(separatedBy: key).count - 1
            guard occurrences > 0 else { continue }
            let (growth, overflow) = (value.utf8.count - key.utf8.count).multipliedReportingOverflow(by: occurrences)
            guard !overflow, result.utf8.count + growth <= limit else {
                throw APIError(.contentTooLarge, "substitutions_too_large", "substitutions would make the message exceed \(limit) bytes",
                               field: "personalizations")
            }
            result = result.replacingOccurrences(of: key, with: value)
        }
        return result
    }

    /// A per-recipient subject given with template data is a template too.
    static func renderLiteral(_ subject: String, _ data: [String: JSONValue]) -> String {
        guard let renderer = try? TemplateRenderer(subject: subject, text: nil, html: nil),
              let rendered = try? renderer.render(data, budget: 64 * 1024) else { return subject }
        return rendered.subject
    }
}

extension NameAddress {
    /// Parses, turning a MIME error into a 400/422 for the field.
    static func parse(_ text: String, field: String) throws(APIError) -> NameAddress {
        do { return try NameAddress(parsing: text) } catch { throw APIError.invalid(error.description, field: field) }
    }
}
