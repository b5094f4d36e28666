import SMTPCore
import Testing
@testable import Relay

/// Real-world reply texts (as published by providers, Sisimai's test data
/// and operators' logs) with the category a sender needs to see. A reply that
/// answered RCPT says so (`command:`): words alone, in a report naming no
/// command, are not read as an unknown address (docs/classification.md).
/// "Too many hops" is a `protocol_error` and "Temporary local problem" is
/// `other` under the category table.
struct BounceSample: Sendable, CustomTestStringConvertible {
    var host: String
    var code: Int
    var enhanced: String?
    var text: String
    var command: String?
    var expected: BounceCategory

    var testDescription: String { "\(host) \(code) \(enhanced ?? "") \(text.prefix(50))" }

    init(_ host: String, _ code: Int, _ enhanced: String?, _ text: String, _ expected: BounceCategory, command: String? = nil) {
        self.host = host
        self.code = code
        self.enhanced = enhanced
        self.text = text
        self.command = command
        self.expected = expected
    }
}

let bounceCorpus: [BounceSample] = [
    // NTT docomo
    BounceSample("mfsmax.docomo.ne.jp", 550, "5.1.1", "<x@docomo.ne.jp>: Recipient address rejected: User unknown", .invalidRecipient),
    BounceSample("mfsmax.docomo.ne.jp", 550, "5.2.0", "Message rejected by recipient's setting", .filtered),
    BounceSample("mfsmax.docomo.ne.jp", 550, nil, "Unknown user x@docomo.ne.jp", .invalidRecipient, command: "RCPT"),
    BounceSample("mfsmax.docomo.ne.jp", 552, nil, "too much mail data", .mailboxFull),
    BounceSample("mfsmax.docomo.ne.jp", 552, nil, "too many recipients", .rateLimited),
    BounceSample("mfsmax.docomo.ne.jp", 550, "5.0.0", "Requested action not taken", .invalidRecipient, command: "RCPT"),
    BounceSample("mfsmax.docomo.ne.jp", 554, "5.0.0", "Transaction failed", .policyBlock, command: "DATA"),
    BounceSample("mfsmax.docomo.ne.jp", 550, nil, "5.0.911 Address rejected", .invalidRecipient),
    // KDDI / au
    BounceSample("lsean.ezweb.ne.jp", 550, nil, ": User unknown", .filtered),
    BounceSample("lsean.ezweb.ne.jp", 550, nil, "<x@ezweb.ne.jp>: User unknown", .invalidRecipient, command: "RCPT"),
    BounceSample("mx.au.com", 550, nil, ": User unknown", .filtered),
    BounceSample("mx.au.com", 552, "5.2.2", "Mailbox full", .mailboxFull),
    // SoftBank
    BounceSample("mx.i.softbank.jp", 550, "5.1.1", "<x@i.softbank.jp>: Recipient address rejected: User unknown in relay recipient table", .invalidRecipient),
    BounceSample("mx.softbank.ne.jp", 550, nil, "Unknown user", .invalidRecipient, command: "RCPT"),
    BounceSample("mx.softbank.ne.jp", 452, "4.2.2", "Mailbox full", .mailboxFull),
    // Gmail
    BounceSample("gmail-smtp-in.l.google.com", 550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos", .invalidRecipient),
    BounceSample("gmail-smtp-in.l.google.com", 550, "5.2.1", "The email account that you tried to reach is disabled.", .inactiveMailbox),
    BounceSample("gmail-smtp-in.l.google.com", 452, "4.2.2", "The email account that you tried to reach is over quota.", .mailboxFull),
    BounceSample("gmail-smtp-in.l.google.com", 552, "5.2.3", "Your message exceeded Google's message size limits.", .messageTooLarge),
    BounceSample("gmail-smtp-in.l.google.com", 550, "5.7.1", "Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.", .spamBlock),
    BounceSample("gmail-smtp-in.l.google.com", 550, "5.7.1", "Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been blocked.", .policyBlock),
    BounceSample("gmail-smtp-in.l.google.com", 550, "5.7.1", "This message was blocked because its content presents a potential security issue. low reputation of the sending domain", .policyBlock),
    BounceSample("gmail-smtp-in.l.google.com", 550, "5.7.26", "This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.", .policyBlock),
    BounceSample("gmail-smtp-in.l.google.com", 421, "4.7.28", "Gmail has detected an unusual rate of mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.", .rateLimited),
    BounceSample("gmail-smtp-in.l.google.com", 550, "5.7.25", "The IP address sending this message does not have a PTR record setup", .policyBlock),
    // Outlook / Microsoft
    BounceSample("outlook-com.olc.protection.outlook.com", 550, "5.5.0", "Requested action not taken: mailbox unavailable (S2017062302)", .invalidRecipient),
    BounceSample("hotmail-com.olc.protection.outlook.com", 550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", .policyBlock),
    BounceSample("outlook-com.olc.protection.outlook.com", 451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", .rateLimited),
    BounceSample("example-com.mail.protection.outlook.com", 550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281)", .invalidRecipient, command: "RCPT"),
    BounceSample("outlook-com.olc.protection.outlook.com", 552, "5.2.2", "Mailbox full", .mailboxFull),
    // Yahoo
    BounceSample("mta7.am0.yahoodns.net", 421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints", .rateLimited),
    BounceSample("mta7.am0.yahoodns.net", 554, "5.7.9", "Message not accepted for policy reasons.", .policyBlock),
    BounceSample("mta7.am0.yahoodns.net", 552, nil, "1 Requested mail action aborted, mailbox not found", .invalidRecipient),
    BounceSample("mta7.am0.yahoodns.net", 554, nil, "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]", .invalidRecipient),
    BounceSample("mta7.am0.yahoodns.net", 553, "5.7.2", "[TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed.", .policyBlock),
    BounceSample("mx1.mail.yahoo.co.jp", 550, "5.1.1", "<x@yahoo.co.jp>: Recipient address rejected: User unknown", .invalidRecipient),
    BounceSample("mx1.mail.yahoo.co.jp", 452, "4.2.2", "Mailbox over quota", .mailboxFull),
    // iCloud
    BounceSample("mx01.mail.icloud.com", 550, "5.1.1", "<x@icloud.com>: user does not exist", .invalidRecipient),
    BounceSample("mx01.mail.icloud.com", 554, "5.7.1", "[CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137", .policyBlock),
    BounceSample("mx01.mail.icloud.com", 552, "5.2.2", "<x@icloud.com>: user is over quota", .mailboxFull),
    // Generic servers (Postfix, Exim, Exchange, qmail, Sendmail)
    BounceSample("mx.example.net", 550, "5.1.1", "<x@example.net>: Recipient address rejected: User unknown in local recipient table", .invalidRecipient),
    BounceSample("mx.example.net", 550, nil, "No such user here", .invalidRecipient, command: "RCPT"),
    BounceSample("mx.example.net", 550, "5.1.1", "Mailbox does not exist", .invalidRecipient),
    BounceSample("mx.example.net", 511, nil, "sorry, no mailbox here by that name (#5.1.1)", .invalidRecipient),
    BounceSample("mx.example.net", 550, nil, "Unrouteable address", .invalidRecipient),
    BounceSample("mx.example.net", 554, "5.7.1", "<x@example.net>: Relay access denied", .relayDenied),
    BounceSample("mx.example.net", 550, nil, "relaying denied", .relayDenied),
    BounceSample("mx.example.net", 452, "4.2.2", "Over quota", .mailboxFull),
    BounceSample("mx.example.net", 552, "5.3.4", "Message size exceeds fixed maximum message size", .messageTooLarge),
    BounceSample("mx.example.net", 554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", .policyBlock),
    BounceSample("mx.example.net", 550, "5.7.1", "Message rejected as spam by Content Filtering.", .spamBlock),
    BounceSample("mx.example.net", 550, nil, "The account has been disabled or discontinued", .inactiveMailbox),
    BounceSample("mx.example.net", 550, "5.2.1", "Mailbox disabled, not accepting messages", .inactiveMailbox),
    BounceSample("mx.example.net", 421, "4.7.0", "Too many connections from your IP, try again later", .rateLimited),
    BounceSample("mx.example.net", 450, "4.7.1", "Client host rejected: cannot find your reverse hostname, [192.0.2.1]", .policyBlock),
    BounceSample("mx.example.net", 550, "5.7.1", "Email rejected per DMARC policy for example.com", .policyBlock),
    BounceSample("mx.example.net", 550, "5.7.23", "The message was rejected because of Sender Policy Framework violation", .policyBlock),
    BounceSample("mx.example.net", 554, "5.4.6", "Too many hops", .protocolError),
    BounceSample("mx.example.net", 500, "5.5.2", "Syntax error, command unrecognized", .protocolError),
    BounceSample("mx.example.net", 550, "5.6.7", "Non-ASCII addresses require SMTPUTF8", .protocolError),
    BounceSample("mx.example.jp", 550, nil, "宛先不明のため配信できません", .invalidRecipient, command: "RCPT"),
    BounceSample("mx.example.net", 451, "4.3.0", "Temporary local problem - please try later", .other),
    BounceSample("mx.example.net", 550, "5.1.10", "Recipient address rejected: domain does not accept mail (null MX)", .badDomain),
]

struct BounceClassifierTests {
    let classifier = try! BounceClassifier.standard()

    func classify(_ sample: BounceSample) -> Classification {
        classifier.classify(FailureObservation(
            kind: .reply(code: sample.code, enhanced: sample.enhanced.flatMap { EnhancedStatusCode(parsing: Substring($0)) }, text: sample.text),
            remoteHost: sample.host, command: sample.command))
    }

    @Test func corpusScoresAtLeast95Percent() {
        let wrong = bounceCorpus.filter { classify($0).category != $0.expected }
        let score = Double(bounceCorpus.count - wrong.count) / Double(bounceCorpus.count)
        print("corpus: \(bounceCorpus.count - wrong.count)/\(bounceCorpus.count)")
        #expect(bounceCorpus.count >= 60)
        #expect(score >= 0.95, "misclassified: \(wrong.map { "\($0.testDescription) → \(classify($0).category)" })")
    }

    @Test func reputationBlockIsTheSendersProblem() {
        let result = classify(BounceSample("gmail-smtp-in.l.google.com", 550, "5.7.1", "Our system has detected that this message is not RFC 5322 compliant. low reputation of the sending IP", .policyBlock))
        #expect(result.category == .policyBlock && result.category != .invalidRecipient)
    }

    @Test func refusalsOfMailFromAreAboutTheSender() {
        // Never a reason to suppress the recipient, whatever the words.
        #expect(classify(BounceSample("mx.example.jp", 553, nil, "example.jp does not exist", .policyBlock, command: "MAIL")).category == .policyBlock)
        #expect(classify(BounceSample("mx.example.jp", 550, "5.1.0", "<a@example.jp>: unknown user", .policyBlock, command: "MAIL")).category == .policyBlock)
        #expect(classify(BounceSample("mx.example.jp", 450, "4.1.8", "<a@example.jp>: Sender address rejected: Domain not found", .policyBlock,
                                      command: "RCPT")).category == .policyBlock)
        // A size declared at MAIL FROM is still a size problem.
        #expect(classify(BounceSample("mx.example.jp", 552, "5.3.4", "Message size exceeds fixed maximum message size", .messageTooLarge,
                                      command: "MAIL")).category == .messageTooLarge)
    }

    @Test func hardAndSoft() {
        #expect(classify(bounceCorpus[0]).isHard)
        #expect(!classify(BounceSample("mx.example.net", 452, "4.2.2", "Over quota", .mailboxFull)).isHard)
        #expect(!classify(BounceSample("mx.example.net", 552, "5.2.2", "Mailbox full", .mailboxFull)).isHard, "a full mailbox empties")
    }

    @Test func failuresWithoutReplies() {
        #expect(classifier.classify(FailureObservation(kind: .dns(transient: true, text: "SERVFAIL"))).category == .dnsFailure)
        #expect(classifier.classify(FailureObservation(kind: .dns(transient: false, text: "x.example: NXDOMAIN"))) ==
                Classification(category: .badDomain, isHard: true, rule: "dns-permanent", stage: .failure, isEvidenceAgainstTheAddress: true))
        #expect(classifier.classify(FailureObservation(kind: .connection("connection refused"))).category == .connectionFailure)
        #expect(classifier.classify(FailureObservation(kind: .tls("certificate verify failed"))).category == .tlsFailure)
        #expect(classifier.classify(FailureObservation(kind: .expired)) ==
                Classification(category: .expired, isHard: true, rule: "expired", stage: .failure))
        #expect(classifier.classify(FailureObservation(kind: .reply(code: 599, enhanced: nil, text: "???"))).rule == "fallback")
    }

    @Test func operatorRulesComeFirst() throws {
        let custom = try BounceClassifier.standard(extraRules: [
            ClassificationRule(id: "ours", category: .inactiveMailbox, hard: true, codes: [550], text: ["user unknown"], hosts: ["example.net"]),
        ])
        let result = custom.classify(FailureObservation(kind: .reply(code: 550, enhanced: nil, text: "User unknown"), remoteHost: "mx.example.net"))
        #expect(result == Classification(category: .inactiveMailbox, isHard: true, rule: "ours", stage: .provider, isEvidenceAgainstTheAddress: true))
        #expect(throws: (any Error).self) { try BounceClassifier(rules: [ClassificationRule(id: "bad", category: .other, text: ["("])]) }
    }
}
