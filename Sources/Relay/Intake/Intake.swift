import DKIM
import Foundation
import MIME
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Spool
import Store

/// The one way into the spool. Every door — SMTP sessions, the native, SES
/// and SendGrid APIs, DSNs, resends — hands the intake a `Submission` and gets
/// back the message id once the message is on stable storage, or a typed
/// `IntakeRefusal` that nothing was stored for.
///
/// The intake alone owns, in this order: the size limit; the header section
/// (RFC 5322 §2.2, `HeaderSection`), refused when malformed; the loop limit;
/// the sender and author policy (`SenderPolicy`); the account's quota, admitted
/// before anything is written and released if the spool fails; the trace
/// fields; the DKIM signatures (off the caller's thread); the spool append.
/// A rule tightened here holds at every door.
public final class Intake: Sendable {
    public struct Settings: Sendable {
        /// The name in trace fields and generated Message-IDs.
        public var hostname: String
        /// Largest message, trace fields included.
        public var maximumMessageSize: Int
        /// This many `Received:` fields is a loop (RFC 5321 §6.3).
        public var maximumReceivedFields: Int
        public var headerLimits: HeaderSection.Limits
        public var policy: SenderPolicy

        public init(hostname: String, maximumMessageSize: Int, maximumReceivedFields: Int = 100,
                    headerLimits: HeaderSection.Limits = HeaderSection.Limits(), requireVerifiedDomains: Bool) {
            self.hostname = hostname
            self.maximumMessageSize = maximumMessageSize
            self.maximumReceivedFields = maximumReceivedFields
            self.headerLimits = headerLimits
            self.policy = SenderPolicy(requireVerifiedDomains: requireVerifiedDomains)
        }
    }

    /// The account as it is now (nil: gone or disabled), for a principal whose
    /// copy may be stale: a session opened before a domain lost its
    /// verification, or an API key cached for a few seconds. `fresh` asks the
    /// store itself (before refusing: a domain verified a moment ago); else a
    /// copy a few seconds old will do.
    public typealias AccountLookup = @Sendable (_ id: Int64, _ fresh: Bool) -> AuthenticatedAccount?

    public let settings: Settings
    private let spool: any MessageSpool
    private let meter: SendingMeter?
    private let signing: MessageSigning?
    /// Where signatures are made (an RSA signature costs about a millisecond); nil: on the caller's thread.
    private let signingPool: NIOThreadPool?
    private let accountLookup: AccountLookup?
    private let clock: @Sendable () -> Date

    public init(settings: Settings, spool: any MessageSpool, meter: SendingMeter?, signing: MessageSigning?,
                signingPool: NIOThreadPool?, accountLookup: AccountLookup? = nil, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.settings = settings
        self.spool = spool
        self.meter = meter
        self.signing = signing
        self.signingPool = signingPool
        self.accountLookup = accountLookup
        self.clock = clock
    }

    /// A new message id: the only place ids are made.
    public static func newMessageID() -> MessageID { MessageID.generate() }

    // MARK: Submitting

    /// One message; `completion` runs once, on any thread.
    public func submit(_ submission: Submission, completion: @escaping @Sendable (Result<MessageID, IntakeRefusal>) -> Void) {
        submit([submission]) { result in completion(result.map { $0[0] }) }
    }

    /// Messages that stand or fall together for the policy and the quota
    /// (an API batch): all are checked before any is admitted, and all are
    /// admitted at once. The ids come back in order. When the spool fails
    /// part-way, the refusal lists the ids it had already stored.
    public func submit(_ submissions: [Submission], completion: @escaping @Sendable (Result<[MessageID], IntakeRefusal>) -> Void) {
        guard !submissions.isEmpty else { return completion(.success([])) }
        var prepared: [Prepared] = []
        prepared.reserveCapacity(submissions.count)
        for submission in submissions {
            switch prepare(submission) {
            case .success(let message): prepared.append(message)
            case .failure(let refusal): return completion(.failure(refusal))
            }
        }
        let admitted = admit(prepared)
        if let refusal = admitted { return completion(.failure(refusal)) }
        sign(prepared) { [self] signed in
            append(signed, completion: completion)
        }
    }

    public func submit(_ submission: Submission) async -> Result<MessageID, IntakeRefusal> {
        await withCheckedContinuation { continuation in submit(submission) { continuation.resume(returning: $0) } }
    }

    public func submit(_ submissions: [Submission]) async -> Result<[MessageID], IntakeRefusal> {
        await withCheckedContinuation { continuation in submit(submissions) { continuation.resume(returning: $0) } }
    }

    /// What `prepare` found out about a submission on its way to the spool.
    struct Prepared: Sendable {
        var submission: Submission
        var message: IncomingMessage
        /// The author's domain whose keys may sign, if any.
        var signingDomain: String?
    }

    /// Size, header section, loop, policy, trace fields: everything decided from the bytes alone.
    func prepare(_ submission: Submission) -> Result<Prepared, IntakeRefusal> {
        var content = submission.content
        guard content.count <= settings.maximumMessageSize else {
            return .failure(.messageTooLarge(size: content.count, limit: settings.maximumMessageSize))
        }
        var header: HeaderSection
        do {
            header = try HeaderSection(parsing: content, limits: settings.headerLimits)
            // Blind copies stay blind: Bcc and Resent-Bcc in any spelling never leave (RFC 5322 §3.6.3).
            if submission.door != .dsn, header.fields.contains(where: Intake.isBlindCopy) {
                content = Intake.removing(header.fields.filter(Intake.isBlindCopy), from: content)
                header = try HeaderSection(parsing: content, limits: settings.headerLimits)
            }
        } catch {
            return .failure(.malformedHeader(error))
        }
        let received = header.fields(named: "Received").count
        if received >= settings.maximumReceivedFields { return .failure(.mailLoop(received: received)) }
        var principal = submission.principal
        if case .account(let account) = principal, let accountLookup {
            // The account as it is now, not as it was when the session or the key was checked.
            // A miss in the copy may be an account created a moment ago: only the store itself says it is gone.
            guard let current = accountLookup(account.id, false) ?? accountLookup(account.id, true) else {
                return .failure(.unknownAccount)
            }
            principal = .account(current)
        }
        if let refusal = policy(submission.sender, header: header, content: content, principal: principal) {
            // Refuse only on what the store says now, and say why in its terms (a domain verified a moment
            // ago is no longer the reason).
            guard let fresh = refreshed(principal) else { return .failure(.sender(refusal)) }
            if let stillRefused = policy(submission.sender, header: header, content: content, principal: fresh) {
                return .failure(.sender(stillRefused))
            }
            principal = fresh
        }
        let prefix = traceFields(submission, header: header)
        guard prefix.count + content.count <= settings.maximumMessageSize || submission.door == .dsn else {
            return .failure(.messageTooLarge(size: prefix.count + content.count, limit: settings.maximumMessageSize))
        }
        var metadata = submission.metadata
        if metadata == nil, submission.door != .smtp, submission.door != .dsn { metadata = MessageMetadata(source: submission.door.rawValue) }
        let message = IncomingMessage(
            id: submission.id, sender: submission.sender, recipients: submission.recipients, accountID: principal.accountID,
            smtpUTF8: submission.smtpUTF8, clientAddress: submission.origin.clientAddress, heloName: submission.origin.heloName,
            prefix: prefix, content: content, metadata: metadata,
            subject: submission.subject.map { String($0.prefix(200)) } ?? Intake.searchableSubject(header, content))
        var prepared = Prepared(submission: submission, message: message, signingDomain: nil)
        prepared.submission.principal = principal
        if submission.door != .dsn, let from = header.first("From"),
           let first = try? AddressList(parsing: from.unfoldedBytes(in: content[...])).mailboxes.first {
            prepared.signingDomain = SenderPolicy.domain(first.domain)
        }
        return .success(prepared)
    }

    /// The subject as a reader shows it (RFC 2047 words decoded), at most 200 characters, for log search.
    static func searchableSubject(_ header: HeaderSection, _ content: [UInt8]) -> String? {
        guard let field = header.first("Subject") else { return nil }
        return String(EncodedWords.decodeText(field.unfoldedValue(in: content)).prefix(200))
    }

    static func isBlindCopy(_ field: HeaderSection.Field) -> Bool { field.hasName("Bcc") || field.hasName("Resent-Bcc") }

    /// `content` without `fields` (each with its CRLF).
    static func removing(_ fields: [HeaderSection.Field], from content: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(content.count)
        var position = 0
        for field in fields {
            output.append(contentsOf: content[position..<field.range.lowerBound])
            position = min(content.count, field.range.upperBound + 2)
        }
        output.append(contentsOf: content[position...])
        return output
    }

    private func policy(_ sender: String, header: HeaderSection, content: [UInt8], principal: Principal) -> SenderRefusal? {
        settings.policy.check(envelopeSender: sender, principal: principal)
            ?? settings.policy.check(header: header, of: content, principal: principal)
    }

    private func refreshed(_ principal: Principal) -> Principal? {
        guard case .account(let account) = principal, let accountLookup, let fresh = accountLookup(account.id, true), fresh != account else {
            return nil
        }
        return .account(fresh)
    }

    /// Admits the whole batch against its account's quota, or refuses it.
    private func admit(_ prepared: [Prepared]) -> IntakeRefusal? {
        guard let meter else { return nil }
        var byAccount: [Int64: (messages: Int, recipients: [String], bytes: Int)] = [:]
        for item in prepared {
            guard let account = item.submission.principal.account else { continue }
            byAccount[account.id, default: (0, [], 0)].messages += 1
            byAccount[account.id, default: (0, [], 0)].recipients += item.message.recipients
            byAccount[account.id, default: (0, [], 0)].bytes += item.message.size
        }
        var admitted: [(Int64, (messages: Int, recipients: [String], bytes: Int))] = []
        for (account, usage) in byAccount {
            let refusal: IntakeRefusal?
            switch meter.admit(accountID: account, messages: usage.messages, recipients: usage.recipients, bytes: usage.bytes) {
            case .accepted: refusal = nil
            case .rateExceeded(let wait): refusal = .rateExceeded(retryAfter: wait)
            case .dailyQuotaExceeded: refusal = .dailyQuotaExceeded
            case .sandboxRecipient(let address): refusal = .sandboxRecipient(address)
            case .unknownAccount: refusal = .unknownAccount
            }
            if let refusal {
                for (account, usage) in admitted {
                    meter.release(accountID: account, messages: usage.messages, recipients: usage.recipients.count, bytes: usage.bytes)
                }
                return refusal
            }
            admitted.append((account, usage))
        }
        return nil
    }

    /// Puts DKIM signatures on top (over what is stored, trace fields
    /// included), on the signing pool when there is one.
    private func sign(_ prepared: [Prepared], then: @escaping @Sendable ([IncomingMessage]) -> Void) {
        let work = prepared.map { item -> (IncomingMessage, [DKIMSigner]) in
            (item.message, item.signingDomain.map { signing?.signers(forDomain: $0, accountID: item.message.accountID) ?? [] } ?? [])
        }
        guard work.contains(where: { !$0.1.isEmpty }) else { return then(work.map(\.0)) }
        let signAll: @Sendable () -> [IncomingMessage] = {
            work.map { message, signers in
                guard !signers.isEmpty else { return message }
                var signed = message
                signed.prefix = MessageSigning.signatures(signers, over: message.prefix + message.content) + message.prefix
                return signed
            }
        }
        guard let signingPool else { return then(signAll()) }
        signingPool.submit { state in
            // A pool already shut down: sign here rather than lose the message.
            then(signAll())
            _ = state
        }
    }

    private func append(_ messages: [IncomingMessage], completion: @escaping @Sendable (Result<[MessageID], IntakeRefusal>) -> Void) {
        let state = NIOLockedValueBox((remaining: messages.count, results: [Result<MessageID, SpoolError>?](repeating: nil, count: messages.count)))
        for (index, message) in messages.enumerated() {
            spool.append(message) { [self] result in
                let done: [Result<MessageID, SpoolError>?]? = state.withLockedValue { state in
                    state.results[index] = result
                    state.remaining -= 1
                    return state.remaining == 0 ? state.results : nil
                }
                guard let done else { return }
                completion(finish(messages, results: done))
            }
        }
    }

    private func finish(_ messages: [IncomingMessage], results: [Result<MessageID, SpoolError>?]) -> Result<[MessageID], IntakeRefusal> {
        var accepted: [MessageID] = []
        var storageFull = false
        var failed = false
        for (message, result) in zip(messages, results) {
            switch result {
            case .success(let id)?:
                accepted.append(id)
            case .failure(let error)?:
                failed = true
                if case .insufficientStorage = error { storageFull = true }
                // Not accepted: not counted against the quota either.
                if let meter, let account = message.accountID {
                    meter.release(accountID: account, messages: 1, recipients: message.recipients.count, bytes: message.size)
                }
            case nil:
                failed = true
            }
        }
        guard failed else { return .success(accepted) }
        return .failure(storageFull ? .insufficientStorage(accepted: accepted) : .spoolUnavailable(accepted: accepted))
    }

    // MARK: Trace fields

    /// `Received:` for the door (RFC 5321 §4.4), and the `Message-ID:` and
    /// `Date:` a message lacks (RFC 6409 §8: a submission server may add them).
    func traceFields(_ submission: Submission, header: HeaderSection) -> [UInt8] {
        let now = clock()
        var fields: String
        switch submission.origin {
        case .smtp(let origin):
            let trace = TraceFields(
                hostname: settings.hostname, heloName: origin.heloName ?? "unknown", clientAddress: origin.clientAddress,
                extended: origin.extended, tls: origin.tls, tlsDescription: origin.tls ? (origin.tlsDescription ?? "using TLS") : nil,
                authenticatedAs: submission.principal.account?.name, smtpUTF8: submission.smtpUTF8, queueID: submission.id.rawValue,
                recipients: submission.recipients, date: now)
            fields = trace.received
        case .http(let client):
            let account = submission.principal.account.map { " (account \(TraceFields.clean($0.name)))" } ?? ""
            fields = "Received: from [\(client)]\(account)\r\n\tby \(settings.hostname) (Hikyaku) with HTTP id \(submission.id);\r\n\t"
                + MailDate.rfc5322(now) + "\r\n"
        case .local:
            return []
        }
        if header.first("Message-ID") == nil { fields += "Message-ID: <\(submission.id)@\(settings.hostname)>\r\n" }
        if header.first("Date") == nil { fields += "Date: \(MailDate.rfc5322(now))\r\n" }
        return Array(fields.utf8)
    }
}

extension Origin {
    var clientAddress: String {
        switch self {
        case .smtp(let origin): return origin.clientAddress
        case .http(let client): return client
        case .local: return "127.0.0.1"
        }
    }

    var heloName: String {
        switch self {
        case .smtp(let origin): return origin.heloName ?? ""
        case .http: return "api"
        case .local: return ""
        }
    }
}

extension Intake {
    /// What `submit` would refuse before the quota (size, header, loop,
    /// policy), with nothing stored or counted: SendGrid's sandbox mode.
    public func validate(_ submission: Submission) -> IntakeRefusal? {
        if case .failure(let refusal) = prepare(submission) { return refusal }
        return nil
    }
}
