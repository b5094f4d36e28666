import Foundation
import Testing
@testable import API
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
}

@Suite struct EventCSVTests {
    @Test func quotesAndNeutralisesFormulas() {
        #expect(EventCSV.quote("plain") == "plain")
        #expect(EventCSV.quote("a,b") == "\"a,b\"")
        #expect(EventCSV.quote("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(EventCSV.quote("=HYPERLINK(1)") == "'=HYPERLINK(1)")
    }
}

@Suite struct RawMessageTests {
    @Test func bccIsRemovedAndAddressesRead() {
        let raw = Array("From: A <a@x.example>\r\nTo: \"B, C\" <b@y.example>, d@y.example\r\nBcc: e@z.example,\r\n f@z.example\r\nSubject: s\r\n\r\nBcc: body\r\n".utf8)
        let fields = RawMessage.headerFields(raw)
        #expect(RawMessage.addresses(in: fields, named: "to").map(\.address) == ["b@y.example", "d@y.example"])
        #expect(RawMessage.addresses(in: fields, named: "bcc").map(\.address) == ["e@z.example", "f@z.example"])
        let stripped = String(decoding: RawMessage.removingFields(named: "bcc", from: raw), as: UTF8.self)
        #expect(stripped == "From: A <a@x.example>\r\nTo: \"B, C\" <b@y.example>, d@y.example\r\nSubject: s\r\n\r\nBcc: body\r\n")
        #expect(RawMessage.normaliseLineEndings(Array("a\nb\r\n".utf8)) == Array("a\r\nb\r\n".utf8))
    }
}
