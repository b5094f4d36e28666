import SMTPCore

/// Who the client is, as far as relaying goes.
public enum ClientAuthority: Sendable, Equatable {
    /// Anonymous: may not relay anywhere.
    case none
    /// Connected from a configured trusted network: may relay, any sender.
    case trustedNetwork
    /// Logged in with an account's SMTP credentials.
    case account(AuthenticatedAccount)
}

/// The parts of an account the session needs.
public struct AuthenticatedAccount: Sendable, Equatable {
    public var id: Int64
    public var name: String
    /// Lower-cased domains the account owns.
    public var domains: Set<String>
    /// Those whose DKIM record was found published (`hikyaku domain verify`).
    public var verifiedDomains: Set<String>

    public init(id: Int64, name: String, domains: Set<String>, verifiedDomains: Set<String> = []) {
        self.id = id
        self.name = name
        self.domains = domains
        self.verifiedDomains = verifiedDomains
    }
}

/// Decides whether a sender or recipient is acceptable — the "no open relay"
/// rule (DESIGN.md invariant 3).
///
/// Hikyaku has no local mailboxes, so every recipient is foreign: only an
/// authenticated account or a trusted network may name one. That refuses
/// every disguise of a relay attempt (`%`-hack, `!` paths, source routes,
/// quoted local parts with `@`) without having to recognise it.
public struct RelayPolicy: Sendable {
    /// An account may use only domains it has proved it controls
    /// (`domains.requireVerified`), as envelope sender and as From.
    public var requireVerifiedDomains: Bool

    public init(requireVerifiedDomains: Bool = false) {
        self.requireVerifiedDomains = requireVerifiedDomains
    }

    public static let relayDenied = Reply(554, EnhancedStatusCode(5, 7, 1), "Relay access denied")
    public static let senderNotOwned = Reply(553, EnhancedStatusCode(5, 7, 1), "Sender address is not on a domain of this account")
    public static let senderNotVerified = Reply(553, EnhancedStatusCode(5, 7, 1),
                                                "Sender domain is not verified: publish its DKIM record, then run hikyaku domain verify")
    public static let fromNotOwned = Reply(550, EnhancedStatusCode(5, 7, 1), "From header is not on a verified domain of this account")
    public static let addressLiteralRefused = Reply(550, EnhancedStatusCode(5, 1, 3), "Address literals are not accepted as recipients")

    /// nil when the sender may be used.
    public func check(sender: ReversePath, authority: ClientAuthority) -> Reply? {
        switch authority {
        case .none, .trustedNetwork:
            // Anonymous clients may start a transaction; RCPT is where relaying is refused.
            return nil
        case .account(let account):
            switch sender {
            case .null:
                // Bounces and auto-replies carry no sender domain to own.
                return nil
            case .mailbox(let mailbox):
                guard let domain = mailbox.domain.normalisedName, account.domains.contains(domain) else {
                    return RelayPolicy.senderNotOwned
                }
                if requireVerifiedDomains && !account.verifiedDomains.contains(domain) { return RelayPolicy.senderNotVerified }
                return nil
            }
        }
    }

    /// nil when the domains of the message's From field (`DKIMSigner.fromDomains`)
    /// may be used. Checked only for accounts and only with
    /// `requireVerifiedDomains`: the envelope sender alone does not stop an
    /// account writing mail in another customer's name, which is what
    /// receivers show.
    public func check(fromDomains: [String], authority: ClientAuthority) -> Reply? {
        guard requireVerifiedDomains, case .account(let account) = authority else { return nil }
        return fromDomains.allSatisfy(account.verifiedDomains.contains) ? nil : RelayPolicy.fromNotOwned
    }

    /// nil when the recipient may be accepted.
    public func check(recipient: ForwardPath, authority: ClientAuthority) -> Reply? {
        switch authority {
        case .none:
            return RelayPolicy.relayDenied
        case .trustedNetwork, .account:
            switch recipient {
            case .postmaster:
                // No local mailboxes: "postmaster" of this host cannot be delivered.
                return RelayPolicy.relayDenied
            case .mailbox(let mailbox):
                if case .addressLiteral = mailbox.domain { return RelayPolicy.addressLiteralRefused }
                return nil
            }
        }
    }
}
