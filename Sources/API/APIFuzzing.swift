import Foundation
import Logging
import MIME
import Relay
import Spool
import Store

/// Entry points for the fuzzers in `Fuzz/` (package access: the rest of the
/// world sees none of this). Each drives what a request's bytes reach, the
/// way a route would, and checks what must always hold.
package enum APIFuzzing {
    /// Stores in a temporary directory, made once per process, so that drafts
    /// can look up (absent) templates as a route does.
    static let context: (services: APIServices, account: Account)? = {
        let directory = NSTemporaryDirectory() + "hikyaku-fuzz-" + UUID().uuidString
        guard (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)) != nil,
              let store = try? SQLiteStore(path: directory + "/store.sqlite", hashParameters: .init(rounds: 2, blockSize: 1, parallelism: 1)),
              (try? store.createAccount(name: "fuzz", domains: ["fuzz.example"])) != nil,
              let account = try? store.account(named: "fuzz"),
              let spool = try? Spool(layout: SpoolLayout(directory: directory + "/spool"), logger: Logger(label: "fuzz")) else { return nil }
        let intake = Intake(settings: .init(hostname: "fuzz.example", maximumMessageSize: 1 << 20, requireVerifiedDomains: true),
                            spool: spool, meter: nil, signing: nil, signingPool: nil)
        let services = APIServices(
            store: store, spool: spool, index: spool.index, layout: spool.layout,
            gate: APIGate(store: store, maximumBodySize: 1 << 20, throttle: AuthenticationThrottle(maximumFailures: 10, window: .seconds(60))),
            submitter: Submitter(intake: intake), builder: MessageBuilder(hostname: "fuzz.example"),
            meter: SendingMeter(store: store), unsubscribe: nil, draftLimits: limits, eventsOut: nil, archive: spool.archive)
        return (services, account)
    }()

    static let limits = MessageDraft.Limits(maximumMessageSize: 256 * 1024, maximumExpandedSize: 1 << 20)

    /// A request body of one of the sending endpoints (chosen by the first
    /// byte) decoded and built into messages, as the route would; every
    /// message built must have a header section the intake can read.
    package static func sendRequest(_ bytes: [UInt8]) {
        guard let context, let selector = bytes.first else { return }
        let body = Array(bytes.dropFirst())
        let services = context.services
        let account = context.account
        let drafts: [MessageDraft]
        var raw: [OutgoingMessage] = []
        switch selector % 4 {
        case 0:
            guard let input = try? APIJSON.decode(NativeAPI.SendRequest.self, from: body),
                  let draft = try? NativeAPI(services: services).draft(input, account: account) else { return }
            drafts = [draft]
        case 1:
            guard let input = try? APIJSON.decode(SESAPI.SendEmailRequest.self, from: body, snakeCase: false) else { return }
            let api = SESAPI(services: services)
            if let content = input.Content.Raw {
                if let message = try? api.rawMessage(content, input: input, metadata: MessageMetadata()) { raw = [message] }
                drafts = []
            } else {
                guard let draft = try? api.draft(input, account: account, metadata: MessageMetadata()) else { return }
                drafts = [draft]
            }
        case 2:
            guard let input = try? APIJSON.decode(SendGridAPI.MailSend.self, from: body),
                  let draft = try? SendGridAPI(services: services).draft(input, account: account) else { return }
            drafts = [draft]
        default:
            guard let input = try? APIJSON.decode(SESAPI.SendBulkEmailRequest.self, from: body, snakeCase: false),
                  input.BulkEmailEntries.count <= MessageDraft.maximumPersonalizations,
                  let template = input.DefaultContent.Template,
                  let (renderer, _) = try? SESAPI(services: services).resolve(template, account: account) else { return }
            var base = Composition(from: NameAddress(address: "shop@fuzz.example"), subject: "")
            base.headers = (try? SESAPI.headers(template.Headers)) ?? []
            drafts = input.BulkEmailEntries.compactMap { entry in
                guard let to = try? SESAPI.addresses(entry.Destination.ToAddresses) else { return nil }
                var personalization = Personalization(to: to)
                personalization.data = (try? SESAPI.templateData(entry.ReplacementEmailContent?.ReplacementTemplate?.ReplacementTemplateData)) ?? [:]
                return MessageDraft(base: base, renderer: renderer, personalizations: [personalization], metadata: MessageMetadata())
            }
        }
        var built = raw
        for draft in drafts {
            if let messages = try? draft.messages(builder: services.builder, unsubscribe: nil, limits: limits) { built += messages }
        }
        for message in built where !message.bytes.isEmpty {
            if (try? HeaderSection(parsing: message.bytes)) == nil && raw.isEmpty {
                preconditionFailure("a built message has a header section the intake cannot read")
            }
            _ = services.submitter.intake.validate(services.submitter.submission(message, door: .api, account: account, client: "fuzz"))
        }
    }

    /// A signed request's parts from bytes (fields split at NUL): the
    /// canonical request is built, the Authorization parsed, the signature
    /// checked; nothing may trap, and a signature made for the parts must verify.
    package static func signatureV4(_ bytes: [UInt8]) {
        let parts = bytes.split(separator: 0, maxSplits: 5, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        func part(_ index: Int) -> String { index < parts.count ? parts[index] : "" }
        var headers: [String: String] = ["host": part(3), "x-amz-date": "20261129T062559Z"]
        for line in part(4).split(separator: "\n") {
            let pair = line.split(separator: ":", maxSplits: 1)
            if pair.count == 2 { headers[pair[0].lowercased()] = String(pair[1]) }
        }
        // Field names as HTTP allows them (tokens), so that a signed-header list can name them.
        let named = headers.keys.filter { name in !name.isEmpty && name.utf8.allSatisfy { $0 == 0x2D || ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) } }
        headers["authorization"] = part(5)
        var request = SignatureV4(method: part(0), rawPath: part(1), rawQuery: part(2), headers: headers, body: Array(part(5).utf8))
        let now = SignatureV4.parse("20261129T063000Z") ?? Date()
        _ = request.verify(now: now) { _ in "secret" }
        request.headers.removeValue(forKey: "x-amz-content-sha256")
        let signed = named.filter { $0 != "authorization" && $0 != "x-amz-content-sha256" }.sorted().joined(separator: ";")
        guard let authorization = SignatureV4.Authorization(
            "AWS4-HMAC-SHA256 Credential=KEY/20261129/ap-northeast-1/ses/aws4_request, SignedHeaders=\(signed), Signature=00"),
              authorization.signedHeaders.contains("host") else { return }
        let signature = request.signature(secret: "secret", authorization: authorization, amzDate: "20261129T062559Z")
        request.headers["authorization"] = "AWS4-HMAC-SHA256 Credential=KEY/20261129/ap-northeast-1/ses/aws4_request, SignedHeaders=\(signed), Signature=\(signature)"
        precondition(request.verify(now: now) { _ in "secret" } == "KEY", "a signature made for a request does not verify")
    }

    /// A template (subject, text and HTML split at NUL) and JSON data after
    /// the third NUL: compiled and rendered within a small budget.
    package static func mustache(_ bytes: [UInt8]) {
        let parts = bytes.split(separator: 0, maxSplits: 3, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        func part(_ index: Int) -> String { index < parts.count ? parts[index] : "" }
        guard let renderer = try? TemplateRenderer(subject: part(0), text: part(1), html: part(2)) else { return }
        let data = (try? JSONDecoder().decode([String: JSONValue].self, from: Data(part(3).utf8))) ?? [:]
        let budget = 64 * 1024
        guard let rendered = try? renderer.render(data, budget: budget) else { return }
        let size = rendered.subject.utf8.count + (rendered.text?.utf8.count ?? 0) + (rendered.html?.utf8.count ?? 0)
        precondition(size <= budget, "a render exceeded its budget")
    }

    /// Bytes as a suppression import and as a Handlebars template: the CSV's
    /// every row is either imported or reported with a line inside the text;
    /// a translated template compiles or is refused, never traps.
    package static func csvAndHandlebars(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let imported = SuppressionCSV.parse(text, source: "fuzz")
        let lines = text.reduce(into: 1) { count, character in if character == "\n" || character == "\r\n" { count += 1 } }
        precondition(imported.errors.allSatisfy { $0.line >= 1 && $0.line <= lines }, "an import reported a line outside the text")
        precondition(imported.suppressions.allSatisfy { $0.address.contains("@") }, "an import took a row without an address")
        contactRows(bytes)
        segment(bytes)
        // Japanese names aliased for Mustache, then the template compiled and rendered.
        _ = try? TemplateRenderer(subject: "", text: text, html: nil).render(["氏名": .string("x")], budget: 64 * 1024)
        guard let translated = try? HandlebarsDialect.mustache(text) else { return }
        guard let renderer = try? TemplateRenderer(subject: "", text: translated, html: nil) else { return }
        _ = try? renderer.render(["name": .string("x"), "items": .array([.string("a")])], budget: 64 * 1024)
    }

    /// Contact CSV in every charset: rows staged or reported, never a trap.
    static func contactRows(_ bytes: [UInt8]) {
        for charset in [ContactCSV.Charset.auto, .utf8, .shiftJIS] {
            var reader = ContactCSV.Reader(fields: [ContactField(name: "氏名", kind: .text, slot: 1), ContactField(name: "n", kind: .number, slot: 2),
                                                    ContactField(name: "d", kind: .date, slot: 3), ContactField(name: "b", kind: .boolean, slot: 4)],
                                           charset: charset)
            var tokenizer = CSVTokenizer()
            _ = tokenizer.feed(bytes) { reader.read($0); return true }
            tokenizer.finish { reader.read($0); return true }
            precondition(reader.staged.allSatisfy { $0.address.contains("@") }, "an import staged a row without an address")
        }
    }

    /// A segment from JSON compiled and run against an empty contact table: a typed refusal or valid SQL.
    static func segment(_ bytes: [UInt8]) {
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)),
              let expression = try? SegmentExpression(json: json),
              let query = try? SegmentQuery(expression, fields: [ContactField(name: "n", kind: .number, slot: 1), ContactField(name: "d", kind: .date, slot: 2),
                                                                 ContactField(name: "t", kind: .text, slot: 3), ContactField(name: "b", kind: .boolean, slot: 4)],
                                            accountID: 1, now: Date(), timeZone: TimeZone(identifier: "Asia/Tokyo") ?? .current) else { return }
        precondition(segmentDatabase.map { (try? $0.segmentCount(query, accountID: 1)) != nil } ?? true, "a compiled segment is not valid SQL")
        // The shared engine's dialect compiles the same expression as well, every value bound.
        let fields = [ContactField(name: "n", kind: .number, slot: 1), ContactField(name: "t", kind: .text, slot: 3)]
        if let shared = try? SegmentQuery(expression, fields: fields, accountID: 1, now: Date(), timeZone: .current, dialect: .postgres) {
            precondition(!shared.condition.contains("?"), "a PostgreSQL segment has a SQLite placeholder")
            // Its placeholders are $1…$n, one per argument, each used.
            let numbers = Set(shared.condition.split(separator: "$").dropFirst().compactMap { part in Int(String(part.prefix { $0.isNumber })) })
            precondition(numbers == Set(shared.arguments.indices.map { $0 + 1 }), "a PostgreSQL segment's placeholders do not match its arguments")
        }
    }

    nonisolated(unsafe) static let segmentDatabase: SQLiteStore? = {
        try? SQLiteStore(path: NSTemporaryDirectory() + "hikyaku-fuzz-segment-\(getpid()).sqlite",
                         hashParameters: .init(rounds: 2, blockSize: 1, parallelism: 1))
    }()
}
