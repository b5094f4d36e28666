import NIOCore
import Testing
@testable import SMTPCore

struct DataReaderTests {
    private func read(_ text: String, limit: Int = 1 << 20) -> (DataReader.Result, [UInt8], String) {
        var reader = DataReader(maximumMessageSize: limit)
        var buffer = ByteBuffer(string: text)
        let result = reader.read(&buffer)
        return (result, reader.content, String(buffer: buffer))
    }

    @Test func unstuffsAndStopsAtEndOfData() {
        let (result, content, rest) = read("Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n")
        #expect(result == .complete(nil))
        #expect(String(decoding: content, as: UTF8.self) == "Subject: x\r\n\r\n.leading dot\r\n")
        #expect(rest == "QUIT\r\n", "pipelined bytes after the end stay for the command reader")
    }

    @Test func emptyMessage() {
        let (result, content, _) = read(".\r\n")
        #expect(result == .complete(nil))
        #expect(content.isEmpty)
    }

    @Test func endSplitAcrossReads() {
        var reader = DataReader(maximumMessageSize: 1000)
        var results: [DataReader.Result] = []
        for piece in ["body\r", "\n", ".", "\r", "\n"] {
            var buffer = ByteBuffer(string: piece)
            results.append(reader.read(&buffer))
        }
        #expect(results == [.incomplete, .incomplete, .incomplete, .incomplete, .complete(nil)])
        #expect(String(decoding: reader.content, as: UTF8.self) == "body\r\n")
    }

    /// Every end-of-data variant used in SMTP smuggling: none of them ends the
    /// data, each is a violation, and the smuggled command is swallowed.
    static let smugglingEndings = ["\n.\n", "\r.\r", "\r.\n", "\n.\r", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r",
                                   "\r\n\0.\r\n", "\r\n.\0\r\n"]

    @Test(arguments: smugglingEndings)
    func smugglingEndingIsAViolationAndNotAnEnd(_ ending: String) {
        let text = "Subject: a\r\n\r\nbody" + ending + "MAIL FROM:<evil@example>\r\nRCPT TO:<x@y>\r\nDATA\r\nsmuggled\r\n.\r\nNOOP\r\n"
        let (result, content, rest) = read(text)
        #expect(result == .complete(.bareLineEnding) || result == .complete(.nulCharacter))
        #expect(content.isEmpty, "nothing of a refused message is kept")
        #expect(rest == "NOOP\r\n", "only the real CRLF.CRLF ends the data")
    }

    @Test func sizeLimitKeepsReadingToTheRealEnd() {
        let body = String(repeating: "x", count: 200) + "\r\n"
        let (result, content, rest) = read(body + "more\r\n.\r\nQUIT\r\n", limit: 100)
        #expect(result == .complete(.messageTooLarge))
        #expect(content.isEmpty)
        #expect(rest == "QUIT\r\n")
    }

    @Test func lineOf1000OctetsPassesAnd1001Fails() {
        let ok = read(String(repeating: "a", count: 998) + "\r\n.\r\n")
        #expect(ok.0 == .complete(nil))
        let long = read(String(repeating: "a", count: 999) + "\r\n.\r\n")
        #expect(long.0 == .complete(.lineTooLong))
        let stuffed = read("." + String(repeating: "a", count: 998) + "\r\n.\r\n")
        #expect(stuffed.0 == .complete(nil), "the stuffing dot does not count")
    }

    @Test func dotStuffingRoundTrips() {
        let original = Array(".start\r\n..two\r\nmiddle\r\n.\r\nend".utf8)
        var stuffed = DotStuffing.stuff(original)
        #expect(String(buffer: stuffed) == "..start\r\n...two\r\nmiddle\r\n..\r\nend\r\n.\r\n")
        var reader = DataReader(maximumMessageSize: 1000)
        #expect(reader.read(&stuffed) == .complete(nil))
        #expect(reader.content == Array(".start\r\n..two\r\nmiddle\r\n.\r\nend\r\n".utf8))
    }

    @Test func stuffingMatchesTheByteByByteDefinition() {
        // The bulk-copying stuffer against the plain definition, on random
        // messages made of the bytes that matter.
        func reference(_ message: [UInt8]) -> [UInt8] {
            var output: [UInt8] = []
            var atLineStart = true
            var index = 0
            while index < message.count {
                let byte = message[index]
                if byte == 13 || byte == 10 {
                    output += [13, 10]
                    index += byte == 13 && index + 1 < message.count && message[index + 1] == 10 ? 2 : 1
                    atLineStart = true
                    continue
                }
                if atLineStart && byte == 46 { output.append(46) }
                output.append(byte)
                atLineStart = false
                index += 1
            }
            if !atLineStart { output += [13, 10] }
            return output + [46, 13, 10]
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [Character("a").asciiValue!, 46, 13, 10, 0xE3]
        for _ in 0..<2000 {
            let message = (0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            let stuffed = DotStuffing.stuff(message)
            #expect(Array(stuffed.readableBytesView) == reference(message), "\(message)")
        }
    }

    @Test func stuffingNormalisesBareLineEndings() {
        let stuffed = DotStuffing.stuff(Array("a\nb\rc\r\n.d".utf8))
        #expect(String(buffer: stuffed) == "a\r\nb\r\nc\r\n..d\r\n.\r\n")
    }
}

struct FuzzCorpusTests {
    /// The fuzz entry points' properties hold on hand-picked seeds.
    @Test(arguments: ["EHLO x\r\nMAIL FROM:<a@b> SIZE=10\r\nRCPT TO:<\"q\"@[IPv6:::1]>\r\n", "\r\n\r\n\n\r", "AUTH PLAIN =\r\n"])
    func commandSeeds(_ text: String) {
        FuzzTargets.commandParser(Array(text.utf8))
    }

    @Test(arguments: ["a\r\n.\r\n", "\0..\r\n.\r\n", "x\r.\r\n.\r\n", ""])
    func dataSeeds(_ text: String) {
        FuzzTargets.dataReader(Array(text.utf8))
    }

    @Test func replySeeds() {
        FuzzTargets.replyParser(Array("250-a\r\n250 b\r\n550 5.1.1 no\r\n".utf8))
    }
}

import FuzzTargets
