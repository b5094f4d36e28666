import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import Spool
import Store
import Testing
@testable import Relay

@Suite struct TrackingLinksTests {
    let links = TrackingLinks(key: SymmetricKey(size: .bits256), base: "https://mail.example")

    @Test func tokensRoundTripAndEveryAlteredByteIsRefused() throws {
        let id = MessageID.generate()
        let open = links.token(.open, message: id, position: 3)
        #expect(links.decode(open) == TrackingLinks.Target(kind: .open, message: id, position: 3, url: nil))
        let click = links.token(.click, message: id, position: 0, url: "https://shop.example/a?b=1&c=日本")
        #expect(links.decode(click)?.url == "https://shop.example/a?b=1&c=日本")
        for index in click.indices {
            var altered = click
            let replacement: Character = click[index] == "A" ? "B" : "A"
            altered.replaceSubrange(index...index, with: String(replacement))
            #expect(links.decode(altered) == nil, "a token changed at \(click.distance(from: click.startIndex, to: index)) verifies")
        }
        // Another server's key, garbage, and sizes at the edges.
        #expect(TrackingLinks(key: SymmetricKey(size: .bits256), base: nil).decode(click) == nil)
        for garbage in ["", "a", "!!!!", String(repeating: "A", count: 5000), "日本語", click + "=", String(click.dropLast())] {
            #expect(links.decode(garbage) == nil)
        }
    }

    @Test func onlyHTTPLinksOutsideOptOutsAreRewrittenAndThePixelGoesBeforeBody() {
        let id = MessageID.generate()
        let html = """
            <html><body><a href="https://a.example/x?p=1&amp;q=2">a</a><A HREF='http://b.example'>b</A>
            <a clicktracking="off" href="https://c.example">c</a><a data-hikyaku-track=off href="https://d.example">d</a>
            <a href="mailto:x@example.com">m</a><a href="#top">t</a><a href="/relative">r</a>
            <a href="https://mail.example/u/abc">unsubscribe</a><abbr href="https://e.example">e</abbr></body></html>
            """
        let rewritten = links.rewrite(html, message: id, position: 0, opens: true, clicks: true)
        #expect(!rewritten.contains("https://a.example") && !rewritten.contains("http://b.example"))
        for kept in ["https://c.example", "https://d.example", "mailto:x@example.com", "#top", "/relative", "https://mail.example/u/abc",
                     "https://e.example"] {
            #expect(rewritten.contains(kept), "\(kept) must stay")
        }
        let clicks = rewritten.components(separatedBy: "https://mail.example/t/c/").dropFirst().map { String($0.prefix { $0 != "\"" && $0 != "'" }) }
        #expect(clicks.count == 2)
        #expect(clicks.compactMap { links.decode($0)?.url }.sorted() == ["http://b.example", "https://a.example/x?p=1&q=2"])
        let pixel = rewritten.range(of: "/t/o/")
        let body = rewritten.range(of: "</body>")
        #expect(pixel != nil && body != nil && pixel!.lowerBound < body!.lowerBound)
        // Nothing to do without a base URL; an unterminated tag is left as it is.
        #expect(TrackingLinks(key: SymmetricKey(size: .bits256), base: nil).rewrite(html, message: id, position: 0, opens: true, clicks: true) == html)
        #expect(TrackedHTML.rewrite("<a href=\"https://x", pixel: nil, link: { _ in "y" }) == "<a href=\"https://x")
    }

    @Test func theRedirectGoesWhereTheBrowserWould() {
        #expect(TrackedHTML.followedURL(" https://a.example/x?a=1&amp;b=2&#38;c=3&#x26;d=&amp;quot; ") == "https://a.example/x?a=1&b=2&c=3&d=&quot;")
        #expect(TrackedHTML.followedURL("https://a.exa\nmple/\tpath\r") == "https://a.example/path")
        #expect(TrackedHTML.followedURL("&#104;ttps://a.example/&unknown;&#xZZ;") == "https://a.example/&unknown;&#xZZ;")
        // A URL with a control character is left as it is, and no token carrying one verifies.
        #expect(TrackedHTML.rewrite("<a href=\"https://a.example/&#1;y\">x</a>", pixel: nil, link: { _ in "t" })
                == "<a href=\"https://a.example/&#1;y\">x</a>")
        let id = MessageID.generate()
        #expect(links.decode(links.token(.click, message: id, position: 0, url: "https://a.example/\u{1}")) == nil)
    }

    @Test func aQuoteInsideAnUnquotedValueIsNotTheStartOfAQuotedOne() {
        // Found by fuzz-tracking: the tag's end and its attributes were found by two different rules.
        let html = "<a title=x\"y href=\"https://a.example/\">t</a><a href=\"https://b.example/\">u</a>"
        let rewritten = links.rewrite(html, message: MessageID.generate(), position: 0, opens: false, clicks: true)
        let tokens = rewritten.components(separatedBy: "https://mail.example/t/c/").dropFirst().map { String($0.prefix { $0 != "\"" }) }
        #expect(tokens.compactMap { links.decode($0)?.url } == ["https://a.example/", "https://b.example/"])
        #expect(rewritten.hasPrefix("<a title=x\"y href=\"https://mail.example/t/c/"))
    }

    @Test func strangersCannotMakeTheLogGrowWithoutLimit() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("engagement-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let index = try QueueIndex(path: directory + "/queue.sqlite")
        func recorder() -> EngagementRecorder {
            EngagementRecorder(index: index, classifier: EngagementClassifier(), capacity: 1000,
                               limits: .init(perClientPerMinute: 5, perCopyPerHour: 3, trackedKeys: 10), logger: Logger(label: "test"))
        }
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func engagement(_ message: MessageID, ip: String) -> Engagement {
            Engagement(at: now, clicked: false, message: message, position: 0, userAgent: nil, clientIP: ip, url: nil, head: false)
        }
        let one = MessageID.generate()
        let perCopy = recorder()
        #expect((0..<10).filter { _ in perCopy.record(engagement(one, ip: "192.0.2.1")) }.count == 3, "three per copy and hour")
        let perClient = recorder()
        #expect((0..<10).filter { _ in perClient.record(engagement(MessageID.generate(), ip: "192.0.2.2")) }.count == 5,
                "five per client and minute")
        // A full table of clients refuses new ones rather than growing.
        let many = recorder()
        #expect((0..<20).filter { many.record(engagement(MessageID.generate(), ip: "198.51.100.\($0)")) }.count == 10)
    }

    @Test func machinesAreToldApartFromReaders() {
        let classifier = EngagementClassifier(window: 10)
        let browser = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
        let delivered = Date(timeIntervalSince1970: 1_000_000)
        #expect(!classifier.isMachine(userAgent: browser, head: false, deliveredAt: delivered, at: delivered.addingTimeInterval(60)))
        #expect(classifier.isMachine(userAgent: browser, head: false, deliveredAt: delivered, at: delivered.addingTimeInterval(2)))
        #expect(classifier.isMachine(userAgent: browser, head: true, deliveredAt: nil, at: delivered))
        #expect(classifier.isMachine(userAgent: "Mozilla/5.0", head: false, deliveredAt: nil, at: delivered))
        #expect(classifier.isMachine(userAgent: nil, head: false, deliveredAt: nil, at: delivered))
        #expect(classifier.isMachine(userAgent: "Barracuda Sentinel (EE)", head: false, deliveredAt: nil, at: delivered))
    }
}

@Suite struct WebhookFormatTests {
    @Test func standardWebhooksSignatureMatchesTheSpecificationsExample() throws {
        let key = SymmetricKey(data: Data(base64Encoded: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")!)
        let headers = NativeWebhookFormat.headers(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330,
                                                  body: Array("{\"test\": 2432232314}".utf8), key: key)
        #expect(headers.first { $0.0 == "webhook-signature" }?.1 == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func sendGridSignatureVerifiesWithThePublicKey() throws {
        let key = P256.Signing.PrivateKey()
        let body = SendGridWebhookFormat.body([sample(.delivered)])
        let headers = try SendGridWebhookFormat.headers(timestamp: 1_700_000_000, body: body, key: key)
        let signature = try P256.Signing.ECDSASignature(
            derRepresentation: Data(base64Encoded: headers.first { $0.0 == "X-Twilio-Email-Event-Webhook-Signature" }!.1)!)
        #expect(key.publicKey.isValidSignature(signature, for: Array("1700000000".utf8) + body))
        #expect(!key.publicKey.isValidSignature(signature, for: Array("1700000001".utf8) + body))
        let events = try JSONSerialization.jsonObject(with: Data(body)) as! [[String: Any]]
        #expect(events[0]["event"] as? String == "delivered" && events[0]["order"] as? String == "7")
        // A custom argument never overrides SendGrid's own fields.
        #expect(events[0]["email"] as? String == "r@example.com")
    }

    @Test func everyLogTypeHasItsNameOrIsLeftOutOnPurpose() {
        for kind in DeliveryEvent.Kind.allCases {
            let item = sample(kind)
            #expect(NativeWebhookFormat.event(item).text.contains("\"type\":\"\(kind.rawValue)\""))
            #expect((SendGridWebhookFormat.event(item) == nil) == (kind == .delayed))
            #expect((SESWebhookFormat.message(item, accountID: 1) == nil) == [.cancelled, .delayed].contains(kind))
        }
        // Tags with no colon, or an empty one, do not trip the SES tag split.
        var item = sample(.accepted)
        item.metadata?.tags = ["", ":", "plain", "k:v:w"]
        #expect(SESWebhookFormat.message(item, accountID: 1)?.text.contains("\"k\":[\"v:w\"]") == true)
    }

    @Test func stringsAreEscapedAsJSON() throws {
        let text = "quote \" backslash \\ newline \n tab \t bell \u{7} 日本 😀"
        let written = JSONOut.array([.string(text), .int(-5), .bool(true), .null]).bytes
        let parsed = try JSONSerialization.jsonObject(with: Data(written)) as! [Any]
        #expect(parsed[0] as? String == text && parsed[1] as? Int == -5)
    }

    @Test func timesAreISO8601InUTC() {
        #expect(WebhookTime.iso(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(WebhookTime.iso(Date(timeIntervalSince1970: 1_764_921_600.25)) == "2025-12-05T08:00:00.250Z")
        #expect(WebhookTime.iso(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00.000Z")
        #expect(WebhookTime.seconds(.infinity) == 0 && WebhookTime.seconds(.nan) == 0 && WebhookTime.seconds(1e300) == 1_000_000_000_000_000)
    }

    func sample(_ kind: DeliveryEvent.Kind) -> OutboxEvent {
        var event = DeliveryEvent(at: Date(), messageID: MessageID.generate(), recipient: "r@example.com", type: kind, attempt: 1,
                                  replyCode: 250, enhancedCode: "2.0.0", replyText: "ok")
        event.id = 9
        return OutboxEvent(event: event, id: 9, accountID: 1, sender: "s@example.com",
                           metadata: MessageMetadata(tags: ["t"], customArguments: ["order": "7", "email": "spoof@example.com"]))
    }
}

@Suite struct WebhookURLTests {
    @Test func onlyHTTPURLsWithoutCredentials() {
        #expect(WebhookURL("https://hooks.example.com/a?b=c") == WebhookURL("https://hooks.example.com:443/a?b=c"))
        #expect(WebhookURL("https://hooks.example.com/a?b=c")?.target == "/a?b=c")
        #expect(WebhookURL("http://[::1]:8080")?.host == "::1")
        #expect(WebhookURL("http://[::1]:8080")?.target == "/")
        for bad in ["ftp://x.example/", "https://user:pw@x.example/", "https://", "x.example", "https://x.example:0/", "https://x.example:70000/",
                    "https://x.example/ a", "https://x.example/\u{7F}", String(repeating: "a", count: 3000)] {
            #expect(WebhookURL(bad) == nil, "\(bad)")
        }
    }

    @Test func nonPublicAddressesAreRefusedWithoutALookup() async throws {
        let client = try WebhookClient(policy: .init(allowPlainHTTP: true), resolver: TableResolver(records: [:]), group: MultiThreadedEventLoopGroup.singleton)
        for url in ["http://127.0.0.1/", "http://[::1]/", "http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://10.0.0.1/",
                    "http://100.64.1.1/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"] {
            await #expect(throws: WebhookDialError.self) { try await client.addresses(for: WebhookURL(url)!) }
        }
        // A name is checked on every answer; only public ones are connected to, the ones checked.
        let resolver = TableResolver(records: ["private.example": [.a([10, 0, 0, 1])], "mixed.example": [.a([10, 0, 0, 1]), .a([203, 0, 114, 5])]])
        let named = try WebhookClient(policy: .init(allowPlainHTTP: true), resolver: resolver, group: MultiThreadedEventLoopGroup.singleton)
        await #expect(throws: WebhookDialError.self) { try await named.addresses(for: WebhookURL("http://private.example/")!) }
        #expect(try await named.addresses(for: WebhookURL("http://mixed.example:8080/")!).map { $0.ipAddress } == ["203.0.114.5"])
        await #expect(throws: WebhookDialError.plainHTTPNotAllowed) {
            try await WebhookClient(policy: .init(), resolver: TableResolver(records: [:]), group: MultiThreadedEventLoopGroup.singleton)
                .addresses(for: WebhookURL("http://192.0.2.1/")!)
        }
    }
}
