import Foundation

/// Everything an operator can set. Defaults make `hikyaku serve` work with
/// no file at all; a JSON file (`--config`) overrides them, and `HIKYAKU_…`
/// environment variables override the file. Every key is listed once, in
/// `Configuration.keys`, which docs/configuration.md mirrors.
public struct Configuration: Sendable, Equatable {
    public var dataDirectory = "./hikyaku-data"
    public var hostname = "localhost"
    public var logLevel = "info"
    /// Event-loop threads for network I/O; 0 means one per core but one
    /// (at least one), leaving a core for the spool's committer.
    public var eventLoopThreads = 0

    /// Plain SMTP listeners offering STARTTLS.
    public var smtpListen = ["127.0.0.1:2525"]
    /// Implicit-TLS listeners (RFC 8314, "submissions").
    public var smtpTLSListen = ["127.0.0.1:2465"]
    /// PEM files; when both are unset a self-signed pair is made in the data directory.
    public var tlsCertificate: String?
    public var tlsPrivateKey: String?
    /// CIDR blocks whose clients may relay without AUTH.
    public var trustedNetworks: [String] = []
    /// This node's name in the store's node registry; empty: the machine's host name.
    public var nodeName = ""
    /// The name this node goes by in a cluster: in the registry, on the work it owns, on its log positions.
    public var clusterNodeName: String { nodeName.isEmpty ? ProcessInfo.processInfo.hostName : nodeName }
    /// Where the store is: empty for the embedded SQLite file in the data directory; a `postgres://` URL
    /// for the shared PostgreSQL store of a cluster (docs/storage.md).
    public var storageURL = ""
    /// While the shared store does not answer, SMTP credentials that verified within this many seconds still open.
    public var storageOutageGraceSeconds = 3600
    public var heartbeatSeconds = 10
    /// Listeners behind a load balancer: each connection starts with a PROXY protocol header (v1 or v2).
    public var smtpProxyListen: [String] = []
    public var smtpTLSProxyListen: [String] = []
    /// The load balancers' addresses (CIDR); required when a PROXY listener is configured.
    public var smtpProxyFrom: [String] = []
    public var smtpProxyTimeoutSeconds = 10

    /// Recursive DNS servers as host:port; empty: the nameservers of /etc/resolv.conf.
    public var dnsServers: [String] = []
    public var dnsTimeoutMilliseconds = 2000

    /// Extra failure-classification rules (JSON), tried before the shipped ones.
    public var classificationRulesFile: String?
    /// Read replies no rule knows by the reading learned from the labelled corpus (docs/classification.md).
    public var classificationLearnedReading = true

    /// Let delivery connect to loopback/private addresses (tests, private networks).
    public var deliveryAllowNonPublicAddresses = false
    /// none, opportunistic, required or required-verified.
    public var deliveryTLSPolicy = "opportunistic"
    /// host:port to send everything to instead of the MX hosts.
    public var deliverySmarthost: String?
    /// AUTH PLAIN at the smarthost: the username, and a file holding the password.
    public var deliverySmarthostUsername: String?
    public var deliverySmarthostPasswordFile: String?
    /// STARTTLS towards the smarthost; unset: delivery.tlsPolicy (required with credentials).
    public var deliverySmarthostTLSPolicy: String?
    /// Per-domain next hops, `domain=host:port`.
    public var deliveryRoutes: [String] = []
    /// Deliver queued mail (off: the server only accepts and queues).
    public var deliveryEnabled = true
    public var deliveryMinimumBackoffSeconds = 300
    public var deliveryMaximumBackoffSeconds = 4000
    public var deliveryQueueLifetimeSeconds = 5 * 86400
    public var deliveryMaxConcurrentMessages = 50
    /// Seconds after which the sender hears that a recipient is delayed; 0: never.
    public var deliveryDelayWarningSeconds = 0
    /// Traffic-shaping rules (JSON) on top of the shipped presets.
    public var deliveryShapingFile: String?
    /// Egress pools, `NAME=IP [IP…]`; accounts name theirs, the rest use `default`.
    public var deliveryEgressPools: [String] = []
    /// host:port of the admin HTTP server (/metrics, /healthz); empty: none.
    public var adminListen = "127.0.0.1:8026"
    /// Days the delivery log and finished messages are kept.
    public var logRetentionDays = 30
    /// Header fields DKIM signs when present (From is always signed, and over-signed).
    public var dkimHeaders: [String] = ["from", "reply-to", "subject", "date", "to", "cc", "message-id", "in-reply-to", "references",
                                        "mime-version", "content-type", "content-transfer-encoding", "list-unsubscribe",
                                        "list-unsubscribe-post", "list-id", "feedback-id"]
    /// Soft failures (a full mailbox, an expiry) of one address that suppress it, within `suppressionSoftBounceDays`; 0: never.
    public var suppressionSoftBounces = 5
    public var suppressionSoftBounceDays = 14
    /// The domain bounces come back to (VERP return paths); unset: the original sender, no bounce processing.
    public var bounceDomain: String?
    /// Accounts may use only domains whose DKIM record `domain verify` found, as envelope sender and From.
    public var domainsRequireVerified = true
    /// How often the server re-checks every sending domain's DNS records (as `domain verify`); 0: never.
    public var domainsReverifySeconds = 86400
    /// host:port of the HTTP API (native, SES v2, SendGrid v3); empty: none.
    public var apiListen = "127.0.0.1:8025"
    /// Base URL recipients reach the API at, for unsubscribe links (https://mail.example.com); unset: the API's own address.
    public var apiPublicURL: String?
    public var webhooksAllowNonPublicAddresses = false
    public var webhooksAllowPlainHTTP = false
    public var webhooksTimeoutSeconds = 10
    public var webhooksBatchSize = 500
    public var webhooksBatchAgeMilliseconds = 500
    public var webhooksMinimumBackoffSeconds = 5
    public var webhooksMaximumBackoffSeconds = 600
    public var webhooksDisableAfterSeconds = 86400
    public var trackingMachineWindowSeconds = 10
    public var consoleEnabled = true
    /// The console's own listener; empty: under /console/ on the API listener.
    public var consoleListen = ""
    public var consoleIdleTimeoutMinutes = 30
    public var consoleAbsoluteTimeoutHours = 12
    public var consoleSecureCookie = false
    public var consoleMaxLoginFailures = 5
    /// Serve the API over HTTPS with the server's certificate (smtp.tlsCertificate or the self-signed one).
    public var apiTLS = false
    /// Largest request body the API reads; 0: twice smtp.maxMessageSize (base64 attachments grow by a third).
    public var apiMaxRequestSize = 0
    /// What one API request may build in all: messages × (content + attachments).
    public var apiMaxExpandedSize = 256 << 20
    /// Open API connections, overall and per client address (IPv6 by /64).
    public var apiMaxConnections = 1000
    public var apiMaxConnectionsPerClient = 100
    /// An idle API connection is closed after this long; a request must arrive whole within apiRequestTimeoutSeconds.
    public var apiIdleTimeoutSeconds = 60
    public var apiRequestTimeoutSeconds = 60
    /// The oldest TLS version SMTP clients may use: 1.2 or 1.3.
    public var smtpTLSMinimumVersion = "1.2"

    public var maxMessageSize = 10 * 1024 * 1024
    public var maxRecipients = 100
    public var maxCommandLineLength = 512
    public var maxTextLineLength = 1000
    public var maxConnections = 1000
    public var maxConnectionsPerClient = 100
    public var maxAuthFailures = 3
    public var maxAuthFailuresPerClient = 10
    public var authFailureWindowSeconds = 300
    public var maxErrors = 20
    public var maxReceivedHeaders = 100
    public var commandTimeoutSeconds = 300
    public var dataTimeoutSeconds = 600
    /// Refuse mail (452 4.3.1) below this much free disk space; 0: twice smtp.maxMessageSize.
    public var spoolMinimumFreeBytes = 0
    /// Group-commit window: how long the spool waits for more messages before a sync.
    public var spoolCommitDelayMicroseconds = 200
    /// How long SIGTERM waits for open sessions before closing them.
    public var drainSeconds = 30

    public init() {}

    public var dataDirectoryURL: URL { URL(fileURLWithPath: dataDirectory) }
}

/// A configuration problem, reported before anything starts.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One configuration key: its name in the JSON file (dotted for nesting),
/// its environment variable, and how to apply a value.
public struct ConfigurationKey: Sendable {
    public enum Kind: Sendable { case string, integer, boolean, stringList }

    public var path: String
    public var kind: Kind
    public var summary: String
    let apply: @Sendable (inout Configuration, ConfigurationValue) throws -> Void

    /// `smtp.maxMessageSize` → `HIKYAKU_SMTP_MAX_MESSAGE_SIZE`.
    public var environmentName: String {
        var name = "HIKYAKU_"
        for character in path {
            if character == "." { name += "_" }
            else if character.isUppercase { name += "_" + String(character) }
            else { name += String(character).uppercased() }
        }
        return name
    }
}

enum ConfigurationValue {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case list([String])
}

extension Configuration {
    static func string(_ path: String, _ summary: String, _ keyPath: WritableKeyPath<Configuration, String> & Sendable) -> ConfigurationKey {
        ConfigurationKey(path: path, kind: .string, summary: summary) { configuration, value in
            guard case .string(let text) = value else { throw ConfigurationError("\(path) must be a string") }
            configuration[keyPath: keyPath] = text
        }
    }

    static func optionalString(_ path: String, _ summary: String, _ keyPath: WritableKeyPath<Configuration, String?> & Sendable) -> ConfigurationKey {
        ConfigurationKey(path: path, kind: .string, summary: summary) { configuration, value in
            guard case .string(let text) = value else { throw ConfigurationError("\(path) must be a string") }
            configuration[keyPath: keyPath] = text.isEmpty ? nil : text
        }
    }

    /// An integer in `minimum...maximum`; the default maximum keeps every
    /// count of seconds convertible to nanoseconds (a TimeAmount) without overflow.
    static func integer(_ path: String, _ summary: String, _ keyPath: WritableKeyPath<Configuration, Int> & Sendable,
                        minimum: Int = 1, maximum: Int = Int(Int32.max)) -> ConfigurationKey {
        ConfigurationKey(path: path, kind: .integer, summary: summary) { configuration, value in
            let number: Int?
            switch value {
            case .integer(let integer): number = integer
            case .string(let text): number = Int(text.trimmingCharacters(in: .whitespaces))
            case .list, .boolean: number = nil
            }
            guard let number, number >= minimum, number <= maximum else {
                throw ConfigurationError("\(path) must be an integer from \(minimum) to \(maximum)")
            }
            configuration[keyPath: keyPath] = number
        }
    }

    static func boolean(_ path: String, _ summary: String, _ keyPath: WritableKeyPath<Configuration, Bool> & Sendable) -> ConfigurationKey {
        ConfigurationKey(path: path, kind: .boolean, summary: summary) { configuration, value in
            switch value {
            case .boolean(let flag): configuration[keyPath: keyPath] = flag
            case .string(let text) where ["1", "true", "yes", "on"].contains(text.lowercased()): configuration[keyPath: keyPath] = true
            case .string(let text) where ["0", "false", "no", "off"].contains(text.lowercased()): configuration[keyPath: keyPath] = false
            default: throw ConfigurationError("\(path) must be true or false")
            }
        }
    }

    static func list(_ path: String, _ summary: String, _ keyPath: WritableKeyPath<Configuration, [String]> & Sendable) -> ConfigurationKey {
        ConfigurationKey(path: path, kind: .stringList, summary: summary) { configuration, value in
            switch value {
            case .list(let items): configuration[keyPath: keyPath] = items
            case .string(let text):
                configuration[keyPath: keyPath] = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { !$0.isEmpty }
            case .integer, .boolean: throw ConfigurationError("\(path) must be a list of strings")
            }
        }
    }

    /// Every key, in documentation order.
    public static let keys: [ConfigurationKey] = [
        string("dataDirectory", "Directory for the SQLite databases, the spool and generated TLS files", \.dataDirectory),
        string("hostname", "Name in the SMTP greeting, EHLO reply, Received headers and Message-IDs", \.hostname),
        string("storage.url", "Empty: the embedded SQLite store in the data directory; postgres://USER@HOST:PORT/DB?sslmode=…&pool_size=…: the shared PostgreSQL store of a cluster (docs/storage.md)", \.storageURL),
        integer("storage.outageGraceSeconds", "While the store does not answer: how long after their last verification SMTP credentials still sign in (0: none do)", \.storageOutageGraceSeconds, minimum: 0),
        string("cluster.nodeName", "This node's name in the node registry (hikyaku cluster status); empty: the machine's host name", \.nodeName),
        integer("cluster.heartbeatSeconds", "How often the node writes its status (version, queue) to the node registry", \.heartbeatSeconds, minimum: 1),
        string("logLevel", "trace, debug, info, notice, warning, error or critical", \.logLevel),
        integer("eventLoopThreads", "Network I/O threads; 0 means one per CPU core minus one (at least one), leaving a core to the spool", \.eventLoopThreads, minimum: 0),
        list("smtp.listen", "host:port list of SMTP listeners (STARTTLS offered); port 0 picks a free port", \.smtpListen),
        list("smtp.tlsListen", "host:port list of implicit-TLS SMTP listeners", \.smtpTLSListen),
        optionalString("smtp.tlsCertificate", "PEM certificate chain; unset: self-signed, generated in the data directory", \.tlsCertificate),
        optionalString("smtp.tlsPrivateKey", "PEM private key for smtp.tlsCertificate", \.tlsPrivateKey),
        list("smtp.trustedNetworks", "CIDR blocks that may relay without AUTH (e.g. 10.0.0.0/8); empty by default", \.trustedNetworks),
        list("smtp.proxyListen", "host:port list of SMTP listeners (STARTTLS offered) behind a load balancer: each connection starts with a PROXY protocol v1 or v2 header naming the client", \.smtpProxyListen),
        list("smtp.tlsProxyListen", "host:port list of implicit-TLS SMTP listeners behind a load balancer (the PROXY header comes before TLS)", \.smtpTLSProxyListen),
        list("smtp.proxyFrom", "CIDR blocks of the load balancers allowed on the PROXY listeners; connections from elsewhere are closed unanswered", \.smtpProxyFrom),
        integer("smtp.proxyTimeoutSeconds", "Time for a load balancer to send its PROXY header before the connection is closed", \.smtpProxyTimeoutSeconds, minimum: 1),
        integer("smtp.maxMessageSize", "Largest message in octets (SIZE); larger ones get 552 5.3.4", \.maxMessageSize),
        integer("smtp.maxRecipients", "Recipients per message; the next gets 452 4.5.3", \.maxRecipients),
        integer("smtp.maxCommandLineLength", "Command line length including CRLF (RFC 5321: 512)", \.maxCommandLineLength, minimum: 64),
        integer("smtp.maxTextLineLength", "DATA line length including CRLF (RFC 5321: 1000)", \.maxTextLineLength, minimum: 78),
        integer("smtp.maxConnections", "Open SMTP connections in total; more get 421 4.7.0", \.maxConnections),
        integer("smtp.maxConnectionsPerClient", "Open SMTP connections per client IP; more get 421 4.7.0", \.maxConnectionsPerClient),
        integer("smtp.maxAuthFailures", "Failed AUTH attempts per connection before 421 4.7.0", \.maxAuthFailures),
        integer("smtp.maxAuthFailuresPerClient", "Failed AUTH attempts per client IP within the window, across connections; then 454 4.7.0 without checking", \.maxAuthFailuresPerClient),
        integer("smtp.authFailureWindowSeconds", "The window for smtp.maxAuthFailuresPerClient", \.authFailureWindowSeconds),
        integer("smtp.maxErrors", "Error replies per session before 421 4.7.0", \.maxErrors),
        integer("smtp.maxReceivedHeaders", "Received headers that mark a mail loop (554 5.4.6)", \.maxReceivedHeaders),
        integer("smtp.commandTimeoutSeconds", "Total time to receive one command line before 421 4.4.2", \.commandTimeoutSeconds),
        integer("smtp.dataTimeoutSeconds", "Total time to receive a message after 354 before 421 4.4.2", \.dataTimeoutSeconds),
        string("smtp.tlsMinimumVersion", "The oldest TLS version SMTP clients may negotiate (STARTTLS and implicit TLS): 1.2 or 1.3", \.smtpTLSMinimumVersion),
        list("dns.servers", "Recursive DNS servers as host:port; empty: the nameservers of /etc/resolv.conf", \.dnsServers),
        integer("dns.timeoutMilliseconds", "Time to wait for one DNS reply before asking the next server", \.dnsTimeoutMilliseconds),
        optionalString("classification.rulesFile", "JSON file of extra bounce-classification rules, tried before the shipped ones (docs/classification.md)", \.classificationRulesFile),
        boolean("classification.learnedReading", "Read a reply no provider, text or generic rule knows by the reading learned from the labelled corpus, before its codes (docs/classification.md); false: rules only", \.classificationLearnedReading),
        boolean("delivery.enabled", "Deliver queued mail; false: accept and queue only (e.g. to benchmark intake)", \.deliveryEnabled),
        integer("delivery.minimumBackoffSeconds", "First retry delay after a temporary failure; doubles per attempt", \.deliveryMinimumBackoffSeconds),
        integer("delivery.maximumBackoffSeconds", "Longest retry delay", \.deliveryMaximumBackoffSeconds),
        integer("delivery.queueLifetimeSeconds", "After this long in the queue a temporarily failing recipient expires", \.deliveryQueueLifetimeSeconds),
        integer("delivery.delayWarningSeconds", "After this long in the queue, the sender of a still-deferred recipient gets one \"delayed\" DSN (0: never; Postfix's delay_warning_time)", \.deliveryDelayWarningSeconds, minimum: 0),
        integer("delivery.maxConcurrentMessages", "Messages being delivered at the same time", \.deliveryMaxConcurrentMessages),
        boolean("delivery.allowNonPublicAddresses", "Deliver to MX hosts on loopback, private or link-local addresses (off: refused, an SSRF guard)", \.deliveryAllowNonPublicAddresses),
        string("delivery.tlsPolicy", "STARTTLS towards MX hosts: none, opportunistic, required or required-verified", \.deliveryTLSPolicy),
        optionalString("delivery.smarthost", "host:port that receives all outbound mail instead of the MX hosts", \.deliverySmarthost),
        optionalString("delivery.smarthostUsername", "AUTH PLAIN username at the smarthost (credentials are only sent under TLS)", \.deliverySmarthostUsername),
        optionalString("delivery.smarthostPasswordFile", "File holding the smarthost password (first line), readable by the service only", \.deliverySmarthostPasswordFile),
        optionalString("delivery.smarthostTlsPolicy", "STARTTLS towards the smarthost: none, opportunistic, required or required-verified; unset: required-verified with credentials (the password goes only to a verified server), else delivery.tlsPolicy", \.deliverySmarthostTLSPolicy),
        list("delivery.routes", "Per-domain next hops as domain=host:port (e.g. partner.example=10.0.0.5:25), used instead of MX lookups", \.deliveryRoutes),
        optionalString("delivery.shapingFile", "JSON traffic-shaping rules (connections, messages per connection, rates per site), on top of the shipped presets (docs/delivery.md)", \.deliveryShapingFile),
        list("delivery.egressPools", "Egress pools as NAME=IP [IP…] (e.g. marketing=192.0.2.10 192.0.2.11); an account's mail leaves from its pool's addresses in turn, other mail from the pool named default; none: the kernel chooses", \.deliveryEgressPools),
        string("admin.listen", "host:port of the admin HTTP server (Prometheus /metrics, /healthz); no authentication, keep it on loopback or a private network; empty: off", \.adminListen),
        list("dkim.headers", "Header fields DKIM signs when present, in order; From is always signed and over-signed (docs/deliverability.md)", \.dkimHeaders),
        integer("suppression.softBounces", "Soft failures of one address (a full mailbox, a carrier's reception filter, an expiry) within suppression.softBounceDays that put it on its account's suppression list; 0: never", \.suppressionSoftBounces, minimum: 0),
        integer("suppression.softBounceDays", "The window for suppression.softBounces, in days", \.suppressionSoftBounceDays, minimum: 1),
        optionalString("bounce.domain", "Domain for return paths (VERP, b-…@DOMAIN): each recipient's copy leaves with its own signed envelope sender, and DSNs and ARF complaints sent there are recorded and suppress the address (docs/deliverability.md); point its MX at this server. Unset: mail keeps its sender", \.bounceDomain),
        boolean("domains.requireVerified", "Accounts may send only from domains they verified (hikyaku domain verify found the DKIM record), as envelope sender and in From, on SMTP and the API; false: any of the account's domains as envelope sender, From unchecked", \.domainsRequireVerified),
        integer("domains.reverifySeconds", "How often the server re-checks every sending domain's records itself, at start and then at this interval, as domain verify does: a record published later verifies the domain, one withdrawn takes it out of use, a failed lookup changes nothing; 0: only domain verify", \.domainsReverifySeconds, minimum: 0),
        string("api.listen", "host:port of the HTTP API: native /v1, Amazon SES v2 and SendGrid v3 compatible (docs/api.md); empty: off", \.apiListen),
        optionalString("api.publicUrl", "Base URL at which recipients reach the API (e.g. https://mail.example.com, through a proxy), for one-click unsubscribe links in marketing mail; unset: the API's own address", \.apiPublicURL),
        boolean("api.tls", "Serve the API over HTTPS (TLS 1.2+) with the certificate of smtp.tlsCertificate, or the self-signed one", \.apiTLS),
        integer("api.maxRequestSize", "Largest API request body in bytes (413 above it); 0 means twice smtp.maxMessageSize", \.apiMaxRequestSize, minimum: 0),
        integer("api.maxExpandedSize", "Bytes of mail one API request may build in all (messages × content and attachments), checked before building; 413 above it", \.apiMaxExpandedSize, maximum: 1 << 40),
        integer("api.maxConnections", "Open API connections in total; more are closed at once", \.apiMaxConnections),
        integer("api.maxConnectionsPerClient", "Open API connections per client address (IPv6 by /64); more are closed at once", \.apiMaxConnectionsPerClient),
        integer("api.idleTimeoutSeconds", "An API connection idle this long is closed", \.apiIdleTimeoutSeconds),
        integer("api.requestTimeoutSeconds", "An API request (head and body) must arrive within this long, or the connection is closed", \.apiRequestTimeoutSeconds),
        boolean("webhooks.allowNonPublicAddresses", "Let webhook URLs reach loopback, private, link-local, CGNAT and metadata addresses (off: refused, an SSRF guard)", \.webhooksAllowNonPublicAddresses),
        boolean("webhooks.allowPlainHttp", "Let webhook URLs use plain http (off: https with a verified certificate only)", \.webhooksAllowPlainHTTP),
        integer("webhooks.timeoutSeconds", "Time for one webhook request (connect, send, response) before it counts as failed", \.webhooksTimeoutSeconds),
        integer("webhooks.batchSize", "Events per webhook request at most (the SES/SNS format sends one per request, as SNS does)", \.webhooksBatchSize, maximum: 10_000),
        integer("webhooks.batchAgeMilliseconds", "A partial batch is sent once its oldest event is this old", \.webhooksBatchAgeMilliseconds, minimum: 0),
        integer("webhooks.minimumBackoffSeconds", "First retry delay after a failed webhook request; doubles per failure", \.webhooksMinimumBackoffSeconds),
        integer("webhooks.maximumBackoffSeconds", "Longest retry delay between webhook requests", \.webhooksMaximumBackoffSeconds),
        integer("webhooks.disableAfterSeconds", "An endpoint failing this long without a success is disabled (its events wait on disk until it is enabled again)", \.webhooksDisableAfterSeconds),
        integer("tracking.machineWindowSeconds", "An open or click this soon after delivery is counted as a machine's (privacy proxies, link scanners)", \.trackingMachineWindowSeconds, minimum: 0),
        boolean("console.enabled", "Serve the web console under /console/ on the API listener", \.consoleEnabled),
        string("console.listen", "host:port of a listener of the console's own (same TLS setting as the API); the API listener then serves no /console/; empty: on the API listener", \.consoleListen),
        integer("console.idleTimeoutMinutes", "A console session unused this long ends", \.consoleIdleTimeoutMinutes),
        integer("console.absoluteTimeoutHours", "A console session ends this long after login, used or not", \.consoleAbsoluteTimeoutHours),
        boolean("console.secureCookie", "Mark console cookies Secure even when the API itself is plain HTTP (behind a TLS-terminating proxy); always on with api.tls", \.consoleSecureCookie),
        integer("console.maxLoginFailures", "Failed console logins per user within 15 minutes before more are refused (per client address: four times this)", \.consoleMaxLoginFailures),
        integer("log.retentionDays", "Days the delivery log and the records of finished messages are kept", \.logRetentionDays, minimum: 1),
        integer("spool.minimumFreeBytes", "Refuse mail with 452 4.3.1 below this much free disk space; 0 means twice smtp.maxMessageSize", \.spoolMinimumFreeBytes, minimum: 0, maximum: 1 << 50),
        integer("spool.commitDelayMicroseconds", "Group-commit window: how long the spool waits for more messages before one sync (0: none)", \.spoolCommitDelayMicroseconds, minimum: 0),
        integer("smtp.drainSeconds", "On SIGTERM, how long open sessions may finish before they are closed", \.drainSeconds, minimum: 0),
    ]

    /// Defaults, then the JSON file (if any), then the environment.
    public static func load(file: String?, environment: [String: String]) throws -> Configuration {
        var configuration = Configuration()
        if let file {
            try configuration.apply(jsonFile: file)
        }
        try configuration.apply(environment: environment)
        return configuration
    }

    mutating func apply(jsonFile path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError("cannot read configuration file \(path): \(error.localizedDescription)")
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConfigurationError("\(path) is not a JSON object")
        }
        var flat: [String: Any] = [:]
        func flatten(_ object: [String: Any], prefix: String) {
            for (key, value) in object {
                let name = prefix.isEmpty ? key : prefix + "." + key
                if let nested = value as? [String: Any] { flatten(nested, prefix: name) } else { flat[name] = value }
            }
        }
        flatten(root, prefix: "")
        let known = Dictionary(uniqueKeysWithValues: Configuration.keys.map { ($0.path, $0) })
        for (name, raw) in flat.sorted(by: { $0.key < $1.key }) {
            guard let key = known[name] else { throw ConfigurationError("\(path): unknown key \(name)") }
            let value: ConfigurationValue
            if let text = raw as? String { value = .string(text) }
            else if let number = raw as? NSNumber, String(cString: number.objCType) == "c", key.kind == .boolean {
                value = .boolean(number.boolValue)
            } else if let number = raw as? NSNumber, String(cString: number.objCType) != "c", let integer = Int(exactly: number.doubleValue) {
                // objCType "c" is how Foundation marks JSON true/false.
                value = .integer(integer)
            } else if let items = raw as? [Any], case let strings = items.compactMap({ $0 as? String }), strings.count == items.count {
                value = .list(strings)
            }
            else if raw is NSNull, key.kind == .string { value = .string("") }
            else { throw ConfigurationError("\(path): \(name) has the wrong type") }
            try key.apply(&self, value)
        }
    }

    mutating func apply(environment: [String: String]) throws {
        for key in Configuration.keys {
            if let text = environment[key.environmentName] {
                try key.apply(&self, .string(text))
            }
        }
    }
}

/// `host:port` with IPv6 in brackets (`[::1]:2525`).
public struct ListenAddress: Sendable, Equatable {
    public var host: String
    public var port: Int

    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let colon = trimmed.lastIndex(of: ":"), let port = Int(trimmed[trimmed.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw ConfigurationError("invalid listen address \(text): use host:port")
        }
        var host = String(trimmed[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigurationError("invalid listen address \(text): host missing") }
        self.host = host
        self.port = port
    }
}
