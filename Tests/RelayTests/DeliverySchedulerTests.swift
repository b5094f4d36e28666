import Foundation
import Logging
import NIOConcurrencyHelpers
import SMTPCore
import Spool
import Testing
@testable import Relay

struct RetryScheduleTests {
    @Test func doublesFromTheMinimumUpToTheMaximum() {
        let schedule = RetrySchedule(minimumBackoff: 300, maximumBackoff: 4000, jitter: 0.2)
        #expect([1, 2, 3, 4, 5, 6].map { schedule.delay(afterAttempts: $0, random: 0) } == [300, 600, 1200, 2400, 4000, 4000])
        #expect(schedule.delay(afterAttempts: 1, random: 1) == 360, "at most 20 % jitter")
    }
}

struct DeliverySchedulerTests {
    func spool() throws -> Spool {
        let path = NSTemporaryDirectory() + "hikyaku-scheduler-" + UUID().uuidString
        return try Spool(layout: SpoolLayout(directory: path), logger: Logger(label: "test"))
    }

    func message(_ recipients: [String]) -> IncomingMessage {
        IncomingMessage(id: MessageID.generate(), sender: "s@e.example", recipients: recipients, accountID: nil, smtpUTF8: false,
                        clientAddress: "127.0.0.1", heloName: "c", prefix: [], content: Array("Subject: x\r\n\r\nx\r\n".utf8))
    }

    @Test func recordsEveryOutcomeAndSchedulesTheRetry() async throws {
        let spool = try spool()
        let id = try await spool.append(message(["ok@a.example", "gone@a.example", "busy@b.example"]))
        spool.close()
        let clock = NIOLockedValueBox(Date())
        let calls = NIOLockedValueBox<[String]>([])
        let scheduler = DeliveryScheduler(index: spool.index, layout: spool.layout,
                                          schedule: RetrySchedule(minimumBackoff: 300, maximumBackoff: 4000, lifetime: 86400, jitter: 0),
                                          now: { clock.withLockedValue { $0 } }, logger: Logger(label: "test"),
                                          classifier: try .standard()) { envelope, _, domain, _, _ in
            calls.withLockedValue { $0.append(domain) }
            return DeliveryReport(outcomes: envelope.recipients.map { recipient in
                switch recipient {
                case "ok@a.example": return RecipientOutcome(recipient: recipient, reply: Reply(250, nil, "ok"))
                case "gone@a.example":
                    return RecipientOutcome(recipient: recipient, reply: Reply(550, EnhancedStatusCode(5, 1, 1), "no such user"),
                                            source: .remote(command: "RCPT"))
                default: return RecipientOutcome(recipient: recipient, reply: Reply(451, nil, "later"), source: .connection)
                }
            }, site: "mx:mx.\(domain)", session: SessionDetails(mxHost: "mx.\(domain)", remoteIP: "192.0.2.1", tlsVersion: "tlsv13"))
        }
        await scheduler.attempt(id)
        let details = try #require(try spool.index.details(of: id))
        #expect(details.recipients.map(\.state) == ["delivered", "bounced", "deferred"])
        // Every attempt is in the delivery log, with its connection and classification.
        let events = try spool.index.events(DeliveryLogFilter(messageID: id))
        let bounced = try #require(events.first { $0.type == .bounced })
        #expect(bounced.recipient == "gone@a.example" && bounced.replyCode == 550 && bounced.enhancedCode == "5.1.1")
        #expect(bounced.category == "invalid_recipient" && bounced.hard == true && bounced.attempt == 1)
        #expect(bounced.mxHost == "mx.a.example" && bounced.remoteIP == "192.0.2.1" && bounced.tlsVersion == "tlsv13")
        #expect(bounced.site == "mx:mx.a.example")
        #expect(events.first { $0.type == .deferred }?.category == "connection_failure")
        #expect(events.first { $0.type == .delivered }?.category == nil)
        #expect(events.filter { $0.type == .accepted }.count == 3)
        #expect(try spool.index.events(DeliveryLogFilter(types: [.bounced], category: "invalid_recipient")).map(\.recipient) == ["gone@a.example"])
        #expect(try spool.index.events(DeliveryLogFilter(recipient: "GONE@a.example", types: [.delivered])).isEmpty)
        #expect(calls.withLockedValue { $0.sorted() } == ["a.example", "b.example"], "one session per domain")
        #expect(try spool.index.dueMessages(now: clock.withLockedValue { $0 }, limit: 10).isEmpty)
        #expect(try spool.index.dueMessages(now: clock.withLockedValue { $0 }.addingTimeInterval(301), limit: 10) == [id])
        // Only the deferred recipient is tried again.
        calls.withLockedValue { $0 = [] }
        await scheduler.attempt(id)
        #expect(calls.withLockedValue { $0 } == ["b.example"])
        // Past the lifetime a temporary failure expires.
        clock.withLockedValue { $0 = $0.addingTimeInterval(86400) }
        await scheduler.attempt(id)
        #expect(try spool.index.details(of: id)?.recipients.last?.state == "expired")
        #expect(try spool.index.events(DeliveryLogFilter(types: [.expired])).first?.category == "expired")
    }

    @Test func aPostponedAttemptCountsNothing() async throws {
        let spool = try spool()
        let id = try await spool.append(message(["a@a.example"]))
        spool.close()
        let until = Date().addingTimeInterval(42)
        let scheduler = DeliveryScheduler(index: spool.index, layout: spool.layout, schedule: RetrySchedule(),
                                          logger: Logger(label: "test"), classifier: try .standard()) { _, _, _, _, _ in
            DeliveryReport(outcomes: [], site: "busy", postponedUntil: until)
        }
        #expect(await scheduler.attempt(id).isEmpty)
        let recipient = try #require(try spool.index.details(of: id)?.recipients.first)
        #expect(recipient.state == "queued" && recipient.attempts == 0)
        #expect(try spool.index.dueMessages(now: until.addingTimeInterval(-1), limit: 10).isEmpty)
        #expect(try spool.index.dueMessages(now: until.addingTimeInterval(1), limit: 10) == [id])
    }

    @Test func anUnreadableMessageIsNotRetriedInALoop() async throws {
        let spool = try spool()
        let id = try await spool.append(message(["a@a.example"]))
        spool.close()
        for name in try FileManager.default.contentsOfDirectory(atPath: spool.layout.segmentsDirectory) {
            try FileManager.default.removeItem(atPath: spool.layout.segmentsDirectory + "/" + name)
        }
        let clock = NIOLockedValueBox(Date())
        let scheduler = DeliveryScheduler(index: spool.index, layout: spool.layout, schedule: RetrySchedule(),
                                          now: { clock.withLockedValue { $0 } }, logger: Logger(label: "test"),
                                          classifier: try .standard()) { _, _, _, _, _ in
            Issue.record("nothing to deliver without the bytes")
            return DeliveryReport(outcomes: [])
        }
        #expect(await scheduler.attempt(id).isEmpty)
        let now = clock.withLockedValue { $0 }
        #expect(try spool.index.dueMessages(now: now.addingTimeInterval(59), limit: 10).isEmpty)
        #expect(try spool.index.dueMessages(now: now.addingTimeInterval(61), limit: 10) == [id])
        #expect(try spool.index.details(of: id)?.recipients.first?.state == "queued", "nothing is lost or bounced")
    }

    @Test func heldMessagesAreNotDue() async throws {
        let spool = try spool()
        let id = try await spool.append(message(["a@a.example"]))
        spool.close()
        #expect(try spool.index.dueMessages(now: Date(), limit: 10) == [id])
        try spool.index.setHeld(id, true)
        #expect(try spool.index.dueMessages(now: Date(), limit: 10).isEmpty)
    }
}

struct DeliveryStatusNotificationTests {
    @Test func rfc3464Report() {
        let report = DeliveryStatusNotification(
            reportingMTA: "relay.test", originalMessageID: "q1", arrivalDate: Date(timeIntervalSince1970: 0),
            recipients: [.init(address: "gone@d.example", reply: Reply(550, EnhancedStatusCode(5, 1, 1), "no such user\r\nInjected: x"))])
        let original = Array("Subject: hello\r\nFrom: s@e.example\r\n\r\nsecret body\r\n".utf8)
        let text = String(decoding: report.render(to: "s@e.example", originalMessage: original, now: Date(timeIntervalSince1970: 60), dsnID: "d1"), as: UTF8.self)
        #expect(text.contains("Content-Type: multipart/report; report-type=delivery-status; boundary=\"=_hikyaku_dsn_d1\""))
        #expect(text.contains("\r\nReporting-MTA: dns; relay.test\r\n"))
        #expect(text.contains("\r\nFinal-Recipient: rfc822; gone@d.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"))
        // RFC 3464 §2.3.6: the remote reply verbatim, enhanced code included.
        #expect(text.contains("\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user??Injected: x\r\n"))
        #expect(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\nFrom: s@e.example\r\n"))
        #expect(!text.contains("secret body"), "only the header section is returned")
        #expect(!text.contains("\r\nInjected:"), "remote text cannot add lines")
        #expect(text.hasSuffix("--=_hikyaku_dsn_d1--\r\n"))
    }

    @Test func aDelayedRecipientIsReportedOnceAfterTheWarningTime() async throws {
        let path = NSTemporaryDirectory() + "hikyaku-delay-" + UUID().uuidString
        let spool = try Spool(layout: SpoolLayout(directory: path), logger: Logger(label: "test"))
        let id = try await spool.append(IncomingMessage(
            id: MessageID.generate(), sender: "s@e.example", recipients: ["slow@d.example"], accountID: nil, smtpUTF8: false,
            clientAddress: "127.0.0.1", heloName: "c", prefix: [], content: Array("Subject: x\r\n\r\nx\r\n".utf8)))
        spool.close()
        let clock = NIOLockedValueBox(Date())
        let queued = NIOLockedValueBox<[Submission]>([])
        let scheduler = DeliveryScheduler(
            index: spool.index, layout: spool.layout,
            schedule: RetrySchedule(minimumBackoff: 1, maximumBackoff: 1, lifetime: 3600, jitter: 0, delayWarning: 600),
            now: { clock.withLockedValue { $0 } }, logger: Logger(label: "test"), reportingMTA: "relay.test",
            enqueue: { dsn in queued.withLockedValue { $0.append(dsn) } }, classifier: try .standard()) { envelope, _, _, _, _ in
            DeliveryReport(outcomes: envelope.recipients.map { RecipientOutcome(recipient: $0, reply: Reply(451, EnhancedStatusCode(4, 2, 2), "mailbox full")) })
        }
        await scheduler.attempt(id)
        #expect(queued.withLockedValue { $0 }.isEmpty, "not yet: the warning time has not passed")
        clock.withLockedValue { $0 = $0.addingTimeInterval(700) }
        await scheduler.attempt(id)
        let warnings = queued.withLockedValue { $0 }
        #expect(warnings.count == 1 && warnings.first?.sender == "" && warnings.first?.recipients == ["s@e.example"])
        let text = warnings.first.map { String(decoding: $0.content, as: UTF8.self) } ?? ""
        #expect(text.contains("Subject: Delayed Mail (still being retried)"))
        #expect(text.contains("Final-Recipient: rfc822; slow@d.example\r\nAction: delayed\r\nStatus: 4.2.2\r\n"))
        #expect(text.contains("Will-Retry-Until: "))
        #expect(try spool.index.details(of: id)?.recipients.first?.delayNotified == true)
        clock.withLockedValue { $0 = $0.addingTimeInterval(60) }
        await scheduler.attempt(id)
        #expect(queued.withLockedValue { $0 }.count == 1, "one warning per recipient")
        // Past the lifetime: the failure report follows.
        clock.withLockedValue { $0 = $0.addingTimeInterval(3600) }
        await scheduler.attempt(id)
        let last = queued.withLockedValue { $0 }.last.map { String(decoding: $0.content, as: UTF8.self) } ?? ""
        #expect(queued.withLockedValue { $0 }.count == 2 && last.contains("Action: failed") && last.contains("Status: 5.4.7"))
    }

    @Test func bouncesProduceOneDSNAndNullSendersNone() async throws {
        let path = NSTemporaryDirectory() + "hikyaku-dsn-" + UUID().uuidString
        let spool = try Spool(layout: SpoolLayout(directory: path), logger: Logger(label: "test"))
        func message(sender: String) -> IncomingMessage {
            IncomingMessage(id: MessageID.generate(), sender: sender, recipients: ["gone@d.example", "ok@d.example"], accountID: nil,
                            smtpUTF8: false, clientAddress: "127.0.0.1", heloName: "c", prefix: [], content: Array("Subject: x\r\n\r\nx\r\n".utf8))
        }
        let withSender = try await spool.append(message(sender: "s@e.example"))
        let nullSender = try await spool.append(message(sender: ""))
        spool.close()
        let queued = NIOLockedValueBox<[Submission]>([])
        let scheduler = DeliveryScheduler(index: spool.index, layout: spool.layout, schedule: RetrySchedule(), logger: Logger(label: "test"),
                                          reportingMTA: "relay.test", enqueue: { dsn in queued.withLockedValue { $0.append(dsn) } },
                                          classifier: try .standard()) { envelope, _, _, _, _ in
            DeliveryReport(outcomes: envelope.recipients.map {
                RecipientOutcome(recipient: $0, reply: $0.hasPrefix("gone") ? Reply(550, EnhancedStatusCode(5, 1, 1), "no") : Reply(250, nil, "ok"))
            })
        }
        await scheduler.attempt(withSender)
        await scheduler.attempt(nullSender)
        let dsns = queued.withLockedValue { $0 }
        #expect(dsns.count == 1)
        #expect(dsns.first?.sender == "" && dsns.first?.recipients == ["s@e.example"])
        let content = dsns.first.map { String(decoding: $0.content, as: UTF8.self) } ?? ""
        #expect(content.contains("Final-Recipient: rfc822; gone@d.example"))
    }
}
