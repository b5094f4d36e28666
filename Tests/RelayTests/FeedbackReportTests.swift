import Crypto
import Foundation
import Testing
@testable import Relay
import SMTPCore
import Spool

@Suite struct FeedbackReportTests {
    func crlf(_ text: String) -> [UInt8] { Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8) }

    @Test func arfComplaintNamesTheReturnPathOfTheOriginal() throws {
        let report = try #require(FeedbackReport.parse(crlf("""
            From: feedback@isp.test
            To: fbl@bounce.test
            MIME-Version: 1.0
            Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

            --ARF
            Content-Type: text/plain

            An abuse report.

            --ARF
            Content-Type: message/feedback-report

            Feedback-Type: abuse
            User-Agent: SomeISP-FBL/1.0
            Version: 1

            --ARF
            Content-Type: message/rfc822

            Return-Path: <b-x@bounce.test>
            From: shop@acme.test

            body
            --ARF--
            """)))
        #expect(report.kind == .complaint(feedbackType: "abuse"))
        #expect(report.returnPaths == ["b-x@bounce.test"])
    }

    @Test func dsnStatusAndDiagnostic() throws {
        let report = try #require(FeedbackReport.parse(crlf("""
            Content-Type: multipart/report; report-type=delivery-status; boundary=B

            --B
            Content-Type: text/plain

            Sorry.
            --B
            Content-Type: message/delivery-status

            Reporting-MTA: dns; mx.example

            Final-Recipient: rfc822; a@example.jp
            Action: failed
            Status: 5.2.2
            Diagnostic-Code: smtp; 552 5.2.2 Mailbox full
            --B--
            """)))
        #expect(report.kind == .bounce && report.action == "failed")
        #expect(report.replyCode == 552 && report.enhancedCode == EnhancedStatusCode(5, 2, 2) && report.text == "552 5.2.2 Mailbox full")
    }

    /// The command a reply answered, from the report's words: after DATA, docomo's "Unknown user" is the
    /// recipient's filter, never a reason to suppress the address.
    @Test func theCommandIsReadFromTheReport() throws {
        let report = try #require(FeedbackReport.parse(crlf("""
            Content-Type: multipart/report; report-type=delivery-status; boundary=B

            --B
            Content-Type: text/plain

            <a@docomo.ne.jp>: host mfsmax.docomo.ne.jp[203.138.181.112] said: 550 Unknown user
                a@docomo.ne.jp (in reply to end of DATA command)
            --B
            Content-Type: message/delivery-status

            Reporting-MTA: dns; mx.example

            Final-Recipient: rfc822; a@docomo.ne.jp
            Action: failed
            Status: 5.0.0
            Diagnostic-Code: smtp; 550 Unknown user a@docomo.ne.jp
            --B--
            """)))
        #expect(report.command == "DATA")
        let classifier = try BounceClassifier.standard()
        let result = classifier.classify(FailureObservation(kind: .reply(code: 550, enhanced: report.enhancedCode, text: report.text),
                                                            recipientDomain: "docomo.ne.jp", command: report.command))
        #expect(result.category == .filtered && !result.isEvidenceAgainstTheAddress)
        #expect(FeedbackReport.command(in: "SMTP error from remote mail server after RCPT TO:<a@example.jp>: 550 5.1.1 no such user") == "RCPT")
        #expect(FeedbackReport.command(in: "(in reply to MAIL FROM command)") == "MAIL")
        #expect(FeedbackReport.command(in: "retry after database maintenance") == nil, "whole words only")
        #expect(FeedbackReport.command(in: "a: (in reply to RCPT TO command) b: (in reply to end of DATA command)") == nil, "two commands: unknown")
        let plain = try #require(FeedbackReport.parse(crlf("Subject: failure notice\n\nSMTP error from remote mail server after end of data: 550 Unknown user\n")))
        #expect(plain.command == "DATA")
        #expect(FeedbackReport.command(in: "thereafter data was lost") == nil, "whole words on both sides")
        // Only the reply's own paragraph: a copy of the original message further on has words of its own.
        let copy = try #require(FeedbackReport.parse(crlf("""
            Subject: failure notice

            <a@example.jp>:
            550 5.1.1 Unknown user

            --- Below this line is a copy of the message.

            Subject: news

            We will write again after data migration.
            """)))
        #expect(copy.replyCode == 550 && copy.command == nil)
    }

    @Test func plainBouncesAndNonReports() throws {
        let plain = try #require(FeedbackReport.parse(crlf("Subject: failure notice\n\nRemote host said: 550-5.1.1 The email account does not exist\n")))
        #expect(plain.replyCode == 550 && plain.enhancedCode == EnhancedStatusCode(5, 1, 1))
        #expect(FeedbackReport.parse(crlf("Subject: hello\n\nJust a message, sent at 12:30 on 2026-11-29.\n")) == nil)
    }

    // Guards against a plain-text report whose status begins with full-width digits, which once trapped the process.
    @Test(arguments: ["4００ try later", "５５０ 5.1.1 gone", "55０ x", "4\u{0663}0 x", "99999999999999999999 x", "550-", "5"])
    func nonASCIIDigitsAreNoReplyCode(_ line: String) {
        let report = FeedbackReport.parse(crlf("Subject: failure\n\n\(line)\n"))
        #expect(report == nil || report?.replyCode.map { (400...599).contains($0) } == true)
    }

    @Test func malformedReportsAreUnreadable() {
        #expect(FeedbackReport.parse(crlf("From\n\n550 5.1.1 gone\n")) == nil, "a header line without a colon")
        #expect(FeedbackReport.parse(Array("Subject: x\r\n\r\n550 5.1.1 gone\r\n".utf8))?.replyCode == 550)
    }
}

struct RegexShapeTests {
    @Test(arguments: ["(a+)+", "(a*)*", "(?:x|y+){2,}", "([a-z]+\\s)*", "((ab)+c)*", "(a+){2,99}", ".*.*.*", "a.*b.+c.*d"])
    func nestedQuantifiersAreFound(_ pattern: String) {
        #expect(RegexShape.hasNestedQuantifier(pattern))
    }

    @Test(arguments: ["a+b*", "(ab)+", "(a+)?", "[(+)]+", "\\(a+\\)+", "(a{2})+", "mailbox (is )?full"])
    func boundedPatternsPass(_ pattern: String) {
        #expect(!RegexShape.hasNestedQuantifier(pattern))
    }

    // The shipped rules cannot backtrack catastrophically (and the classifier refuses rules that could).
    @Test func shippedRulesHaveNoNestedQuantifier() throws {
        for rule in try ClassificationRuleSet.shipped().rules {
            for pattern in rule.text ?? [] { #expect(!RegexShape.hasNestedQuantifier(pattern), "\(rule.id): \(pattern)") }
        }
        #expect(throws: RegexShape.NestedQuantifier.self) {
            try BounceClassifier(rules: [ClassificationRule(id: "slow", category: .other, text: ["(a+)+$"])])
        }
    }

    @Test func longTextsAreCutBeforeMatching() throws {
        let classifier = try BounceClassifier(rules: [ClassificationRule(id: "tail", category: .mailboxFull, text: ["full$"])])
        let long = String(repeating: "x", count: 10_000) + " full"
        #expect(classifier.classify(FailureObservation(kind: .reply(code: 452, enhanced: nil, text: long))).rule == "fallback")
        #expect(classifier.classify(FailureObservation(kind: .reply(code: 452, enhanced: nil, text: "mailbox full"))).rule == "tail")
    }
}

struct ReturnPathTests {
    let key = SymmetricKey(data: Array(repeating: UInt8(7), count: 32))

    @Test func aSendingDomainsOwnReturnPathComesFirst() throws {
        let directory = ReturnPathDirectory { ["acme.example": "bounce.acme.example"] }
        let returnPath = ReturnPath(domain: "bounce.relay.example", key: key, directory: directory)
        #expect(returnPath.domain(forSender: "shop@ACME.example") == "bounce.acme.example")
        #expect(returnPath.domain(forSender: "shop@other.example") == "bounce.relay.example")
        #expect(ReturnPath(domain: nil, key: key, directory: directory).domain(forSender: "a@other.example") == nil,
                "without either, mail keeps its sender")

        let id = MessageID.generate()
        let own = returnPath.address(message: id, position: 3, domain: "bounce.acme.example")
        #expect(returnPath.decode(own)! == (id, 3))
        #expect(returnPath.decode(own.replacingOccurrences(of: "bounce.acme.example", with: "bounce.relay.example"))! == (id, 3))
        #expect(returnPath.decode(own.replacingOccurrences(of: "bounce.acme.example", with: "acme.example")) == nil,
                "not a bounce domain")
        #expect(returnPath.decode(own.replacingOccurrences(of: "-3-", with: "-4-")) == nil, "the MAC covers the position")
        #expect(returnPath.handles(domain: "BOUNCE.acme.example") && !returnPath.handles(domain: "elsewhere.example"))
    }
}
