import MIME
import SMTPCore
import Spool

/// Why the intake did not take a message. Each door turns it into its own
/// answer: an SMTP reply (`smtpReply`), or the native, SES or SendGrid error
/// at the HTTP edge. Nothing was stored and no quota was used.
public enum IntakeRefusal: Error, Sendable, Equatable {
    /// The header section breaks RFC 5322 §2.2 (bare CR or LF, a line that is no field, too large).
    case malformedHeader(HeaderSection.Malformed)
    /// The sender or author policy refused it.
    case sender(SenderRefusal)
    /// Larger than the configured maximum.
    case messageTooLarge(size: Int, limit: Int)
    /// As many `Received:` fields as the limit: a mail loop (RFC 5321 §6.3).
    case mailLoop(received: Int)
    /// Over the account's sending rate; worth retrying after this many seconds.
    case rateExceeded(retryAfter: Double)
    case dailyQuotaExceeded
    /// A sandboxed account may send only to its own verified domains.
    case sandboxRecipient(String)
    /// The account vanished or was disabled since it authenticated.
    case unknownAccount
    /// The spool could not store it: the disk is full.
    case insufficientStorage(accepted: [MessageID])
    /// The spool could not store it for another reason.
    case spoolUnavailable(accepted: [MessageID])

    /// The reply an SMTP client gets.
    public var smtpReply: Reply {
        switch self {
        case .malformedHeader(let problem):
            // RFC 3463 X.6.0: other media error, the content is refused as it is.
            return Reply(550, EnhancedStatusCode(5, 6, 0), "Malformed header: \(problem)")
        case .sender(let refusal):
            return refusal.smtpReply
        case .messageTooLarge:
            return Reply(552, EnhancedStatusCode(5, 3, 4), "Message size exceeds fixed maximum message size")
        case .mailLoop:
            return Reply(554, EnhancedStatusCode(5, 4, 6), "Too many Received headers: mail loop detected")
        case .rateExceeded:
            return Reply(451, EnhancedStatusCode(4, 7, 1), "Maximum sending rate exceeded, try again later")
        case .dailyQuotaExceeded:
            return Reply(451, EnhancedStatusCode(4, 7, 1), "Daily sending quota exceeded")
        case .sandboxRecipient(let address):
            return Reply(554, EnhancedStatusCode(5, 7, 1), "Sandbox: \(address) is not in one of the account's verified domains")
        case .unknownAccount:
            return Reply(451, EnhancedStatusCode(4, 7, 1), "Account unavailable")
        case .insufficientStorage:
            return Reply(452, EnhancedStatusCode(4, 3, 1), "Insufficient system storage")
        case .spoolUnavailable:
            return Reply(451, EnhancedStatusCode(4, 3, 0), "Local error in processing, try again later")
        }
    }
}
