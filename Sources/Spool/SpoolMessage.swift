import Foundation

/// A message handed to the spool: the envelope and the bytes to store.
///
/// The envelope travels as typed fields into the queue index — never as text
/// lines mixed with client bytes — so nothing a client sends can forge a
/// queue record.
public struct IncomingMessage: Sendable {
    /// Assigned before spooling so that trace headers can name it.
    public var id: MessageID
    /// Envelope sender as `local@domain`, empty for the null reverse-path.
    public var sender: String
    /// Envelope recipients as `local@domain`, in RCPT order.
    public var recipients: [String]
    /// The tenant that submitted it, if authenticated.
    public var accountID: Int64?
    /// The transaction was declared SMTPUTF8 (RFC 6531).
    public var smtpUTF8: Bool
    /// Client IP address and HELO name, for the log.
    public var clientAddress: String
    public var heloName: String
    /// Header lines to put in front of `content` (trace fields etc.), CRLF-terminated.
    public var prefix: [UInt8]
    /// The message as received, CRLF line endings, dot-stuffing removed.
    public var content: [UInt8]
    /// What an API caller attached (tags, custom arguments, send time); nil for SMTP mail.
    public var metadata: MessageMetadata?
    /// The Subject as a reader shows it, for log search (kept in the index, not in the segment record).
    public var subject: String?

    public init(id: MessageID, sender: String, recipients: [String], accountID: Int64?, smtpUTF8: Bool,
                clientAddress: String, heloName: String, prefix: [UInt8], content: [UInt8],
                metadata: MessageMetadata? = nil, subject: String? = nil) {
        self.id = id
        self.sender = sender
        self.recipients = recipients
        self.accountID = accountID
        self.smtpUTF8 = smtpUTF8
        self.clientAddress = clientAddress
        self.heloName = heloName
        self.prefix = prefix
        self.content = content
        self.metadata = metadata
        self.subject = subject
    }

    public var size: Int { prefix.count + content.count }
}

/// What travels with a message besides its envelope: stored in the same
/// segment record, so it is as durable as the message itself.
public struct MessageMetadata: Sendable, Codable, Equatable {
    /// Labels to search and count by (SES EmailTags, SendGrid categories).
    public var tags: [String]
    /// The caller's own key/value pairs, returned with every event.
    public var customArguments: [String: String]
    /// Marketing mail (subject to marketing-scope suppressions).
    public var marketing: Bool
    /// Not delivered before this time (a scheduled send).
    public var notBefore: Date?
    /// The interface it came from: `api`, `ses`, `sendgrid`.
    public var source: String?
    /// The message this one re-sends, for resends.
    public var resendOf: MessageID?
    /// SES's configuration set: which event destinations hear of it.
    public var configurationSet: String?
    /// Opens and clicks are tracked (the HTML was rewritten when built).
    public var tracking: TrackingSettings?
    /// The unsubscribe group (topic) it is sent in: the group's unsubscribed addresses do not get it.
    public var unsubscribeGroup: Int64?

    public init(tags: [String] = [], customArguments: [String: String] = [:], marketing: Bool = false, notBefore: Date? = nil,
                source: String? = nil, resendOf: MessageID? = nil) {
        self.tags = tags
        self.customArguments = customArguments
        self.marketing = marketing
        self.notBefore = notBefore
        self.source = source
        self.resendOf = resendOf
    }
}

/// Which engagement a message's HTML reports (`TrackingLinks` in the API).
public struct TrackingSettings: Sendable, Codable, Equatable {
    public var opens: Bool
    public var clicks: Bool

    public init(opens: Bool, clicks: Bool) {
        self.opens = opens
        self.clicks = clicks
    }

    public var any: Bool { opens || clicks }
}

/// A queue identifier: 20 lower-case Crockford base32 characters, the first
/// ten a millisecond timestamp so that ids sort by arrival.
public struct MessageID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public var rawValue: String

    public init?(_ text: String) {
        let alphabet = Set(MessageID.alphabet)
        guard text.count == 20, text.utf8.allSatisfy({ alphabet.contains($0) }) else { return nil }
        rawValue = text
    }

    init(unchecked rawValue: String) { self.rawValue = rawValue }

    public var description: String { rawValue }

    // Encoded as the bare string, as users see and type it.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = MessageID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a queue id"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public static func < (lhs: MessageID, rhs: MessageID) -> Bool { lhs.rawValue < rhs.rawValue }

    static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    /// When the id was made (its first ten characters), to the millisecond.
    public var timestamp: Date {
        let milliseconds = rawValue.utf8.prefix(10).reduce(UInt64(0)) { value, byte in
            (value << 5) | UInt64(MessageID.alphabet.firstIndex(of: byte) ?? 0)
        }
        return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// A new id for a message arriving now.
    public static func generate() -> MessageID {
        var generator = SystemRandomNumberGenerator()
        return generate(now: Date(), generator: &generator)
    }

    /// The id of one message of a batch, made again from the batch's seed and time whenever it is needed
    /// (a campaign writes one claim per batch, not an id per recipient): the time as `generate` writes it,
    /// then the `member`'s place in the batch's SplitMix64 sequence (Steele et al., 2014), which gives
    /// distinct members distinct 64-bit values, of which the id keeps 50 bits.
    public init(milliseconds: Int64, seed: UInt64, member: Int64) {
        var mixed = seed &+ UInt64(bitPattern: member) &* 0x9E37_79B9_7F4A_7C15
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        mixed ^= mixed >> 31
        self = MessageID.encode(time: UInt64(clamping: milliseconds), random: mixed)
    }

    static func generate(now: Date, generator: inout some RandomNumberGenerator) -> MessageID {
        encode(time: UInt64(max(0, now.timeIntervalSince1970 * 1000)), random: generator.next() as UInt64)
    }

    /// Ten characters of time (milliseconds since 1970), ten of `random`.
    private static func encode(time: UInt64, random: UInt64) -> MessageID {
        var time = time, random = random
        var bytes = [UInt8](repeating: 0, count: 20)
        for index in stride(from: 9, through: 0, by: -1) {
            bytes[index] = alphabet[Int(time & 31)]
            time >>= 5
        }
        for index in 10..<20 {
            bytes[index] = alphabet[Int(random & 31)]
            random >>= 5
        }
        return MessageID(unchecked: String(decoding: bytes, as: UTF8.self))
    }
}

/// Why a message could not be made durable. Each maps to one SMTP reply.
public enum SpoolError: Error, Hashable, Sendable {
    /// The disk or quota is full (ENOSPC, EDQUOT): 452 4.3.1.
    case insufficientStorage
    /// Any other write or sync failure, or a spool that is shut down: 451 4.3.0.
    case unavailable(String)
}

/// Hand-written JSON for the few fixed shapes written per message, where
/// JSONEncoder/JSONSerialization would cost more than building the message.
public enum JSONText {
    /// `text` as a JSON string literal (RFC 8259 §7).
    public static func quote(_ text: String) -> String {
        var output = "\""
        output.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        return output + "\""
    }

    public static func array(_ items: [String]) -> String { "[" + items.map(quote).joined(separator: ",") + "]" }

    public static func object(_ items: [String: String]) -> String {
        "{" + items.sorted { $0.key < $1.key }.map { quote($0.key) + ":" + quote($0.value) }.joined(separator: ",") + "}"
    }
}

extension MessageMetadata {
    /// The stored form (read back with JSONDecoder), written by hand: this runs for every API message, twice.
    var json: [UInt8] {
        var parts = ["\"tags\":" + JSONText.array(tags), "\"customArguments\":" + JSONText.object(customArguments),
                     "\"marketing\":" + (marketing ? "true" : "false")]
        // JSONDecoder's default date strategy: seconds since 2001-01-01.
        if let notBefore { parts.append("\"notBefore\":\(notBefore.timeIntervalSinceReferenceDate)") }
        if let source { parts.append("\"source\":" + JSONText.quote(source)) }
        if let resendOf { parts.append("\"resendOf\":" + JSONText.quote(resendOf.rawValue)) }
        if let configurationSet { parts.append("\"configurationSet\":" + JSONText.quote(configurationSet)) }
        if let tracking { parts.append("\"tracking\":{\"opens\":\(tracking.opens),\"clicks\":\(tracking.clicks)}") }
        if let unsubscribeGroup { parts.append("\"unsubscribeGroup\":\(unsubscribeGroup)") }
        return Array(("{" + parts.joined(separator: ",") + "}").utf8)
    }
}
