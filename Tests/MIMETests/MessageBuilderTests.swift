import Foundation
import Testing
@testable import MIME

@Suite struct MessageBuilderTests {
    let builder = MessageBuilder(hostname: "relay.example")

    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    func composition(subject: String = "Hello") -> Composition {
        var composition = Composition(from: NameAddress(name: "Shop", address: "shop@example.com"), subject: subject)
        composition.to = [NameAddress(address: "taro@example.jp")]
        composition.text = "Hi"
        return composition
    }

    @Test func bccIsEnvelopeOnly() throws {
        var message = composition()
        message.bcc = [NameAddress(address: "hidden@example.net")]
        let (bytes, _) = try builder.build(message)
        #expect(!text(bytes).lowercased().contains("hidden@example.net"))
        #expect(message.recipients == ["taro@example.jp", "hidden@example.net"])
    }

    @Test(arguments: ["Hi\r\nBcc: victim@example.org", "Hi\nX: y", "Hi\rX: y"])
    func lineBreaksInFieldsAreRefused(_ subject: String) {
        #expect(throws: MIMEError.lineBreakInField("subject")) { try builder.build(composition(subject: subject)) }
        var message = composition()
        message.headers = [("X-Campaign", subject)]
        #expect(throws: MIMEError.lineBreakInField("header X-Campaign")) { try builder.build(message) }
        #expect(throws: MIMEError.self) { try NameAddress(parsing: "Eve <eve@example.com>\r\nBcc: x@example.org") }
    }

    @Test func reservedAndMalformedHeadersAreRefused() {
        var message = composition()
        message.headers = [("From", "someone@example.org")]
        #expect(throws: MIMEError.reservedHeader("From")) { try builder.build(message) }
        message.headers = [("Bad Name", "x")]
        #expect(throws: MIMEError.invalidHeaderName("Bad Name")) { try builder.build(message) }
    }

    @Test func encodedWordsStayWithin75Characters() throws {
        let subject = String(repeating: "ご注文ありがとうございます。", count: 6)
        for charset in [Charset.utf8, .iso2022JP] {
            let encoded = try EncodedWord.encode(subject, charset: charset)
            let words = encoded.components(separatedBy: "\r\n ")
            #expect(words.count > 1)
            for word in words {
                #expect(word.count <= 75)
                #expect(word.hasPrefix("=?\(charset.rawValue)?B?") && word.hasSuffix("?="))
            }
        }
        #expect(try EncodedWord.encode("Plain ASCII", charset: .utf8) == "Plain ASCII")
        // Printable ASCII stays as it is while every run between spaces fits a line; a longer run, or a control, is encoded.
        let longest = String(repeating: "a", count: EncodedWord.maximumWord)
        #expect(try EncodedWord.encode("x " + longest + " y", charset: .utf8) == "x " + longest + " y")
        #expect(try EncodedWord.encode(longest + "a", charset: .utf8).hasPrefix("=?UTF-8?B?"))
        #expect(try EncodedWord.encode("tab\there", charset: .utf8).hasPrefix("=?UTF-8?B?"))
        // Whole characters per word, each word as full as it may be: read back, the text is the same.
        let mixed = String(repeating: "Café 👩‍👩‍👧 ｶﾀｶﾅ e\u{301} 漢字", count: 8)
        for (text, charset) in [(subject, Charset.utf8), (subject, .iso2022JP), (mixed, .utf8)] {
            let encoded = try EncodedWord.encode(text, charset: charset)
            // Unfolded, as a reader sees the field.
            #expect(EncodedWords.decodeText(encoded.replacingOccurrences(of: "\r\n", with: "")) == text)
        }
        let words = try EncodedWord.encode(mixed, charset: .utf8).components(separatedBy: "\r\n ")
        for (word, next) in zip(words, words.dropFirst()) {
            // The next word's first character would not have fitted.
            let bytes = Data(base64Encoded: String(word.dropFirst(10).dropLast(2)))?.count ?? 0
            let first = EncodedWords.decodeText(next).first.map { String($0).utf8.count } ?? 0
            #expect(bytes + first > 45)
        }
    }

    @Test func iso2022JPIsSevenBitJISX0208() throws {
        // こんにちは: ESC $ B, JIS X 0208 row 4, ESC ( B.
        #expect(try ISO2022JP.encode("こんにちは") == [0x1B, 0x24, 0x42, 0x24, 0x33, 0x24, 0x73, 0x24, 0x4B, 0x24, 0x41,
                                                     0x24, 0x4F, 0x1B, 0x28, 0x42])
        // Half-width katakana become full-width, voiced marks composed.
        #expect(try ISO2022JP.encode("ｶﾞ") == ISO2022JP.encode("ガ"))
        #expect(throws: MIMEError.self) { try ISO2022JP.encode("emoji 😀") }
    }

    @Test func iso2022JPMessageIsAllSevenBit() throws {
        var message = composition(subject: "ご注文確認")
        message.charset = .iso2022JP
        message.text = "山田様\nご注文ありがとうございました。"
        let (bytes, _) = try builder.build(message)
        #expect(bytes.allSatisfy { $0 < 0x80 })
        #expect(text(bytes).contains("Content-Type: text/plain; charset=ISO-2022-JP"))
        #expect(text(bytes).contains("Content-Transfer-Encoding: 7bit"))
    }

    @Test func quotedPrintableKeepsLinesShortAndBreaksHard() {
        let input = Array((String(repeating: "aé=", count: 60) + "\nend \n.dot").utf8)
        let encoded = text(QuotedPrintable.encode(input))
        for line in encoded.components(separatedBy: "\r\n") { #expect(line.count <= 76) }
        #expect(encoded.contains("end=20\r\n"))
        #expect(encoded.contains("\r\n=2Edot"))
        #expect(encoded.contains("=3D"))
    }

    @Test func structureFollowsTheParts() throws {
        var message = composition()
        message.html = "<p>Hi <img src=\"cid:logo\"></p>"
        message.attachments = [Attachment(filename: "logo.png", data: [0x89, 0x50], inline: true, contentID: "logo"),
                               Attachment(filename: "請求書.pdf", data: Array(repeating: 0x25, count: 200))]
        let (bytes, id) = try builder.build(message)
        let rendered = text(bytes)
        #expect(id.hasSuffix("@relay.example"))
        let mixed = try #require(rendered.range(of: "multipart/mixed"))
        let related = try #require(rendered.range(of: "multipart/related"))
        let alternative = try #require(rendered.range(of: "multipart/alternative"))
        #expect(mixed.lowerBound < related.lowerBound && related.lowerBound < alternative.lowerBound)
        #expect(rendered.contains("Content-ID: <logo>"))
        #expect(rendered.contains("filename=\"=?UTF-8?B?"))
        for line in rendered.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 998) }
        #expect(!rendered.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
    }

    @Test func addressesParse() throws {
        #expect(try NameAddress(parsing: "\"Yamada, Taro\" <taro@example.jp>") == NameAddress(name: "Yamada, Taro", address: "taro@example.jp"))
        #expect(try NameAddress(parsing: "taro@example.jp") == NameAddress(address: "taro@example.jp"))
        #expect(throws: MIMEError.invalidAddress("not-an-address")) { try NameAddress(parsing: "not-an-address") }
        #expect(try NameAddress(name: "Yamada, Taro", address: "t@example.jp").render(charset: .utf8) == "\"Yamada, Taro\" <t@example.jp>")
    }
}

@Suite struct MailDateTests {
    @Test func formatsInUTC() {
        let date = Date(timeIntervalSince1970: 1_795_933_559.123) // 2026-11-29T06:25:59.123Z (a Sunday)
        #expect(MailDate.rfc5322(date) == "Sun, 29 Nov 2026 06:25:59 +0000")
        #expect(MailDate.iso8601(date) == "2026-11-29T06:25:59.123Z")
        #expect(MailDate.iso8601(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
    }

    @Test func lineBreaksBecomeCRLF() {
        #expect(MessageBuilder.crlf(Array("a\nb\rc\r\nd".utf8)) == Array("a\r\nb\r\nc\r\nd".utf8))
    }
}

@Suite struct LongHeaderTests {
    // Found by fuzz-mime: a long file name (or subject, or header value) made a header line over 998 octets.
    @Test func everyLineStaysWithin998Octets() throws {
        var composition = Composition(from: NameAddress(address: "shop@fuzz.example"), subject: String(repeating: "x", count: 2000))
        composition.to = [NameAddress(address: "a@b.example")]
        composition.text = "t"
        composition.headers = [("X-Long", String(repeating: "word ", count: 400)), ("X-Run", String(repeating: "y", count: 1500))]
        composition.attachments = [Attachment(filename: "\u{3}" + String(repeating: "x", count: 663), contentType: nil, data: [1]),
                                   Attachment(filename: String(repeating: "名", count: 300), contentType: nil, data: [2]),
                                   Attachment(filename: String(repeating: "x", count: 1070), contentType: nil, data: [0, 0, 0])]
        for charset in [Charset.utf8, .iso2022JP] {
            composition.charset = charset
            let bytes = try MessageBuilder(hostname: "h").build(composition).bytes
            let lines = String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n")
            #expect(lines.allSatisfy { $0.utf8.count <= 998 }, "\(lines.map(\.utf8.count).max() ?? 0)")
            let header = try HeaderSection(parsing: bytes)
            #expect(header.first("X-Long")?.unfoldedValue(in: bytes) == String(repeating: "word ", count: 400).trimmingCharacters(in: .whitespaces))
            #expect(header.first("Subject").map { EncodedWords.decodeText($0.unfoldedValue(in: bytes)) } == String(repeating: "x", count: 2000))
            // The first encoded word stays on the field's first line: no leading space when read back.
            #expect(String(decoding: bytes, as: UTF8.self).contains("Subject: =?"))
        }
    }
}
