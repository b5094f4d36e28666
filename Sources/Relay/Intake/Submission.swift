import Spool

/// Who hands a message to the intake, as far as the sender policy goes.
public enum Principal: Sendable, Equatable {
    /// A tenant, authenticated by SMTP credentials or an API key: held to
    /// its own (verified) domains.
    case account(AuthenticatedAccount)
    /// A client in a configured trusted network: no account, no sender policy.
    case trustedNetwork
    /// Hikyaku itself (delivery status notifications), about mail of this
    /// account, which the notice is logged under; no policy, no quota.
    case relay(forAccount: Int64?)

    var account: AuthenticatedAccount? {
        if case .account(let account) = self { return account }
        return nil
    }

    /// The account the message is stored and logged under.
    var accountID: Int64? {
        switch self {
        case .account(let account): return account.id
        case .trustedNetwork: return nil
        case .relay(let account): return account
        }
    }
}

/// The door a message came in by: decides its trace field, the `source`
/// its events report, and how a refusal is worded to the client.
public enum Door: String, Sendable, Equatable {
    case smtp
    /// The native API (`/v1`).
    case api
    case ses
    case sendgrid
    /// A bounce or delay notice made by the scheduler (RFC 3464).
    case dsn
    /// Stored content sent again to some recipients (`/v1/messages/{id}/resend`).
    case resend
    /// A campaign's run, one message per contact (`CampaignRunner`).
    case campaign
}

/// Where the bytes came from, for the `Received:` field (RFC 5321 §4.4).
public enum Origin: Sendable, Equatable {
    /// An SMTP session.
    case smtp(SMTPOrigin)
    /// An HTTP request from this client address.
    case http(client: String)
    /// Made here; no trace field is added.
    case local
}

/// The SMTP session's part of a trace field.
public struct SMTPOrigin: Sendable, Equatable {
    public var clientAddress: String
    public var heloName: String?
    public var extended: Bool
    public var tls: Bool
    /// The TLS version, when known, for the comment.
    public var tlsDescription: String?

    public init(clientAddress: String, heloName: String?, extended: Bool, tls: Bool, tlsDescription: String?) {
        self.clientAddress = clientAddress
        self.heloName = heloName
        self.extended = extended
        self.tls = tls
        self.tlsDescription = tlsDescription
    }
}

/// A message handed to the intake: the envelope, the bytes, who sends it
/// and by which door. The id comes from `Intake.newMessageID()` (taken before
/// building when the message must name itself, as unsubscribe links do).
public struct Submission: Sendable {
    public var id: MessageID
    public var door: Door
    public var principal: Principal
    /// The envelope sender as `local@domain`; empty for the null reverse-path.
    public var sender: String
    /// Envelope recipients as `local@domain`.
    public var recipients: [String]
    /// The transaction was declared SMTPUTF8 (RFC 6531); for other doors,
    /// whether any envelope address needs it.
    public var smtpUTF8: Bool
    /// The message: CRLF line endings, header section first.
    public var content: [UInt8]
    public var origin: Origin
    /// What an API caller attached (tags, custom arguments, send time).
    public var metadata: MessageMetadata?
    /// The subject as composed, from a door that built the message itself: what the log shows and searches,
    /// without decoding it back from the header section. Nil: read from the header section.
    public var subject: String?

    public init(id: MessageID, door: Door, principal: Principal, sender: String, recipients: [String], smtpUTF8: Bool? = nil,
                content: [UInt8], origin: Origin, metadata: MessageMetadata? = nil, subject: String? = nil) {
        self.id = id
        self.door = door
        self.principal = principal
        self.sender = sender
        self.recipients = recipients
        self.smtpUTF8 = smtpUTF8 ?? (recipients + [sender]).contains { $0.utf8.contains { $0 >= 0x80 } }
        self.content = content
        self.origin = origin
        self.metadata = metadata
        self.subject = subject
    }
}
