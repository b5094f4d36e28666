import NIOCore
import Testing
@testable import SMTPCore

struct ReplyTests {
    static let replies: [Reply] = [
        Reply(250, EnhancedStatusCode(2, 0, 0), "OK queued as 123"),
        Reply(250, nil, ["mx.example Hello", "PIPELINING", "SIZE 1000", "8BITMIME"]),
        Reply(550, EnhancedStatusCode(5, 1, 1), ["No such user", "see https://example/help"]),
        Reply(421, EnhancedStatusCode(4, 7, 0), "Too many connections"),
        Reply(334, nil, ""),
        Reply(220, nil, "mx.example ESMTP"),
    ]

    @Test(arguments: replies)
    func repliesRoundTrip(_ reply: Reply) throws {
        var parser = ReplyParser()
        var buffer = reply.encoded()
        #expect(try parser.parse(&buffer) == .reply(reply))
        #expect(buffer.readableBytes == 0)
    }

    @Test func multilineReplyWaitsForLastLine() throws {
        var parser = ReplyParser()
        var buffer = ByteBuffer(string: "250-first\r\n250-second\r\n")
        #expect(try parser.parse(&buffer) == .incomplete)
        buffer.writeString("250 last\r\n")
        #expect(try parser.parse(&buffer) == .reply(Reply(250, nil, ["first", "second", "last"])))
    }

    @Test func gmailStyleEnhancedCodeOnEveryLine() throws {
        var parser = ReplyParser()
        var buffer = ByteBuffer(string: "550-5.7.1 Our system has detected\r\n550-5.7.1 low reputation\r\n550 5.7.1 of the sending domain\r\n")
        let expected = Reply(550, EnhancedStatusCode(5, 7, 1), ["Our system has detected", "low reputation", "of the sending domain"])
        #expect(try parser.parse(&buffer) == .reply(expected))
    }

    @Test(arguments: ["hello\r\n", "25 x\r\n", "250x\r\n", "650 no\r\n", "250-a\r\n251 b\r\n"])
    func malformedRepliesThrow(_ text: String) {
        var parser = ReplyParser()
        var buffer = ByteBuffer(string: text)
        #expect(throws: ParserError.self) {
            while try parser.parse(&buffer) != .incomplete {}
        }
    }

    /// Found by fuzz-smtp-reply: a combining mark after the code made the
    /// Character-based split read a different code and crash.
    @Test func combiningMarkAfterTheCodeIsHarmless() throws {
        var parser = ReplyParser()
        var buffer = ByteBuffer(bytes: Array("250\u{0308} x\r\n".utf8) + Array("250 ok\r\n".utf8))
        #expect(throws: ParserError.self) { try parser.parse(&buffer) }
        var second = ReplyParser()
        var good = ByteBuffer(bytes: Array("250 \u{0308}ok\r\n".utf8))
        #expect(try second.parse(&good) == .reply(Reply(250, nil, "\u{0308}ok")))
    }

    @Test func replyTextCannotInjectLines() {
        let reply = Reply(250, nil, "ok\r\n250 injected")
        #expect(String(buffer: reply.encoded()) == "250 ok 250 injected\r\n")
    }

    @Test(arguments: ["2.0.0", "4.7.1", "5.1.10", "5.7.26"])
    func enhancedCodesParse(_ text: String) {
        #expect(EnhancedStatusCode(parsing: Substring(text))?.description == text)
    }

    @Test(arguments: ["3.0.0", "2.0", "2.0.0.0", "2.a.0", "5.1000.1", ""])
    func badEnhancedCodesDoNot(_ text: String) {
        #expect(EnhancedStatusCode(parsing: Substring(text)) == nil)
    }
}
