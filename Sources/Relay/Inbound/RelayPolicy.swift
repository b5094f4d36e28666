import SMTPCore
import Store

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
    /// Those whose DKIM record was found published (`hikyaku domain verify`): only these count
    /// for sending and for sandbox recipients.
    public var verifiedDomains: Set<String>

    /// The parts of a stored account the policy reads.
    public init(_ account: Account) {
        self.init(id: account.id, name: account.name, domains: Set(account.domains), verifiedDomains: Set(account.verifiedDomains))
    }

    public init(id: Int64, name: String, domains: Set<String>, verifiedDomains: Set<String> = []) {
        self.id = id
        self.name = name
        self.domains = domains
        self.verifiedDomains = verifiedDomains
    }
}

/// Decides whether a recipient is acceptable — the "no open relay" rule
/// (DESIGN.md invariant 3). Which senders an account may use is the
/// intake's `SenderPolicy`.
///
/// Hikyaku has no local mailboxes, so every recipient is foreign: only an
/// authenticated account or a trusted network may name one. That refuses
/// every disguise of a relay attempt (`%`-hack, `!` paths, source routes,
/// quoted local parts with `@`) without having to recognise it.
public struct RelayPolicy: Sendable {
    public init() {}

    public static let relayDenied = Reply(554, EnhancedStatusCode(5, 7, 1), "Relay access denied")
    public static let addressLiteralRefused = Reply(550, EnhancedStatusCode(5, 1, 3), "Address literals are not accepted as recipients")

    /// The principal a client submits as, once it may (nil: anonymous).
    public static func principal(_ authority: ClientAuthority) -> Principal? {
        switch authority {
        case .none: return nil
        case .trustedNetwork: return .trustedNetwork
        case .account(let account): return .account(account)
        }
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
