import Foundation
import SMTPCore

/// What kind of failure a delivery attempt met. The categories follow what
/// senders act on: fix the list (invalid/inactive recipient, bad domain),
/// wait (mailbox full, rate limited, connection), or fix the sending
/// (policy/reputation, content, size).
public enum BounceCategory: String, Codable, CaseIterable, Sendable {
    case invalidRecipient = "invalid_recipient"
    case inactiveMailbox = "inactive_mailbox"
    case mailboxFull = "mailbox_full"
    case messageTooLarge = "message_too_large"
    /// The content was judged spam or malicious.
    case spamBlock = "spam_block"
    /// The *sender* is blocked: reputation, authentication, policy. Never a
    /// reason to suppress the recipient.
    case policyBlock = "policy_block"
    /// The recipient's own reception filter (Japanese carriers' 指定受信/拒否設定).
    case filtered = "filtered"
    case rateLimited = "rate_limited"
    case badDomain = "bad_domain"
    case dnsFailure = "dns_failure"
    case connectionFailure = "connection_failure"
    case tlsFailure = "tls_failure"
    case protocolError = "protocol_error"
    case relayDenied = "relay_denied"
    case expired = "expired"
    case other = "other"
}

/// A failure to classify: a remote reply, or something that prevented one.
public struct FailureObservation: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case reply(code: Int, enhanced: EnhancedStatusCode?, text: String)
        case dns(transient: Bool, text: String)
        case connection(String)
        case tls(String)
        case expired
    }

    public var kind: Kind
    /// The MX host or recipient domain, for provider-specific rules.
    public var remoteHost: String?
    public var recipientDomain: String?
    /// The command the reply answered (MAIL, RCPT, DATA), when known.
    public var command: String?

    public init(kind: Kind, remoteHost: String? = nil, recipientDomain: String? = nil, command: String? = nil) {
        self.kind = kind
        self.remoteHost = remoteHost
        self.recipientDomain = recipientDomain
        self.command = command
    }
}

public struct Classification: Sendable, Equatable {
    public var category: BounceCategory
    /// A hard bounce will not succeed on retry.
    public var isHard: Bool
    /// Which rule decided, for the log and for debugging rules.
    public var rule: String
}

/// One rule of the classification data (docs/classification.md). Every
/// condition given must hold; text patterns are case-insensitive regular
/// expressions searched in the reply text.
public struct ClassificationRule: Codable, Sendable {
    public var id: String
    public var category: BounceCategory
    /// Defaults to the reply's class: 5xx hard, 4xx soft.
    public var hard: Bool?
    /// Reply codes (550) or classes ("5xx" written as 5).
    public var codes: [Int]?
    /// Enhanced codes, exact ("5.1.1") or prefixes ("5.7.").
    public var enhanced: [String]?
    public var text: [String]?
    /// Suffixes of the MX host or recipient domain ("docomo.ne.jp").
    public var hosts: [String]?
    /// "reply", "dns", "connection", "tls", "expired"; default "reply".
    public var kind: String?
    /// Only for replies to these commands ("RCPT", "DATA").
    public var commands: [String]?

    public init(id: String, category: BounceCategory, hard: Bool? = nil, codes: [Int]? = nil, enhanced: [String]? = nil,
                text: [String]? = nil, hosts: [String]? = nil, kind: String? = nil, commands: [String]? = nil) {
        self.id = id
        self.category = category
        self.hard = hard
        self.codes = codes
        self.enhanced = enhanced
        self.text = text
        self.hosts = hosts
        self.kind = kind
        self.commands = commands
    }
}

/// Classifies failures with rules kept as data: the operator's rules first,
/// then the shipped ones (provider rules, then generic text, then RFC 3463
/// codes). Unmatched failures are `other`, hard only for 5xx.
public struct BounceClassifier: Sendable {
    struct CompiledRule: @unchecked Sendable {
        var rule: ClassificationRule
        var patterns: [NSRegularExpression]
    }

    let rules: [CompiledRule]

    /// Texts are read this far and no further: the work per failure is
    /// bounded whatever a remote server or a report sends.
    public static let maximumTextLength = 2048

    /// Refuses a pattern with a nested unbounded quantifier (`(a+)+`), whose
    /// matching time can grow exponentially with the text.
    public init(rules: [ClassificationRule]) throws {
        self.rules = try rules.map { rule in
            CompiledRule(rule: rule, patterns: try (rule.text ?? []).map { pattern in
                if RegexShape.hasNestedQuantifier(pattern) { throw RegexShape.NestedQuantifier(rule: rule.id, pattern: pattern) }
                return try NSRegularExpression(pattern: pattern, options: [.caseInsensitive])
            })
        }
    }

    /// The shipped rules, preceded by the operator's.
    public static func standard(extraRules: [ClassificationRule] = []) throws -> BounceClassifier {
        try BounceClassifier(rules: extraRules + ShippedClassificationRules.rules())
    }

    /// Loads operator rules from a JSON file: `{"rules": [ … ]}`.
    public static func rules(fromFile path: String) throws -> [ClassificationRule] {
        struct File: Decodable { var rules: [ClassificationRule] }
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path))).rules
    }

    public func classify(_ observation: FailureObservation) -> Classification {
        for compiled in rules where matches(compiled, observation) {
            return Classification(category: compiled.rule.category, isHard: compiled.rule.hard ?? defaultHardness(observation),
                                  rule: compiled.rule.id)
        }
        switch observation.kind {
        case .reply(let code, _, _):
            return Classification(category: .other, isHard: code >= 500, rule: "fallback")
        case .dns(let transient, _):
            return Classification(category: transient ? .dnsFailure : .badDomain, isHard: !transient, rule: "fallback-dns")
        case .connection:
            return Classification(category: .connectionFailure, isHard: false, rule: "fallback-connection")
        case .tls:
            return Classification(category: .tlsFailure, isHard: false, rule: "fallback-tls")
        case .expired:
            return Classification(category: .expired, isHard: true, rule: "fallback-expired")
        }
    }

    func defaultHardness(_ observation: FailureObservation) -> Bool {
        switch observation.kind {
        case .reply(let code, _, _): return code >= 500
        case .dns(let transient, _): return !transient
        case .connection, .tls: return false
        case .expired: return true
        }
    }

    func matches(_ compiled: CompiledRule, _ observation: FailureObservation) -> Bool {
        let rule = compiled.rule
        let text: String
        switch observation.kind {
        case .reply(let code, let enhanced, let replyText):
            guard (rule.kind ?? "reply") == "reply" else { return false }
            if let codes = rule.codes, !codes.contains(where: { $0 == code || $0 == code / 100 }) { return false }
            if let prefixes = rule.enhanced {
                guard let enhanced else { return false }
                let value = enhanced.description
                guard prefixes.contains(where: { $0.hasSuffix(".") ? value.hasPrefix($0) : value == $0 }) else { return false }
            }
            if let commands = rule.commands {
                guard let command = observation.command?.uppercased(), commands.contains(command) else { return false }
            }
            text = replyText
        case .dns(_, let detail):
            guard rule.kind == "dns" else { return false }
            text = detail
        case .connection(let detail):
            guard rule.kind == "connection" else { return false }
            text = detail
        case .tls(let detail):
            guard rule.kind == "tls" else { return false }
            text = detail
        case .expired:
            guard rule.kind == "expired" else { return false }
            text = ""
        }
        if let hosts = rule.hosts {
            let candidates = [observation.remoteHost, observation.recipientDomain].compactMap { $0?.lowercased() }
            guard candidates.contains(where: { candidate in hosts.contains { candidate == $0 || candidate.hasSuffix("." + $0) } })
            else { return false }
        }
        if !compiled.patterns.isEmpty {
            let text = text.utf8.count > BounceClassifier.maximumTextLength
                ? String(decoding: text.utf8.prefix(BounceClassifier.maximumTextLength), as: UTF8.self) : text
            let range = NSRange(text.startIndex..., in: text)
            guard compiled.patterns.contains(where: { $0.firstMatch(in: text, range: range) != nil }) else { return false }
        }
        return true
    }
}

/// The shape of a regular expression, as far as its worst-case cost goes.
public enum RegexShape {
    public struct NestedQuantifier: Error, CustomStringConvertible {
        public var rule: String
        public var pattern: String
        public var description: String { "rule \(rule): pattern \(pattern) nests an unbounded quantifier in another (catastrophic backtracking)" }
    }

    /// Whether a group holding a repetition (`*`, `+`, `{n,}`, `{n,m}` with m > 1) is itself
    /// repeated, or the pattern has three or more unbounded repetitions (`.*.*.*`: polynomial in
    /// the text's length to the third power when it fails).
    public static func hasNestedQuantifier(_ pattern: String) -> Bool {
        hasNestedRepetition(pattern) || unboundedRepetitions(pattern) >= 3
    }

    /// `*`, `+` and `{n,}` outside character classes and escapes.
    static func unboundedRepetitions(_ pattern: String) -> Int {
        let characters = Array(pattern)
        var count = 0
        var index = 0
        var inClass = false
        while index < characters.count {
            let character = characters[index]
            if character == "\\" { index += 2; continue }
            if inClass {
                if character == "]" { inClass = false }
            } else if character == "[" {
                inClass = true
            } else if character == "*" || character == "+" {
                // A possessive or lazy mark after a quantifier is not another one.
                if index == 0 || !"*+?}".contains(characters[index - 1]) { count += 1 }
            } else if character == "{" {
                var end = index + 1
                while end < characters.count, characters[end] != "}" { end += 1 }
                if end < characters.count, String(characters[(index + 1)..<end]).hasSuffix(",") { count += 1 }
            }
            index += 1
        }
        return count
    }

    static func hasNestedRepetition(_ pattern: String) -> Bool {
        let characters = Array(pattern)
        // For each open group: whether it holds an unbounded quantifier.
        var groups: [Bool] = []
        var index = 0
        var inClass = false
        func unboundedQuantifier(at position: Int) -> Bool {
            guard position < characters.count else { return false }
            switch characters[position] {
            case "*", "+": return true
            case "{":
                var end = position + 1
                while end < characters.count, characters[end] != "}" { end += 1 }
                guard end < characters.count else { return false }
                let inside = String(characters[(position + 1)..<end])
                if inside.hasSuffix(",") { return true }
                // {n,m}: a repetition when m > 1.
                let bounds = inside.split(separator: ",", omittingEmptySubsequences: false)
                return bounds.count == 2 && (Int(bounds[1]) ?? 0) > 1
            default: return false
            }
        }
        while index < characters.count {
            let character = characters[index]
            if character == "\\" {
                index += 2
                if unboundedQuantifier(at: index), !groups.isEmpty { groups[groups.count - 1] = true }
                continue
            }
            if inClass {
                if character == "]" {
                    inClass = false
                    if unboundedQuantifier(at: index + 1), !groups.isEmpty { groups[groups.count - 1] = true }
                }
                index += 1
                continue
            }
            switch character {
            case "[":
                inClass = true
            case "(":
                groups.append(false)
            case ")":
                let inner = groups.popLast() ?? false
                if inner && unboundedQuantifier(at: index + 1) { return true }
                if (inner || unboundedQuantifier(at: index + 1)), !groups.isEmpty { groups[groups.count - 1] = true }
            case "*", "+":
                if !groups.isEmpty { groups[groups.count - 1] = true }
            case "{":
                if unboundedQuantifier(at: index), !groups.isEmpty { groups[groups.count - 1] = true }
            default:
                break
            }
            index += 1
        }
        return false
    }
}
