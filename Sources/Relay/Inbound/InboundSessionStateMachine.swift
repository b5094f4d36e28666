import Foundation
import SMTPCore

/// One SMTP server session as a pure value (RFC 5321 §4.1.4 ordering,
/// RFC 3207 STARTTLS, RFC 4954 AUTH). The NIO handler feeds it framed input
/// and results of slow work, and performs the `Action`s it returns; it never
/// touches a socket, a clock or the disk itself.
public struct InboundSessionStateMachine: Sendable {
    /// What the handler should do next.
    public enum Action: Equatable, Sendable {
        case none
        case reply(Reply)
        /// Send the reply, then close the connection.
        case replyAndClose(Reply)
        /// Send the reply to the last command, then 421 (the server is
        /// draining), then close.
        case replyAndShutDown(Reply)
        /// Send the 220, discard every byte already received (RFC 3207 §4.2:
        /// no pipelined plaintext survives), then begin the TLS handshake.
        case startTLS(Reply)
        /// Check credentials off the event loop, then call `credentialsVerified`.
        case verifyCredentials(username: String, password: String)
        /// Send 354 and read the message with a `DataReader`.
        case beginData(Reply)
        /// Hand the transaction to the intake, then call `spoolFinished`.
        case enqueue(Transaction, content: [UInt8])
        /// A report for the bounce domain: record it, then call `feedbackFinished`.
        case recordFeedback(Transaction, content: [UInt8])
    }

    /// What the handler should do with incoming bytes.
    public enum InputMode: Equatable, Sendable {
        case command
        case data
        /// Waiting for a verification, the spool or a TLS handshake: leave bytes buffered.
        case paused
        /// The session is over; everything received is thrown away.
        case discard
    }

    /// An open mail transaction (RFC 5321 §3.3).
    public struct Transaction: Equatable, Sendable {
        public var sender: ReversePath
        public var parameters: MailParameters
        public var recipients: [Mailbox] = []
        /// Addressed to the bounce domain: a report to record, not mail to relay.
        public var feedback = false
    }

    private enum State: Equatable, Sendable {
        case command
        case authPlainResponse
        case authLoginUsername
        case authLoginPassword(username: String)
        case verifyingCredentials
        case data
        case spooling
        case tlsPending
        case closed
    }

    public let settings: InboundSettings
    public let policy: RelayPolicy
    /// Checked at MAIL FROM, so that a sender the intake would refuse is refused early.
    public let senderPolicy: SenderPolicy
    private let baseAuthority: ClientAuthority
    private var state: State = .command
    public private(set) var authority: ClientAuthority
    public private(set) var tlsActive: Bool
    public private(set) var heloName: String?
    public private(set) var isExtendedSession = false
    public private(set) var transaction: Transaction?
    public private(set) var authenticatedAccount: AuthenticatedAccount?
    private var errorCount = 0
    private var authFailures = 0
    private var draining = false

    /// - Parameters:
    ///   - trusted: the client is in a configured trusted network.
    ///   - tlsActive: the connection began with TLS (implicit-TLS port).
    public init(settings: InboundSettings, policy: RelayPolicy = RelayPolicy(), trusted: Bool, tlsActive: Bool) {
        self.settings = settings
        self.policy = policy
        self.senderPolicy = SenderPolicy(requireVerifiedDomains: settings.requireVerifiedDomains)
        self.baseAuthority = trusted ? .trustedNetwork : .none
        self.authority = baseAuthority
        self.tlsActive = tlsActive
    }

    public var inputMode: InputMode {
        switch state {
        case .command, .authPlainResponse, .authLoginUsername, .authLoginPassword: return .command
        case .data: return .data
        // While STARTTLS is pending, the handler has already thrown away the
        // plaintext; whatever arrives next came through TLS and must wait.
        case .verifyingCredentials, .spooling, .tlsPending: return .paused
        case .closed: return .discard
        }
    }

    public var isClosed: Bool { state == .closed }

    /// The 220 greeting (RFC 5321 §4.3.1).
    public func greeting() -> Reply {
        Reply(220, nil, "\(settings.hostname) ESMTP Hikyaku")
    }

    // MARK: Input

    /// A framed command line, or a framing error.
    public mutating func receiveLine(_ frame: CommandLineReader.Result) -> Action {
        switch frame {
        case .incomplete:
            return .none
        case .lineTooLong, .bareLineEnding, .nulCharacter:
            if inputMode == .command && state != .command { state = .command } // abandons an AUTH exchange
            fallthrough
        default:
            break
        }
        switch frame {
        case .incomplete:
            return .none
        case .lineTooLong:
            return fail(.lineTooLong)
        case .bareLineEnding:
            return fail(.bareLineEnding)
        case .nulCharacter:
            return fail(.nulCharacter)
        case .line(let bytes):
            switch state {
            case .authPlainResponse, .authLoginUsername, .authLoginPassword:
                return receiveAuthResponse(bytes)
            case .command:
                return receiveCommand(bytes)
            default:
                return .none
            }
        }
    }

    private mutating func receiveCommand(_ bytes: [UInt8]) -> Action {
        let command: Command
        do {
            command = try CommandParser.parseCommand(bytes)
        } catch {
            switch error.kind {
            case .unrecognizedCommand:
                return fail(.syntaxError)
            case .unsupportedParameter:
                return fail(Reply(555, EnhancedStatusCode(5, 5, 4), "Unsupported parameter value"))
            case .malformed:
                let verb = String(decoding: bytes.prefix(4), as: UTF8.self).uppercased()
                if verb == "MAIL" || verb == "RCPT" {
                    return fail(Reply(501, EnhancedStatusCode(5, 1, verb == "MAIL" ? 7 : 3), "Bad address syntax"))
                }
                return fail(Reply(501, EnhancedStatusCode(5, 5, 4), "Syntax error in parameters or arguments"))
            }
        }
        if draining, transaction == nil, command != .quit {
            state = .closed
            return .replyAndClose(.serviceShuttingDown)
        }
        switch command {
        case .ehlo(let name): return hello(name, extended: true)
        case .helo(let name): return hello(name, extended: false)
        case .mail(let path, let parameters): return mail(path, parameters)
        case .rcpt(let path, let parameters): return rcpt(path, parameters)
        case .data: return data()
        case .rset:
            transaction = nil
            return .reply(Reply.ok)
        case .noop:
            return .reply(Reply.ok)
        case .quit:
            state = .closed
            return .replyAndClose(Reply(221, EnhancedStatusCode(2, 0, 0), "Bye"))
        case .vrfy:
            // RFC 5321 §3.5.3: 252 when we will not verify but would try to deliver.
            return .reply(Reply(252, EnhancedStatusCode(2, 5, 2), "Cannot VRFY user, but will accept message and attempt delivery"))
        case .expn:
            return fail(Reply(502, EnhancedStatusCode(5, 5, 1), "EXPN not supported"))
        case .help:
            return .reply(Reply(214, EnhancedStatusCode(2, 0, 0),
                                ["Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
                                 "See RFC 5321"]))
        case .startTLS: return startTLS()
        case .auth(let mechanism, let initialResponse): return auth(mechanism, initialResponse)
        case .bdat:
            return fail(Reply(502, EnhancedStatusCode(5, 5, 1), "BDAT not supported; use DATA"))
        }
    }

    private mutating func hello(_ name: String, extended: Bool) -> Action {
        // RFC 5321 §4.1.4: EHLO/HELO resets any transaction.
        transaction = nil
        heloName = name
        isExtendedSession = extended
        guard extended else {
            return .reply(Reply(250, nil, "\(settings.hostname)"))
        }
        var lines = ["\(settings.hostname) Hello \(name)", "PIPELINING", "SIZE \(settings.maximumMessageSize)",
                     "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]
        if settings.tlsAvailable && !tlsActive { lines.append("STARTTLS") }
        // RFC 4954 §4 and RFC 8314: no AUTH over plaintext, except for trusted networks.
        if mayAuthenticate && authenticatedAccount == nil { lines.append("AUTH PLAIN LOGIN") }
        return .reply(Reply(250, nil, lines))
    }

    private var mayAuthenticate: Bool { tlsActive || baseAuthority == .trustedNetwork }

    private mutating func mail(_ path: ReversePath, _ parameters: MailParameters) -> Action {
        guard heloName != nil else { return fail(Reply(503, EnhancedStatusCode(5, 5, 1), "Send HELO/EHLO first")) }
        guard transaction == nil else { return fail(Reply(503, EnhancedStatusCode(5, 5, 1), "Nested MAIL command")) }
        if let unknown = parameters.other.first {
            return fail(Reply(555, EnhancedStatusCode(5, 5, 4), "Unsupported parameter \(unknown.keyword)"))
        }
        if !isExtendedSession && parameters != MailParameters() {
            return fail(Reply(555, EnhancedStatusCode(5, 5, 4), "Parameters need EHLO"))
        }
        // RFC 1870 §6.2: refuse at MAIL when the declared size is too big.
        if let size = parameters.size, size > settings.maximumMessageSize {
            return fail(Reply(552, EnhancedStatusCode(5, 3, 4), "Message size exceeds fixed maximum message size"))
        }
        // RFC 6531 §3.4: UTF-8 addresses only inside an SMTPUTF8 transaction.
        if let mailbox = path.mailbox, mailbox.requiresSMTPUTF8, !parameters.smtpUTF8 {
            return fail(Reply(553, EnhancedStatusCode(5, 6, 7), "Non-ASCII address requires SMTPUTF8"))
        }
        if let principal = RelayPolicy.principal(authority),
           let refusal = senderPolicy.check(envelopeSender: path.mailbox?.description ?? "", principal: principal) {
            return fail(refusal.smtpReply)
        }
        transaction = Transaction(sender: path, parameters: parameters)
        return .reply(Reply(250, EnhancedStatusCode(2, 1, 0), "Sender OK"))
    }

    private mutating func rcpt(_ path: ForwardPath, _ parameters: [ESMTPParameter]) -> Action {
        guard var current = transaction else { return fail(Reply(503, EnhancedStatusCode(5, 5, 1), "Need MAIL before RCPT")) }
        if let unknown = parameters.first {
            return fail(Reply(555, EnhancedStatusCode(5, 5, 4), "Unsupported parameter \(unknown.keyword)"))
        }
        if case .mailbox(let mailbox) = path, mailbox.requiresSMTPUTF8, !current.parameters.smtpUTF8 {
            return fail(Reply(553, EnhancedStatusCode(5, 6, 7), "Non-ASCII address requires SMTPUTF8"))
        }
        if case .mailbox(let mailbox) = path, let returnPath = settings.returnPath, let domain = mailbox.domain.normalisedName,
           returnPath.handles(domain: domain) {
            // Reports come from anyone (no AUTH), but only to addresses we issued: a forged one is refused here.
            let mailboxes: Set<String> = ["fbl", "abuse", "postmaster"]
            guard returnPath.decode(mailbox.description) != nil || mailboxes.contains(mailbox.unquotedLocalPart.lowercased())
                    || settings.unsubscribe?.decode(mailbox: mailbox.unquotedLocalPart) != nil else {
                return fail(Reply(550, EnhancedStatusCode(5, 1, 1), "No such bounce address"))
            }
            guard current.recipients.isEmpty || current.feedback else { return fail(InboundSessionStateMachine.separateTransactions) }
            guard current.recipients.count < settings.maximumRecipients else {
                return fail(Reply(452, EnhancedStatusCode(4, 5, 3), "Too many recipients"))
            }
            current.feedback = true
            current.recipients.append(mailbox)
            transaction = current
            return .reply(Reply(250, EnhancedStatusCode(2, 1, 5), "Recipient OK"))
        }
        if current.feedback { return fail(InboundSessionStateMachine.separateTransactions) }
        if let refusal = policy.check(recipient: path, authority: authority) { return fail(refusal) }
        guard case .mailbox(let mailbox) = path else { return fail(RelayPolicy.relayDenied) }
        // RFC 5321 §4.5.3.1.10: 452 for "too many recipients", so the client retries the rest.
        guard current.recipients.count < settings.maximumRecipients else {
            return fail(Reply(452, EnhancedStatusCode(4, 5, 3), "Too many recipients"))
        }
        current.recipients.append(mailbox)
        transaction = current
        return .reply(Reply(250, EnhancedStatusCode(2, 1, 5), "Recipient OK"))
    }

    /// 452 makes the client send the other recipients in another transaction (RFC 5321 §4.5.3.1.10).
    static let separateTransactions = Reply(452, EnhancedStatusCode(4, 5, 3), "Reports to the bounce domain go in their own transaction")

    private mutating func data() -> Action {
        guard let transaction else { return fail(Reply(503, EnhancedStatusCode(5, 5, 1), "Need MAIL before DATA")) }
        guard !transaction.recipients.isEmpty else {
            return fail(Reply(554, EnhancedStatusCode(5, 5, 1), "No valid recipients"))
        }
        state = .data
        return .beginData(Reply(354, nil, "End data with <CR><LF>.<CR><LF>"))
    }

    /// The end of data was reached. `violation` comes from the `DataReader`.
    public mutating func dataFinished(violation: DataReader.Violation?, content: [UInt8]) -> Action {
        guard state == .data, let current = transaction else { return .none }
        state = .command
        if let violation {
            transaction = nil
            switch violation {
            case .messageTooLarge:
                return fail(Reply(552, EnhancedStatusCode(5, 3, 4), "Message size exceeds fixed maximum message size"))
            case .bareLineEnding:
                return fail(.bareLineEnding)
            case .nulCharacter:
                return fail(.nulCharacter)
            case .lineTooLong:
                return fail(Reply(500, EnhancedStatusCode(5, 5, 2), "Line too long (RFC 5321 §4.5.3.1.6: 1000 octets)"))
            }
        }
        state = .spooling
        if current.feedback { return .recordFeedback(current, content: content) }
        // The intake checks the header section, the loop limit and the author policy.
        return .enqueue(current, content: content)
    }

    /// The report handed over by `.recordFeedback` was recorded (or refused): `reply` says which.
    public mutating func feedbackFinished(_ reply: Reply) -> Action {
        guard state == .spooling else { return .none }
        state = .command
        transaction = nil
        if reply.code >= 400 { errorCount += 1 }
        if draining {
            state = .closed
            return .replyAndShutDown(reply)
        }
        return .reply(reply)
    }

    /// The spool has answered for the transaction handed over by `.enqueue`.
    public mutating func spoolFinished(_ result: Result<String, SpoolFailure>) -> Action {
        guard state == .spooling else { return .none }
        state = .command
        transaction = nil
        let reply: Reply
        switch result {
        case .success(let id):
            reply = Reply(250, EnhancedStatusCode(2, 0, 0), "OK queued as \(id)")
        case .failure(.insufficientStorage):
            errorCount += 1
            reply = Reply(452, EnhancedStatusCode(4, 3, 1), "Insufficient system storage")
        case .failure(.unavailable):
            errorCount += 1
            reply = Reply(451, EnhancedStatusCode(4, 3, 0), "Local error in processing, try again later")
        case .failure(.refused(let refusal)):
            errorCount += 1
            reply = refusal
        }
        if draining {
            state = .closed
            return .replyAndShutDown(reply)
        }
        return .reply(reply)
    }

    /// Spool failures as the session sees them.
    public enum SpoolFailure: Error, Equatable, Sendable {
        case insufficientStorage
        case unavailable
        /// Refused by the intake (policy, header, quota): the reply says why.
        case refused(Reply)
    }

    // MARK: STARTTLS

    private mutating func startTLS() -> Action {
        guard settings.tlsAvailable, !tlsActive else {
            // RFC 3207 §4: STARTTLS is not offered, or not offered twice.
            return fail(Reply(503, EnhancedStatusCode(5, 5, 1), "TLS already active or not available"))
        }
        guard transaction == nil else { return fail(Reply(503, EnhancedStatusCode(5, 5, 1), "STARTTLS inside a transaction")) }
        state = .tlsPending
        return .startTLS(Reply(220, EnhancedStatusCode(2, 0, 0), "Ready to start TLS"))
    }

    /// The TLS handshake succeeded: RFC 3207 §4.2 — forget everything learnt
    /// from the client in plaintext and start over from a fresh EHLO.
    public mutating func tlsEstablished() {
        guard state == .tlsPending else { return }
        tlsActive = true
        state = .command
        heloName = nil
        isExtendedSession = false
        transaction = nil
        authority = baseAuthority
        authenticatedAccount = nil
    }

    // MARK: AUTH

    private mutating func auth(_ mechanism: String, _ initialResponse: String?) -> Action {
        guard heloName != nil, isExtendedSession else {
            return fail(Reply(503, EnhancedStatusCode(5, 5, 1), "Send EHLO first"))
        }
        guard mayAuthenticate else {
            // RFC 4954 §6.
            return fail(Reply(538, EnhancedStatusCode(5, 7, 11), "Encryption required for requested authentication mechanism"))
        }
        guard authenticatedAccount == nil else { return fail(Reply(503, EnhancedStatusCode(5, 5, 1), "Already authenticated")) }
        guard transaction == nil else { return fail(Reply(503, EnhancedStatusCode(5, 5, 1), "AUTH not allowed during a transaction")) }
        switch mechanism {
        case "PLAIN":
            guard let initialResponse else {
                state = .authPlainResponse
                return .reply(Reply(334, nil, ""))
            }
            return plainResponse(initialResponse)
        case "LOGIN":
            if let initialResponse {
                return loginUsername(initialResponse)
            }
            state = .authLoginUsername
            return .reply(Reply(334, nil, "VXNlcm5hbWU6")) // "Username:"
        default:
            return fail(Reply(504, EnhancedStatusCode(5, 5, 4), "Unrecognized authentication type"))
        }
    }

    private mutating func receiveAuthResponse(_ bytes: [UInt8]) -> Action {
        let text = String(decoding: bytes, as: UTF8.self)
        if text == "*" {
            // RFC 4954 §4: the client cancelled the exchange.
            state = .command
            return fail(Reply(501, EnhancedStatusCode(5, 7, 0), "Authentication cancelled"))
        }
        switch state {
        case .authPlainResponse: return plainResponse(text)
        case .authLoginUsername: return loginUsername(text)
        case .authLoginPassword(let username):
            guard let password = Self.decodeBase64(text) else { return badBase64() }
            state = .verifyingCredentials
            return .verifyCredentials(username: username, password: password)
        default: return .none
        }
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`.
    private mutating func plainResponse(_ text: String) -> Action {
        guard let decoded = Self.decodeBase64Bytes(text) else { return badBase64() }
        let parts = decoded.split(separator: 0, omittingEmptySubsequences: false)
        guard parts.count == 3,
              let authzid = String(validating: parts[0], as: UTF8.self),
              let username = String(validating: parts[1], as: UTF8.self),
              let password = String(validating: parts[2], as: UTF8.self),
              !username.isEmpty
        else {
            state = .command
            return fail(Reply(501, EnhancedStatusCode(5, 5, 2), "Malformed PLAIN response"))
        }
        // Acting for another identity is not supported: only authzid == authcid.
        if !authzid.isEmpty && authzid != username {
            state = .command
            return authenticationFailed()
        }
        state = .verifyingCredentials
        return .verifyCredentials(username: username, password: password)
    }

    private mutating func loginUsername(_ text: String) -> Action {
        guard let username = Self.decodeBase64(text), !username.isEmpty else { return badBase64() }
        state = .authLoginPassword(username: username)
        return .reply(Reply(334, nil, "UGFzc3dvcmQ6")) // "Password:"
    }

    private mutating func badBase64() -> Action {
        state = .command
        return fail(Reply(501, EnhancedStatusCode(5, 5, 2), "Cannot decode response"))
    }

    /// The result of `.verifyCredentials`: the account, or nil when the
    /// credentials are wrong (unknown user and wrong password look the same).
    public mutating func credentialsVerified(_ account: AuthenticatedAccount?) -> Action {
        guard state == .verifyingCredentials else { return .none }
        state = .command
        guard let account else { return authenticationFailed() }
        authenticatedAccount = account
        authority = .account(account)
        return .reply(Reply(235, EnhancedStatusCode(2, 7, 0), "Authentication successful"))
    }

    /// The client's address has failed AUTH too often recently; the
    /// credentials were not even checked.
    public mutating func credentialsThrottled() -> Action {
        guard state == .verifyingCredentials else { return .none }
        state = .command
        return fail(Reply(454, EnhancedStatusCode(4, 7, 0), "Too many failed authentications from this address, try again later"))
    }

    /// Too many password checks are running server-wide; the credentials were not checked.
    public mutating func credentialsBusy() -> Action {
        guard state == .verifyingCredentials else { return .none }
        state = .command
        return fail(Reply(454, EnhancedStatusCode(4, 7, 0), "Temporary authentication failure, try again later"))
    }

    private mutating func authenticationFailed() -> Action {
        authFailures += 1
        if authFailures >= settings.maximumAuthFailures {
            state = .closed
            return .replyAndClose(Reply(421, EnhancedStatusCode(4, 7, 0), "Too many authentication failures"))
        }
        return fail(Reply(535, EnhancedStatusCode(5, 7, 8), "Authentication credentials invalid"))
    }

    static func decodeBase64Bytes(_ text: String) -> [UInt8]? {
        if text == "=" { return [] } // RFC 4954 §4: "=" is an empty initial response
        return Data(base64Encoded: text).map(Array.init)
    }

    static func decodeBase64(_ text: String) -> String? {
        decodeBase64Bytes(text).flatMap { String(validating: $0, as: UTF8.self) }
    }

    // MARK: Session end

    /// The server is draining: an idle session is told at once; one in the
    /// middle of a transaction finishes it first.
    public mutating func shutdownRequested() -> Action {
        draining = true
        switch state {
        case .command where transaction == nil:
            state = .closed
            return .replyAndClose(.serviceShuttingDown)
        case .authPlainResponse, .authLoginUsername, .authLoginPassword:
            state = .closed
            return .replyAndClose(.serviceShuttingDown)
        default:
            return .none
        }
    }

    /// A deadline passed while waiting for the client.
    public mutating func timedOut() -> Action {
        guard state != .closed else { return .none }
        state = .closed
        return .replyAndClose(.timeout)
    }

    /// Counts an error reply; past the limit the session ends (a client that
    /// only produces errors is probing or broken).
    private mutating func fail(_ reply: Reply) -> Action {
        errorCount += 1
        if errorCount >= settings.maximumErrors {
            state = .closed
            return .replyAndClose(Reply(421, EnhancedStatusCode(4, 7, 0), "Too many errors, closing connection"))
        }
        return .reply(reply)
    }
}
