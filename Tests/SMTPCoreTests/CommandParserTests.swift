import NIOCore
import Testing
@testable import SMTPCore

private func mailbox(_ local: String, _ domain: String) -> Mailbox {
    Mailbox(localPart: local, domain: .name(domain))
}

struct CommandParserTests {
    struct ValidRow: Sendable, CustomTestStringConvertible {
        var input: String
        var expected: Command
        var testDescription: String { input }
    }

    static let valid: [ValidRow] = [
        ValidRow(input: "EHLO client.example", expected: .ehlo("client.example")),
        ValidRow(input: "ehlo client.example", expected: .ehlo("client.example")),
        ValidRow(input: "EHLO [192.0.2.1]", expected: .ehlo("[192.0.2.1]")),
        ValidRow(input: "HELO host", expected: .helo("host")),
        ValidRow(input: "MAIL FROM:<a@b.example>", expected: .mail(.mailbox(mailbox("a", "b.example")), MailParameters())),
        ValidRow(input: "mail from:<a@b.example>", expected: .mail(.mailbox(mailbox("a", "b.example")), MailParameters())),
        ValidRow(input: "MAIL FROM: <a@b.example>", expected: .mail(.mailbox(mailbox("a", "b.example")), MailParameters())),
        ValidRow(input: "MAIL FROM:<>", expected: .mail(.null, MailParameters())),
        ValidRow(input: "MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8",
                 expected: .mail(.mailbox(mailbox("a", "b.example")), MailParameters(size: 1000, body: .eightBitMIME, smtpUTF8: true))),
        ValidRow(input: "MAIL FROM:<a@b.example> body=7bit",
                 expected: .mail(.mailbox(mailbox("a", "b.example")), MailParameters(body: .sevenBit))),
        ValidRow(input: "MAIL FROM:<a@b.example> X-FOO=bar",
                 expected: .mail(.mailbox(mailbox("a", "b.example")), MailParameters(other: [ESMTPParameter("X-FOO", "bar")]))),
        ValidRow(input: "RCPT TO:<c@d.example>", expected: .rcpt(.mailbox(mailbox("c", "d.example")), [])),
        ValidRow(input: "RCPT TO:<Postmaster>", expected: .rcpt(.postmaster, [])),
        ValidRow(input: "RCPT TO:<@relay1.example,@relay2.example:c@d.example>", expected: .rcpt(.mailbox(mailbox("c", "d.example")), [])),
        ValidRow(input: "RCPT TO:<\"john doe\"@d.example>", expected: .rcpt(.mailbox(mailbox("\"john doe\"", "d.example")), [])),
        ValidRow(input: "RCPT TO:<\"a@evil.example\"@d.example>", expected: .rcpt(.mailbox(mailbox("\"a@evil.example\"", "d.example")), [])),
        ValidRow(input: "RCPT TO:<user%evil.example@d.example>", expected: .rcpt(.mailbox(mailbox("user%evil.example", "d.example")), [])),
        ValidRow(input: "RCPT TO:<evil.example!user@d.example>", expected: .rcpt(.mailbox(mailbox("evil.example!user", "d.example")), [])),
        ValidRow(input: "RCPT TO:<a@[192.0.2.1]>", expected: .rcpt(.mailbox(Mailbox(localPart: "a", domain: .addressLiteral("192.0.2.1"))), [])),
        ValidRow(input: "RCPT TO:<a@[IPv6:2001:db8::1]>", expected: .rcpt(.mailbox(Mailbox(localPart: "a", domain: .addressLiteral("IPv6:2001:db8::1"))), [])),
        ValidRow(input: "RCPT TO:<ユーザー@例え.jp>", expected: .rcpt(.mailbox(mailbox("ユーザー", "例え.jp")), [])),
        ValidRow(input: "DATA", expected: .data),
        ValidRow(input: "RSET", expected: .rset),
        ValidRow(input: "NOOP", expected: .noop(nil)),
        ValidRow(input: "NOOP hello", expected: .noop("hello")),
        ValidRow(input: "QUIT", expected: .quit),
        ValidRow(input: "VRFY postmaster", expected: .vrfy("postmaster")),
        ValidRow(input: "HELP", expected: .help(nil)),
        ValidRow(input: "STARTTLS", expected: .startTLS),
        ValidRow(input: "AUTH PLAIN", expected: .auth(mechanism: "PLAIN", initialResponse: nil)),
        ValidRow(input: "AUTH plain AGZvbwBiYXI=", expected: .auth(mechanism: "PLAIN", initialResponse: "AGZvbwBiYXI=")),
        ValidRow(input: "AUTH LOGIN =", expected: .auth(mechanism: "LOGIN", initialResponse: "=")),
    ]

    @Test(arguments: valid)
    func parsesValidCommands(_ row: ValidRow) throws {
        #expect(try CommandParser.parseCommand(Array(row.input.utf8)) == row.expected)
    }

    struct MalformedRow: Sendable, CustomTestStringConvertible {
        var input: String
        var kind: ParserError.Kind
        var testDescription: String { input }
    }

    static let malformed: [MalformedRow] = [
        MalformedRow(input: "", kind: .unrecognizedCommand),
        MalformedRow(input: "FROB", kind: .unrecognizedCommand),
        MalformedRow(input: "MAIL", kind: .malformed),
        MalformedRow(input: "MAIL TO:<a@b>", kind: .malformed),
        MalformedRow(input: "MAIL FROM:a@b.example", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@b.example", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@@b.example>", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@b@c.example>", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a..b@c.example>", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<.a@c.example>", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@-c.example>", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@c-.example>", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@c..example>", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@b.example> SIZE=abc", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@b.example> BODY=BINARYMIME", kind: .unsupportedParameter),
        MalformedRow(input: "MAIL FROM:<a@b.example> SIZE=1 SIZE=2", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@b.example> SMTPUTF8=yes", kind: .malformed),
        MalformedRow(input: "MAIL FROM:<a@b.example>junk", kind: .malformed),
        MalformedRow(input: "RCPT TO:<@relay.example:>", kind: .malformed),
        MalformedRow(input: "RCPT TO:<@relay.example c@d.example>", kind: .malformed),
        MalformedRow(input: "RCPT TO:<\"unterminated@d.example>", kind: .malformed),
        MalformedRow(input: "RCPT TO:<a@[999.0.0.1]>", kind: .malformed),
        MalformedRow(input: "RCPT TO:<a@[IPv6:::1::2]>", kind: .malformed),
        MalformedRow(input: "RCPT TO:<" + String(repeating: "a", count: 65) + "@d.example>", kind: .malformed),
        MalformedRow(input: "RCPT TO:<a@" + String(repeating: "b", count: 64) + ".example>", kind: .malformed),
        MalformedRow(input: "RCPT TO:<a@b.example", kind: .malformed),
        MalformedRow(input: "DATA now", kind: .malformed),
        MalformedRow(input: "QUIT please", kind: .malformed),
        MalformedRow(input: "EHLO", kind: .malformed),
        MalformedRow(input: "EHLO ", kind: .malformed),
        MalformedRow(input: "VRFY", kind: .malformed),
        MalformedRow(input: "AUTH", kind: .malformed),
        MalformedRow(input: "AUTH PLAIN not*base64", kind: .malformed),
        MalformedRow(input: "AUTH PLAIN a b", kind: .malformed),
    ]

    @Test(arguments: malformed)
    func rejectsMalformedCommands(_ row: MalformedRow) {
        #expect(throws: ParserError.self) { try CommandParser.parseCommand(Array(row.input.utf8)) }
        do {
            _ = try CommandParser.parseCommand(Array(row.input.utf8))
        } catch {
            #expect(error.kind == row.kind)
        }
    }

    @Test func pathOf256OctetsIsAcceptedAnd257Refused() throws {
        // local 64 + "@" + domain; "<" and ">" count towards the 256 of RFC 5321 §4.5.3.1.3.
        let local = String(repeating: "a", count: 64)
        func domain(_ length: Int) -> String {
            var labels: [String] = []
            var remaining = length
            while remaining > 0 {
                let size = min(63, remaining)
                labels.append(String(repeating: "d", count: size))
                remaining -= size + 1
            }
            return labels.joined(separator: ".")
        }
        let fits = domain(189) // 1 + 64 + 1 + 189 + 1 = 256
        #expect(throws: Never.self) { try PathParser.parseForwardPath("<\(local)@\(fits)>") }
        let tooLong = domain(190)
        #expect(throws: ParserError.self) { try PathParser.parseForwardPath("<\(local)@\(tooLong)>") }
    }

    @Test(arguments: valid)
    func encodedCommandsParseBack(_ row: ValidRow) throws {
        var encoded = row.expected.encoded
        let bytes = encoded.readBytes(length: encoded.readableBytes)!
        #expect(bytes.suffix(2) == [13, 10])
        #expect(try CommandParser.parseCommand(Array(bytes.dropLast(2))) == row.expected)
    }
}

struct CommandLineReaderTests {
    @Test func framesCRLFLinesAndKeepsTheRest() {
        var reader = CommandLineReader()
        var buffer = ByteBuffer(string: "EHLO a\r\nMAIL FROM:<>\r\nRC")
        #expect(reader.read(&buffer) == .line(Array("EHLO a".utf8)))
        #expect(reader.read(&buffer) == .line(Array("MAIL FROM:<>".utf8)))
        #expect(reader.read(&buffer) == .incomplete)
        buffer.writeString("PT TO:<a@b>\r\n")
        #expect(reader.read(&buffer) == .line(Array("RCPT TO:<a@b>".utf8)))
    }

    struct ErrorRow: Sendable, CustomTestStringConvertible {
        var input: String
        var expected: CommandLineReader.Result
        var testDescription: String { input.debugDescription }
    }

    static let errors: [ErrorRow] = [
        ErrorRow(input: "NOOP\n", expected: .bareLineEnding),
        ErrorRow(input: "NO\rOP\r\n", expected: .bareLineEnding),
        ErrorRow(input: "NOOP\r\r\n", expected: .bareLineEnding),
        ErrorRow(input: "NO\0OP\r\n", expected: .nulCharacter),
        ErrorRow(input: String(repeating: "A", count: 511) + "\r\n", expected: .lineTooLong),
    ]

    @Test(arguments: errors)
    func refusesBadLines(_ row: ErrorRow) {
        var reader = CommandLineReader()
        var buffer = ByteBuffer(string: row.input)
        #expect(reader.read(&buffer) == row.expected)
        #expect(buffer.readableBytes == 0)
    }

    @Test func lineOf512OctetsIsAccepted() {
        var reader = CommandLineReader()
        var buffer = ByteBuffer(string: "NOOP " + String(repeating: "A", count: 505) + "\r\n")
        guard case .line(let line) = reader.read(&buffer) else {
            Issue.record("expected a line")
            return
        }
        #expect(line.count == 510)
    }

    @Test func overlongLineIsSkippedWithoutBuffering() {
        var reader = CommandLineReader()
        var buffer = ByteBuffer(string: String(repeating: "A", count: 10_000))
        #expect(reader.read(&buffer) == .incomplete)
        #expect(buffer.readableBytes == 0, "an overlong line is dropped as it arrives")
        buffer.writeString(String(repeating: "B", count: 10_000) + "\r\nNOOP\r\n")
        #expect(reader.read(&buffer) == .lineTooLong)
        #expect(reader.read(&buffer) == .line(Array("NOOP".utf8)))
    }

    @Test func incompleteInputWaits() {
        var reader = CommandLineReader()
        var buffer = ByteBuffer(string: "MAIL FROM:<a@b>\r")
        #expect(reader.read(&buffer) == .incomplete)
        buffer.writeString("\n")
        #expect(reader.read(&buffer) == .line(Array("MAIL FROM:<a@b>".utf8)))
    }
}
