import Foundation
import SMTPCore
import Testing
@testable import Relay

/// The labelled corpus of real replies (Tests/ClassificationCorpus, sources in
/// its SOURCES.md): the tuning part the rules were written against, and the
/// held-out part they never were. docs/classification.md has the scores.
struct ClassificationCorpusTests {
    static func load(_ name: String) throws -> [LabelledReply] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ClassificationCorpus").appendingPathComponent(name + ".jsonl")
        return try LabelledReply.corpus(String(contentsOf: url, encoding: .utf8))
    }

    let classifier = try! BounceClassifier.standard() // trap-ok: tests

    func classify(_ reply: LabelledReply) -> Classification { classifier.classify(reply.observation) }

    /// (right, replies read as a bad address that say nothing against it and would suppress it).
    func score(_ replies: [LabelledReply]) -> (right: Int, suppressedWrongly: [String]) {
        var right = 0
        var wrong: [String] = []
        for reply in replies {
            let result = classify(reply)
            if result.category == reply.category { right += 1; continue }
            let address: Set<BounceCategory> = [.invalidRecipient, .inactiveMailbox]
            if address.contains(result.category), !address.contains(reply.category), reply.category != .badDomain, reply.category != .other,
               case .reply(let code, _, _) = reply.observation.kind, code >= 500, result.isEvidenceAgainstTheAddress {
                wrong.append("\(reply.text.prefix(80)) → \(result.rule)")
            }
        }
        return (right, wrong)
    }

    @Test func theCorpusIsLargeAndLabelled() throws {
        let tuning = try ClassificationCorpusTests.load("tuning"), heldOut = try ClassificationCorpusTests.load("held-out")
        #expect(tuning.count + heldOut.count >= 300)
        #expect(heldOut.count >= 150)
        let sisimai = try ClassificationCorpusTests.load("sisimai-tuning") + ClassificationCorpusTests.load("sisimai-held-out")
        #expect(sisimai.count >= 350)
        let fresh = try ClassificationCorpusTests.load("fresh-tuning") + ClassificationCorpusTests.load("fresh-held-out")
        #expect(fresh.count >= 500)
        // No text of the fresh corpus is in an earlier one (scripts/split-corpus.py leaves such replies out).
        let earlier = Set((tuning + heldOut + sisimai).map { $0.text.lowercased() })
        #expect(fresh.allSatisfy { !earlier.contains($0.text.lowercased()) })
        // Each later corpus, collected after the ones before it were read, holds no text of theirs.
        var before = earlier.union(fresh.map { $0.text.lowercased() })
        for (part, least) in [("third-held-out", 300), ("fourth-held-out", 250), ("fifth-held-out", 300), ("sixth-held-out", 350),
                              ("seventh-held-out", 250), ("eighth-held-out", 290)] {
            let replies = try ClassificationCorpusTests.load(part)
            #expect(replies.count >= least, "\(part)")
            #expect(replies.allSatisfy { !before.contains($0.text.lowercased()) }, "\(part)")
            before.formUnion(replies.map { $0.text.lowercased() })
        }
        // The sisimai parts share no text with the first corpus (scripts/sisimai-corpus.py leaves such replies out).
        let first = Set((tuning + heldOut).map { $0.text.lowercased() })
        #expect(sisimai.allSatisfy { !first.contains($0.text.lowercased()) })
    }

    /// Each part's floor: (part, least share right, most wrong suppressions), guarding against a
    /// regression (docs/classification.md has the scores and what each part was used for). Every part has
    /// also trained the learned reading now (scripts/train-classifier.py), so the scores below are of rules
    /// and a reading that have seen them; the untouched scores are the honest ones.
    /// - tuning and held-out (the first corpus): both read while the rules were written by now; 96.6 % and 94.1 %.
    /// - sisimai-tuning and sisimai-held-out: both read, and the rules use Sisimai's phrase lists; 89.2 % and
    ///   86.2 % (the three wrong suppressions left are "User unknown" replies Sisimai files as filtered).
    /// - fresh-tuning: read while the rules were changed; 65.0 % before, 89.5 % after.
    /// - fresh-held-out: 65.3 % with the rules of b7a6d9e, 68.7 % when it was scored untouched (the aim of 95 % not
    ///   reached); read since, 86.3 %.
    /// - third-held-out: 68.4 % with the rules of b7a6d9e, 71.9 % when it was scored untouched (the aim of 95 % not
    ///   reached); read since, 91.9 %.
    /// - fourth-held-out: 86.8 % with the rules of b7a6d9e, 88.8 % when it was scored untouched, with one reply
    ///   about something else read as a bad address, which would suppress (neither half of the aim reached); read
    ///   since, 95.6 % and none.
    /// - fifth-held-out: 72.6 % with the rules of bae7979, 72.9 % when it was scored untouched, one reply read as a
    ///   bad address (it would not suppress); read since, 88.9 % and none.
    /// - sixth-held-out: 68.1 % with the rules of bae7979, and 68.1 % when it was scored untouched, four replies read
    ///   as a bad address, two of which would suppress; read since, 80.1 % and none that would suppress.
    /// - seventh-held-out: 60.6 % with the rules of b7a6d9e, 68.1 % when it was scored untouched, three replies read
    ///   as a bad address, one of which would suppress (neither half of the aim reached); read since, 84.6 % and
    ///   none that would suppress.
    /// - eighth-held-out: 69.8 % with the rules of bb6c2b3 alone, 75.2 % with the learned reading trained on the
    ///   seven parts before it, when it was scored untouched (six and four replies read as a bad address, one
    ///   that would suppress); now 87.6 %, and one that would suppress: "553 Invalid address syntax" at RCPT, which
    ///   its source files as a syntax fault.
    /// - every later part, with the rules of the commit that added it and a reading trained on the parts before
    ///   it: docs/classification.md, "The learned reading".
    @Test(arguments: [("tuning", 0.96, 0), ("held-out", 0.93, 0), ("sisimai-tuning", 0.89, 0), ("sisimai-held-out", 0.87, 3),
                      ("fresh-tuning", 0.90, 0), ("fresh-held-out", 0.88, 0),
                      ("third-held-out", 0.94, 0), ("fourth-held-out", 0.95, 0), ("fifth-held-out", 0.90, 0), ("sixth-held-out", 0.84, 0),
                      ("seventh-held-out", 0.90, 0), ("eighth-held-out", 0.87, 1)])
    func corpusPartHoldsItsScore(_ part: String, _ least: Double, _ wrongSuppressions: Int) throws {
        let replies = try ClassificationCorpusTests.load(part)
        let (right, suppressed) = score(replies)
        #expect(Double(right) / Double(replies.count) >= least)
        #expect(suppressed.count <= wrongSuppressions, "\(suppressed)")
    }

    func observe(_ code: Int, _ enhanced: String?, _ text: String, mx: String? = nil, domain: String? = nil,
                 command: String? = nil) -> Classification {
        classifier.classify(FailureObservation(kind: .reply(code: code, enhanced: enhanced.flatMap { EnhancedStatusCode(parsing: Substring($0)) },
                                                            text: text), remoteHost: mx, recipientDomain: domain, command: command))
    }

    /// The words, read as a whole, outrank the enhanced code; a generic prefix says nothing.
    @Test func textOutranksTheCode() {
        #expect(observe(550, "5.1.1", "<a@example.com>: Refused due to recipient preferences", command: "RCPT").category == .filtered)
        #expect(observe(550, "5.1.1", "<a@example.com> has sent to too many recipients this hour", command: "RCPT").category == .rateLimited)
        #expect(observe(550, "5.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered.",
                        mx: "gmail-smtp-in.l.google.com").category == .rateLimited)
        #expect(observe(525, "5.7.13", "Disabled recipient address").category == .inactiveMailbox)
        for reason in ["Spam detected", "Greylisted, see http://postgrey.schweikert.ch/", "temporary locked. Please try again later"] {
            let result = observe(550, "5.1.1", "<a@example.com>: Recipient address rejected: " + reason, command: "RCPT")
            #expect(result.category != .invalidRecipient && !result.isEvidenceAgainstTheAddress, "\(reason): \(result)")
        }
        #expect(observe(550, "5.1.1", "<a@example.com>: Recipient address rejected: User unknown in virtual mailbox table", command: "RCPT")
                    .isEvidenceAgainstTheAddress)
        #expect(observe(550, nil, "The recipient account is blocked").category == .inactiveMailbox)
        #expect(observe(421, nil, "Connection frequency limited. Blocked IP 192.0.2.1").category == .rateLimited)
    }

    /// Only the reply's words (or a provider rule) say an address is bad, and only for RCPT or DATA.
    @Test func suppressionNeedsEvidence() {
        let bare = observe(550, "5.1.1", "Message rejected", command: "RCPT")
        #expect(bare.category == .invalidRecipient && !bare.isEvidenceAgainstTheAddress, "a bare 5.1.1 is a code, not evidence")
        #expect(observe(550, nil, "Denied by policy", command: "DATA").category == .policyBlock)
        // Says little: a category that does not suppress (the learned reading's, or `other`), never an address's.
        let filtered = observe(550, "5.2.0", "Message Filtered", command: "DATA")
        #expect(!filtered.isEvidenceAgainstTheAddress && !AutomaticSuppression.hardCategories.contains(filtered.category.rawValue)
                    && !AutomaticSuppression.softCategories.contains(filtered.category.rawValue))
        let atMail = observe(550, "5.1.1", "<a@example.jp>: unknown user", command: "MAIL")
        #expect(atMail.category == .policyBlock && !atMail.isEvidenceAgainstTheAddress)
        #expect(observe(554, nil, "spam detected", command: "CONNECT").category == .policyBlock, "content is judged after DATA")
        #expect(observe(550, "5.7.0", "<a@example.com>: Recipient address rejected: Spam detected", command: "RCPT").category == .spamBlock,
                "a scanner's named verdict is about the content even before DATA")
        // After DATA the recipient had been accepted: "unknown" is its filter, unless the code says the mailbox.
        let afterData = observe(550, nil, "kijitora@example.net... No such user", command: "DATA")
        #expect(afterData.category == .filtered && !afterData.isEvidenceAgainstTheAddress)
        #expect(observe(550, "5.1.1", "<a@example.net>: User unknown in virtual mailbox table", command: "DATA").category == .invalidRecipient)
        #expect(observe(550, "5.1.7", "No such domain example.net", command: "MAIL").category == .policyBlock, "a domain refused at MAIL is the sender's")
        // An operator's rule for DATA knows its server: the guard does not overrule it.
        let operatorRule = ClassificationRule(id: "ours", category: .invalidRecipient, text: ["no such user"], commands: ["DATA"])
        let withRule = try! BounceClassifier.standard(extraRules: [operatorRule]) // trap-ok: tests
        #expect(withRule.classify(FailureObservation(kind: .reply(code: 550, enhanced: nil, text: "x@example.net... No such user"),
                                                     command: "DATA")).rule == "ours")
        #expect(observe(550, nil, "helo denied", command: "EHLO").category == .policyBlock)
        #expect(AutomaticSuppression.suppression(category: "invalid_recipient", hard: true, saysTheAddressIsBad: false,
                                                 recipient: "a@example.jp", evidence: "x") == nil)
        #expect(AutomaticSuppression.suppression(category: "invalid_recipient", hard: true, saysTheAddressIsBad: true,
                                                 recipient: "a@example.jp", evidence: "x") != nil)
    }

    /// Providers' own codes say more than the words around them: AOL's (a 5xx refusal of the sender, a 4xx
    /// wait, `HVU:` the content), Outlook.com's (`SC-`, `DY-`, `OU-` the sender), Microsoft's edge blocking
    /// (`5.4.1 … Access denied`: no such recipient in the tenant, said even in a report).
    @Test func providersCodesDecide() {
        #expect(observe(554, nil, "RTR:BB", domain: "aol.com").category == .policyBlock)
        #expect(observe(421, "4.7.1", ": (DYN:T1) http://postmaster.info.aol.com/errors/421dynt1.html (throttled)").category == .rateLimited)
        #expect(observe(554, nil, "HVU:B1 http://postmaster.info.aol.com/errors/554hvub1.html", command: "DATA").category == .spamBlock)
        #expect(observe(550, nil, "SC-001 Mail rejected by Outlook.com for policy reasons. Reasons for rejection may be related to content "
                        + "with spam-like characteristics or IP/domain reputation.").category == .policyBlock)
        let edge = observe(550, "5.4.1", "[a@example.com]: Recipient address rejected: Access denied [example.com]")
        #expect(edge.category == .invalidRecipient && edge.isEvidenceAgainstTheAddress)
        #expect(observe(421, nil, "Your IP is temporarily blocked, please try again later", command: "CONNECT").category == .policyBlock)
        // A provider's own wording is read where that provider sends it: edge blocking answers RCPT.
        let atData = observe(550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281)", command: "DATA")
        #expect(!atData.isEvidenceAgainstTheAddress, "\(atData)")
        #expect(!observe(550, nil, "Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550", command: "DATA").isEvidenceAgainstTheAddress)
        // No recipient's filter speaks before RCPT: a refusal of MAIL is about the sender.
        #expect(observe(550, nil, "Not accepting mail from this sender", command: "MAIL").category == .policyBlock)
        #expect(observe(550, "5.7.1", "Refused due to recipient preferences", command: "MAIL").category == .policyBlock)
        #expect(observe(550, nil, "<a@aol.com> is not accepting mail from this sender", command: "RCPT").category == .filtered)
        // Words that were too broad for their category.
        #expect(observe(551, "5.1.6", "User not local; please try <new@example.net>", command: "RCPT").category == .invalidRecipient)
        #expect(observe(554, "5.4.7", "delivery time expired: connect to mx.example.net: Connection timed out").category == .expired)
        #expect(observe(500, "5.5.0", "Line contains more than 1000 bytes", command: "DATA").category == .protocolError)
        #expect(!observe(550, nil, "Requested action was not taken because this server doesn't handle mail for that user",
                         command: "RCPT").isEvidenceAgainstTheAddress)
        #expect(!observe(550, nil, "Sender e-mail adress unknown", command: "RCPT").isEvidenceAgainstTheAddress)
        // "I cannot deliver mail for <a>" is Haraka's answer when no plugin accepts the address — unknown, or a domain
        // it does not serve (two diagnosed threads): neither is said, so it is not evidence.
        #expect(!observe(550, nil, "I cannot deliver mail for <a@example.com>", command: "RCPT").isEvidenceAgainstTheAddress)
        // Whose account is disabled must be said: the recipient's suppresses, the sender's does not.
        #expect(observe(550, "5.1.1", "a@example.ch recipient rejected, account administratively disabled", command: "RCPT").category == .inactiveMailbox)
        #expect(!observe(550, nil, "Your account has been administratively disabled", command: "RCPT").isEvidenceAgainstTheAddress)
        #expect(observe(550, "5.7.1", "User does not accept mail from sender", command: "RCPT").category == .filtered)
        #expect(observe(552, "5.2.2", "<bob@example.com>: mailbox message limit exceeded", command: "RCPT").category == .mailboxFull)
        // A refusal that names the sender is about the sender, whatever else it says.
        #expect(!observe(550, "5.1.1", "User unknown, email-interface reported 'sender not local'", command: "RCPT").isEvidenceAgainstTheAddress)
        #expect(observe(550, nil, "This domain does not accept mail from itself (spoofing)", command: "RCPT").category == .policyBlock)
    }

    /// A reply to DATA that quotes the refusals of RCPT ("no valid recipients") is read as those refusals;
    /// NTT docomo's "Unknown user" with no command known is not taken for an unknown address; a 4xx at
    /// the greeting is a wait, a 5xx a refusal of the host; a mailbox moved without a forwarding address
    /// is gone.
    @Test func whatTheReplySaysOfItsCommand() {
        let quoted = observe(550, nil, "<a@au.com>: User unknown 554 Error: no valid recipients 550 <a@au.com>: User unknown",
                             mx: "msmx.au.com", command: "DATA")
        #expect(quoted.category == .invalidRecipient && quoted.isEvidenceAgainstTheAddress, "\(quoted)")
        #expect(observe(550, nil, "<a@au.com>: User unknown", mx: "msmx.au.com", command: "DATA").category == .filtered)
        let docomo = observe(550, nil, "Unknown user a@docomo.ne.jp", mx: "mfsmax.docomo.ne.jp")
        #expect(docomo.category == .filtered && !docomo.isEvidenceAgainstTheAddress)
        #expect(observe(550, nil, "Unknown user a@docomo.ne.jp", mx: "mfsmax.docomo.ne.jp", command: "RCPT").isEvidenceAgainstTheAddress)
        #expect(observe(421, nil, "All server ports are busy", command: "CONNECT").category == .rateLimited)
        #expect(observe(554, nil, "mx.example.net", command: "CONNECT").category == .policyBlock)
        #expect(observe(550, "5.1.6", "<a@example.net>: Recipient address rejected: Destination mailbox has moved, No forwarding address",
                        command: "RCPT").category == .invalidRecipient)
    }

    /// Phrases from Sisimai's reason lists and providers' documented replies (`sisimai-*`, provider words).
    @Test func documentedPhrases() {
        #expect(observe(550, "5.2.1", "Content Filter agent quarantined this message").category == .spamBlock)
        #expect(observe(550, "5.7.124", "Sender not in allowed-senders list").category == .filtered)
        #expect(observe(550, "5.7.511", "Access denied, banned sender[x]").category == .policyBlock)
        #expect(observe(550, nil, "Ip frequency limited [x] Blocked IP 192.0.2.1", mx: "mx3.qq.com", command: "DATA").category == .rateLimited)
        #expect(observe(550, nil, "Mail content denied", mx: "mx3.qq.com", command: "DATA").category == .spamBlock)
        #expect(observe(554, nil, "cox.net IPBL0001 192.0.2.1 blocked", command: "CONNECT").category == .policyBlock)
        #expect(observe(550, "5.1.1", "Adresse d au moins un destinataire invalide. Invalid recipient. OFR_416", command: "RCPT").category
                    == .invalidRecipient)
        #expect(observe(452, nil, "4.2.2 Mailbox full OFR004_417", command: "RCPT").category == .mailboxFull)
        #expect(observe(550, nil, "Sender throttled due to continuous invalid recipients errors").category == .rateLimited)
        #expect(observe(550, "5.7.1", "Message rejected due to content restrictions", command: "DATA").category == .spamBlock)
        #expect(observe(550, nil, "Mailbox unavailable or access denied", command: "RCPT").category == .rateLimited, "Tencent's rate limit")
        #expect(observe(550, nil, "Benutzer unbekannt", command: "RCPT").category == .invalidRecipient)
        #expect(observe(552, nil, "Postfach voll", command: "RCPT").category == .mailboxFull)
        #expect(observe(550, nil, "Utilisateur inconnu", command: "RCPT").category == .invalidRecipient)
        #expect(observe(550, nil, "收件人不存在", command: "RCPT").category == .invalidRecipient)
        #expect(observe(550, nil, "メールボックスがいっぱいです", command: "RCPT").category == .mailboxFull)
    }

    /// Words about the sender, or RFC 5321's stock text, never read as a bad recipient: each of these, at RCPT,
    /// would otherwise suppress a good address.
    @Test func theSendersWordsAreNotTheRecipients() {
        for text in ["Requested action not taken: mailbox unavailable Reject due to policy restrictions. For explanation visit http://postmaster.1and1.com/",
                     "Requested action not taken: mailbox unavailable (sender blocked)",
                     "Sender address unknown", "sorry, sender domain must exist", "Your account has been suspended",
                     "Sender <s@example.net> not found in whitelist", "<mx.example.net>: Helo command rejected: Host not found",
                     "L'adresse de l'expéditeur n'existe pas", "发件人帐号不存在", "Recipient address rejected: Access denied (#5.7.1)",
                     "Your account is now disabled", "TLS 1.0 and 1.1 are now disabled, please upgrade", "Sender belongs to a suspended account",
                     "Sender login disabled", "Sender alias is not active", "Sender mailbox does not exist", "Sender address does not exist",
                     "Sender verification failed: unknown local part", "From domain does not exist",
                     "message sending for this account is disabled"] {
            for command in ["RCPT", "DATA", "NONE"] {
                let result = observe(550, nil, text, command: command)
                #expect(!result.isEvidenceAgainstTheAddress, "\(text) at \(command) → \(result.category) (\(result.rule))")
            }
        }
        // A sender-verification callout quotes the RCPT it sent to the sender's domain: not ours.
        let callout = #"Could not verify sender <s@example.org>: response to "RCPT TO:<s@example.org>" from mx.example.org was: 550 No such user here"#
        #expect(observe(550, nil, callout, command: "DATA").category == .policyBlock)
        #expect(observe(552, nil, "Mailbox quota usage exceeded the limit", command: "RCPT").category == .mailboxFull)
        // The shapes a recipient's state was documented in.
        #expect(observe(550, nil, "Suspended user", command: "RCPT").category == .inactiveMailbox)
        #expect(observe(550, "5.3.5", "<user@example.com> Login disabled", command: "RCPT").category == .inactiveMailbox)
        // A report that names no command, given as `NONE` (what a rule's `commands` call it), is read as one.
        #expect(observe(550, "5.1.1", "User unknown", command: "NONE").category == .invalidRecipient)
        #expect(observe(550, nil, "User unknown", command: "NONE").category == .filtered)
        // … unless its words name RCPT.
        #expect(observe(550, nil, "RCPT TO: User unknown").isEvidenceAgainstTheAddress)
        #expect(observe(550, nil, "SMTP error from remote mail server after RCPT TO:<a@example.net>: 550 No such user").category
                    == .invalidRecipient)
    }

    /// The sender's address at fault, in the code or the words: never the recipient's.
    @Test func senderFaultsAreNotTheRecipients() {
        let domain = observe(553, "5.1.8", "<bounce@mail.example>... Domain of sender address bounce@mail.example does not exist")
        #expect(domain.category == .policyBlock && !domain.isEvidenceAgainstTheAddress)
        #expect(observe(550, "5.1.8", "送信者ドメインが存在しません", command: "RCPT").category == .policyBlock)
        #expect(observe(550, "5.1.7", "Invalid address").category == .policyBlock)
        #expect(observe(550, "5.7.1", "User unknown", command: "RCPT").isEvidenceAgainstTheAddress == false, "a policy code weakens the words")
        // A leading address after the codes is a prefix, whatever its local part says.
        let dmarc = observe(550, "5.1.1", "dmarc@example.jp: User unknown")
        #expect(dmarc.category == .invalidRecipient && dmarc.isEvidenceAgainstTheAddress)
        #expect(observe(550, "5.1.1", "RESOLVER.ADR.ExRecipNotFound; not found", command: "RCPT").isEvidenceAgainstTheAddress)
    }

    /// Every shipped pattern is read in the one pass over the reply: a phrase, or an expression gated by one — none
    /// runs on every reply.
    @Test func everyShippedPatternIsAPhraseOrGated() throws {
        for rule in try ClassificationRuleSet.shipped().rules {
            for pattern in rule.text ?? [] {
                #expect(PatternExpansion.phrases(pattern) != nil || PatternExpansion.requiredPhrase(pattern) != nil, "\(rule.id): \(pattern)")
            }
        }
        // An escaped bracket is a bracket, not the start of a class.
        #expect(PatternExpansion.requiredPhrase("^mailbox unavailable(\\[\\S{1,80}\\])?$") != nil)
    }

    @Test(arguments: ["^invalid recipient|user unknown", "\\bspf|dkim\\b", "(x)?", "a|", "\\b\\.com", "BOÎTE PLEINE"])
    func ambiguousPatternsStayExpressions(_ pattern: String) {
        #expect(PatternExpansion.phrases(pattern) == nil, "\(pattern)")
    }

    @Test(arguments: ["[[:space:]]user unknown", "\\x41ccount disabled", "(?x) no such user"])
    func patternsBeyondTheReadingAreNotGated(_ pattern: String) {
        #expect(PatternExpansion.requiredPhrase(pattern) == nil, "\(pattern)")
    }

    @Test func aGateIsRequiredByEveryMatch() {
        #expect(PatternExpansion.requiredPhrase("[\\]xyz]+end of it").map { String(decoding: $0.bytes, as: UTF8.self) } == "end of it")
        #expect(PatternExpansion.requiredPhrase("exceeded .* limit").map { String(decoding: $0.bytes, as: UTF8.self) } == "exceeded ")
    }

    /// The Japanese carriers: the same words mean another thing after DATA; both hosts count.
    @Test func carriers() {
        #expect(observe(550, nil, "Unknown user a@docomo.ne.jp", mx: "mfsmax.docomo.ne.jp", command: "RCPT").category == .invalidRecipient)
        #expect(observe(550, nil, "Unknown user a@docomo.ne.jp", mx: "mfsmax.docomo.ne.jp", command: "DATA").category == .filtered)
        #expect(observe(550, nil, "Unknown user a@docomo.ne.jp", domain: "docomo.ne.jp", command: "DATA").category == .filtered,
                "the recipient's domain is enough")
        #expect(observe(550, nil, "Invalid recipient: <a@i.softbank.jp>", mx: "mx.mailsv.softbank.jp", domain: "i.softbank.jp", command: "RCPT")
                    .rule == "softbank-invalid-recipient")
        #expect(observe(553, nil, "bounce.example.jp does not exist", domain: "i.softbank.jp", command: "MAIL").category == .policyBlock)
        #expect(observe(550, nil, ": User unknown", mx: "lsean.ezweb.ne.jp", command: "DATA").category == .filtered)
        #expect(observe(550, nil, "<a@uqmobile.jp>: User unknown", mx: "lsean.ezweb.ne.jp", domain: "uqmobile.jp", command: "RCPT").rule
                    == "kddi-user-unknown")
    }

    @Test func explainSaysWhyEarlierRulesDidNot() throws {
        let (result, tried) = classifier.explain(FailureObservation(kind: .reply(code: 550, enhanced: nil, text: "Unknown user a@docomo.ne.jp"),
                                                                    remoteHost: "mfsmax.docomo.ne.jp", command: "DATA"))
        #expect(result.rule == "docomo-filtered-after-data" && tried.last?.mismatch == nil)
        let atRCPT = classifier.explain(FailureObservation(kind: .reply(code: 550, enhanced: nil, text: "Unknown user a@docomo.ne.jp"),
                                                           remoteHost: "mfsmax.docomo.ne.jp", command: "RCPT"))
        #expect(atRCPT.tried.first { $0.rule == "docomo-filtered-after-data" }?.mismatch == .command)
    }

    @Test(arguments: ["over ?quota", "\\bspf\\b", "(user|mailbox) (not found|unknown)", "not authori[sz]ed", "^invalid recipient", "doesn'?t"])
    func simplePatternsBecomePhrases(_ pattern: String) throws {
        let phrases = try #require(PatternExpansion.phrases(pattern))
        let expression = try NSRegularExpression(pattern: pattern, options: [.caseInsensitive])
        // Every phrase matches the pattern itself.
        for phrase in phrases {
            let text = String(decoding: phrase.bytes, as: UTF8.self)
            #expect(expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil, "\(pattern): \(text)")
        }
    }

    @Test(arguments: ["a.*b", "\\d+ messages", "x{2,}", "[a-z]+"])
    func otherPatternsStayExpressions(_ pattern: String) {
        #expect(PatternExpansion.phrases(pattern) == nil)
    }

    /// The phrase matcher and the regular expressions agree on every shipped pattern, over the whole corpus.
    @Test func phrasesAgreeWithTheExpressions() throws {
        let texts = try (ClassificationCorpusTests.load("tuning") + ClassificationCorpusTests.load("held-out")).map(\.text)
        let rules = try ClassificationRuleSet.shipped().rules
        for rule in rules {
            for pattern in rule.text ?? [] {
                guard PatternExpansion.phrases(pattern) != nil else { continue }
                let alone = try BounceClassifier(rules: [ClassificationRule(id: "p", category: .other, text: [pattern], stage: .text)])
                let expression = try NSRegularExpression(pattern: pattern, options: [.caseInsensitive])
                for text in texts {
                    let expected = expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
                    let got = alone.classify(FailureObservation(kind: .reply(code: 550, enhanced: nil, text: text))).rule == "p"
                    #expect(expected == got, "\(rule.id) \(pattern): \(text.prefix(80))")
                }
            }
        }
    }
}
