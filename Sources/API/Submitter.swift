import Foundation
import Hummingbird
import Relay
import Spool
import Store

/// A message built by an API endpoint, ready for the intake.
struct OutgoingMessage: Sendable {
    /// Taken before building, so that the message can name itself (unsubscribe links).
    var id = Intake.newMessageID()
    var sender: String
    var recipients: [String]
    var bytes: [UInt8]
    var metadata: MessageMetadata
    /// The subject as composed (for the log, see `Submission.subject`).
    var subject: String?
}

/// The API's side of the intake: hands messages over as submissions of an
/// account and turns a refusal into the error of the request's API. The
/// checks themselves (header section, sender and author policy, quota,
/// signing, the durable append) are the intake's, the same as for SMTP.
struct Submitter: Sendable {
    let intake: Intake

    /// Spools every message or none; the ids in order once all are on stable storage.
    func submit(_ messages: [OutgoingMessage], door: Door, account: Account, client: String) async throws(APIError) -> [MessageID] {
        let submissions = messages.map { submission($0, door: door, account: account, client: client) }
        switch await intake.submit(submissions) {
        case .success(let ids): return ids
        case .failure(let refusal): throw APIError(refusal, account: account)
        }
    }

    /// Everything `submit` checks before the quota, without storing anything (SendGrid's sandbox mode).
    func validate(_ messages: [OutgoingMessage], door: Door, account: Account, client: String) throws(APIError) {
        for message in messages {
            if let refusal = intake.validate(submission(message, door: door, account: account, client: client)) {
                throw APIError(refusal, account: account)
            }
        }
    }

    func submission(_ message: OutgoingMessage, door: Door, account: Account, client: String) -> Submission {
        Submission(id: message.id, door: door, principal: .account(AuthenticatedAccount(account)), sender: message.sender,
                   recipients: message.recipients, content: message.bytes, origin: .http(client: client), metadata: message.metadata,
                   subject: message.subject)
    }
}

extension APIError {
    /// The HTTP error for an intake refusal, in the native code and the SES exception botocore raises.
    init(_ refusal: IntakeRefusal, account: Account) {
        switch refusal {
        case .malformedHeader(let problem):
            self.init(.badRequest, "invalid_header", "the message's header section is malformed: \(problem)", ses: "MessageRejected")
        case .sender(let reason):
            switch reason {
            case .authorMissing, .fieldRepeated, .unparsable, .undecodableText:
                self.init(.badRequest, "invalid_header", reason.message, ses: "MessageRejected", field: "from")
            case .senderNotOwned, .senderNotVerified, .notAMailbox, .domainNotAllowed:
                self.init(.forbidden, "sender_not_allowed", "account \(account.name) may not send this message: \(reason.message)",
                          ses: "MailFromDomainNotVerifiedException", field: "from")
            }
        case .messageTooLarge(let size, let limit):
            self.init(.contentTooLarge, "message_too_large", "message of \(size) bytes exceeds the limit of \(limit)", ses: "MessageRejected")
        case .mailLoop(let received):
            self.init(.badRequest, "mail_loop", "the message has \(received) Received fields: a mail loop", ses: "MessageRejected")
        case .rateExceeded(let wait):
            let seconds = wait.isFinite ? Int(min(max(1, wait.rounded(.up)), 86_400)) : 1
            self.init(.tooManyRequests, "rate_exceeded", "maximum sending rate exceeded", ses: "TooManyRequestsException",
                      retryAfter: seconds)
        case .dailyQuotaExceeded:
            self.init(.tooManyRequests, "daily_quota_exceeded", "24-hour sending quota exceeded", ses: "TooManyRequestsException",
                      retryAfter: 3600)
        case .sandboxRecipient(let address):
            self.init(.forbidden, "sandbox_recipient", "account is in the sandbox: \(address) is not in one of its verified domains",
                      ses: "MessageRejected")
        case .unknownAccount:
            self = .unauthorized
        case .insufficientStorage(let accepted), .spoolUnavailable(let accepted):
            let storageFull = if case .insufficientStorage = refusal { true } else { false }
            var message = storageFull ? "insufficient storage" : "the spool is unavailable"
            if !accepted.isEmpty { message += "; accepted before the failure: " + accepted.map(\.rawValue).joined(separator: ",") }
            self.init(storageFull ? HTTPResponse.Status(code: 507) : .serviceUnavailable, "spool_unavailable", message,
                      ses: "InternalFailure", retryAfter: 60)
            partlyDone = !accepted.isEmpty
        }
    }
}
