import SMTPCore
import Testing
@testable import Relay

struct SMTPClientStateMachineTests {
    static let ehloPipelining = Reply(250, nil, ["mx.test", "PIPELINING", "SIZE 10000", "8BITMIME", "SMTPUTF8", "STARTTLS", "ENHANCEDSTATUSCODES"])
    static let ehloPlain = Reply(250, nil, ["mx.test", "SIZE 10000"])
    static let ok = Reply(250, EnhancedStatusCode(2, 0, 0), "ok")

    func machine(_ recipients: [String] = ["a@d.example", "b@d.example", "c@d.example"], tls: TLSPolicy = .none,
                 size: Int = 100, utf8: Bool = false) -> SMTPClientStateMachine {
        SMTPClientStateMachine(heloName: "relay.test", tlsPolicy: tls,
                               envelope: OutboundEnvelope(sender: "s@e.example", recipients: recipients, size: size,
                                                          eightBit: true, requiresSMTPUTF8: utf8))
    }

    func outcomes(_ action: SMTPClientStateMachine.Action) -> [String: Int] {
        guard case .transactionFinished(let results) = action else { return [:] }
        return Dictionary(uniqueKeysWithValues: results.map { ($0.recipient, $0.reply.code) })
    }

    @Test func pipelinedTransactionWithPerRecipientOutcomes() {
        var client = machine()
        #expect(client.receive(Reply(220, nil, "mx.test ESMTP")) == .send([.ehlo("relay.test")]))
        guard case .send(let commands) = client.receive(Self.ehloPipelining) else {
            Issue.record("expected MAIL, RCPTs and DATA")
            return
        }
        #expect(commands.map(\.verb) == ["MAIL", "RCPT", "RCPT", "RCPT", "DATA"])
        #expect(commands.first == .mail(.mailbox(Mailbox(localPart: "s", domain: .name("e.example"))),
                                        MailParameters(size: 100, body: .eightBitMIME)))
        #expect(client.receive(Self.ok) == .none)
        #expect(client.receive(Self.ok) == .none)
        #expect(client.receive(Reply(550, EnhancedStatusCode(5, 1, 1), "no such user")) == .none)
        #expect(client.receive(Reply(450, EnhancedStatusCode(4, 2, 1), "try later")) == .none)
        #expect(client.receive(Reply(354, nil, "go ahead")) == .sendMessage)
        let finished = client.receive(Reply(250, EnhancedStatusCode(2, 0, 0), "queued"))
        #expect(outcomes(finished) == ["a@d.example": 250, "b@d.example": 550, "c@d.example": 450])
        #expect(client.phase == .idle)
        #expect(client.quit() == .send([.quit]))
    }

    @Test func withoutPipeliningOneCommandAtATime() {
        var client = machine(["a@d.example", "b@d.example"])
        _ = client.receive(Reply(220, nil, "hi"))
        guard case .send(let mail) = client.receive(Self.ehloPlain), mail.map(\.verb) == ["MAIL"] else {
            Issue.record("expected MAIL alone")
            return
        }
        #expect(client.receive(Self.ok) == .send([.rcpt(.mailbox(Mailbox(localPart: "a", domain: .name("d.example"))), [])]))
        #expect(client.receive(Self.ok) == .send([.rcpt(.mailbox(Mailbox(localPart: "b", domain: .name("d.example"))), [])]))
        #expect(client.receive(Self.ok) == .send([.data]))
        #expect(client.receive(Reply(354, nil, "go")) == .sendMessage)
        #expect(outcomes(client.receive(Reply(451, EnhancedStatusCode(4, 3, 0), "later"))) == ["a@d.example": 451, "b@d.example": 451])
    }

    @Test func smarthostCredentialsGoOnlyUnderTLSWithAuthPlain() {
        let credentials = SMTPCredentials(username: "relay", password: "s3cret")
        var client = SMTPClientStateMachine(heloName: "relay.test", tlsPolicy: .opportunistic,
                                            envelope: OutboundEnvelope(sender: "s@e.example", recipients: ["a@d.example"], size: 10),
                                            credentials: credentials)
        #expect(client.tlsPolicy == .required, "credentials make TLS required")
        #expect(client.receive(Reply(220, nil, "smarthost")) == .send([.ehlo("relay.test")]))
        let offer = Reply(250, nil, ["smarthost", "PIPELINING", "STARTTLS", "AUTH LOGIN PLAIN"])
        #expect(client.receive(offer) == .send([.startTLS]))
        #expect(client.receive(Reply(220, nil, "go")) == .startTLS)
        #expect(client.tlsEstablished() == .send([.ehlo("relay.test")]))
        // base64("\0relay\0s3cret")
        #expect(client.receive(offer) == .send([.auth(mechanism: "PLAIN", initialResponse: "AHJlbGF5AHMzY3JldA==")]))
        guard case .send(let commands) = client.receive(Reply(235, EnhancedStatusCode(2, 7, 0), "ok")) else {
            Issue.record("the transaction follows AUTH")
            return
        }
        #expect(commands.first?.verb == "MAIL")
        #expect("\(credentials)" == "relay:<hidden>")

        // Refused credentials keep the mail (4.7.0); a server without STARTTLS never sees them.
        var refused = SMTPClientStateMachine(heloName: "relay.test", tlsPolicy: .required,
                                             envelope: OutboundEnvelope(sender: "", recipients: ["a@d.example"], size: 10),
                                             credentials: credentials)
        _ = refused.receive(Reply(220, nil, "smarthost"))
        _ = refused.receive(offer)
        _ = refused.receive(Reply(220, nil, "go"))
        _ = refused.tlsEstablished()
        _ = refused.receive(offer)
        guard case .transactionFinished(let results) = refused.receive(Reply(535, EnhancedStatusCode(5, 7, 8), "bad credentials")) else {
            Issue.record("refused AUTH ends the session")
            return
        }
        #expect(results.map(\.reply.code) == [454] && results[0].reply.enhancedCode == EnhancedStatusCode(4, 7, 0))
        var plaintext = SMTPClientStateMachine(heloName: "relay.test", tlsPolicy: .none,
                                               envelope: OutboundEnvelope(sender: "", recipients: ["a@d.example"], size: 10),
                                               credentials: credentials)
        _ = plaintext.receive(Reply(220, nil, "smarthost"))
        guard case .transactionFinished(let noTLS) = plaintext.receive(Reply(250, nil, ["smarthost", "AUTH PLAIN"])) else {
            Issue.record("no STARTTLS: no credentials")
            return
        }
        #expect(noTLS.first?.reply.enhancedCode == EnhancedStatusCode(4, 7, 10))
    }

    @Test func heloFallbackWhenEHLOIsUnknown() {
        var client = machine(["a@d.example"])
        _ = client.receive(Reply(220, nil, "old server"))
        #expect(client.receive(Reply(502, nil, "command not implemented")) == .send([.helo("relay.test")]))
        guard case .send(let commands) = client.receive(Reply(250, nil, "hello")) else { return }
        #expect(commands == [.mail(.mailbox(Mailbox(localPart: "s", domain: .name("e.example"))), MailParameters())],
                "no ESMTP parameters after HELO")
    }

    @Test func startTLSThenEHLOAgain() {
        var client = machine(["a@d.example"], tls: .opportunistic)
        _ = client.receive(Reply(220, nil, "hi"))
        #expect(client.receive(Self.ehloPipelining) == .send([.startTLS]))
        #expect(client.receive(Reply(220, nil, "ready")) == .startTLS)
        #expect(client.tlsEstablished() == .send([.ehlo("relay.test")]))
        guard case .send(let commands) = client.receive(Self.ehloPipelining) else { return }
        #expect(commands.first?.verb == "MAIL", "STARTTLS is not tried twice")
        #expect(client.tlsActive)
    }

    @Test func opportunisticTLSFallsBackButRequiredDefers() {
        var opportunistic = machine(["a@d.example"], tls: .opportunistic)
        _ = opportunistic.receive(Reply(220, nil, "hi"))
        _ = opportunistic.receive(Self.ehloPipelining)
        guard case .send(let commands) = opportunistic.receive(Reply(454, EnhancedStatusCode(4, 7, 0), "TLS not available")) else { return }
        #expect(commands.first?.verb == "MAIL")

        var required = machine(["a@d.example"], tls: .required)
        _ = required.receive(Reply(220, nil, "hi"))
        #expect(outcomes(required.receive(Self.ehloPlain)) == ["a@d.example": 451], "no STARTTLS offered: defer")
        #expect(required.phase == .closed)
    }

    @Test func sizeAndSMTPUTF8AreCheckedBeforeSending() {
        var big = machine(["a@d.example"], size: 20_000)
        _ = big.receive(Reply(220, nil, "hi"))
        guard case .transactionFinished(let results) = big.receive(Self.ehloPipelining) else { return }
        #expect(results.first?.reply.enhancedCode == EnhancedStatusCode(5, 3, 4))

        var utf8 = machine(["ü@d.example"], utf8: true)
        _ = utf8.receive(Reply(220, nil, "hi"))
        guard case .transactionFinished(let refused) = utf8.receive(Self.ehloPlain) else { return }
        #expect(refused.first?.reply.enhancedCode == EnhancedStatusCode(5, 6, 7))
    }

    @Test func refusalAtGreetingOrMailAppliesToEveryone() {
        var greeting = machine(["a@d.example", "b@d.example"])
        #expect(outcomes(greeting.receive(Reply(554, EnhancedStatusCode(5, 7, 1), "go away"))) == ["a@d.example": 554, "b@d.example": 554])
        var mail = machine(["a@d.example", "b@d.example"])
        _ = mail.receive(Reply(220, nil, "hi"))
        _ = mail.receive(Self.ehloPipelining)
        _ = mail.receive(Reply(553, EnhancedStatusCode(5, 7, 1), "sender refused"))
        _ = mail.receive(Reply(503, nil, "need MAIL"))
        _ = mail.receive(Reply(503, nil, "need MAIL"))
        #expect(outcomes(mail.receive(Reply(503, nil, "need MAIL"))) == ["a@d.example": 553, "b@d.example": 553],
                "the MAIL reply, not the follow-on 503s, explains the failure")
    }

    @Test func connectionLossAfterTheDotIsTransient() {
        var client = machine(["a@d.example"])
        _ = client.receive(Reply(220, nil, "hi"))
        _ = client.receive(Self.ehloPipelining)
        _ = client.receive(Self.ok)
        _ = client.receive(Self.ok)
        _ = client.receive(Reply(354, nil, "go"))
        #expect(outcomes(client.connectionLost("reset by peer")) == ["a@d.example": 451])
    }

    @Test func reuseAfterAFailedTransactionResetsFirst() {
        var client = machine(["a@d.example"])
        _ = client.receive(Reply(220, nil, "hi"))
        _ = client.receive(Self.ehloPipelining)
        _ = client.receive(Self.ok)
        _ = client.receive(Reply(550, nil, "no"))
        #expect(outcomes(client.receive(Reply(554, nil, "no valid recipients"))) == ["a@d.example": 550])
        let next = OutboundEnvelope(sender: "s@e.example", recipients: ["z@d.example"], size: 10)
        #expect(client.begin(next) == .send([.rset]))
        guard case .send(let commands) = client.receive(Self.ok) else { return }
        #expect(commands.map(\.verb) == ["MAIL", "RCPT", "DATA"])
    }
}
