import Foundation
import SMTPCore
import Testing
@testable import Relay

/// The learned reading (`LearnedReading`, docs/classification.md): it reads as the training script does,
/// sits between the generic rules and the codes, and never says anything that suppresses.
struct LearnedReadingTests {
    let shipped = try! LearnedReading.shipped() // trap-ok: tests
    let classifier = try! BounceClassifier.standard() // trap-ok: tests

    func reply(_ code: Int, _ enhanced: String?, _ text: String, command: String? = nil) -> FailureObservation {
        FailureObservation(kind: .reply(code: code, enhanced: enhanced.flatMap { EnhancedStatusCode(parsing: Substring($0)) }, text: text),
                           command: command)
    }

    /// A model of two words, for the mechanism apart from the shipped weights.
    static func model(_ classes: [String], _ features: [String: [Int]]) throws -> LearnedReading {
        let names = features.keys.sorted()
        let object: [String: Any] = ["classes": classes, "intercepts": classes.map { _ in 0 }, "features": names,
                                     "weights": names.flatMap { features[$0] ?? [] }]
        return try LearnedReading(json: JSONSerialization.data(withJSONObject: object))
    }

    /// scripts/train-classifier.py writes replies with the probabilities it computed from the written weights.
    @Test func agreesWithTheTrainingScript() throws {
        #expect(shipped.checks.count >= 20)
        #expect(shipped.checks.contains { $0.text.utf8.count > LearnedReading.readBytes }, "replies longer than the reading reads")
        for check in shipped.checks {
            let ranking = try #require(shipped.ranking(text: check.text, code: check.code,
                                                       enhanced: check.enhanced.flatMap { EnhancedStatusCode(parsing: Substring($0)) },
                                                       command: check.command))
            for (index, category) in shipped.classes.enumerated() {
                let probability = try #require(ranking.first { $0.category == category }?.probability)
                #expect(abs(probability - check.probabilities[index]) < 1e-5, "\(check.text.prefix(60)): \(category)")
            }
        }
    }

    @Test func wordsAreReadAsTheScriptReadsThem() {
        let text = PhraseMatcher.fold("550-Mail from <a@b.example> REJECTED: see https://x.example/y?z=1 user_name-2, try-again... (#5.7.1)")
        var words = LearnedReading.Words(text, limit: LearnedReading.readBytes)
        var read: [String] = []
        while let word = words.next() {
            switch word {
            case .address: read.append("@addr")
            case .number: read.append("0")
            case .host: read.append("@host")
            case .word(let range): read.append(String(decoding: text[range], as: UTF8.self))
            }
        }
        #expect(read == ["0", "mail", "from", "@addr", "rejected", "see", "https", "@host", "y", "z", "0", "user", "name", "0", "try", "again", "0"])
    }

    @Test func readsOnlyTheFirstBytes() throws {
        let head = String(repeating: "message refused by local policy ", count: 16)
        #expect(head.utf8.count == LearnedReading.readBytes)
        let short = try #require(shipped.ranking(text: head, code: 550, enhanced: nil, command: "RCPT"))
        let long = try #require(shipped.ranking(text: head + String(repeating: "mailbox full over quota ", count: 400), code: 550, enhanced: nil, command: "RCPT"))
        #expect(short.map(\.category) == long.map(\.category))
        #expect(zip(short, long).allSatisfy { abs($0.probability - $1.probability) < 1e-12 })
    }

    /// Between the generic rules and the codes: a reply no rule's words know is read before its enhanced code.
    @Test func readsBetweenTheWordsAndTheCodes() throws {
        let observation = reply(550, "5.7.1", "Unconfigured Sending Domain <asu.edu>", command: "DATA")
        let (result, tried) = classifier.explain(observation)
        #expect(result.stage == .learned && result.rule == BounceClassifier.learnedRule)
        #expect(result.category == .policyBlock && result.isHard && !result.isEvidenceAgainstTheAddress)
        #expect(tried.contains { $0.stage == .generic } && !tried.contains { $0.stage == .enhanced || $0.stage == .code })
        // Rules only: the enhanced code decides.
        let rulesOnly = try BounceClassifier.standard(learnedReading: false)
        #expect(rulesOnly.classify(observation).stage == .enhanced)
        #expect(rulesOnly.learnedRanking(observation) == nil)
        // A rule that knows the words still comes first.
        #expect(classifier.classify(reply(550, "5.7.1", "Greylisted, please try again later", command: "RCPT")).stage != .learned)
    }

    @Test func aRateIsSoftWhateverTheCode() throws {
        let reading = try LearnedReadingTests.model(["other", "rate_limited"], ["throttle": [0, 3000]])
        let classifier = try BounceClassifier(rules: [], learned: (reading, 0))
        let result = classifier.classify(reply(554, nil, "throttle"))
        #expect(result.category == .rateLimited && !result.isHard)
    }

    /// Its categories never suppress: a likeliest reading about the recipient is left to the codes.
    @Test func neverGivesAVerdictOnTheRecipient() throws {
        let reading = try LearnedReadingTests.model(["invalid_recipient", "mailbox_full", "policy_block"],
                                                    ["nobody": [3000, 0, 0], "stuffed": [0, 3000, 0], "denied": [0, 0, 3000]])
        let code = ClassificationRule(id: "x.1.1", category: .invalidRecipient, enhanced: ["5.1.1"])
        let classifier = try BounceClassifier(rules: [code], learned: (reading, 0))
        let unknown = classifier.explain(reply(550, "5.1.1", "nobody", command: "RCPT"))
        #expect(unknown.result.rule == "x.1.1" && !unknown.result.isEvidenceAgainstTheAddress)
        #expect(unknown.tried.first?.mismatch == .verdictOnRecipient)
        #expect(classifier.classify(reply(552, nil, "stuffed", command: "RCPT")).rule == "fallback")
        #expect(classifier.classify(reply(550, "5.1.1", "denied", command: "RCPT")).category == .policyBlock)
        let unseen = classifier.explain(reply(550, nil, "zzz qqq", command: "RCPT"))
        #expect(unseen.tried.first?.mismatch == .unknownWords && unseen.result.rule == "fallback")
        #expect(BounceCategory.allCases.filter { !LearnedReading.mayGive($0) }
                    == [.invalidRecipient, .inactiveMailbox, .mailboxFull, .filtered, .badDomain, .expired])
    }

    /// Over every labelled reply: whatever the learned reading decides is no evidence against the address (a
    /// guard against a later change to `learnedReading`, and proof that the reading decides for many replies).
    @Test func noLearnedReadingSuppressesInTheCorpus() throws {
        let parts = ["tuning", "held-out", "sisimai-tuning", "sisimai-held-out", "fresh-tuning", "fresh-held-out", "third-held-out",
                     "fourth-held-out", "fifth-held-out", "sixth-held-out", "seventh-held-out", "eighth-held-out"]
        var learned = 0
        for part in parts {
            for labelled in try ClassificationCorpusTests.load(part) {
                let result = classifier.classify(labelled.observation)
                guard result.stage == .learned else { continue }
                learned += 1
                #expect(LearnedReading.mayGive(result.category) && !result.isEvidenceAgainstTheAddress, "\(labelled.text.prefix(60))")
            }
        }
        #expect(learned > 100)
    }

    /// Content is judged after DATA: before it, a reading of spam is the sender's, as the rules' guard has it.
    @Test func contentBeforeDataIsTheSenders() throws {
        let reading = try LearnedReadingTests.model(["policy_block", "spam_block"], ["junk": [0, 3000]])
        let classifier = try BounceClassifier(rules: [], learned: (reading, 0))
        #expect(classifier.classify(reply(550, nil, "junk", command: "DATA")).category == .spamBlock)
        #expect(classifier.classify(reply(550, nil, "junk", command: "RCPT")).category == .policyBlock)
        #expect(classifier.classify(reply(550, nil, "junk", command: "MAIL")).category == .policyBlock)
        #expect(classifier.classify(reply(550, nil, "junk")).category == .spamBlock, "a report that names no command")
    }

    @Test func aRuleCannotTakeTheLearnedStage() {
        let rule = ClassificationRule(id: "mine", category: .other, text: ["x"], stage: .learned)
        #expect(throws: BounceClassifier.ReservedStage.self) { try BounceClassifier(rules: [rule]) }
    }

    @Test func aModelThatDoesNotAddUpIsRefused() {
        let shortWeights = #"{"classes":["other","policy_block"],"intercepts":[0,0],"features":["a","b"],"weights":[1,2,3]}"#
        #expect(throws: LearnedReading.InvalidModel.self) { try LearnedReading(json: Data(shortWeights.utf8)) }
        let unknownClass = #"{"classes":["other","nonsense"],"intercepts":[0,0],"features":[],"weights":[]}"#
        #expect(throws: LearnedReading.InvalidModel.self) { try LearnedReading(json: Data(unknownClass.utf8)) }
        let threeWords = #"{"classes":["other"],"intercepts":[0],"features":["a b c"],"weights":[1]}"#
        #expect(throws: LearnedReading.InvalidModel.self) { try LearnedReading(json: Data(threeWords.utf8)) }
    }

    /// Authentication replies are about the sender's credentials, whatever their words.
    @Test func authenticationRepliesAreNotTheRecipients() {
        let result = classifier.classify(reply(535, "5.7.139", "Authentication unsuccessful, user is locked by your organization's security defaults policy."))
        #expect(result.category != .inactiveMailbox && !result.isEvidenceAgainstTheAddress)
        #expect(classifier.classify(reply(535, nil, "account disabled", command: "RCPT")).category != .inactiveMailbox)
    }
}
