import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import SMTPCore
import Spool
import Testing
@testable import Relay

/// A spool that records messages and answers when told to.
final class FakeSpool: MessageSpool, @unchecked Sendable {
    let lock = NIOLock()
    var messages: [IncomingMessage] = []
    var pending: [(IncomingMessage, @Sendable (Result<MessageID, SpoolError>) -> Void)] = []
    var answerImmediately: Result<Void, SpoolError>? = .success(())

    func append(_ message: IncomingMessage, completion: @escaping @Sendable (Result<MessageID, SpoolError>) -> Void) {
        lock.withLock {
            switch answerImmediately {
            case .success?:
                messages.append(message)
                completion(.success(message.id))
            case .failure(let error)?:
                completion(.failure(error))
            case nil:
                pending.append((message, completion))
            }
        }
    }

    func completePending() {
        let batch = lock.withLock { () -> [(IncomingMessage, @Sendable (Result<MessageID, SpoolError>) -> Void)] in
            defer { pending = [] }
            messages += pending.map(\.0)
            return pending
        }
        for (message, completion) in batch { completion(.success(message.id)) }
    }
}

struct FakeVerifier: CredentialVerifier {
    func verify(username: String, password: String, eventLoop: any EventLoop) -> EventLoopFuture<CredentialCheck> {
        eventLoop.makeSucceededFuture(username == "user" && password == "secret"
            ? .accepted(AuthenticatedAccount(id: 7, name: "acme", domains: ["acme.example"])) : .refused)
    }
}

struct InboundSessionHandlerTests {
    func makeChannel(spool: FakeSpool, trusted: Bool = true, settings: InboundSettings = InboundSettings(hostname: "mx.test", tlsAvailable: false)) throws -> EmbeddedChannel {
        let intake = Intake(settings: .init(hostname: settings.hostname, maximumMessageSize: settings.maximumMessageSize,
                                            requireVerifiedDomains: settings.requireVerifiedDomains),
                            spool: spool, meter: nil, signing: nil, signingPool: nil)
        let environment = InboundSessionHandler.Environment(
            settings: settings, intake: intake, verifier: FakeVerifier(), tlsContext: nil,
            commandTimeout: .seconds(30), dataTimeout: .seconds(60), logger: Logger(label: "test"))
        let handler = InboundSessionHandler(environment: environment, clientAddress: "192.0.2.7", trusted: trusted,
                                            implicitTLS: false, sessionID: "t")
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: try SocketAddress(ipAddress: "192.0.2.7", port: 1000)).wait()
        return channel
    }

    /// Everything written so far, as text.
    func output(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test func pipelinedTransactionIsSpooledWithTraceFields() throws {
        let spool = FakeSpool()
        let channel = try makeChannel(spool: spool)
        #expect(try output(channel) == "220 mx.test ESMTP Hikyaku\r\n")
        try channel.writeInbound(ByteBuffer(string: "EHLO client\r\nMAIL FROM:<a@acme.example>\r\nRCPT TO:<b@else.example>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n"))
        let text = try output(channel)
        let codes = text.split(separator: "\r\n").map { $0.prefix(4) }
        #expect(codes.filter { $0 == "250 " }.count == 4, "EHLO, MAIL, RCPT and the queued reply: \(text)")
        #expect(text.contains("354 "))
        #expect(text.hasSuffix("221 2.0.0 Bye\r\n"))
        #expect(spool.messages.count == 1)
        let message = try #require(spool.messages.first)
        #expect(message.sender == "a@acme.example")
        #expect(message.recipients == ["b@else.example"])
        #expect(String(decoding: message.content, as: UTF8.self) == "Subject: hi\r\n\r\n.dot\r\n")
        let prefix = String(decoding: message.prefix, as: UTF8.self)
        #expect(prefix.hasPrefix("Received: from client ([192.0.2.7])"))
        #expect(prefix.contains("Message-ID: <\(message.id)@mx.test>"))
        #expect(!channel.isActive, "closed after QUIT")
    }

    @Test func repliesStayInOrderWhileTheSpoolIsBusy() throws {
        let spool = FakeSpool()
        spool.answerImmediately = nil
        let channel = try makeChannel(spool: spool)
        _ = try output(channel)
        try channel.writeInbound(ByteBuffer(string: "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: x\r\n.\r\nNOOP\r\n"))
        let before = try output(channel)
        #expect(!before.contains("queued"))
        #expect(!before.contains("2.0.0 OK\r\n"), "NOOP must wait for the DATA reply")
        spool.completePending()
        channel.embeddedEventLoop.run()
        let after = try output(channel)
        #expect(after.hasPrefix("250 2.0.0 OK queued as "))
        #expect(after.hasSuffix("250 2.0.0 OK\r\n"))
    }

    @Test func smuggledCommandsAreNeverRun() throws {
        let spool = FakeSpool()
        let channel = try makeChannel(spool: spool)
        _ = try output(channel)
        try channel.writeInbound(ByteBuffer(string: "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nbody\n.\nMAIL FROM:<evil@b.example>\r\nRCPT TO:<victim@d.example>\r\nDATA\r\nsmuggled\r\n.\r\n"))
        let text = try output(channel)
        #expect(text.hasSuffix("550 5.5.2 Bare CR or LF not allowed; lines must end with CRLF\r\n"))
        #expect(spool.messages.isEmpty)
    }

    @Test func storageFullIsA452() throws {
        let spool = FakeSpool()
        spool.answerImmediately = .failure(.insufficientStorage)
        let channel = try makeChannel(spool: spool)
        _ = try output(channel)
        try channel.writeInbound(ByteBuffer(string: "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: x\r\n.\r\n"))
        #expect(try output(channel).hasSuffix("452 4.3.1 Insufficient system storage\r\n"))
    }

    @Test func commandDeadlineCountsFromTheFirstWait() throws {
        let channel = try makeChannel(spool: FakeSpool())
        _ = try output(channel)
        // A byte every 10 s does not extend the 30 s deadline.
        for _ in 0..<2 {
            try channel.writeInbound(ByteBuffer(string: "N"))
            channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        }
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(11))
        #expect(try output(channel) == "421 4.4.2 Timeout, closing connection\r\n")
        #expect(!channel.isActive)
    }

    @Test func eachCompletedCommandStartsAFreshDeadline() throws {
        let channel = try makeChannel(spool: FakeSpool())
        _ = try output(channel)
        channel.embeddedEventLoop.advanceTime(by: .seconds(20))
        try channel.writeInbound(ByteBuffer(string: "NOOP\r\n"))
        #expect(try output(channel) == "250 2.0.0 OK\r\n")
        // The first timer fires at 30 s, finds the deadline moved to 50 s, re-arms.
        channel.embeddedEventLoop.advanceTime(by: .seconds(15))
        #expect(channel.isActive)
        #expect(try output(channel) == "")
        channel.embeddedEventLoop.advanceTime(by: .seconds(16))
        #expect(try output(channel) == "421 4.4.2 Timeout, closing connection\r\n")
        #expect(!channel.isActive)
    }

    @Test func authenticatesAndChecksSenderDomain() throws {
        let spool = FakeSpool()
        let channel = try makeChannel(spool: spool, trusted: false, settings: InboundSettings(hostname: "mx.test", tlsAvailable: false))
        _ = try output(channel)
        // Not trusted and not TLS: AUTH is refused.
        try channel.writeInbound(ByteBuffer(string: "EHLO c\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n"))
        #expect(try output(channel).hasSuffix("538 5.7.11 Encryption required for requested authentication mechanism\r\n"))
    }

    @Test func drainRequestClosesAnIdleSession() throws {
        let channel = try makeChannel(spool: FakeSpool())
        _ = try output(channel)
        channel.pipeline.fireUserInboundEventTriggered(DrainRequest())
        #expect(try output(channel) == "421 4.3.2 Service shutting down, closing connection\r\n")
        #expect(!channel.isActive)
    }

    @Test func hugeLineWithoutCRLFDoesNotGrowTheBuffer() throws {
        let channel = try makeChannel(spool: FakeSpool())
        _ = try output(channel)
        let chunk = ByteBuffer(repeating: UInt8(ascii: "A"), count: 64 * 1024)
        for _ in 0..<64 { try channel.writeInbound(chunk) } // 4 MiB
        try channel.writeInbound(ByteBuffer(string: "\r\nNOOP\r\n"))
        #expect(try output(channel) == "500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n")
        #expect(channel.isActive)
    }
}
