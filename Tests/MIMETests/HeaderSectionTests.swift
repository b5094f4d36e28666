import Testing
@testable import MIME

@Suite struct HeaderSectionTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func fieldsFoldingAndBody() throws {
        let message = bytes("From: a@example.com\r\nSubject: one\r\n two\r\nX-Empty:\r\n\r\nbody\r\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.map(\.name) == ["From", "Subject", "X-Empty"])
        #expect(section.fields[1].unfoldedValue(in: message) == "one two")
        #expect(section.fields[2].unfoldedValue(in: message) == "")
        #expect(Array(message[section.fields[1].range]) == bytes("Subject: one\r\n two"))
        #expect(Array(message[section.bodyStart...]) == bytes("body\r\n"))
        #expect(section.first("from")?.unfoldedValue(in: message) == "a@example.com")
    }

    @Test func obsoleteSpaceBeforeColonAndNoBody() throws {
        let message = bytes("From : a@example.com\r\nTo: b@example.com")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.map(\.name) == ["From", "To"])
        #expect(section.fields[1].unfoldedValue(in: message) == "b@example.com")
        #expect(section.bodyStart == message.count)
        let ended = bytes("From: a@example.com\r\n")
        #expect(try HeaderSection(parsing: ended).fields.first?.range == 0..<19)
    }

    // The bytes that fooled the From check or trapped DKIM (issue: bare CR before From, a field without a colon).
    @Test(arguments: [
        ("Subject: hi\rFrom: ceo@victim.example\r\n\r\n", HeaderSection.Malformed.bareCarriageReturn(line: 1)),
        ("Subject: hi\nFrom: ceo@victim.example\r\n\r\n", .bareLineFeed(line: 1)),
        ("From\r\n\r\nbody", .notAField(line: 1)),
        ("Subject: x\r\nFrom\r\n\r\n", .notAField(line: 2)),
        (" folded: first\r\n\r\n", .continuationFirst),
        (": no name\r\n\r\n", .notAField(line: 1)),
        ("Subject: a\u{0}b\r\n\r\n", .nulCharacter(line: 1)),
        ("Subject: x\r", .bareCarriageReturn(line: 1)),
    ])
    func malformedSectionsAreRefused(_ input: String, _ expected: HeaderSection.Malformed) {
        #expect(throws: expected) { try HeaderSection(parsing: Array(input.utf8)) }
    }

    @Test func bareLineEndsInTheBodyAreTheBodysBusiness() throws {
        let message = bytes("Subject: x\r\n\r\nline\nline\r")
        #expect(try HeaderSection(parsing: message).bodyStart == 14)
    }

    @Test func limitsHold() {
        let many = String(repeating: "X-A: b\r\n", count: 11) + "\r\n"
        #expect(throws: HeaderSection.Malformed.tooManyFields(limit: 10)) {
            try HeaderSection(parsing: Array(many.utf8), limits: .init(maximumSize: 1 << 20, maximumFields: 10))
        }
        let large = "X-A: " + String(repeating: "b", count: 200) + "\r\n\r\n"
        #expect(throws: HeaderSection.Malformed.tooLarge(limit: 100)) {
            try HeaderSection(parsing: Array(large.utf8), limits: .init(maximumSize: 100, maximumFields: 10))
        }
    }

    @Test func slicesKeepTheirIndices() throws {
        let message = bytes("junkFrom: a@example.com\r\n\r\nx")
        let section = try HeaderSection(parsing: message[4...])
        #expect(section.fields.first?.range == 4..<23)
        #expect(section.bodyStart == 27)
    }
}

@Suite struct AddressListTests {
    func parse(_ text: String) throws -> AddressList { try AddressList(parsing: text) }

    @Test(arguments: [
        ("a@example.com", ["a@example.com"]),
        ("<a@example.com>", ["a@example.com"]),
        ("Shop <shop@mine.example>", ["shop@mine.example"]),
        ("\"Shop, Inc.\" <shop@mine.example>, b@x.example", ["shop@mine.example", "b@x.example"]),
        ("john . smith @ example . com", ["john.smith@example.com"]),
        ("\"john smith\"@example.com", ["\"john smith\"@example.com"]),
        ("a@[192.0.2.1]", ["a@[192.0.2.1]"]),
        ("<@relay.example,@other.example:a@example.com>", ["a@example.com"]),
        ("a@example.com, , b@example.com,", ["a@example.com", "b@example.com"]),
        ("J. Smith <j@example.com>", ["j@example.com"]),
        ("山田 <yamada@example.jp>", ["yamada@example.jp"]),
        ("ユーザー@例え.jp", ["ユーザー@例え.jp"]),
        ("a@example.com (comment (nested) here)", ["a@example.com"]),
    ])
    func validAddresses(_ text: String, _ expected: [String]) throws {
        #expect(try parse(text).mailboxes.map(\.address) == expected)
    }

    @Test func groups() throws {
        let list = try parse("undisclosed-recipients:;")
        #expect(list.addresses == [.group(displayName: "undisclosed-recipients", members: [])])
        #expect(list.mailboxes.isEmpty && list.containsGroup)
        let team = try parse("Team: a@example.com, B <b@example.com>;, c@example.com")
        #expect(team.mailboxes.map(\.address) == ["a@example.com", "b@example.com", "c@example.com"])
    }

    @Test func displayNamesAsShown() throws {
        #expect(try parse("=?UTF-8?B?5bGx55Sw?= <y@example.jp>").mailboxes.first?.displayName == "山田")
        #expect(try parse("=?utf-8?q?ceo=40victim=2Eexample?= <shop@mine.example>").mailboxes.first?.displayName
                == "ceo@victim.example")
        #expect(try parse("=?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <y@example.jp>").mailboxes.first?.displayName == "山田")
        #expect(try parse("\"=?utf-8?B?Y2VvQHZpY3RpbS5leGFtcGxl?=\" <a@mine.example>").mailboxes.first?.displayName
                == "ceo@victim.example")
        #expect(try parse("=?utf-8?q?a?= =?utf-8?q?b?= c <x@example.com>").mailboxes.first?.displayName == "ab c")
        #expect(try parse("shop@mine.example (ceo@victim.example)").comments == ["ceo@victim.example"])
        #expect(try parse("a@b.example (=?utf-8?b?Y2VvQHZpY3RpbS5leGFtcGxl?=)").comments == ["ceo@victim.example"])
    }

    // Each of these once passed the From check: none names a mailbox, or it is not one address list.
    @Test(arguments: [
        "CEO", "=?utf-8?b?Q0VP?=", "ceo", "\"ceo@victim.example\"", "ceo@victim.example <shop@mine.example>",
        "a@", "@example.com", "a@example..com", "a@.example.com", "<a@example.com", "a@example.com>", "(unterminated",
        "\"unterminated", "a@[1.2.3.4", "Team: a@example.com", "A: B: c@example.com;;", "a\\@b@example.com",
        "a@example.com\u{1}", String(repeating: "(", count: 40) + "x" + String(repeating: ")", count: 40),
    ])
    func malformedAreRefused(_ text: String) {
        #expect(throws: AddressList.SyntaxError.self) { try parse(text) }
    }

    @Test func emptyValueHasNoAddress() throws {
        #expect(try parse("").addresses.isEmpty)
        #expect(try parse(" , ").addresses.isEmpty)
    }
}
