import Testing
@testable import Relay

struct HeaderSummaryTests {
    @Test func findsFieldsOnlyInTheHeaderSection() {
        let text = "Received: a\r\n\tfolded\r\nMessage-ID: <x@y>\r\nDATE : now\r\n\r\nReceived: b\r\nDate: c\r\n"
        let summary = HeaderSummary(scanning: Array(text.utf8))
        #expect(summary.receivedCount == 1)
        #expect(summary.hasMessageID)
        #expect(summary.hasDate)
    }

    @Test func missingFields() {
        let summary = HeaderSummary(scanning: Array("Subject: x\r\n\r\nMessage-ID: <in body>\r\n".utf8))
        #expect(!summary.hasMessageID && !summary.hasDate && summary.receivedCount == 0)
    }

    @Test func traceFieldsAreAddedWhenMissing() {
        let fields = TraceFields(hostname: "mx.test", heloName: "client (evil)\r\nBcc: x", clientAddress: "192.0.2.1",
                                 extended: true, tls: true, tlsDescription: "using TLSv1.3", authenticatedAs: "acme",
                                 smtpUTF8: false, queueID: "q1", recipients: ["a@b.example"], unixTime: 0)
        let text = String(decoding: fields.render(summary: HeaderSummary(scanning: [])), as: UTF8.self)
        #expect(text.hasPrefix("Received: from client__evil___Bcc:_x ([192.0.2.1])\r\n\tby mx.test (Hikyaku) with ESMTPSA id q1"))
        #expect(text.contains("Message-ID: <q1@mx.test>\r\n"))
        #expect(text.contains("Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"))
        #expect(!text.contains("\r\nBcc"), "client text cannot start a header line")
    }

    @Test func protocolTypes() {
        func type(_ extended: Bool, _ tls: Bool, _ auth: Bool, _ utf8: Bool) -> String {
            TraceFields(hostname: "h", heloName: "c", clientAddress: "::1", extended: extended, tls: tls, tlsDescription: nil,
                        authenticatedAs: auth ? "a" : nil, smtpUTF8: utf8, queueID: "q", recipients: [], unixTime: 0).protocolType
        }
        #expect(type(false, false, false, false) == "SMTP")
        #expect(type(true, false, false, false) == "ESMTP")
        #expect(type(true, true, false, false) == "ESMTPS")
        #expect(type(true, true, true, false) == "ESMTPSA")
        #expect(type(true, false, true, false) == "ESMTPA")
        #expect(type(true, true, true, true) == "UTF8SMTPSA")
    }
}

struct TrustedNetworksTests {
    @Test func matchesCIDRBlocks() throws {
        let networks = try TrustedNetworks(["127.0.0.0/8", "10.1.0.0/16", "::1"])
        #expect(networks.contains(try .init(ipAddress: "127.9.9.9", port: 1)))
        #expect(networks.contains(try .init(ipAddress: "10.1.200.3", port: 1)))
        #expect(!networks.contains(try .init(ipAddress: "10.2.0.1", port: 1)))
        #expect(networks.contains(try .init(ipAddress: "::1", port: 1)))
        #expect(networks.contains(try .init(ipAddress: "::ffff:127.0.0.1", port: 1)))
        #expect(!networks.contains(try .init(ipAddress: "::2", port: 1)))
        #expect(throws: TrustedNetworksError.self) { try TrustedNetworks(["10.0.0.0/33"]) }
        #expect(throws: TrustedNetworksError.self) { try TrustedNetworks(["not-an-ip"]) }
    }

    @Test func connectionLimits() {
        let limiter = ConnectionLimiter(maximumConnections: 3, maximumPerClient: 2)
        #expect(limiter.acquire("a"))
        #expect(limiter.acquire("a"))
        #expect(!limiter.acquire("a"))
        #expect(limiter.acquire("b"))
        #expect(!limiter.acquire("c"))
        limiter.release("a")
        #expect(limiter.acquire("c"))
        #expect(limiter.openConnections == 3)
    }
}

import NIOCore

struct AuthenticationThrottleTests {
    @Test func blocksAfterFailuresAndForgetsAfterTheWindow() {
        let clock = NIOLockedValueBox(NIODeadline.uptimeNanoseconds(1_000_000_000))
        let throttle = AuthenticationThrottle(maximumFailures: 3, window: .seconds(60), now: { clock.withLockedValue { $0 } })
        for _ in 0..<2 { throttle.recordFailure("192.0.2.1") }
        #expect(!throttle.isBlocked("192.0.2.1"))
        throttle.recordFailure("192.0.2.1")
        #expect(throttle.isBlocked("192.0.2.1"))
        #expect(!throttle.isBlocked("192.0.2.2"), "other addresses are not affected")
        clock.withLockedValue { $0 = $0 + .seconds(61) }
        #expect(!throttle.isBlocked("192.0.2.1"))
    }
}

import NIOConcurrencyHelpers
