import Foundation
import MIME
import NIOConcurrencyHelpers
import SMTPCore
import Spool
import Testing
@testable import Relay

struct TraceFieldsTests {
    @Test func clientTextCannotStartAHeaderLine() {
        let fields = TraceFields(hostname: "mx.test", heloName: "client (evil)\r\nBcc: x", clientAddress: "192.0.2.1",
                                 extended: true, tls: true, tlsDescription: "using TLSv1.3", authenticatedAs: "acme",
                                 smtpUTF8: false, queueID: "q1", recipients: ["a@b.example"], date: Date(timeIntervalSince1970: 0))
        let text = fields.received
        #expect(text.hasPrefix("Received: from client__evil___Bcc:_x ([192.0.2.1])\r\n\tby mx.test (Hikyaku) with ESMTPSA id q1"))
        #expect(text.hasSuffix(";\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"))
        #expect(!text.contains("\r\nBcc"), "client text cannot start a header line")
    }

    /// Domains as the account lists hold them; those already in that form are taken as they are.
    @Test func domainsAreNormalisedAlikeOnEitherPath() {
        let long = String(repeating: "a", count: 63), tooLong = String(repeating: "a", count: 64)
        let cases: [(String, String?)] = [
            ("acme.example", "acme.example"), ("ACME.Example", "acme.example"), ("acme.example.", "acme.example"),
            ("mail-1.acme.example", "mail-1.acme.example"), ("\(long).example", "\(long).example"), ("\(tooLong).example", nil),
            ("a..example", nil), (".acme.example", nil), ("[192.0.2.1]", nil), ("", nil), ("例え.jp", "xn--r8jz45g.jp"),
            (Array(repeating: "abcdefghi", count: 25).joined(separator: "."), Array(repeating: "abcdefghi", count: 25).joined(separator: ".")),
            (Array(repeating: "abcdefghi", count: 26).joined(separator: "."), nil),
        ]
        for (text, expected) in cases {
            #expect(SenderPolicy.domain(text) == expected, "\(text)")
        }
    }

    @Test func protocolTypes() {
        func type(_ extended: Bool, _ tls: Bool, _ auth: Bool, _ utf8: Bool) -> String {
            TraceFields(hostname: "h", heloName: "c", clientAddress: "::1", extended: extended, tls: tls, tlsDescription: nil,
                        authenticatedAs: auth ? "a" : nil, smtpUTF8: utf8, queueID: "q", recipients: [], date: Date()).protocolType
        }
        #expect(type(false, false, false, false) == "SMTP")
        #expect(type(true, false, false, false) == "ESMTP")
        #expect(type(true, true, false, false) == "ESMTPS")
        #expect(type(true, true, true, false) == "ESMTPSA")
        #expect(type(true, false, true, false) == "ESMTPA")
        #expect(type(true, true, true, true) == "UTF8SMTPSA")
    }

    // Guards against a send_at of 10^16 trapping when a date is written (issue: Int64(...) of a huge time).
    @Test func datesFarOutsideTheCalendarAreWrittenWithoutATrap() {
        #expect(MailDate.rfc5322(Date(timeIntervalSince1970: 1e16)).hasSuffix("9999 23:59:59 +0000"))
        #expect(MailDate.iso8601(Date(timeIntervalSince1970: -1e18)).hasPrefix("0001-01-01"))
        #expect(MailDate.iso8601(Date(timeIntervalSince1970: .infinity)) == "1970-01-01T00:00:00.000Z")
    }
}

struct SenderPolicyTests {
    let policy = SenderPolicy(requireVerifiedDomains: true)
    let account = Principal.account(AuthenticatedAccount(id: 1, name: "shop", domains: ["mine.example", "new.example", "xn--r8jz45g.jp"],
                                                         verifiedDomains: ["mine.example", "xn--r8jz45g.jp"]))

    func check(_ header: String) -> SenderRefusal? {
        let message = Array((header + "\r\n\r\nbody\r\n").utf8)
        guard let section = try? HeaderSection(parsing: message) else { return .unparsable(field: "-", detail: "header") }
        return policy.check(header: section, of: message, principal: account)
    }

    @Test func envelopeSender() {
        #expect(policy.check(envelopeSender: "a@mine.example", principal: account) == nil)
        #expect(policy.check(envelopeSender: "a@MINE.example.", principal: account) == nil)
        #expect(policy.check(envelopeSender: "", principal: account) == nil, "the null sender has no domain to own")
        #expect(policy.check(envelopeSender: "a@new.example", principal: account) == .senderNotVerified(domain: "new.example"))
        #expect(policy.check(envelopeSender: "a@other.example", principal: account) == .senderNotOwned(domain: "other.example"))
        #expect(policy.check(envelopeSender: "a@other.example", principal: .trustedNetwork) == nil)
        let lenient = SenderPolicy(requireVerifiedDomains: false)
        #expect(lenient.check(envelopeSender: "a@new.example", principal: account) == nil)
        #expect(lenient.check(envelopeSender: "a@other.example", principal: account) == .senderNotOwned(domain: "other.example"))
    }

    @Test(arguments: [
        "From: shop@mine.example", "From: Shop <shop@MINE.example>", "From: \"Shop, Inc.\" <shop@mine.example>",
        "From: =?UTF-8?B?5bGx55Sw?= <shop@mine.example>", "From: a@mine.example, b@mine.example\r\nSender: a@mine.example",
        "From: support@mine.example (help@mine.example)", "From: shop@例え.jp", "From: shop@mine.example\r\nResent-From: x@mine.example",
    ])
    func allowedAuthors(_ header: String) {
        #expect(check(header) == nil, "\(header)")
    }

    // Each of these passed the old check, which read "every domain found is verified" (true of none).
    @Test(arguments: [
        ("From: CEO", SenderRefusal.unparsable(field: "From", detail: "a display name without an address")),
        ("From: =?utf-8?b?Q0VP?=", .unparsable(field: "From", detail: "a display name without an address")),
        ("From: undisclosed:;", .notAMailbox(field: "From")),
        ("From: Team: shop@mine.example;", .notAMailbox(field: "From")),
        ("From: ceo", .unparsable(field: "From", detail: "a display name without an address")),
        ("From:", .notAMailbox(field: "From")),
        ("Subject: no author", .authorMissing),
        ("From: shop@mine.example\r\nFrom: shop@mine.example", .fieldRepeated("From")),
        ("From: ceo@victim.example", .domainNotAllowed(field: "From", domain: "victim.example")),
        ("From: \"shop@mine.example\" <ceo@victim.example>", .domainNotAllowed(field: "From", domain: "victim.example")),
        ("From: \"ceo@victim.example\" <shop@mine.example>", .domainNotAllowed(field: "From", domain: "victim.example")),
        ("From: shop@mine.example (ceo@victim.example)", .domainNotAllowed(field: "From", domain: "victim.example")),
        ("From: =?utf-8?q?ceo=40victim=2Eexample?= <shop@mine.example>", .domainNotAllowed(field: "From", domain: "victim.example")),
        ("From: ceo＠victim．example <shop@mine.example>", .domainNotAllowed(field: "From", domain: "victim.example")),
        ("From: shop@mine.example, ceo@victim.example", .domainNotAllowed(field: "From", domain: "victim.example")),
        ("From: shop@new.example", .domainNotAllowed(field: "From", domain: "new.example")),
        ("From: shop@[192.0.2.1]", .domainNotAllowed(field: "From", domain: "[192.0.2.1]")),
        ("From: shop@mine.example\r\nSender: ceo@victim.example", .domainNotAllowed(field: "Sender", domain: "victim.example")),
        ("From: shop@mine.example\r\nSender: a@mine.example, b@mine.example", .notAMailbox(field: "Sender")),
        ("From: shop@mine.example\r\nResent-From: ceo@victim.example", .domainNotAllowed(field: "Resent-From", domain: "victim.example")),
        ("From: shop@mine.example\r\nResent-Sender: ceo@victim.example", .domainNotAllowed(field: "Resent-Sender", domain: "victim.example")),
        ("from : ceo@victim.example", .domainNotAllowed(field: "From", domain: "victim.example")),
    ])
    func refusedAuthors(_ header: String, _ expected: SenderRefusal) {
        #expect(check(header) == expected, "\(header)")
    }

    @Test func trustedNetworksAndLenientModeAreNotChecked() throws {
        let message = Array("From: ceo@victim.example\r\n\r\n".utf8)
        let section = try HeaderSection(parsing: message)
        #expect(policy.check(header: section, of: message, principal: .trustedNetwork) == nil)
        #expect(SenderPolicy(requireVerifiedDomains: false).check(header: section, of: message, principal: account) == nil)
    }
}

/// A spool that keeps what it is given, or fails as told.
final class MemorySpool: MessageSpool, @unchecked Sendable {
    let stored = NIOLockedValueBox<[IncomingMessage]>([])
    let failure = NIOLockedValueBox<SpoolError?>(nil)

    func append(_ message: IncomingMessage, completion: @escaping @Sendable (Result<MessageID, SpoolError>) -> Void) {
        if let error = failure.withLockedValue({ $0 }) { return completion(.failure(error)) }
        stored.withLockedValue { $0.append(message) }
        completion(.success(message.id))
    }
}

struct IntakeTests {
    let spool = MemorySpool()
    let account = AuthenticatedAccount(id: 4, name: "shop", domains: ["mine.example"], verifiedDomains: ["mine.example"])

    func intake(maximumSize: Int = 1 << 20, lookup: Intake.AccountLookup? = nil) -> Intake {
        Intake(settings: .init(hostname: "mx.test", maximumMessageSize: maximumSize, maximumReceivedFields: 3, requireVerifiedDomains: true),
               spool: spool, meter: nil, signing: nil, signingPool: nil, accountLookup: lookup,
               clock: { Date(timeIntervalSince1970: 1_800_000_000) })
    }

    func submission(_ text: String, door: Door = .api, sender: String = "shop@mine.example", principal: Principal? = nil) -> Submission {
        Submission(id: Intake.newMessageID(), door: door, principal: principal ?? .account(account), sender: sender,
                   recipients: ["to@else.example"], content: Array(text.utf8), origin: .http(client: "192.0.2.9"))
    }

    @Test func acceptsAndAddsTraceFields() async throws {
        let id = try await intake().submit(submission("From: shop@mine.example\r\nSubject: x\r\n\r\nbody\r\n")).get()
        let stored = try #require(spool.stored.withLockedValue { $0 }.first)
        #expect(stored.id == id && stored.accountID == 4)
        let prefix = String(decoding: stored.prefix, as: UTF8.self)
        #expect(prefix.hasPrefix("Received: from [192.0.2.9] (account shop)\r\n\tby mx.test (Hikyaku) with HTTP id \(id);"))
        #expect(prefix.contains("Message-ID: <\(id)@mx.test>\r\n") && prefix.contains("Date: "))
        #expect(stored.metadata?.source == "api")
    }

    @Test(arguments: [
        ("From: ceo@victim.example\r\n\r\nx", Reply(550, EnhancedStatusCode(5, 7, 1), "From header is not on a verified domain of this account")),
        ("Subject: hi\rFrom: ceo@victim.example\r\n\r\nx", Reply(550, EnhancedStatusCode(5, 6, 0), "Malformed header: bare CR in header line 1 (lines end with CRLF)")),
        ("From\r\n\r\nx", Reply(550, EnhancedStatusCode(5, 6, 0), "Malformed header: header line 1 is not a field (name, then colon)")),
        ("Received: a\r\nReceived: b\r\nreceived : c\r\nFrom: shop@mine.example\r\n\r\nx", Reply(554, EnhancedStatusCode(5, 4, 6), "Too many Received headers: mail loop detected")),
    ])
    func refusesWithAReplyAndStoresNothing(_ text: String, _ reply: Reply) async {
        let result = await intake().submit(submission(text))
        guard case .failure(let refusal) = result else {
            Issue.record("accepted \(text)")
            return
        }
        #expect(refusal.smtpReply == reply)
        #expect(spool.stored.withLockedValue { $0 }.isEmpty)
    }

    @Test func refusesAnEnvelopeSenderOfAnotherDomain() async {
        let result = await intake().submit(submission("From: shop@mine.example\r\n\r\nx", sender: "ceo@victim.example"))
        #expect(result == .failure(.sender(.senderNotOwned(domain: "victim.example"))))
    }

    @Test func aBatchStandsOrFallsTogether() async {
        let good = submission("From: shop@mine.example\r\n\r\nx")
        let bad = submission("From: ceo@victim.example\r\n\r\nx")
        #expect(await intake().submit([good, bad]) == .failure(.sender(.domainNotAllowed(field: "From", domain: "victim.example"))))
        #expect(spool.stored.withLockedValue { $0 }.isEmpty)
    }

    @Test func aDomainVerifiedAMomentAgoIsFound() async throws {
        let stale = AuthenticatedAccount(id: 4, name: "shop", domains: ["mine.example"], verifiedDomains: [])
        let fresh = intake(lookup: { _, fresh in fresh ? self.account : stale })
        _ = try await fresh.submit(submission("From: shop@mine.example\r\n\r\nx", principal: .account(stale))).get()
        // Still refused on the store's word, the reason is the store's: another author, not an unverified sender.
        let other = await fresh.submit(submission("From: ceo@victim.example\r\n\r\nx", principal: .account(stale)))
        #expect(other == .failure(.sender(.domainNotAllowed(field: "From", domain: "victim.example"))))
    }

    @Test func anAccountCreatedAMomentAgoIsFound() async throws {
        let created = intake(lookup: { _, fresh in fresh ? self.account : nil })
        _ = try await created.submit(submission("From: shop@mine.example\r\n\r\nx")).get()
    }

    @Test func blindCopiesNeverLeave() async throws {
        _ = try await intake().submit(submission("From: shop@mine.example\r\nBCC : a@x.example\r\nresent-bcc: b@x.example\r\n\tc@x.example\r\nTo: t@x.example\r\n\r\nBcc: in the body\r\n")).get()
        let stored = try #require(spool.stored.withLockedValue { $0 }.first)
        #expect(String(decoding: stored.content, as: UTF8.self) == "From: shop@mine.example\r\nTo: t@x.example\r\n\r\nBcc: in the body\r\n")
    }

    // An SMTP session opened before a domain lost its verification, or before the account was disabled, sends no more.
    @Test func thePrincipalIsTheAccountAsItIsNow() async {
        let withdrawn = AuthenticatedAccount(id: 4, name: "shop", domains: ["mine.example"], verifiedDomains: [])
        let result = await intake(lookup: { _, _ in withdrawn }).submit(submission("From: shop@mine.example\r\n\r\nx"))
        #expect(result == .failure(.sender(.senderNotVerified(domain: "mine.example"))))
        #expect(await intake(lookup: { _, _ in nil }).submit(submission("From: shop@mine.example\r\n\r\nx")) == .failure(.unknownAccount))
    }

    @Test func sizeIsCheckedBeforeAnythingElse() async {
        let result = await intake(maximumSize: 10).submit(submission("From: shop@mine.example\r\n\r\n0123456789"))
        #expect(result == .failure(.messageTooLarge(size: 37, limit: 10)))
    }

    @Test func spoolFailureIsTyped() async {
        spool.failure.withLockedValue { $0 = .insufficientStorage }
        let result = await intake().submit(submission("From: shop@mine.example\r\n\r\nx"))
        #expect(result == .failure(.insufficientStorage(accepted: [])))
        #expect(IntakeRefusal.insufficientStorage(accepted: []).smtpReply.code == 452)
    }

    @Test func notificationsFromTheRelayAreNotHeldToAnAccount() async throws {
        let dsn = Submission(id: Intake.newMessageID(), door: .dsn, principal: .relay(forAccount: 4), sender: "", recipients: ["shop@mine.example"],
                             content: Array("From: MAILER-DAEMON@mx.test\r\n\r\nx".utf8), origin: .local)
        _ = try await intake().submit(dsn).get()
        let stored = try #require(spool.stored.withLockedValue { $0 }.first)
        #expect(stored.prefix.isEmpty && stored.accountID == 4)
    }
}

// Found by review: tricks that once slipped another domain past the author check.
struct AuthorDisguiseTests {
    let policy = SenderPolicy(requireVerifiedDomains: true)
    let account = Principal.account(AuthenticatedAccount(id: 1, name: "shop", domains: ["mine.example"], verifiedDomains: ["mine.example"]))

    func check(_ header: String) -> SenderRefusal? {
        let message = Array((header + "\r\n\r\nbody\r\n").utf8)
        guard let section = try? HeaderSection(parsing: message) else { return .unparsable(field: "-", detail: "header") }
        return policy.check(header: section, of: message, principal: account)
    }

    @Test(arguments: [
        "From: =?utf-8?q?ceo=40victim.example?= <shop@mine.example>",
        "From: =?utf-8?q?ceo=40?==?utf-8?q?victim=2Eexample?= <shop@mine.example>",
        "From: \"ceo@vic\u{200B}tim.example\" <shop@mine.example>",
        "From: \"ceo@victim\u{3002}example\" <shop@mine.example>",
        "From: \"ceo@victim.example\"@mine.example",
        "From: =?utf-8?b?Y2VvQHZpY3RpbS5leGFtcGxl?=@mine.example",
        "From: \"ceo@\\\\victim.example\" <shop@mine.example>",
    ])
    func disguisedDomainsAreSeen(_ header: String) {
        #expect(check(header) == .domainNotAllowed(field: "From", domain: "victim.example"), "\(header)")
    }

    @Test func encodedWordsInUnknownCharsetsAreRefused() {
        #expect(check("From: =?utf-7?q?ceo+AEA-victim.example?= <shop@mine.example>") == .undecodableText(field: "From"))
        #expect(check("From: =?utf-8?q?Shop?= <shop@mine.example>") == nil)
    }
}
