import Crypto
import Foundation
import Testing
@testable import API
import MIME
import Relay
import Spool
import Store

@Suite struct SignatureV4Tests {
    /// AWS's published test vector "get-vanilla" (aws-sig-v4-test-suite).
    @Test func awsTestVector() throws {
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        let authorization = try #require(SignatureV4.Authorization(header))
        let request = SignatureV4(method: "GET", rawPath: "/", rawQuery: "",
                                  headers: ["host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z", "authorization": header],
                                  body: [])
        #expect(request.signature(secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", authorization: authorization,
                                  amzDate: "20150830T123600Z") == authorization.signature)
    }

    func signed(body: [UInt8], path: String = "/v2/email/outbound-emails", date: String = "20261129T062559Z") -> SignatureV4 {
        var request = SignatureV4(method: "POST", rawPath: path, rawQuery: "", headers: [
            "host": "127.0.0.1:8025", "x-amz-date": date, "content-type": "application/json"], body: body)
        let unsigned = SignatureV4.Authorization(
            "AWS4-HMAC-SHA256 Credential=HKTEST/\(date.prefix(8))/ap-northeast-1/ses/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=00")!
        let signature = request.signature(secret: "secret", authorization: unsigned, amzDate: date)
        request.headers["authorization"] = "AWS4-HMAC-SHA256 Credential=HKTEST/\(date.prefix(8))/ap-northeast-1/ses/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=\(signature)"
        return request
    }

    @Test func verifiesAndRejects() {
        let now = SignatureV4.parse("20261129T063000Z")!
        let request = signed(body: Array("{}".utf8))
        #expect(request.verify(now: now) { $0 == "HKTEST" ? "secret" : nil } == "HKTEST")
        #expect(request.verify(now: now) { _ in "other secret" } == nil)
        #expect(request.verify(now: now) { _ in nil } == nil)
        var tampered = request
        tampered.body = Array("{\"x\":1}".utf8)
        #expect(tampered.verify(now: now) { _ in "secret" } == nil, "the payload is signed")
        #expect(request.verify(now: now.addingTimeInterval(3600)) { _ in "secret" } == nil, "stale X-Amz-Date")
    }

    // Guards against a captured request sent again with another body: the client's payload hash is checked, never trusted.
    @Test func theBodyIsHashedNotTheClaim() {
        let now = SignatureV4.parse("20261129T063000Z")!
        let original = Array("{\"a\":1}".utf8)
        var request = signed(body: original)
        request.headers["x-amz-content-sha256"] = SignatureV4.hex(SHA256.hash(data: original))
        #expect(request.verify(now: now) { _ in "secret" } == "HKTEST")
        var replayed = request
        replayed.body = Array("{\"a\":2}".utf8)
        #expect(replayed.verify(now: now) { _ in "secret" } == nil, "the declared hash no longer matches the body")
        var declared = request
        declared.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        #expect(declared.verify(now: now) { _ in "secret" } == nil)
    }

    @Test func aSignatureIsAcceptedOnce() {
        let memory = SignatureReplayMemory(window: 60, capacity: 2)
        let now = Date()
        #expect(memory.firstUse("a", now: now))
        #expect(!memory.firstUse("a", now: now.addingTimeInterval(30)), "replayed within the window")
        #expect(memory.firstUse("b", now: now))
        #expect(!memory.firstUse("c", now: now), "full of live signatures: refused, not forgotten")
        #expect(memory.firstUse("c", now: now.addingTimeInterval(61)), "expired entries make room")
        // One key's flood refuses that key, not the others.
        let perKey = SignatureReplayMemory(window: 60, capacity: 100, capacityPerKey: 2)
        #expect(perKey.use("s1", key: "A", now: now) == .first && perKey.use("s2", key: "A", now: now) == .first)
        #expect(perKey.use("s3", key: "A", now: now) == .busy)
        #expect(perKey.use("s4", key: "B", now: now) == .first)
        // A failed request may be retried with the same signature; a successful one may not.
        let retries = SignatureReplayMemory(window: 60)
        #expect(retries.firstUse("s", request: "r1", now: now))
        retries.finish(request: "r2", failed: true)
        #expect(!retries.firstUse("s", request: "r2", now: now), "only the admitted request releases its signature")
        retries.finish(request: "r1", failed: true)
        #expect(retries.firstUse("s", request: "r3", now: now))
        retries.finish(request: "r3", failed: false)
        #expect(!retries.firstUse("s", request: "r4", now: now))
    }

    // A restart, a crash included, does not forget the signatures used while they are valid.
    @Test func theReplayMemorySurvivesARestart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/signatures-used"
        let now = Date()
        let before = SignatureReplayMemory(window: 60, journal: ReplayJournal(path: path, window: 60), now: now)
        #expect(before.use("aa", key: "K1", request: "r1", now: now) == .first)
        #expect(before.use("bb", key: "K1", request: "r2", now: now) == .first)
        #expect(before.use("cc", key: "K2", request: "r3", now: now.addingTimeInterval(-50)) == .first)
        before.finish(request: "r2", failed: true)  // forgotten: may be retried, after a restart too
        let after = SignatureReplayMemory(window: 60, journal: ReplayJournal(path: path, window: 60), now: now.addingTimeInterval(20))
        #expect(after.use("aa", key: "K1", now: now.addingTimeInterval(20)) == .replay)
        #expect(after.use("bb", key: "K1", now: now.addingTimeInterval(20)) == .first)
        #expect(after.use("cc", key: "K2", now: now.addingTimeInterval(20)) == .first, "expired before the restart")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        // A torn last line is skipped. Past the window the file becomes the previous generation, still read;
        // past two, the generation before is gone, everything in it expired.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("99999999999 K1 dd\n12".utf8))
        try handle.close()
        let journal = ReplayJournal(path: path, window: 60)
        // bb and cc were used again after the restart.
        #expect(journal.load(now: now.addingTimeInterval(30)).map(\.signature) == ["aa", "bb", "cc", "dd"])
        journal.recordUse("ee", key: "K1", expires: now.addingTimeInterval(130), now: now.addingTimeInterval(70))
        #expect(FileManager.default.fileExists(atPath: path + ".previous"))
        #expect(journal.load(now: now.addingTimeInterval(70)).map(\.signature) == ["bb", "cc", "ee", "dd"])
        journal.recordUse("ff", key: "K1", expires: now.addingTimeInterval(200), now: now.addingTimeInterval(140))
        // (dd went with its generation: its made-up expiry is later than any real one, a window after its writing.)
        #expect(journal.load(now: now.addingTimeInterval(140)).map(\.signature) == ["ff"])
        let remaining = String(decoding: FileManager.default.contents(atPath: path + ".previous") ?? Data(), as: UTF8.self)
        #expect(remaining.contains(" ee\n") && !remaining.contains(" aa\n"))
    }

    // Failed requests add lines, not live signatures: a full generation is rewritten as the live ones.
    // A start later than now (a clock set back) is not believed; a line cut short does not swallow the next.
    @Test func theReplayJournalStaysBounded() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/signatures-used"
        let now = Date()
        let memory = SignatureReplayMemory(window: 60, journal: ReplayJournal(path: path, window: 60, maximumLines: 10), now: now)
        #expect(memory.use("kept", key: "K", request: "ok", now: now) == .first)
        for attempt in 0..<50 {
            #expect(memory.use("retried", key: "K", request: "r\(attempt)", now: now) == .first)
            memory.finish(request: "r\(attempt)", failed: true)
        }
        let lines = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self).split(separator: "\n")
        #expect(lines.count <= 11, "\(lines.count) lines")
        #expect(ReplayJournal(path: path, window: 60).load(now: now).map(\.signature) == ["kept"])

        let future = directory + "/future"
        try Data("# started \(now.timeIntervalSince1970 + 86_400)\n1 K old\n".utf8).write(to: URL(fileURLWithPath: future))
        ReplayJournal(path: future, window: 60).recordUse("new", key: "K", expires: now.addingTimeInterval(60), now: now)
        #expect(ReplayJournal.started(future).map { abs($0.timeIntervalSince(now)) < 1 } == true, "rotated")
        #expect(FileManager.default.fileExists(atPath: future + ".previous"))

        let torn = directory + "/torn"
        try Data("# started \(now.timeIntervalSince1970)\n\(now.timeIntervalSince1970 + 60) K cut".utf8).write(to: URL(fileURLWithPath: torn))
        ReplayJournal(path: torn, window: 60).recordUse("next", key: "K", expires: now.addingTimeInterval(60), now: now)
        #expect(ReplayJournal(path: torn, window: 60).load(now: now).map(\.signature).contains("next"))
    }

    @Test func hostileCanonicalRequestsDoNotTrap() {
        let request = SignatureV4(method: "GET", rawPath: "", rawQuery: "&&=&a==b&\u{0}", headers: ["authorization": "AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=, Signature="], body: [])
        _ = request.canonicalRequest(SignatureV4.Authorization("AWS4-HMAC-SHA256 Credential=a/b/c/ses/aws4_request, SignedHeaders=host, Signature=x")!)
        #expect(request.precheck() == nil)
    }

    @Test func pathIsEncodedAgainAsBotocoreDoes() {
        #expect(SignatureV4.uriEncode("/v2/email/suppression/addresses/a%40b.example", keepSlash: true)
            == "/v2/email/suppression/addresses/a%2540b.example")
    }
}

@Suite struct TemplateRendererTests {
    @Test func rendersTextUnescapedAndHTMLEscaped() throws {
        let renderer = try TemplateRenderer(subject: "{{name}}様", text: "{{name}}: {{points}}", html: "<p>{{name}}</p>")
        let rendered = try renderer.render(["name": .string("<b>太郎</b>"), "points": .number(120)])
        #expect(rendered.subject == "<b>太郎</b>様")
        #expect(rendered.text == "<b>太郎</b>: 120")
        #expect(rendered.html == "<p>&lt;b&gt;太郎&lt;/b&gt;</p>")
    }

    @Test func missingVariablesAreAnErrorOrADefault() throws {
        let strict = try TemplateRenderer(subject: "{{name}}", text: "{{#items}}{{title}}{{/items}} {{user.id}}", html: nil,
                                          defaults: ["user": .object(["id": .number(1)])], missing: .error)
        #expect(strict.required == ["name", "items", "user"])
        #expect(throws: APIError.self) { try strict.render([:]) }
        #expect(try strict.render(["name": .string("a"), "items": .array([])]).text == " 1")
        let lenient = try TemplateRenderer(subject: "{{name}}", text: "x", html: nil, missing: .default)
        #expect(try lenient.render([:]).subject == "")
    }

    @Test func unparsableTemplatesAreRefused() {
        #expect(throws: APIError.self) { try TemplateRenderer(subject: "{{#open}}", text: nil, html: nil) }
    }

    @Test(arguments: ["{{=<% %>=}}<%name%>", "{{<parent}}{{/parent}}", "{{$block}}x{{/block}}", "{{/closes}}",
                      String(repeating: "{{#a}}", count: 40) + String(repeating: "{{/a}}", count: 40)])
    func hostileShapesAreRefused(_ template: String) {
        #expect(throws: APIError.self) { try TemplateRenderer(subject: "s", text: template, html: nil) }
    }

    // Guards against nested sections multiplying a small request into gigabytes.
    // Found by review: an object's transforms handed Mustache an unbudgeted sequence; a combining mark
    // hid tags from the shape check; reflection reached a value's raw storage.
    @Test func objectTransformsAndHiddenTagsAreBounded() throws {
        let keys = Dictionary(uniqueKeysWithValues: (0..<1000).map { ("k\($0)", JSONValue.number(Double($0))) })
        let enumerated = try TemplateRenderer(subject: "s", text: "{{#enumerated(o)}}{{#enumerated(o)}}{{#enumerated(o)}}x{{/enumerated(o)}}{{/enumerated(o)}}{{/enumerated(o)}}", html: nil)
        #expect(throws: APIError.self) { try enumerated.render(["o": .object(keys)], budget: 1 << 20) }
        let hidden = String(repeating: "{{\u{301} {{#a}}", count: 100) + String(repeating: "{{\u{301} {{/a}}", count: 100)
        #expect(throws: APIError.self) { try TemplateRenderer(subject: "s", text: hidden, html: nil) }
        let reflect = try TemplateRenderer(subject: "s", text: String(repeating: "{{big.text}}{{#l.items}}x{{/l.items}}", count: 100), html: nil)
        let rendered = try reflect.render(["big": .string(String(repeating: "y", count: 100_000)), "l": .array([.number(1)])], budget: 1 << 20)
        #expect(rendered.text == "", "no raw storage through reflection")
        let sorted = try TemplateRenderer(subject: "s", text: "{{#sorted(o)}}{{key}}={{value}};{{/sorted(o)}}", html: nil)
        #expect(try sorted.render(["o": .object(["b": .number(2), "a": .number(1)])]).text == "a=1;b=2;")
    }

    @Test func renderingIsBoundedByItsBudget() throws {
        let items = JSONValue.array((0..<1000).map { .number(Double($0)) })
        let bomb = try TemplateRenderer(subject: "s", text: "{{#l}}{{#l}}{{#l}}xxxxxxxxxx{{/l}}{{/l}}{{/l}}", html: nil)
        #expect(throws: APIError.self) { try bomb.render(["l": items], budget: 1 << 20) }
        let wide = try TemplateRenderer(subject: "s", text: String(repeating: "{{big}}", count: 1000), html: nil)
        #expect(throws: APIError.self) { try wide.render(["big": .string(String(repeating: "x", count: 10_000))], budget: 1 << 20) }
        let fine = try TemplateRenderer(subject: "{{#l}}{{.}},{{/l}}", text: "{{uppercased(name)}} {{count(l)}}", html: nil)
        let rendered = try fine.render(["l": .array([.string("a"), .string("b")]), "name": .string("taro")])
        #expect(rendered.subject == "a,b,")
        #expect(rendered.text == "TARO 2")
    }
}

@Suite struct MessageDraftTests {
    let builder = MessageBuilder(hostname: "relay.test")
    let limits = MessageDraft.Limits(maximumMessageSize: 1 << 20, maximumExpandedSize: 4 << 20)

    func draft(recipients: Int, attachment: Int = 0, marketing: Bool = false) -> MessageDraft {
        var base = Composition(from: NameAddress(address: "shop@mine.example"), subject: "s")
        base.text = "hello -name-"
        if attachment > 0 { base.attachments = [Attachment(filename: "a.bin", contentType: nil, data: Array(repeating: 1, count: attachment))] }
        let personalizations = (0..<recipients).map { Personalization(to: [NameAddress(address: "r\($0)@else.example")], substitutions: ["-name-": "x"]) }
        return MessageDraft(base: base, personalizations: personalizations, metadata: MessageMetadata(marketing: marketing))
    }

    // Guards against a thousand recipients times a large attachment being built before any limit is seen.
    @Test func theExpandedSizeIsCheckedBeforeBuilding() throws {
        #expect(throws: APIError.self) { try draft(recipients: 100, attachment: 100_000).messages(builder: builder, limits: limits) }
        #expect(try draft(recipients: 10, attachment: 100_000).messages(builder: builder, limits: limits).count == 10)
    }

    @Test func substitutionsAreBounded() throws {
        #expect(throws: APIError.self) {
            _ = try MessageDraft.substitute(String(repeating: "a", count: 1000), ["a": String(repeating: "b", count: 10_000)], limit: 1 << 20)
        }
        #expect(try MessageDraft.substitute("hi -n-", ["-n-": "taro", "": "ignored"], limit: 100) == "hi taro")
    }

    // One-click unsubscribe names each copy's own recipient, not the first of the message.
    @Test func marketingMailIsOneCopyPerRecipient() throws {
        var marketing = draft(recipients: 1, marketing: true)
        marketing.personalizations[0].cc = [NameAddress(address: "cc@else.example")]
        let links = UnsubscribeLinks(key: SymmetricKey(size: .bits256), base: "https://relay.test", mailDomain: nil)
        let messages = try marketing.messages(builder: builder, unsubscribe: links, limits: limits)
        #expect(messages.map { $0.recipients } == [["r0@else.example"], ["cc@else.example"]])
        #expect(Set(messages.map { $0.id }).count == 2)
    }
}

@Suite struct EventCSVTests {
    @Test func quotesAndNeutralisesFormulas() {
        #expect(EventCSV.quote("plain") == "plain")
        #expect(EventCSV.quote("a,b") == "\"a,b\"")
        #expect(EventCSV.quote("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(EventCSV.quote("=HYPERLINK(1)") == "'=HYPERLINK(1)")
        #expect(EventCSV.quote("\t=1+1") == "'\t=1+1")
        #expect(EventCSV.quote("\r=1+1") == "\"'\r=1+1\"")
    }
}

@Suite struct RawMessageTests {
    @Test func addressesAreReadByTheOneParser() throws {
        let raw = Array("From: A <a@x.example>\r\nTo: \"B, C\" <b@y.example>, d@y.example\r\nBcc: e@z.example,\r\n f@z.example\r\nSubject: s\r\n\r\nBcc: body\r\n".utf8)
        let header = try HeaderSection(parsing: raw)
        #expect(RawMessage.mailboxes(in: header, of: raw, named: ["To"]) == ["b@y.example", "d@y.example"])
        #expect(RawMessage.mailboxes(in: header, of: raw, named: ["bcc"]) == ["e@z.example", "f@z.example"])
    }

    // Guards against `Subject: hi\rFrom: ceo@victim.example`, one field to the check and two lines on the wire.
    @Test func lineEndsAreCRLFOrRefused() throws {
        #expect(try RawMessage.lineEndings(Array("a: b\nc: d\n\nbody\n".utf8)) == Array("a: b\r\nc: d\r\n\r\nbody\r\n".utf8))
        #expect(try RawMessage.lineEndings(Array("a: b\r\n\r\nx\r\n".utf8)) == Array("a: b\r\n\r\nx\r\n".utf8))
        for bad in ["Subject: hi\rFrom: ceo@victim.example\r\n\r\n", "a: b\r\nc: d\n\r\n", "a: b\r\n\r\nbody\r"] {
            #expect(throws: APIError.self) { try RawMessage.lineEndings(Array(bad.utf8)) }
        }
    }
}
