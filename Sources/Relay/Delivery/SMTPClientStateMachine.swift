import Foundation
import SMTPCore

/// How hard to insist on STARTTLS with a destination.
public enum TLSPolicy: String, Sendable, Codable {
    /// Never start TLS.
    case none
    /// Use it when offered; deliver in plaintext otherwise (the default).
    case opportunistic
    /// Defer the mail rather than send it in plaintext.
    case required
    /// As `required`, and the certificate must verify for the MX name.
    case requiredVerified = "required-verified"
}

/// What one SMTP transaction carries (RFC 5321 §3.3).
public struct OutboundEnvelope: Equatable, Sendable {
    public var sender: String
    public var recipients: [String]
    public var size: Int
    /// The message has 8-bit bytes: ask for BODY=8BITMIME (RFC 6152).
    public var eightBit: Bool
    /// Addresses or headers need SMTPUTF8 (RFC 6531).
    public var requiresSMTPUTF8: Bool

    public init(sender: String, recipients: [String], size: Int, eightBit: Bool = false, requiresSMTPUTF8: Bool = false) {
        self.sender = sender
        self.recipients = recipients
        self.size = size
        self.eightBit = eightBit
        self.requiresSMTPUTF8 = requiresSMTPUTF8
    }
}

/// Where a recipient's reply came from, for classification: the remote
/// server (and the command it answered), or a reply made up here for a
/// DNS, connection, TLS or local reason.
public enum OutcomeSource: Equatable, Sendable {
    case remote(command: String)
    case dns(transient: Bool)
    case connection
    case tls
    case local
}

/// The outcome for one recipient: delivered, or failed with the reply (or a
/// reply we made up for a local reason) that says why and how finally.
public struct RecipientOutcome: Equatable, Sendable {
    public var recipient: String
    public var reply: Reply
    public var source: OutcomeSource
    public var delivered: Bool { reply.isPositive }

    public init(recipient: String, reply: Reply, source: OutcomeSource = .remote(command: "DATA")) {
        self.recipient = recipient
        self.reply = reply
        self.source = source
    }
}

/// The client side of one SMTP session (RFC 5321 §4.1, RFC 3207, RFC 2920),
/// as a pure value. The handler feeds it replies and performs its actions;
/// timeouts per phase (RFC 5321 §4.5.3.2) are the handler's, chosen from
/// `phase`.
public struct SMTPClientStateMachine: Sendable {
    public enum Action: Equatable, Sendable {
        case none
        case send([Command])
        /// 220 to STARTTLS received: drop anything buffered, handshake, then call `tlsEstablished`.
        case startTLS
        /// 354 received: send the message, dot-stuffed, ending with CRLF.CRLF.
        case sendMessage
        /// The transaction is over; the session may carry another (`begin`) or `quit`.
        case transactionFinished([RecipientOutcome])
        /// Send QUIT (if the connection is usable) and close.
        case close
    }

    public enum Phase: Equatable, Sendable {
        case greeting, ehlo, helo, startTLS, auth, reset, mail, rcpt, data, dataEnd, idle, quit, closed
    }

    public struct Extensions: Equatable, Sendable {
        public var pipelining = false
        public var startTLS = false
        public var eightBitMIME = false
        public var smtpUTF8 = false
        /// 0: no limit announced.
        public var maximumSize = 0
        /// SASL mechanisms offered (RFC 4954), upper-cased.
        public var authMechanisms: Set<String> = []
    }

    public let heloName: String
    public let tlsPolicy: TLSPolicy
    /// AUTH PLAIN with these after TLS (a smarthost); never sent in plaintext.
    let credentials: SMTPCredentials?
    private var authenticated = false
    public private(set) var phase: Phase = .greeting
    public private(set) var extensions = Extensions()
    public private(set) var tlsActive = false
    private var triedTLS = false
    private var envelope: OutboundEnvelope?
    /// Replies still expected for pipelined commands, in order.
    private var pendingReplies: [Phase] = []
    private var mailReply: Reply?
    private var outcomes: [String: (Reply, OutcomeSource)] = [:]
    private var acceptedRecipients: [String] = []
    private var rcptIndex = 0
    /// A transaction ended early (MAIL accepted, then no DATA): RSET first.
    private var needsReset = false

    public init(heloName: String, tlsPolicy: TLSPolicy, envelope: OutboundEnvelope, credentials: SMTPCredentials? = nil) {
        self.heloName = heloName
        // Credentials only ever travel under TLS.
        self.tlsPolicy = credentials != nil && (tlsPolicy == .none || tlsPolicy == .opportunistic) ? .required : tlsPolicy
        self.credentials = credentials
        self.envelope = envelope
    }

    // MARK: Replies

    public mutating func receive(_ reply: Reply) -> Action {
        switch phase {
        case .greeting:
            guard reply.code == 220 else { return failAll(reply, source: .remote(command: "CONNECT"), thenClose: true) }
            phase = .ehlo
            return .send([.ehlo(heloName)])
        case .ehlo:
            if reply.code == 250 {
                extensions = Self.parseExtensions(reply)
                return afterHello()
            }
            if reply.isPermanentFailure {
                // RFC 5321 §4.1.4: a server that does not know EHLO gets HELO.
                phase = .helo
                return .send([.helo(heloName)])
            }
            return failAll(reply, source: .remote(command: "EHLO"), thenClose: true)
        case .helo:
            guard reply.code == 250 else { return failAll(reply, source: .remote(command: "HELO"), thenClose: true) }
            extensions = Extensions()
            return afterHello()
        case .startTLS:
            if reply.code == 220 { return .startTLS }
            if tlsPolicy == .required || tlsPolicy == .requiredVerified {
                return failAll(Reply(451, EnhancedStatusCode(4, 7, 10), "TLS required but STARTTLS failed: \(reply)"),
                               source: .tls, thenClose: true)
            }
            return startTransaction()
        case .auth:
            guard reply.code == 235 else {
                // Our configuration is wrong, not the mail: keep it queued.
                return failAll(Reply(454, EnhancedStatusCode(4, 7, 0), "the next hop refused our credentials: \(reply)"),
                               source: .remote(command: "AUTH"), thenClose: true)
            }
            authenticated = true
            return startTransaction()
        case .reset:
            pendingReplies = []
            return startTransaction()
        case .mail, .rcpt, .data:
            return receivePipelined(reply)
        case .dataEnd:
            // Only a 2yz reply means the message was taken; a 3yz here breaks the protocol and is no acceptance.
            let outcome = (300..<400).contains(reply.code)
                ? Reply(451, EnhancedStatusCode(4, 5, 0), "unexpected reply to the end of data: \(reply)") : reply
            let final = acceptedRecipients.map { RecipientOutcome(recipient: $0, reply: outcome, source: .remote(command: "DATA")) }
            return finishTransaction(extra: final)
        case .quit, .closed, .idle:
            return .none
        }
    }

    /// The TLS handshake finished: RFC 3207 §4.2, start over with EHLO.
    public mutating func tlsEstablished() -> Action {
        guard phase == .startTLS else { return .none }
        tlsActive = true
        extensions = Extensions()
        phase = .ehlo
        return .send([.ehlo(heloName)])
    }

    /// The handshake failed; the connection is unusable.
    public mutating func tlsFailed(_ description: String) -> Action {
        failAll(Reply(451, EnhancedStatusCode(4, 7, 5), "TLS handshake failed: \(description)"), source: .tls, thenClose: true)
    }

    /// The connection dropped or a deadline passed in the current phase.
    public mutating func connectionLost(_ description: String) -> Action {
        guard phase != .closed && phase != .quit && phase != .idle else {
            phase = .closed
            return .none
        }
        // After "." with no reply the message may or may not have been
        // accepted; retrying risks a duplicate, bouncing risks a loss: retry.
        return failAll(Reply(451, EnhancedStatusCode(4, 4, 2), "connection lost: \(description)"), source: .connection,
                       thenClose: true)
    }

    /// Reuse the session for another transaction to the same destination.
    public mutating func begin(_ next: OutboundEnvelope) -> Action {
        guard phase == .idle else { return .none }
        envelope = next
        return startTransaction()
    }

    public mutating func quit() -> Action {
        guard phase == .idle || phase == .greeting else { return .close }
        phase = .quit
        return .send([.quit])
    }

    // MARK: Steps

    private mutating func afterHello() -> Action {
        if extensions.startTLS && !tlsActive && !triedTLS && tlsPolicy != .none {
            triedTLS = true
            phase = .startTLS
            return .send([.startTLS])
        }
        if !tlsActive && (tlsPolicy == .required || tlsPolicy == .requiredVerified) {
            return failAll(Reply(451, EnhancedStatusCode(4, 7, 10), "TLS required but the server does not offer STARTTLS"),
                           source: .tls, thenClose: true)
        }
        if let credentials, !authenticated {
            // RFC 4954 with RFC 4616 PLAIN: authzid empty, then user and password.
            guard extensions.authMechanisms.contains("PLAIN") else {
                return failAll(Reply(454, EnhancedStatusCode(4, 7, 0), "the next hop does not offer AUTH PLAIN"),
                               source: .remote(command: "EHLO"), thenClose: true)
            }
            let token = Array(("\0" + credentials.username + "\0" + credentials.password).utf8)
            phase = .auth
            return .send([.auth(mechanism: "PLAIN", initialResponse: Self.base64(token))])
        }
        return startTransaction()
    }

    private mutating func startTransaction() -> Action {
        guard let envelope else { return .close }
        if needsReset {
            needsReset = false
            phase = .reset
            pendingReplies = [.reset]
            return .send([.rset])
        }
        outcomes = [:]
        acceptedRecipients = []
        mailReply = nil
        rcptIndex = 0
        // RFC 1870: do not send what the server has said it will refuse.
        if extensions.maximumSize > 0 && envelope.size > extensions.maximumSize {
            return failAll(Reply(552, EnhancedStatusCode(5, 3, 4),
                                 "message of \(envelope.size) octets exceeds the server's limit of \(extensions.maximumSize)"),
                           source: .local, thenClose: false)
        }
        if envelope.requiresSMTPUTF8 && !extensions.smtpUTF8 {
            return failAll(Reply(553, EnhancedStatusCode(5, 6, 7), "the server does not support SMTPUTF8"), source: .local, thenClose: false)
        }
        var parameters = MailParameters()
        if extensions.maximumSize > 0 || extensions.pipelining { parameters.size = envelope.size }
        if envelope.eightBit && extensions.eightBitMIME { parameters.body = .eightBitMIME }
        if envelope.requiresSMTPUTF8 { parameters.smtpUTF8 = true }
        let mail = Command.mail(Self.reversePath(envelope.sender), parameters)
        let rcpts = envelope.recipients.map { Command.rcpt(Self.forwardPath($0), []) }
        phase = .mail
        if extensions.pipelining {
            // RFC 2920: MAIL, every RCPT and DATA in one go.
            pendingReplies = [.mail] + Array(repeating: .rcpt, count: rcpts.count) + [.data]
            return .send([mail] + rcpts + [.data])
        }
        pendingReplies = [.mail]
        return .send([mail])
    }

    private mutating func receivePipelined(_ reply: Reply) -> Action {
        guard let expected = pendingReplies.first, let envelope else { return .close }
        pendingReplies.removeFirst()
        switch expected {
        case .mail:
            mailReply = reply
            if !extensions.pipelining {
                guard reply.isPositive else { return failAll(reply, source: .remote(command: "MAIL"), thenClose: false, resetNeeded: true) }
                phase = .rcpt
                pendingReplies = [.rcpt]
                return .send([.rcpt(Self.forwardPath(envelope.recipients[0]), [])])
            }
            phase = .rcpt
            return .none
        case .rcpt:
            let recipient = envelope.recipients[rcptIndex]
            rcptIndex += 1
            if let mailReply, !mailReply.isPositive {
                outcomes[recipient] = (mailReply, .remote(command: "MAIL"))
            } else if reply.isPositive {
                acceptedRecipients.append(recipient)
            } else {
                outcomes[recipient] = (reply, .remote(command: "RCPT"))
            }
            if !extensions.pipelining {
                if rcptIndex < envelope.recipients.count {
                    pendingReplies = [.rcpt]
                    return .send([.rcpt(Self.forwardPath(envelope.recipients[rcptIndex]), [])])
                }
                guard !acceptedRecipients.isEmpty else { return finishTransaction(extra: [], resetNeeded: true) }
                phase = .data
                pendingReplies = [.data]
                return .send([.data])
            }
            if rcptIndex == envelope.recipients.count { phase = .data }
            return .none
        case .data:
            if reply.code == 354 {
                // With no accepted recipient (a server that 354s anyway, RFC 2920 §3.1)
                // the message still has to be sent to end the transaction;
                // its reply then concerns nobody.
                phase = .dataEnd
                return .sendMessage
            }
            // DATA refused: the accepted recipients get this reply.
            let refused = acceptedRecipients.map { RecipientOutcome(recipient: $0, reply: reply, source: .remote(command: "DATA")) }
            acceptedRecipients = []
            return finishTransaction(extra: refused, resetNeeded: true)
        default:
            return .close
        }
    }

    private mutating func finishTransaction(extra: [RecipientOutcome], resetNeeded: Bool = false) -> Action {
        guard let envelope else { return .close }
        var byRecipient = outcomes
        for outcome in extra { byRecipient[outcome.recipient] = (outcome.reply, outcome.source) }
        let results = envelope.recipients.map { recipient in
            let (reply, source) = byRecipient[recipient]
                ?? (Reply(451, EnhancedStatusCode(4, 4, 2), "no reply for this recipient"), .connection)
            return RecipientOutcome(recipient: recipient, reply: reply, source: source)
        }
        self.envelope = nil
        phase = .idle
        pendingReplies = []
        needsReset = resetNeeded
        return .transactionFinished(results)
    }

    private mutating func failAll(_ reply: Reply, source: OutcomeSource, thenClose: Bool, resetNeeded: Bool = false) -> Action {
        let recipients = envelope?.recipients ?? []
        envelope = nil
        pendingReplies = []
        phase = thenClose ? .closed : .idle
        needsReset = resetNeeded
        return .transactionFinished(recipients.map { RecipientOutcome(recipient: $0, reply: reply, source: source) })
    }

    static func parseExtensions(_ reply: Reply) -> Extensions {
        var extensions = Extensions()
        for line in reply.lines.dropFirst() {
            let words = line.split(separator: " ")
            guard let keyword = words.first?.uppercased() else { continue }
            switch keyword {
            case "PIPELINING": extensions.pipelining = true
            case "STARTTLS": extensions.startTLS = true
            case "8BITMIME": extensions.eightBitMIME = true
            case "SMTPUTF8": extensions.smtpUTF8 = true
            case "SIZE": extensions.maximumSize = words.count > 1 ? Int(words[1]) ?? 0 : 0
            case "AUTH": extensions.authMechanisms = Set(words.dropFirst().map { $0.uppercased() })
            default: break
            }
        }
        return extensions
    }

    static func base64(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
    }

    static func reversePath(_ sender: String) -> ReversePath {
        guard !sender.isEmpty, let mailbox = try? PathParser.parseMailbox(sender) else { return .null }
        return .mailbox(mailbox)
    }

    static func forwardPath(_ recipient: String) -> ForwardPath {
        if let mailbox = try? PathParser.parseMailbox(recipient) { return .mailbox(mailbox) }
        return .postmaster
    }
}
