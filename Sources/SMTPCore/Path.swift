/// The domain part of a mailbox: a host name or an address literal
/// (RFC 5321 §4.1.3).
public enum MailDomain: Hashable, Sendable, CustomStringConvertible {
    /// A domain name as received (may contain U-labels under SMTPUTF8).
    case name(String)
    /// The literal between the brackets, e.g. `192.0.2.1` or `IPv6:2001:db8::1`.
    case addressLiteral(String)

    public var description: String {
        switch self {
        case .name(let name): return name
        case .addressLiteral(let literal): return "[\(literal)]"
        }
    }

    /// Lower-cased domain name for comparisons; nil for address literals.
    public var normalisedName: String? {
        if case .name(let name) = self { return name.lowercased() }
        return nil
    }
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )` (RFC 5321 §4.1.2).
public struct Mailbox: Hashable, Sendable, CustomStringConvertible {
    /// The local part exactly as written on the wire, quotes and escapes included.
    public var localPart: String
    public var domain: MailDomain

    public init(localPart: String, domain: MailDomain) {
        self.localPart = localPart
        self.domain = domain
    }

    public var description: String { "\(localPart)@\(domain)" }

    /// True when the local part is a Quoted-string.
    public var isQuoted: Bool { localPart.hasPrefix("\"") }

    /// The local part with quoting removed (`"a\"b"` → `a"b`).
    public var unquotedLocalPart: String {
        guard isQuoted else { return localPart }
        var result = ""
        var escaped = false
        for character in localPart.dropFirst().dropLast() {
            if escaped { result.append(character); escaped = false }
            else if character == "\\" { escaped = true }
            else { result.append(character) }
        }
        return result
    }

    /// True when any part of the address is outside ASCII (needs SMTPUTF8).
    public var requiresSMTPUTF8: Bool {
        !localPart.utf8.allSatisfy { $0 < 0x80 } || !domain.description.utf8.allSatisfy { $0 < 0x80 }
    }
}

/// `Reverse-path = Path / "<>"` — the envelope sender of MAIL FROM.
public enum ReversePath: Hashable, Sendable, CustomStringConvertible {
    /// `<>`: the null sender used by bounces (RFC 5321 §4.5.5).
    case null
    case mailbox(Mailbox)

    public var description: String {
        switch self {
        case .null: return "<>"
        case .mailbox(let mailbox): return "<\(mailbox)>"
        }
    }

    public var mailbox: Mailbox? {
        if case .mailbox(let mailbox) = self { return mailbox }
        return nil
    }
}

/// `Forward-path = Path` — one recipient of RCPT TO. A source route, if the
/// client sent one, has already been stripped (RFC 5321 §3.3: "SHOULD ignore").
public enum ForwardPath: Hashable, Sendable, CustomStringConvertible {
    /// `<Postmaster>` without a domain (RFC 5321 §4.5.1).
    case postmaster
    case mailbox(Mailbox)

    public var description: String {
        switch self {
        case .postmaster: return "<Postmaster>"
        case .mailbox(let mailbox): return "<\(mailbox)>"
        }
    }
}
