import DNS
import Foundation
import MIME
import SMTPCore

/// Why a sender or author was refused.
public enum SenderRefusal: Error, Sendable, Equatable {
    /// The envelope sender's domain is not one of the account's.
    case senderNotOwned(domain: String)
    /// The envelope sender's domain is the account's but not verified.
    case senderNotVerified(domain: String)
    /// The message has no From field (RFC 5322 §3.6: exactly one is required).
    case authorMissing
    /// A field that may occur once occurs again (From, Sender).
    case fieldRepeated(String)
    /// An author field is not an address list.
    case unparsable(field: String, detail: String)
    /// An author field names no mailbox, or a group (RFC 5322 §3.6.2: From is a mailbox-list).
    case notAMailbox(field: String)
    /// An author field names, or shows, a domain the account may not use.
    case domainNotAllowed(field: String, domain: String)
    /// An author field holds an encoded word in a charset that cannot be read here, so what a reader sees is unknown.
    case undecodableText(field: String)

    public var smtpReply: Reply {
        switch self {
        case .senderNotOwned:
            return Reply(553, EnhancedStatusCode(5, 7, 1), "Sender address is not on a domain of this account")
        case .senderNotVerified:
            return Reply(553, EnhancedStatusCode(5, 7, 1),
                         "Sender domain is not verified: publish its DKIM record, then run hikyaku domain verify")
        case .authorMissing:
            return Reply(550, EnhancedStatusCode(5, 6, 0), "Message has no From field")
        case .fieldRepeated(let field):
            return Reply(550, EnhancedStatusCode(5, 6, 0), "More than one \(field) field")
        case .unparsable(let field, let detail):
            return Reply(550, EnhancedStatusCode(5, 6, 0), "\(field) field is not an address list: \(detail)")
        case .notAMailbox(let field):
            return Reply(550, EnhancedStatusCode(5, 7, 1), "\(field) field must name a mailbox (no group, no bare name)")
        case .domainNotAllowed(let field, _):
            return Reply(550, EnhancedStatusCode(5, 7, 1), "\(field) header is not on a verified domain of this account")
        case .undecodableText(let field):
            return Reply(550, EnhancedStatusCode(5, 6, 0), "\(field) field has an encoded word in an unsupported charset")
        }
    }

    /// A sentence for API errors and logs.
    public var message: String {
        switch self {
        case .senderNotOwned(let domain): return "\(domain) is not one of the account's domains"
        case .senderNotVerified(let domain): return "\(domain) is not verified (publish its DKIM record, then verify it)"
        case .authorMissing: return "the message has no From field"
        case .fieldRepeated(let field): return "the message has more than one \(field) field"
        case .unparsable(let field, let detail): return "the \(field) field is not an address list: \(detail)"
        case .notAMailbox(let field): return "the \(field) field must name at least one mailbox and no group"
        case .domainNotAllowed(let field, let domain):
            return "the \(field) field names \(domain), which is not one of the account's verified domains"
        case .undecodableText(let field):
            return "the \(field) field has an encoded word in a charset that is not supported (use UTF-8)"
        }
    }
}

/// Which senders and authors an account may use — one definition for every
/// door. The envelope sender must be on one of the account's domains
/// (verified, with `requireVerifiedDomains`). With `requireVerifiedDomains`,
/// so must every author a reader is shown: each mailbox of From, Sender,
/// Resent-From and Resent-Sender, and any address-like text anywhere in those
/// fields, read as a lenient reader shows it (`"ceo@theirs" <shop@mine>`,
/// `=?utf-8?q?ceo=40theirs?=.example <shop@mine>`, a comment, a quoted local part).
/// Trusted networks and the relay itself are not checked.
public struct SenderPolicy: Sendable {
    public var requireVerifiedDomains: Bool

    public init(requireVerifiedDomains: Bool) {
        self.requireVerifiedDomains = requireVerifiedDomains
    }

    /// The fields naming a message's author or its sender (RFC 5322 §3.6.2, §3.6.6).
    static let authorFields = ["From", "Sender", "Resent-From", "Resent-Sender"]
    /// Fields holding one mailbox, not a list.
    static let singleMailboxFields: Set<String> = ["sender", "resent-sender"]
    /// Fields that may occur once per message (RFC 5322 §3.6); Resent-* repeat per resending.
    static let onceFields: Set<String> = ["from", "sender"]

    /// The envelope sender (empty for the null reverse-path: bounces and auto-replies carry no domain to own).
    public func check(envelopeSender sender: String, principal: Principal) -> SenderRefusal? {
        guard case .account(let account) = principal, !sender.isEmpty else { return nil }
        let domain = SenderPolicy.domain(ofAddress: sender)
        guard let domain, SenderPolicy.contains(account.domains, domain) else { return .senderNotOwned(domain: domain ?? sender) }
        if requireVerifiedDomains && !SenderPolicy.contains(account.verifiedDomains, domain) { return .senderNotVerified(domain: domain) }
        return nil
    }

    /// The author fields of a message whose header section is `header`.
    public func check(header: HeaderSection, of message: [UInt8], principal: Principal) -> SenderRefusal? {
        guard requireVerifiedDomains, case .account(let account) = principal else { return nil }
        var sawFrom = false
        var seen: Set<String> = []
        for field in header.fields {
            guard let name = SenderPolicy.authorFields.first(where: { field.hasName($0) }) else { continue }
            let key = name.lowercased()
            if SenderPolicy.onceFields.contains(key) {
                guard seen.insert(key).inserted else { return .fieldRepeated(name) }
            }
            if key == "from" { sawFrom = true }
            let list: AddressList
            do {
                list = try AddressList(parsing: field.unfoldedBytes(in: message[...]))
            } catch {
                return .unparsable(field: name, detail: error.description)
            }
            let mailboxes = list.mailboxes
            guard !list.containsGroup, !mailboxes.isEmpty,
                  !SenderPolicy.singleMailboxFields.contains(key) || mailboxes.count == 1 else { return .notAMailbox(field: name) }
            for mailbox in mailboxes {
                guard let domain = SenderPolicy.domain(mailbox.domain), SenderPolicy.contains(account.verifiedDomains, domain) else {
                    return .domainNotAllowed(field: name, domain: mailbox.domain.lowercased())
                }
            }
            // What a reader may show: the whole field, encoded words decoded wherever they stand (in
            // atoms, split by dots, side by side, in quotes, in local parts), quoted-pair backslashes gone.
            let shown = EncodedWords.decodeAnywhere(field.unfoldedValue(in: message))
            if shown.undecodable { return .undecodableText(field: name) }
            for domain in SenderPolicy.domainsShown(in: shown.text.replacingOccurrences(of: "\\", with: ""))
            where !SenderPolicy.contains(account.verifiedDomains, domain) {
                return .domainNotAllowed(field: name, domain: domain)
            }
        }
        return sawFrom ? nil : .authorMissing
    }

    /// The domain of a `local@domain` address, normalised; nil without one.
    static func domain(ofAddress address: String) -> String? {
        guard let at = address.lastIndex(of: "@") else { return nil }
        return domain(String(address[address.index(after: at)...]))
    }

    /// A domain as the account's lists hold it: lower-case, no final dot,
    /// IDNs as A-labels. A domain literal or anything that is no domain name: nil.
    static func domain(_ text: String) -> String? {
        guard !text.isEmpty, !text.hasPrefix("[") else { return nil }
        if isNormalised(text) { return text }
        guard let name = try? DomainName(text), !name.labels.isEmpty else { return nil }
        return name.description
    }

    /// Already what `DomainName` would make of it (the usual case, checked for every message): ASCII without
    /// capitals, labels of 1 to 63 octets, no final dot, 255 octets on the wire.
    static func isNormalised(_ text: String) -> Bool {
        var label = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "."):
                guard label > 0 else { return false }
                label = 0
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), 0x80...:
                return false
            default:
                label += 1
                guard label <= 63 else { return false }
            }
        }
        return label > 0 && text.utf8.count + 2 <= 255
    }

    static func contains(_ domains: Set<String>, _ domain: String) -> Bool {
        if domains.contains(domain) { return true }
        // An account may have registered an IDN in its Unicode form.
        return domains.contains { SenderPolicy.domain($0) == domain }
    }

    /// Domains written after an `@` in text a reader is shown (display
    /// names, comments), compatibility-normalised first so that a full-width
    /// `＠` or `．` counts as what it looks like. Only text with a dot after
    /// the `@` looks like an address.
    static func domainsShown(in text: String) -> [String] {
        // Invisible characters (zero-width space and joiners, soft hyphen, BOM…) would cut a domain
        // in two for this scan but not for the eye; ideographic full stops look like dots.
        let visible = String(String.UnicodeScalarView(text.unicodeScalars.compactMap { scalar -> Unicode.Scalar? in
            if scalar.properties.isDefaultIgnorableCodePoint { return nil }
            switch scalar.value {
            case 0x3002, 0xFF61, 0xFE12: return "."
            default: return scalar
            }
        }))
        let normalised = visible.precomposedStringWithCompatibilityMapping
        guard normalised.contains("@") else { return [] }
        var domains: [String] = []
        var rest = Substring(normalised)
        while let at = rest.firstIndex(of: "@") {
            rest = rest[rest.index(after: at)...]
            let candidate = rest.prefix { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }
            let trimmed = candidate.trimmingCharacters(in: CharacterSet(charactersIn: ".-"))
            if trimmed.contains(".") { domains.append(domain(trimmed) ?? trimmed.lowercased()) }
        }
        return domains
    }
}
