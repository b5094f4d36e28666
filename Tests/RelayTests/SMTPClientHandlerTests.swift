import NIOCore
import NIOEmbedded
import NIOSSL
import SMTPCore
import Testing
@testable import Relay

/// The client handler's deadlines on an EmbeddedChannel with a virtual clock.
struct SMTPClientHandlerTests {
    struct Session {
        let channel: EmbeddedChannel
        let loop: EmbeddedEventLoop
        let result: EventLoopFuture<TransactionResult>

        func reply(_ text: String) throws {
            try channel.writeInbound(ByteBuffer(string: text))
        }

        /// The result if the handler has produced it (never blocks: this is an embedded loop).
        func outcome() throws -> TransactionResult {
            var value: TransactionResult?
            result.whenSuccess { value = $0 }
            loop.run()
            return try #require(value)
        }

        func written() throws -> String {
            var text = ""
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }
    }

    func session(timeouts: SMTPClientHandler.Timeouts) throws -> Session {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let promise = loop.makePromise(of: TransactionResult.self)
        let machine = SMTPClientStateMachine(heloName: "relay.test", tlsPolicy: .none,
                                             envelope: OutboundEnvelope(sender: "s@a.example", recipients: ["r@b.example"], size: 10))
        try channel.pipeline.syncOperations.addHandler(SMTPClientHandler(
            machine: machine, message: Array("Subject: x\r\n\r\nx\r\n".utf8),
            tlsConfiguration: .makeClientConfiguration(), serverHostname: "mx.b.example", timeouts: timeouts, promise: promise))
        channel.pipeline.fireChannelActive()
        return Session(channel: channel, loop: loop, result: promise.futureResult)
    }

    var short: SMTPClientHandler.Timeouts {
        var timeouts = SMTPClientHandler.Timeouts()
        timeouts.greeting = .seconds(30)
        timeouts.dataEnd = .seconds(600)
        timeouts.idle = .seconds(2)
        return timeouts
    }

    @Test func aSilentServerTimesOutInTheGreeting() throws {
        let session = try session(timeouts: short)
        session.loop.advanceTime(by: .seconds(29))
        var early: TransactionResult?
        session.result.whenSuccess { early = $0 }
        #expect(early == nil, "still waiting before the deadline")
        session.loop.advanceTime(by: .seconds(2))
        let result = try session.outcome()
        #expect(result.outcomes.map(\.reply.code) == [451] && result.outcomes[0].source == .connection)
        #expect(result.outcomes[0].reply.text.contains("timeout in greeting"))
    }

    @Test func noReplyAfterTheDotIsATransientFailure() throws {
        let session = try session(timeouts: short)
        try session.reply("220 mx ESMTP\r\n")
        try session.reply("250-mx\r\n250 PIPELINING\r\n")
        try session.reply("250 ok\r\n250 ok\r\n354 go\r\n")
        #expect(try session.written().hasSuffix("\r\n.\r\n"))
        session.loop.advanceTime(by: .seconds(599))
        session.loop.advanceTime(by: .seconds(2))
        let result = try session.outcome()
        #expect(result.outcomes.first?.reply.enhancedCode == EnhancedStatusCode(4, 4, 2))
        #expect(result.outcomes.first?.reply.text.contains("timeout in dataEnd") == true)
    }

    @Test func anIdleConnectionQuitsAfterItsIdleTimeNotTheLongerWait() throws {
        let session = try session(timeouts: short)
        try session.reply("220 mx ESMTP\r\n")
        try session.reply("250-mx\r\n250 PIPELINING\r\n")
        try session.reply("250 ok\r\n250 ok\r\n354 go\r\n")
        _ = try session.written()
        try session.reply("250 2.0.0 queued\r\n")
        let result = try session.outcome()
        #expect(result.outcomes.first?.delivered == true && result.reusable)
        // The 10-minute wait for the reply to "." was armed; idling must not wait that long.
        session.loop.advanceTime(by: .seconds(3))
        #expect(try session.written() == "QUIT\r\n")
    }
}
