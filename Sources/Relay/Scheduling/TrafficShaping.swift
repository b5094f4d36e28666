import Foundation

/// How hard one destination site may be driven. Zero means no limit.
public struct ShapingLimits: Codable, Sendable, Equatable {
    /// Concurrent connections to the site (KumoMTA's connection_limit,
    /// Postfix's destination_concurrency_limit).
    public var maxConnections: Int
    /// Messages one connection carries before it is closed.
    public var maxMessagesPerConnection: Int
    public var maxMessagesPerMinute: Int
    public var maxMessagesPerHour: Int
    /// How long an unused connection is kept open for the next message.
    public var idleSeconds: Double
    /// STARTTLS towards this site, instead of `delivery.tlsPolicy`.
    public var tlsPolicy: TLSPolicy?

    public init(maxConnections: Int = 20, maxMessagesPerConnection: Int = 100, maxMessagesPerMinute: Int = 0,
                maxMessagesPerHour: Int = 0, idleSeconds: Double = 5, tlsPolicy: TLSPolicy? = nil) {
        self.tlsPolicy = tlsPolicy
        self.maxConnections = maxConnections
        self.maxMessagesPerConnection = maxMessagesPerConnection
        self.maxMessagesPerMinute = maxMessagesPerMinute
        self.maxMessagesPerHour = maxMessagesPerHour
        self.idleSeconds = idleSeconds
    }

    enum CodingKeys: String, CodingKey {
        case maxConnections, maxMessagesPerConnection, maxMessagesPerMinute, maxMessagesPerHour, idleSeconds, tlsPolicy
    }

    /// Missing keys take the defaults, so a rule names only what it changes.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = ShapingLimits()
        maxConnections = try container.decodeIfPresent(Int.self, forKey: .maxConnections) ?? defaults.maxConnections
        maxMessagesPerConnection = try container.decodeIfPresent(Int.self, forKey: .maxMessagesPerConnection)
            ?? defaults.maxMessagesPerConnection
        maxMessagesPerMinute = try container.decodeIfPresent(Int.self, forKey: .maxMessagesPerMinute) ?? 0
        maxMessagesPerHour = try container.decodeIfPresent(Int.self, forKey: .maxMessagesPerHour) ?? 0
        idleSeconds = try container.decodeIfPresent(Double.self, forKey: .idleSeconds) ?? defaults.idleSeconds
        tlsPolicy = try container.decodeIfPresent(TLSPolicy.self, forKey: .tlsPolicy)
    }
}

/// One named site: the recipient domains and MX hosts it covers (suffix
/// matches: "google.com" covers "aspmx.l.google.com") and its limits.
public struct ShapingRule: Codable, Sendable, Equatable {
    public var name: String
    public var domains: [String]
    public var mxHosts: [String]
    public var limits: ShapingLimits

    public init(name: String, domains: [String] = [], mxHosts: [String] = [], limits: ShapingLimits) {
        self.name = name
        self.domains = domains
        self.mxHosts = mxHosts
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey { case name, domains, mxHosts }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        domains = try container.decodeIfPresent([String].self, forKey: .domains) ?? []
        mxHosts = try container.decodeIfPresent([String].self, forKey: .mxHosts) ?? []
        limits = try ShapingLimits(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(domains, forKey: .domains)
        try container.encode(mxHosts, forKey: .mxHosts)
        try limits.encode(to: encoder)
    }
}

/// Which site a destination belongs to and how hard it may be driven:
/// the traffic-shaping data (docs/delivery.md). The operator's file comes
/// first; a rule there with a preset's name replaces the preset.
///
/// A destination no rule names is a site of its own, keyed by its sorted
/// MX host names, so domains hosted on the same servers share limits and
/// connections.
public struct TrafficShaping: Sendable {
    public var defaults: ShapingLimits
    public var rules: [ShapingRule]

    public init(defaults: ShapingLimits = ShapingLimits(), rules: [ShapingRule] = TrafficShaping.presets) {
        self.defaults = defaults
        self.rules = rules
    }

    /// The presets, then the operator's `{"default": {…}, "sites": [ … ]}` on top.
    public static func load(operatorFile path: String?) throws -> TrafficShaping {
        guard let path else { return TrafficShaping() }
        struct File: Decodable {
            var `default`: ShapingLimits?
            var sites: [ShapingRule]?
        }
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        let own = file.sites ?? []
        let names = Set(own.map(\.name))
        return TrafficShaping(defaults: file.default ?? ShapingLimits(),
                              rules: own + presets.filter { !names.contains($0.name) })
    }

    public struct Site: Sendable, Equatable {
        public var name: String
        public var limits: ShapingLimits
    }

    public func site(domain: String, mxHosts: [String]) -> Site {
        let domain = domain.lowercased()
        let hosts = mxHosts.map { $0.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: ".")) }
        for rule in rules {
            if rule.domains.contains(where: { Self.covers($0, domain) })
                || hosts.contains(where: { host in rule.mxHosts.contains { Self.covers($0, host) } }) {
                return Site(name: rule.name, limits: rule.limits)
            }
        }
        let key = hosts.isEmpty ? domain : Set(hosts).sorted().joined(separator: ",")
        return Site(name: "mx:" + key, limits: defaults)
    }

    static func covers(_ suffix: String, _ name: String) -> Bool {
        let suffix = suffix.lowercased()
        return name == suffix || name.hasSuffix("." + suffix)
    }

    /// Starting points for the providers that throttle hardest. They are
    /// deliberately conservative for a new sending IP; raise them in the
    /// operator's file as reputation builds.
    public static let presets: [ShapingRule] = [
        ShapingRule(name: "gmail", domains: ["gmail.com", "googlemail.com"], mxHosts: ["google.com", "googlemail.com"],
                    limits: ShapingLimits(maxConnections: 10, maxMessagesPerConnection: 50, maxMessagesPerHour: 20000)),
        ShapingRule(name: "outlook", domains: ["outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.jp", "outlook.jp",
                                               "live.jp"],
                    mxHosts: ["outlook.com", "protection.outlook.com"],
                    limits: ShapingLimits(maxConnections: 5, maxMessagesPerConnection: 20, maxMessagesPerHour: 10000)),
        ShapingRule(name: "yahoo", domains: ["yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "yahoo.co.uk"],
                    mxHosts: ["yahoodns.net"],
                    limits: ShapingLimits(maxConnections: 5, maxMessagesPerConnection: 20, maxMessagesPerHour: 10000)),
        ShapingRule(name: "yahoo-japan", domains: ["yahoo.co.jp", "ybb.ne.jp"], mxHosts: ["mail.yahoo.co.jp"],
                    limits: ShapingLimits(maxConnections: 4, maxMessagesPerConnection: 20, maxMessagesPerMinute: 300)),
        ShapingRule(name: "icloud", domains: ["icloud.com", "me.com", "mac.com"], mxHosts: ["mail.icloud.com"],
                    limits: ShapingLimits(maxConnections: 5, maxMessagesPerConnection: 20, maxMessagesPerHour: 10000)),
        // The Japanese carriers throttle per sending IP and answer bursts
        // with 421/450; a few connections and a steady rate get through.
        ShapingRule(name: "docomo", domains: ["docomo.ne.jp"], mxHosts: ["docomo.ne.jp"],
                    limits: ShapingLimits(maxConnections: 3, maxMessagesPerConnection: 10, maxMessagesPerMinute: 120)),
        ShapingRule(name: "au", domains: ["ezweb.ne.jp", "au.com", "uqmobile.jp"], mxHosts: ["ezweb.ne.jp", "au.com"],
                    limits: ShapingLimits(maxConnections: 3, maxMessagesPerConnection: 10, maxMessagesPerMinute: 120)),
        ShapingRule(name: "softbank", domains: ["softbank.ne.jp", "i.softbank.jp", "disney.ne.jp", "vodafone.ne.jp"],
                    mxHosts: ["softbank.ne.jp", "softbank.jp"],
                    limits: ShapingLimits(maxConnections: 3, maxMessagesPerConnection: 10, maxMessagesPerMinute: 120)),
    ]
}
