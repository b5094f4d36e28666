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

    /// One message per personalization, each checked and built.
    /// `unsubscribe` adds List-Unsubscribe (RFC 2369) and List-Unsubscribe-Post
    /// (RFC 8058) to marketing mail, for the first recipient of each message.
    func messages(builder: MessageBuilder, unsubscribe: UnsubscribeLinks? = nil) throws(APIError) -> [OutgoingMessage] {
        guard !personalizations.isEmpty else { throw APIError.badRequest("no recipients", field: "personalizations") }
        guard personalizations.count <= MessageDraft.maximumPersonalizations else {
            throw APIError.badRequest("at most \(MessageDraft.maximumPersonalizations) recipients or personalizations per request",
                                      field: "personalizations")
        }
        var messages: [OutgoingMessage] = []
        messages.reserveCapacity(personalizations.count)
        for personalization in personalizations {
            var composition = base
            composition.to = personalization.to
            composition.cc = personalization.cc
            composition.bcc = personalization.bcc
            composition.headers += personalization.headers
            if let subject = personalization.subject { composition.subject = subject }
            let data = self.data.merging(personalization.data) { _, new in new }
            if let renderer {
                let rendered = try renderer.render(data)
                composition.subject = personalization.subject.map { MessageDraft.renderLiteral($0, data) } ?? rendered.subject
                composition.text = rendered.text
                composition.html = rendered.html
            }
            if !personalization.substitutions.isEmpty {
                composition.subject = MessageDraft.substitute(composition.subject, personalization.substitutions)
                composition.text = composition.text.map { MessageDraft.substitute($0, personalization.substitutions) }
                composition.html = composition.html.map { MessageDraft.substitute($0, personalization.substitutions) }
            }
            let id = MessageID.generate()
            if self.metadata.marketing, let unsubscribe,
               !composition.headers.contains(where: { $0.name.lowercased() == "list-unsubscribe" }) {
                composition.headers += unsubscribe.headers(message: id, position: 0)
            }
            let bytes: [UInt8]
            do {
                bytes = try builder.build(composition).bytes
            } catch {
                throw APIError.invalid(error.description)
            }
            var metadata = self.metadata
            metadata.tags += personalization.tags
            metadata.customArguments.merge(personalization.customArguments) { _, new in new }
            if let notBefore = personalization.notBefore { metadata.notBefore = notBefore }
            messages.append(OutgoingMessage(id: id, sender: composition.from.address, recipients: composition.recipients, bytes: bytes,
                                            metadata: metadata))
        }
        return messages
    }

    static func substitute(_ text: String, _ substitutions: [String: String]) -> String {
        substitutions.reduce(text) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
    }

    /// A per-recipient subject given with template data is a template too.
    static func renderLiteral(_ subject: String, _ data: [String: JSONValue]) -> String {
        guard let renderer = try? TemplateRenderer(subject: subject, text: nil, html: nil),
              let rendered = try? renderer.render(data) else { return subject }
        return rendered.subject
    }
}

extension NameAddress {
    /// Parses, turning a MIME error into a 400/422 for the field.
    static func parse(_ text: String, field: String) throws(APIError) -> NameAddress {
        do { return try NameAddress(parsing: text) } catch { throw APIError.invalid(error.description, field: field) }
    }
}
