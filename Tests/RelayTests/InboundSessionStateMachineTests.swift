import Testing
import SMTPCore
@testable import Relay

/// Drives the session state machine with command lines, as the handler would.
struct SessionDriver {
    var machine: InboundSessionStateMachine

    init(trusted: Bool = false, tls: Bool = false, settings: InboundSettings = InboundSettings(hostname: "mx.test"),
         requireVerifiedDomains: Bool = false) {
        var settings = settings
        settings.requireVerifiedDomains = requireVerifiedDomains
        machine = InboundSessionStateMachine(settings: settings, trusted: trusted, tlsActive: tls)
    }

    mutating func send(_ line: String) -> InboundSessionStateMachine.Action {
        machine.receiveLine(.line(Array(line.utf8)))
    }

    mutating func code(_ line: String) -> Int? {
        switch send(line) {
        case .reply(let reply), .replyAndClose(let reply), .beginData(let reply), .startTLS(let reply): return reply.code
        default: return nil
        }
    }

    mutating func reply(_ line: String) -> Reply? {
        switch send(line) {
        case .reply(let reply), .replyAndClose(let reply), .beginData(let reply), .startTLS(let reply): return reply
        default: return nil
        }
    }

    mutating func authenticate(domains: Set<String> = ["acme.example"], verified: Set<String> = []) {
        _ = send("EHLO client")
        _ = send("AUTH PLAIN AHVzZXIAcGFzcw==")
        _ = machine.credentialsVerified(AuthenticatedAccount(id: 1, name: "acme", domains: domains, verifiedDomains: verified))
    }
}

struct InboundSessionStateMachineTests {
    @Test func anonymousClientCannotRelay() {
        var session = SessionDriver()
        #expect(session.code("EHLO client") == 250)
        #expect(session.code("MAIL FROM:<a@b.example>") == 250)
        let refusal = session.reply("RCPT TO:<x@elsewhere.example>")
        #expect(refusal?.code == 554)
        #expect(refusal?.enhancedCode == EnhancedStatusCode(5, 7, 1))
        #expect(session.code("DATA") == 554)
    }

    @Test(arguments: ["<user%evil.example@victim.example>", "<evil.example!user@victim.example>",
                      "<@victim.example:user@evil.example>", "<\"user@evil.example\"@victim.example>",
                      "<\"user@evil.example\">", "<user@evil.example@victim.example>", "<Postmaster>"])
    func everyRelayDisguiseIsRefused(_ path: String) {
        var session = SessionDriver()
        _ = session.send("EHLO client")
        _ = session.send("MAIL FROM:<a@b.example>")
        let reply = session.reply("RCPT TO:\(path)")
        #expect(reply?.isPermanentFailure == true)
        #expect(session.machine.transaction?.recipients.isEmpty == true)
    }

    @Test func trustedNetworkRelays() {
        var session = SessionDriver(trusted: true)
        _ = session.send("EHLO client")
        #expect(session.code("MAIL FROM:<anyone@anywhere.example>") == 250)
        #expect(session.code("RCPT TO:<x@elsewhere.example>") == 250)
        guard case .beginData = session.send("DATA") else {
            Issue.record("expected 354")
            return
        }
        guard case .enqueue(let transaction, _) = session.machine.dataFinished(violation: nil, content: Array("a\r\n".utf8)) else {
            Issue.record("expected enqueue")
            return
        }
        #expect(transaction.recipients.map(\.description) == ["x@elsewhere.example"])
        #expect(session.machine.spoolFinished(.success("id1")) == .reply(Reply(250, EnhancedStatusCode(2, 0, 0), "OK queued as id1")))
    }

    @Test func authRequiresTLS() {
        var session = SessionDriver()
        guard case .reply(let ehlo) = session.send("EHLO client") else { return }
        #expect(!ehlo.lines.contains { $0.hasPrefix("AUTH") })
        #expect(ehlo.lines.contains("STARTTLS"))
        let reply = session.reply("AUTH PLAIN AHVzZXIAcGFzcw==")
        #expect(reply?.code == 538)
        #expect(reply?.enhancedCode == EnhancedStatusCode(5, 7, 11))
    }

    @Test func accountMayOnlyUseItsOwnDomains() {
        var session = SessionDriver(tls: true)
        session.authenticate()
        #expect(session.reply("MAIL FROM:<a@other.example>")?.code == 553)
        #expect(session.code("MAIL FROM:<a@ACME.example>") == 250)
        #expect(session.code("RCPT TO:<x@anywhere.example>") == 250)
        _ = session.send("RSET")
        #expect(session.code("MAIL FROM:<>") == 250, "null sender carries no domain")
    }

    @Test func requiredVerificationRefusesAnUnverifiedSenderAtMail() {
        var session = SessionDriver(tls: true, requireVerifiedDomains: true)
        session.authenticate(domains: ["acme.example", "new.example"], verified: ["acme.example"])
        #expect(session.reply("MAIL FROM:<a@new.example>") == SenderRefusal.senderNotVerified(domain: "new.example").smtpReply)
        #expect(session.code("MAIL FROM:<a@acme.example>") == 250)
        _ = session.send("RCPT TO:<x@anywhere.example>")
        _ = session.send("DATA")
        // The author fields are the intake's to check (IntakeTests): the machine hands the message over.
        guard case .enqueue = session.machine.dataFinished(violation: nil, content: Array("From: <boss@victim.example>\r\n\r\nx\r\n".utf8)) else {
            Issue.record("expected the message to go to the intake")
            return
        }

        // The trusted network has no account: nothing to verify against.
        var trusted = SessionDriver(trusted: true, requireVerifiedDomains: true)
        _ = trusted.send("EHLO client")
        #expect(trusted.code("MAIL FROM:<a@unverified.example>") == 250)
    }

    @Test func authLoginExchange() {
        var session = SessionDriver(tls: true)
        _ = session.send("EHLO client")
        #expect(session.reply("AUTH LOGIN") == Reply(334, nil, "VXNlcm5hbWU6"))
        #expect(session.reply("dXNlcg==") == Reply(334, nil, "UGFzc3dvcmQ6"))
        #expect(session.send("cGFzcw==") == .verifyCredentials(username: "user", password: "pass"))
        #expect(session.machine.inputMode == .paused)
        #expect(session.machine.credentialsVerified(nil) == .reply(Reply(535, EnhancedStatusCode(5, 7, 8), "Authentication credentials invalid")))
    }

    @Test func authFailuresEndTheSession() {
        var session = SessionDriver(tls: true, settings: InboundSettings(hostname: "mx.test", maximumAuthFailures: 2))
        _ = session.send("EHLO client")
        _ = session.send("AUTH PLAIN AHVzZXIAcGFzcw==")
        #expect(session.machine.credentialsVerified(nil) != .none)
        _ = session.send("AUTH PLAIN AHVzZXIAcGFzcw==")
        guard case .replyAndClose(let reply) = session.machine.credentialsVerified(nil) else {
            Issue.record("expected 421 and close")
            return
        }
        #expect(reply.code == 421)
    }

    @Test func authCancelAndBadBase64() {
        var session = SessionDriver(tls: true)
        _ = session.send("EHLO client")
        _ = session.send("AUTH PLAIN")
        #expect(session.code("*") == 501)
        _ = session.send("AUTH LOGIN")
        #expect(session.code("!!!") == 501)
        #expect(session.code("NOOP") == 250)
    }

    @Test func plainWithForeignAuthzidFails() {
        var session = SessionDriver(tls: true)
        _ = session.send("EHLO client")
        // authzid "other", authcid "user"
        #expect(session.code("AUTH PLAIN b3RoZXIAdXNlcgBwYXNz") == 535)
    }

    @Test func startTLSResetsTheSessionAndIsNotOfferedTwice() {
        var session = SessionDriver()
        _ = session.send("EHLO client")
        guard case .startTLS(let ready) = session.send("STARTTLS") else {
            Issue.record("expected STARTTLS")
            return
        }
        #expect(ready.code == 220)
        #expect(session.machine.inputMode == .paused)
        session.machine.tlsEstablished()
        #expect(session.machine.heloName == nil, "RFC 3207: the client must say EHLO again")
        #expect(session.code("MAIL FROM:<a@b.example>") == 503)
        guard case .reply(let ehlo) = session.send("EHLO client") else { return }
        #expect(!ehlo.lines.contains("STARTTLS"))
        #expect(ehlo.lines.contains("AUTH PLAIN LOGIN"))
        #expect(session.code("STARTTLS") == 503)
    }

    @Test func sequenceErrors() {
        var session = SessionDriver(trusted: true)
        #expect(session.code("MAIL FROM:<a@b.example>") == 503)
        _ = session.send("EHLO client")
        #expect(session.code("RCPT TO:<a@b.example>") == 503)
        #expect(session.code("DATA") == 503)
        _ = session.send("MAIL FROM:<a@b.example>")
        #expect(session.code("MAIL FROM:<a@b.example>") == 503)
        #expect(session.code("DATA") == 554)
    }

    @Test func sizeDeclaredAtMailIsChecked() {
        var session = SessionDriver(trusted: true, settings: InboundSettings(hostname: "mx.test", maximumMessageSize: 1000))
        _ = session.send("EHLO client")
        let reply = session.reply("MAIL FROM:<a@b.example> SIZE=1001")
        #expect(reply?.code == 552)
        #expect(reply?.enhancedCode == EnhancedStatusCode(5, 3, 4))
        #expect(session.code("MAIL FROM:<a@b.example> SIZE=1000") == 250)
    }

    @Test func recipientLimit() {
        var session = SessionDriver(trusted: true, settings: InboundSettings(hostname: "mx.test", maximumRecipients: 3))
        _ = session.send("EHLO client")
        _ = session.send("MAIL FROM:<a@b.example>")
        for index in 0..<3 { #expect(session.code("RCPT TO:<r\(index)@c.example>") == 250) }
        let reply = session.reply("RCPT TO:<r3@c.example>")
        #expect(reply?.code == 452)
        #expect(reply?.enhancedCode == EnhancedStatusCode(4, 5, 3))
    }

    @Test func utf8AddressNeedsSMTPUTF8() {
        var session = SessionDriver(trusted: true)
        _ = session.send("EHLO client")
        #expect(session.reply("MAIL FROM:<ユーザー@例え.jp>")?.enhancedCode == EnhancedStatusCode(5, 6, 7))
        #expect(session.code("MAIL FROM:<ユーザー@例え.jp> SMTPUTF8") == 250)
        #expect(session.code("RCPT TO:<宛先@例え.jp>") == 250)
    }

    @Test func unknownParameterIsRefused() {
        var session = SessionDriver(trusted: true)
        _ = session.send("EHLO client")
        #expect(session.code("MAIL FROM:<a@b.example> X-UNKNOWN=1") == 555)
        #expect(session.code("MAIL FROM:<a@b.example> BODY=BINARYMIME") == 555)
    }

    @Test func tooManyErrorsCloses() {
        var session = SessionDriver(settings: InboundSettings(hostname: "mx.test", maximumErrors: 3))
        _ = session.send("FOO")
        _ = session.send("BAR")
        guard case .replyAndClose(let reply) = session.send("BAZ") else {
            Issue.record("expected 421")
            return
        }
        #expect(reply.code == 421)
        #expect(session.machine.inputMode == .discard)
    }

    @Test func framingErrorsGetTheirCodes() {
        var session = SessionDriver()
        #expect(session.machine.receiveLine(.bareLineEnding) == .reply(.bareLineEnding))
        #expect(session.machine.receiveLine(.lineTooLong) == .reply(.lineTooLong))
        #expect(session.machine.receiveLine(.nulCharacter) == .reply(.nulCharacter))
    }

    @Test func dataViolationsGetTheirCodes() {
        for (violation, code) in [(DataReader.Violation.messageTooLarge, 552), (.bareLineEnding, 550), (.nulCharacter, 550), (.lineTooLong, 500)] {
            var session = SessionDriver(trusted: true)
            _ = session.send("EHLO client")
            _ = session.send("MAIL FROM:<a@b.example>")
            _ = session.send("RCPT TO:<c@d.example>")
            _ = session.send("DATA")
            guard case .reply(let reply) = session.machine.dataFinished(violation: violation, content: []) else {
                Issue.record("expected a reply")
                continue
            }
            #expect(reply.code == code)
            #expect(session.machine.transaction == nil, "the refused transaction is gone")
        }
    }

    @Test func spoolFailuresAreNeverA250() {
        for (failure, code) in [(InboundSessionStateMachine.SpoolFailure.insufficientStorage, 452), (.unavailable, 451)] {
            var session = SessionDriver(trusted: true)
            _ = session.send("EHLO client")
            _ = session.send("MAIL FROM:<a@b.example>")
            _ = session.send("RCPT TO:<c@d.example>")
            _ = session.send("DATA")
            _ = session.machine.dataFinished(violation: nil, content: [])
            guard case .reply(let reply) = session.machine.spoolFinished(.failure(failure)) else { continue }
            #expect(reply.code == code)
        }
    }

    @Test func drainingClosesIdleSessionsAndLetsTransactionsFinish() {
        var idle = SessionDriver()
        _ = idle.send("EHLO client")
        #expect(idle.machine.shutdownRequested() == .replyAndClose(.serviceShuttingDown))

        var busy = SessionDriver(trusted: true)
        _ = busy.send("EHLO client")
        _ = busy.send("MAIL FROM:<a@b.example>")
        #expect(busy.machine.shutdownRequested() == .none)
        #expect(busy.code("RCPT TO:<c@d.example>") == 250)
        _ = busy.send("DATA")
        _ = busy.machine.dataFinished(violation: nil, content: [])
        guard case .replyAndShutDown(let reply) = busy.machine.spoolFinished(.success("id")) else {
            Issue.record("expected the 250 and then close")
            return
        }
        #expect(reply.code == 250)
    }

    @Test func vrfyAndHelp() {
        var session = SessionDriver()
        #expect(session.code("VRFY someone") == 252)
        #expect(session.code("HELP") == 214)
        #expect(session.code("EXPN list") == 502)
        #expect(session.code("BDAT 10 LAST") == 502)
    }
}
