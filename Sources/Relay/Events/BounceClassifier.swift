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
    /// The stage of that rule (nil: nothing matched).
    public var stage: ClassificationStage?
    /// The failure itself says the address is bad — a provider's or a text rule (or DNS) said so, in
    /// reply to RCPT or DATA (or to no known command) — so that it may suppress the recipient.
    /// An enhanced or basic code alone never does: `550 5.1.1` is sent for other reasons too.
    public var isEvidenceAgainstTheAddress: Bool

    public init(category: BounceCategory, isHard: Bool, rule: String, stage: ClassificationStage? = nil,
                isEvidenceAgainstTheAddress: Bool = false) {
        self.category = category
        self.isHard = isHard
        self.rule = rule
        self.stage = stage
        self.isEvidenceAgainstTheAddress = isEvidenceAgainstTheAddress
    }
}

/// Where a rule is read in the order of precedence (docs/classification.md):
/// what a provider is known to mean, then wording specific enough to
/// outrank any code, then common words (with generic prefixes such as
/// Postfix's `Recipient address rejected:` taken off), then the learned
/// reading of the words as a whole (`LearnedReading`: no rule has this
/// stage), then the enhanced code, then the basic code. Failures without a
/// reply come last.
public enum ClassificationStage: String, Codable, Sendable, CaseIterable, Comparable {
    case provider, text, generic, learned, enhanced, code, failure

    var rank: Int {
        switch self {
        case .provider: return 0
        case .text: return 1
        case .generic: return 2
        case .learned: return 3
        case .enhanced: return 4
        case .code: return 5
        case .failure: return 6
        }
    }

    public static func < (lhs: ClassificationStage, rhs: ClassificationStage) -> Bool { lhs.rank < rhs.rank }
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
    /// Suffixes of the MX host or the recipient's domain ("docomo.ne.jp").
    public var hosts: [String]?
    /// "reply", "dns", "connection", "tls", "expired"; default "reply".
    public var kind: String?
    /// Only for replies to these commands ("CONNECT" for the greeting, "EHLO", "MAIL", "RCPT", "DATA").
    public var commands: [String]?
    /// Where the rule is read; when absent, from its conditions: hosts make a provider rule, text a
    /// text rule, an enhanced code an enhanced rule, else a code rule (a failure rule without a reply).
    public var stage: ClassificationStage?

    public init(id: String, category: BounceCategory, hard: Bool? = nil, codes: [Int]? = nil, enhanced: [String]? = nil,
                text: [String]? = nil, hosts: [String]? = nil, kind: String? = nil, commands: [String]? = nil,
                stage: ClassificationStage? = nil) {
        self.id = id
        self.category = category
        self.hard = hard
        self.codes = codes
        self.enhanced = enhanced
        self.text = text
        self.hosts = hosts
        self.kind = kind
        self.commands = commands
        self.stage = stage
    }

    public var effectiveStage: ClassificationStage {
        if let stage { return stage }
        if (kind ?? "reply") != "reply" { return .failure }
        if hosts != nil { return .provider }
        if text != nil { return .text }
        if enhanced != nil { return .enhanced }
        return .code
    }
}

/// The shipped rules and the generic prefixes, as one JSON document (`Resources/classification-rules.json`).
public struct ClassificationRuleSet: Decodable, Sendable {
    /// Phrases that say nothing by themselves (`Recipient address rejected`), taken off the text
    /// (with a colon after them) before the generic, enhanced and code rules read it; addresses in
    /// angle brackets, a leading `address:` and leading reply and enhanced codes are always taken off.
    public var prefixes: [String]
    public var rules: [ClassificationRule]

    public init(prefixes: [String] = [], rules: [ClassificationRule]) {
        self.prefixes = prefixes
        self.rules = rules
    }

    public static func shipped() throws -> ClassificationRuleSet {
        guard let url = Bundle.module.url(forResource: "classification-rules", withExtension: "json", subdirectory: "Resources")
                ?? Bundle.module.url(forResource: "classification-rules", withExtension: "json") else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "Hikyaku_Relay.resources/Resources/classification-rules.json"])
        }
        return try JSONDecoder().decode(ClassificationRuleSet.self, from: Data(contentsOf: url))
    }
}

/// Classifies failures with rules kept as data: the operator's rules first,
/// then the shipped ones by stage (provider, text, generic, the learned
/// reading, enhanced code, basic code). Unmatched failures are `other`, hard
/// only for 5xx.
public struct BounceClassifier: Sendable {
    /// A rule with its conditions in the form they are checked in (a class: the rules are read, never copied).
    final class CompiledRule: @unchecked Sendable {
        let rule: ClassificationRule
        let stage: ClassificationStage
        /// Patterns beyond phrases (`PatternExpansion`), each run only when its gate phrase is in the text.
        let expressions: [(expression: NSRegularExpression, gated: Bool)]
        let kind: String
        /// The rule's conditions, held here: read for every rule on every failure, they are not copied out of `rule`.
        let category: BounceCategory
        let codes: [Int]?
        let enhanced: [String]?
        /// Few (an array compares them faster than a set hashes one).
        let commands: [String]?
        /// Indices of the rule's host suffixes in `BounceClassifier.hostSuffixes`.
        var hosts: [Int]?
        let isAddressCategory: Bool
        /// An address category or `bad_domain`: a verdict on the recipient's address or its domain.
        let isAboutTheAddress: Bool
        let hasText: Bool

        init(rule: ClassificationRule, stage: ClassificationStage, expressions: [(expression: NSRegularExpression, gated: Bool)]) {
            self.rule = rule
            self.stage = stage
            self.expressions = expressions
            kind = rule.kind ?? "reply"
            category = rule.category
            codes = rule.codes
            enhanced = rule.enhanced
            commands = rule.commands.map { $0.map { $0.uppercased() } }
            hosts = nil
            isAddressCategory = BounceClassifier.addressCategories.contains(rule.category)
            isAboutTheAddress = isAddressCategory || rule.category == .badDomain
            hasText = rule.text?.isEmpty == false
        }
    }

    /// Why a rule did not match (for `--explain`).
    public enum Mismatch: String, Sendable {
        case kind, code, enhanced, command, host, text
        /// An address or domain category decided at a command that names no recipient (the greeting, EHLO,
        /// MAIL): a domain refused there is the sender's.
        case addressAtCommand = "address-at-command"
        /// An unknown address after DATA, where the recipient had been accepted at RCPT: without an
        /// enhanced code about the mailbox (X.1.y) it is the recipient's filter speaking, not a lookup.
        case acceptedRecipient = "accepted-recipient"
        /// Content judged before the content was sent (a refusal before DATA is about the sender).
        case contentBeforeData = "content-before-data"
        /// An address or domain category for a reply whose enhanced code says the sender's address is at fault (X.1.7, X.1.8).
        case senderCode = "sender-code"
        /// An address or filter category for a reply about authentication (530, 534, 535, 538): the words
        /// ("user is locked", "account disabled") are about the sender's credentials, not a recipient.
        case authenticationCode = "authentication-code"
        /// The learned reading: no word of the reply was seen in training.
        case unknownWords = "unknown-words"
        /// The learned reading: the likeliest category is one it does not give (`LearnedReading.mayGive`).
        case verdictOnRecipient = "verdict-on-recipient"
        /// The learned reading: no category is likely enough (`LearnedReading.leastProbability`).
        case unsure
    }

    /// A rule file gave a rule the learned reading's stage.
    public struct ReservedStage: Error, CustomStringConvertible {
        public var rule: String
        public var description: String { "rule \(rule): the stage \"learned\" is the learned reading's; a rule cannot have it" }
    }

    let rules: [CompiledRule]
    let prefixes: GenericPrefixes
    /// Every rule's host suffixes once (lowercased), each compared with the observation's hosts once.
    let hostSuffixes: [String]
    /// Every rule's phrases and gates in one automaton (owners: `phraseOwner`, `gateOwner`).
    let phrases: PhraseMatcher
    /// The owner of `refusedAtRecipientPhrases` in `phrases`.
    let refusedAtRecipientOwner: Int
    /// The learned reading, consulted just before the rule at index `learnedBefore` (`rules.count`: after the
    /// last; -1: never). The index is kept apart so that the loop over the rules compares a number, not a copy of the reading.
    let learned: LearnedReading?
    let learnedBefore: Int

    /// Texts are read this far and no further: the work per failure is
    /// bounded whatever a remote server or a report sends.
    public static let maximumTextLength = 2048
    static let addressCategories: Set<BounceCategory> = [.invalidRecipient, .inactiveMailbox]
    /// Commands whose refusal can be about the recipient's address (none: a report, the command unknown).
    static let recipientCommands: Set<String> = ["RCPT", "DATA", "BDAT"]
    /// Reply codes about authentication (RFC 4954): a refusal of the sender's credentials, whatever its words.
    static let authenticationCodes = [530, 534, 535, 538]
    /// Commands answered after the content was sent.
    static let contentCommands: Set<String> = ["DATA", "BDAT"]
    /// What a rule's `commands` name for a report that names no command.
    static let noCommand = "NONE"
    /// Words of a reply saying that it answers RCPT, or (to DATA) that no recipient had been accepted: the refusal
    /// it quotes was the reply to RCPT (`<a@x>: User unknown 554 Error: no valid recipients`), so it is read as one.
    static let refusedAtRecipientPhrases = ["no valid recipients", "all rcpt commands were rejected", "need rcpt command",
                                            "rcpt first", "valid rcpt command must precede data",
                                            // A reply that starts "RCPT TO: User unknown" (not any "RCPT TO:": a
                                            // sender-verification callout quotes its own).
                                            "^rcpt to:"]
        // The command named in the text as a report names it: Exim's "after RCPT TO:<a@x>", Postfix's "(in reply to
        // RCPT TO command)".
        + FeedbackReport.commandPhrases.filter { $0.command == "RCPT" }.map(\.phrase)

    /// `rules` in the order given, except that rules without an explicit order of their own keep
    /// theirs: the operator's come first, the shipped ones are read stage by stage.
    /// Refuses a pattern with a nested unbounded quantifier (`(a+)+`), whose
    /// matching time can grow exponentially with the text.
    public init(rules: [ClassificationRule], prefixes: [String] = [], learned: (reading: LearnedReading, before: Int)? = nil) throws {
        var matcher = PhraseMatcher()
        self.learned = learned?.reading
        learnedBefore = learned?.before ?? -1
        self.rules = try rules.enumerated().map { number, rule in
            if rule.stage == .learned { throw ReservedStage(rule: rule.id) }
            var expressions: [(expression: NSRegularExpression, gated: Bool)] = []
            for pattern in rule.text ?? [] {
                if RegexShape.hasNestedQuantifier(pattern) { throw RegexShape.NestedQuantifier(rule: rule.id, pattern: pattern) }
                // Compiled in any case, so that a bad pattern is refused even when it expands.
                let expression = try NSRegularExpression(pattern: pattern, options: [.caseInsensitive])
                if let phrases = PatternExpansion.phrases(pattern) {
                    for phrase in phrases { matcher.add(phrase, owner: BounceClassifier.phraseOwner(number)) }
                } else {
                    let gate = PatternExpansion.requiredPhrase(pattern)
                    if let gate { matcher.add(gate, owner: BounceClassifier.gateOwner(number, expressions.count)) }
                    expressions.append((expression, gate != nil))
                }
            }
            return CompiledRule(rule: rule, stage: rule.effectiveStage, expressions: expressions)
        }
        self.prefixes = GenericPrefixes(prefixes)
        var suffixes: [String: Int] = [:]
        for compiled in self.rules {
            compiled.hosts = compiled.rule.hosts?.map { host in
                let key = host.lowercased()
                if let index = suffixes[key] { return index }
                suffixes[key] = suffixes.count
                return suffixes.count - 1
            }
        }
        hostSuffixes = suffixes.sorted { $0.value < $1.value }.map(\.key)
        refusedAtRecipientOwner = rules.count * 64
        for phrase in BounceClassifier.refusedAtRecipientPhrases.compactMap(PatternExpansion.phrases).joined() {
            matcher.add(phrase, owner: refusedAtRecipientOwner)
        }
        matcher.finish()
        self.phrases = matcher
    }

    static func phraseOwner(_ rule: Int) -> Int { rule * 64 }
    /// A rule has at most 63 patterns that need a regular expression; more share the last gate.
    static func gateOwner(_ rule: Int, _ expression: Int) -> Int { rule * 64 + 1 + min(expression, 62) }

    /// The shipped rules stage by stage, preceded by the operator's, with the learned reading (unless left
    /// out) between the shipped generic and enhanced-code rules.
    public static func standard(extraRules: [ClassificationRule] = [], learnedReading: Bool = true) throws -> BounceClassifier {
        let shipped = try ClassificationRuleSet.shipped()
        let ordered = shipped.rules.enumerated().sorted { ($0.element.effectiveStage.rank, $0.offset) < ($1.element.effectiveStage.rank, $1.offset) }
            .map(\.element)
        let before = extraRules.count + (ordered.firstIndex { $0.effectiveStage > .learned } ?? ordered.count)
        return try BounceClassifier(rules: extraRules + ordered, prefixes: shipped.prefixes,
                                    learned: learnedReading ? (try LearnedReading.shipped(), before) : nil)
    }

    /// Loads operator rules from a JSON file: `{"rules": [ … ]}`.
    public static func rules(fromFile path: String) throws -> [ClassificationRule] {
        struct File: Decodable { var rules: [ClassificationRule] }
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path))).rules
    }

    public func classify(_ observation: FailureObservation) -> Classification {
        var texts = Texts(observation, prefixes: prefixes, phrases: phrases, hostSuffixes: hostSuffixes)
        for (number, compiled) in rules.enumerated() {
            if number == learnedBefore, case .read(let result) = learnedReading(observation, texts) { return result }
            if mismatch(number, compiled, observation, &texts) == nil { return classification(compiled, observation, texts) }
        }
        if learnedBefore == rules.count, case .read(let result) = learnedReading(observation, texts) { return result }
        return fallback(observation)
    }

    /// Each rule tried, in order, up to the one that decided: why it did not match, or nil for the one that did.
    /// The learned reading is listed as the rule `learned`.
    public func explain(_ observation: FailureObservation) -> (result: Classification, tried: [(rule: String, stage: ClassificationStage, mismatch: Mismatch?)]) {
        var texts = Texts(observation, prefixes: prefixes, phrases: phrases, hostSuffixes: hostSuffixes)
        var tried: [(rule: String, stage: ClassificationStage, mismatch: Mismatch?)] = []
        func learnedDecides() -> Classification? {
            switch learnedReading(observation, texts) {
            case .read(let result):
                tried.append((BounceClassifier.learnedRule, .learned, nil))
                return result
            case .declined(let mismatch):
                tried.append((BounceClassifier.learnedRule, .learned, mismatch))
                return nil
            }
        }
        for (number, compiled) in rules.enumerated() {
            if number == learnedBefore, let result = learnedDecides() { return (result, tried) }
            let mismatch = mismatch(number, compiled, observation, &texts)
            tried.append((compiled.rule.id, compiled.stage, mismatch))
            if mismatch == nil { return (classification(compiled, observation, texts), tried) }
        }
        if learnedBefore == rules.count, let result = learnedDecides() { return (result, tried) }
        return (fallback(observation), tried)
    }

    /// The rule name of a classification the learned reading made.
    public static let learnedRule = "learned"

    enum LearnedOutcome {
        case read(Classification)
        case declined(Mismatch)
    }

    /// The learned reading of a reply, when it gives a category it may give (never one that suppresses).
    /// Content judged before DATA is read as the sender's, as the rules' guard reads it.
    func learnedReading(_ observation: FailureObservation, _ texts: Texts) -> LearnedOutcome {
        guard let learned, case .reply(let code, let enhanced, _) = observation.kind else { return .declined(.kind) }
        guard let best = learned.ranking(folded: texts.full, code: code, enhanced: enhanced, command: texts.command)?.first else {
            return .declined(.unknownWords)
        }
        guard LearnedReading.mayGive(best.category) else { return .declined(.verdictOnRecipient) }
        guard best.probability >= learned.leastProbability else { return .declined(.unsure) }
        var category = best.category
        if category == .spamBlock, let command = texts.command, !BounceClassifier.contentCommands.contains(command) { category = .policyBlock }
        // A rate is worth retrying whatever the code; the rest takes the reply's class.
        return .read(Classification(category: category, isHard: category != .rateLimited && code >= 500,
                                    rule: BounceClassifier.learnedRule, stage: .learned))
    }

    /// The learned reading's probabilities for a reply (for `hikyaku classify --explain`); nil without one.
    public func learnedRanking(_ observation: FailureObservation) -> [(category: BounceCategory, probability: Double)]? {
        guard let learned, case .reply(let code, let enhanced, _) = observation.kind else { return nil }
        let texts = Texts(observation, prefixes: prefixes, phrases: phrases, hostSuffixes: hostSuffixes)
        return learned.ranking(folded: texts.full, code: code, enhanced: enhanced, command: texts.command)
    }

    /// The text as received (bounded), and without its generic prefixes.
    struct Texts {
        /// The text (bounded), folded (`PhraseMatcher.fold`), and the spans of it that are generic prefixes.
        let full: [UInt8]
        let removed: [Range<Int>]
        /// An enhanced code written in the text (`#5.7.1`), for replies that do not lead with one.
        let embeddedCode: EnhancedStatusCode?
        let phrases: PhraseMatcher
        /// The observation's command (uppercased), hosts (lowercased) and enhanced code, as the rules compare them.
        let command: String?
        /// Which of the classifier's host suffixes the MX host or the recipient's domain ends with.
        let hostMatches: [Bool]
        let enhanced: String?
        let embedded: String?
        /// What the enhanced code (given, or written in the text) says: the sender's address is at fault
        /// (X.1.7, X.1.8); the recipient's mailbox is (any other X.1.y).
        let senderCode: Bool
        let mailboxCode: Bool
        /// The reply code is about authentication (`authenticationCodes`).
        let aboutAuthentication: Bool
        /// The command names a recipient (RCPT, DATA, BDAT; or is unknown), and was answered after the content.
        let namesRecipient: Bool
        let afterContent: Bool
        /// The owners of the phrases found in each text, found once when first needed.
        private var owners: (all: PhraseMatcher.Owners, outside: PhraseMatcher.Owners)?

        /// The owners of the phrases in the text, or in the text without its generic prefixes.
        mutating func found(stripped: Bool) -> PhraseMatcher.Owners {
            let found = owners ?? phrases.owners(in: full, outside: removed)
            owners = found
            return stripped ? found.outside : found.all
        }

        /// The text as the regular expressions read it: each generic prefix a space.
        func text(stripped: Bool) -> String {
            guard stripped, !removed.isEmpty else { return String(decoding: full, as: UTF8.self) }
            var bytes: [UInt8] = []
            var position = 0
            for span in removed {
                bytes += full[position..<span.lowerBound]
                bytes.append(0x20)
                position = span.upperBound
            }
            bytes += full[position...]
            return String(decoding: bytes, as: UTF8.self)
        }

        init(_ observation: FailureObservation, prefixes: GenericPrefixes, phrases: PhraseMatcher, hostSuffixes: [String]) {
            self.phrases = phrases
            let text: String
            switch observation.kind {
            case .reply(_, _, let reply): text = reply
            case .dns(_, let detail): text = detail
            case .connection(let detail), .tls(let detail): text = detail
            case .expired: text = ""
            }
            var bytes = PhraseMatcher.fold(text)
            if bytes.count > BounceClassifier.maximumTextLength { bytes.removeLast(bytes.count - BounceClassifier.maximumTextLength) }
            full = bytes
            removed = prefixes.spans(in: bytes)
            if case .reply(_, nil, _) = observation.kind {
                embeddedCode = GenericPrefixes.embeddedCode(in: bytes)
            } else {
                embeddedCode = nil
            }
            // `NONE` (what a rule's `commands` call it) is a report that names no command.
            command = observation.command.map { $0.uppercased() }.flatMap { $0 == BounceClassifier.noCommand ? nil : $0 }
            let hosts = [observation.remoteHost, observation.recipientDomain].compactMap { $0?.lowercased() }
            hostMatches = hosts.isEmpty ? [] : hostSuffixes.map { suffix in
                hosts.contains { $0 == suffix || ($0.hasSuffix(suffix) && $0.utf8.dropLast(suffix.utf8.count).last == UInt8(ascii: ".")) }
            }
            if case .reply(let reply, let code, _) = observation.kind {
                enhanced = code?.description
                aboutAuthentication = BounceClassifier.authenticationCodes.contains(reply)
            } else {
                enhanced = nil
                aboutAuthentication = false
            }
            embedded = embeddedCode?.description
            let code = enhanced ?? embedded
            senderCode = code.map { $0.hasPrefix("5.1.7") || $0.hasPrefix("5.1.8") || $0.hasPrefix("4.1.7") || $0.hasPrefix("4.1.8") } ?? false
            mailboxCode = !senderCode && (code.map { $0.hasPrefix("5.1.") || $0.hasPrefix("4.1.") } ?? false)
            namesRecipient = command.map { BounceClassifier.recipientCommands.contains($0) } ?? true
            afterContent = command.map { BounceClassifier.contentCommands.contains($0) } ?? false
        }
    }

    func classification(_ compiled: CompiledRule, _ observation: FailureObservation, _ texts: Texts) -> Classification {
        let category = compiled.rule.category
        var evidence = false
        switch compiled.stage {
        case .provider, .text, .generic, .failure:
            if BounceClassifier.addressCategories.contains(category) || category == .badDomain {
                evidence = texts.command.map { BounceClassifier.recipientCommands.contains($0) } ?? true
                // An enhanced code about the sender (X.1.7, X.1.8) or policy (X.7.x), given or written in the text
                // (`(#5.7.1)`), says the words are not about this address.
                var code: EnhancedStatusCode?
                if case .reply(_, let given, _) = observation.kind { code = given ?? texts.embeddedCode }
                if let code, code.subject == 7 || (code.subject == 1 && (code.detail == 7 || code.detail == 8)) {
                    evidence = false
                }
            }
        case .learned, .enhanced, .code:
            break
        }
        return Classification(category: category, isHard: compiled.rule.hard ?? defaultHardness(observation), rule: compiled.rule.id,
                              stage: compiled.stage, isEvidenceAgainstTheAddress: evidence)
    }

    func fallback(_ observation: FailureObservation) -> Classification {
        switch observation.kind {
        case .reply(let code, _, _):
            return Classification(category: .other, isHard: code >= 500, rule: "fallback")
        case .dns(let transient, _):
            return Classification(category: transient ? .dnsFailure : .badDomain, isHard: !transient, rule: "fallback-dns",
                                  isEvidenceAgainstTheAddress: !transient)
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

    /// Nil when `compiled` matches; the cheap conditions are checked before the text.
    func mismatch(_ number: Int, _ compiled: CompiledRule, _ observation: FailureObservation, _ texts: inout Texts) -> Mismatch? {
        switch observation.kind {
        case .reply(let code, _, _):
            guard compiled.kind == "reply" else { return .kind }
            if let codes = compiled.codes, !codes.contains(where: { $0 == code || $0 == code / 100 }) { return .code }
            if let prefixes = compiled.enhanced {
                // A code written only in the text (qmail's `(#5.1.1)`) counts from the enhanced stage on.
                guard let value = texts.enhanced ?? (compiled.stage >= .enhanced ? texts.embedded : nil) else { return .enhanced }
                guard prefixes.contains(where: { $0.hasSuffix(".") ? value.hasPrefix($0) : value == $0 }) else { return .enhanced }
            }
            if let commands = compiled.commands {
                // `NONE`: a report that names no command.
                guard commands.contains(texts.command ?? BounceClassifier.noCommand) else { return .command }
            }
            // (And nor are the recipient's filter's words about an unknown address: `unknown-after-data`.)
            if compiled.isAboutTheAddress || compiled.category == .filtered, texts.senderCode { return .senderCode }
            if compiled.isAboutTheAddress || compiled.category == .filtered, texts.aboutAuthentication {
                return .authenticationCode
            }
            // An unknown address is a lookup's answer to RCPT. After DATA the recipient had been accepted, so the words
            // are its filter speaking; in a report that names no command they may be either, and are read as the
            // filter — unless the code says the mailbox (X.1.y) or the reply quotes refusals of RCPT. (A provider's
            // or an operator's rule for DATA knows its server.)
            if compiled.category == .invalidRecipient, texts.afterContent || texts.command == nil, compiled.stage != .provider,
               !texts.mailboxCode, !(compiled.commands?.contains(where: BounceClassifier.contentCommands.contains) ?? false),
               !texts.found(stripped: false).contains(refusedAtRecipientOwner) {
                return .acceptedRecipient
            }
            if texts.command != nil {
                // A refusal of the greeting, EHLO or MAIL FROM names no recipient: whatever its words, it is not about
                // one, nor is it one's filter speaking (a repeated `filtered` suppresses, and a refusal of MAIL fails
                // every recipient of the message).
                if compiled.isAboutTheAddress || compiled.category == .filtered, !texts.namesRecipient { return .addressAtCommand }
                if !texts.afterContent, compiled.category == .spamBlock, compiled.stage > .text || texts.command != "RCPT" {
                    // Before the content was sent, words judge the sender: bare words ("spam") always, and at the
                    // greeting, EHLO or MAIL anything; a verdict a policy service names at RCPT ("Spam detected") stands.
                    return .contentBeforeData
                }
            }
        case .dns:
            guard compiled.kind == "dns" else { return .kind }
        case .connection:
            guard compiled.kind == "connection" else { return .kind }
        case .tls:
            guard compiled.kind == "tls" else { return .kind }
        case .expired:
            guard compiled.kind == "expired" else { return .kind }
        }
        if let hosts = compiled.hosts {
            guard hosts.contains(where: { $0 < texts.hostMatches.count && texts.hostMatches[$0] }) else { return .host }
        }
        if compiled.hasText {
            // Provider and text rules read the whole reply; the later stages read it without its generic prefixes.
            let stripped = compiled.stage > .text
            let found = texts.found(stripped: stripped)
            if found.contains(BounceClassifier.phraseOwner(number)) { return nil }
            var text: String?
            for (index, item) in compiled.expressions.enumerated()
            where !item.gated || found.contains(BounceClassifier.gateOwner(number, index)) {
                let subject = text ?? texts.text(stripped: stripped)
                text = subject
                if item.expression.firstMatch(in: subject, range: NSRange(subject.startIndex..., in: subject)) != nil { return nil }
            }
            return .text
        }
        return nil
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

/// What `BounceClassifier` takes off a reply before reading its generic words: what any server
/// writes whatever the reason (`Recipient address rejected:`, `<user@example.com>:`, codes).
struct GenericPrefixes: Sendable {
    let phrases: [[UInt8]]
    /// Whether some phrase begins with this byte: most positions are passed over at once.
    let starters: [Bool]

    init(_ phrases: [String]) {
        self.phrases = phrases.map(PhraseMatcher.fold).filter { !$0.isEmpty }
        var starters = [Bool](repeating: false, count: 256)
        for phrase in self.phrases { starters[Int(truncatingIfNeeded: phrase[0])] = true }
        self.starters = starters
    }

    /// The spans of `text` (folded) that say nothing by themselves, in order: leading codes, a leading
    /// `address:`, addresses in angle brackets and the phrases (each with a colon after it).
    func spans(in bytes: [UInt8]) -> [Range<Int>] {
        var spans: [Range<Int>] = []
        var start = 0
        // Leading reply code ("550 ", "550-") and enhanced code ("5.1.1", "#5.1.1").
        while start < bytes.count, bytes[start] == 0x20 { start += 1 }
        if start + 3 < bytes.count, bytes[start..<(start + 3)].allSatisfy(GenericPrefixes.isDigit), bytes[start + 3] == 0x20 || bytes[start + 3] == 0x2D {
            start += 4
        }
        while start < bytes.count, bytes[start] == 0x20 { start += 1 }
        if let end = GenericPrefixes.enhancedCode(in: bytes, at: start + (start < bytes.count && bytes[start] == 0x23 ? 1 : 0)) {
            start = end
        }
        while start < bytes.count, bytes[start] == 0x20 { start += 1 }
        // A leading bare address followed by a colon ("user@example.jp: ...").
        var index = start
        while index < bytes.count, bytes[index] != 0x20, bytes[index] != 0x3A, bytes[index] != 0x3C { index += 1 }
        if index < bytes.count, bytes[index] == 0x3A, bytes[start..<index].contains(0x40) { start = index + 1 }
        if start > 0 { spans.append(0..<start) }
        index = start
        bytes.withUnsafeBufferPointer { text in
            starters.withUnsafeBufferPointer { starters in
                while index < text.count {
                    let byte = text[index]
                    // <address> (no spaces inside), and a colon after it.
                    if byte == 0x3C {
                        var close = index + 1
                        while close < text.count, close - index < 322, text[close] != 0x3E, text[close] != 0x20 { close += 1 }
                        if close < text.count, text[close] == 0x3E {
                            let end = GenericPrefixes.skipColon(bytes, close + 1)
                            spans.append(index..<end)
                            index = end
                            continue
                        }
                    } else if starters[Int(truncatingIfNeeded: byte)], index == 0 || !PhraseMatcher.isWordByte(text[index - 1]),
                              let length = GenericPrefixes.prefix(of: text, at: index, among: phrases) {
                        let end = GenericPrefixes.skipColon(bytes, index + length)
                        spans.append(index..<end)
                        index = end
                        continue
                    }
                    index += 1
                }
            }
        }
        return spans
    }

    /// The length of the first of `phrases` that `text` has at `index`.
    static func prefix(of text: UnsafeBufferPointer<UInt8>, at index: Int, among phrases: [[UInt8]]) -> Int? {
        for phrase in phrases where index + phrase.count <= text.count {
            let found = phrase.withUnsafeBufferPointer { phrase in
                for offset in 0..<phrase.count where text[index + offset] != phrase[offset] { return false }
                return true
            }
            if found { return phrase.count }
        }
        return nil
    }

    static func skipColon(_ bytes: [UInt8], _ start: Int) -> Int {
        var index = start
        while index < bytes.count, bytes[index] == 0x20 { index += 1 }
        return index < bytes.count && bytes[index] == 0x3A ? index + 1 : start
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// The end of an enhanced code (`5.1.1`: class 2, 4 or 5, then one to three digits twice) starting at `start`.
    static func enhancedCode(in bytes: [UInt8], at start: Int) -> Int? {
        guard start < bytes.count, bytes[start] == 0x32 || bytes[start] == 0x34 || bytes[start] == 0x35 else { return nil }
        var index = start + 1
        for _ in 0..<2 {
            guard index < bytes.count, bytes[index] == 0x2E else { return nil }
            index += 1
            let digits = index
            while index < bytes.count, index - digits < 3, isDigit(bytes[index]) { index += 1 }
            guard index > digits else { return nil }
        }
        if index < bytes.count, isDigit(bytes[index]) || bytes[index] == 0x2E { return nil }
        return index
    }

    /// An enhanced code written in the text after a space, `(` or `#` (qmail's `(#5.1.1)`).
    static func embeddedCode(in bytes: [UInt8]) -> EnhancedStatusCode? {
        for index in bytes.indices where bytes[index] == 0x32 || bytes[index] == 0x34 || bytes[index] == 0x35 {
            guard index == 0 || bytes[index - 1] == 0x20 || bytes[index - 1] == 0x28 || bytes[index - 1] == 0x23 else { continue }
            if let end = enhancedCode(in: bytes, at: index) {
                return EnhancedStatusCode(parsing: Substring(decoding: bytes[index..<end], as: UTF8.self))
            }
        }
        return nil
    }
}
