/// Limits and identity of the SMTP intake. Every limit is configurable
/// (docs/configuration.md) and answered with its own enhanced status code.
public struct InboundSettings: Sendable {
    /// Name used in the greeting, EHLO reply and Received headers.
    public var hostname: String
    /// Largest message accepted, in octets (RFC 1870 SIZE); 552 5.3.4 above it.
    public var maximumMessageSize: Int
    /// Recipients per message; the next one gets 452 4.5.3 (RFC 5321 §4.5.3.1.8: at least 100).
    public var maximumRecipients: Int
    /// Command line including CRLF (RFC 5321 §4.5.3.1.4: 512).
    public var maximumCommandLineLength: Int
    /// Text line in DATA including CRLF (RFC 5321 §4.5.3.1.6: 1000).
    public var maximumTextLineLength: Int
    /// Failed AUTH attempts per connection before 421.
    public var maximumAuthFailures: Int
    /// Error replies per session before 421.
    public var maximumErrors: Int
    /// A message with this many Received headers is a loop: 554 5.4.6 (RFC 5321 §6.3).
    public var maximumReceivedHeaders: Int
    /// Whether STARTTLS can be offered (a certificate is configured).
    public var tlsAvailable: Bool
    /// The bounce domain and its return-path addresses: mail to them is
    /// accepted from anyone (reports, not relaying) and recorded, not delivered.
    public var returnPath: ReturnPath?
    /// The mailto unsubscribe addresses (`u-<token>@` the bounce domain).
    public var unsubscribe: UnsubscribeLinks?
    /// Accounts send only from domains they verified (`RelayPolicy.requireVerifiedDomains`).
    public var requireVerifiedDomains = false

    public init(hostname: String = "localhost",
                maximumMessageSize: Int = 10 * 1024 * 1024,
                maximumRecipients: Int = 100,
                maximumCommandLineLength: Int = 512,
                maximumTextLineLength: Int = 1000,
                maximumAuthFailures: Int = 3,
                maximumErrors: Int = 20,
                maximumReceivedHeaders: Int = 100,
                tlsAvailable: Bool = true) {
        self.hostname = hostname
        self.maximumMessageSize = maximumMessageSize
        self.maximumRecipients = maximumRecipients
        self.maximumCommandLineLength = maximumCommandLineLength
        self.maximumTextLineLength = maximumTextLineLength
        self.maximumAuthFailures = maximumAuthFailures
        self.maximumErrors = maximumErrors
        self.maximumReceivedHeaders = maximumReceivedHeaders
        self.tlsAvailable = tlsAvailable
    }
}
