import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import DNS
import FuzzTargets

struct DNSMessageCodecTests {
    static func name(_ text: String) -> DomainName { try! DomainName(text) }

    @Test func queryEncodingMatchesRFC1035() {
        let bytes = DNSMessageCodec.encode(.query(id: 0xBEEF, name: Self.name("Example.COM"), type: .mx))
        #expect(bytes == [0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                          7] + Array("example".utf8) + [3] + Array("com".utf8) + [0, 0, 15, 0, 1])
    }

    @Test func repliesRoundTrip() throws {
        let reply = DNSMessage(
            id: 7, isResponse: true, recursionAvailable: true, responseCode: .noError,
            questions: [DNSQuestion(name: Self.name("example.com"), type: .mx)],
            answers: [
                ResourceRecord(name: Self.name("example.com"), type: .mx, ttl: 300, data: .mx(preference: 10, exchange: Self.name("mx1.example.com"))),
                ResourceRecord(name: Self.name("mx1.example.com"), type: .a, ttl: 60, data: .a([192, 0, 2, 1])),
                ResourceRecord(name: Self.name("mx1.example.com"), type: .aaaa, ttl: 60, data: .aaaa([0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1])),
                ResourceRecord(name: Self.name("example.com"), type: .txt, ttl: 60, data: .txt([Array("v=spf1 -all".utf8), []])),
                ResourceRecord(name: Self.name("www.example.com"), type: .cname, ttl: 60, data: .cname(Self.name("example.com"))),
            ],
            authorities: [ResourceRecord(name: Self.name("example.com"), type: .soa, ttl: 3600, data: .soa(primary: Self.name("ns.example.com"), minimum: 300))])
        #expect(try DNSMessageCodec.decode(DNSMessageCodec.encode(reply)) == reply)
    }

    @Test func compressedNamesAreFollowed() throws {
        let bytes = try #require(FileManager.contents("mx-reply"))
        let message = try DNSMessageCodec.decode(bytes)
        #expect(message.answers.first?.data == .mx(preference: 10, exchange: Self.name("mx.example.com")))
    }

    struct MalformedRow: Sendable, CustomTestStringConvertible {
        var bytes: [UInt8]
        var testDescription: String
    }

    static let header: [UInt8] = [0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]
    static let malformed: [MalformedRow] = [
        MalformedRow(bytes: [0, 1, 0x81], testDescription: "short header"),
        MalformedRow(bytes: header + [3, 0x61, 0x62], testDescription: "label runs past the end"),
        MalformedRow(bytes: header + [0xC0, 12, 0, 1, 0, 1], testDescription: "pointer to itself (loop)"),
        MalformedRow(bytes: header + [0xC0, 40, 0, 1, 0, 1], testDescription: "forward pointer"),
        MalformedRow(bytes: header + [64] + Array(repeating: 0x61, count: 64) + [0, 0, 1, 0, 1], testDescription: "label of 64 octets"),
        MalformedRow(bytes: header + [1, 0x00, 0, 0, 1, 0, 1], testDescription: "NUL inside a label"),
        MalformedRow(bytes: [0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 5, 1, 2, 3, 4, 5],
                     testDescription: "A record of 5 octets"),
        MalformedRow(bytes: [0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 16, 0, 1, 0, 0, 0, 60, 0, 3, 5, 0x61, 0x62],
                     testDescription: "TXT string longer than its record"),
    ]

    @Test(arguments: malformed)
    func malformedRepliesAreRejected(_ row: MalformedRow) {
        #expect(throws: DNSError.self) { try DNSMessageCodec.decode(row.bytes) }
    }

    @Test func truncatedReplyKeepsWhatIsComplete() throws {
        var bytes = DNSMessageCodec.encode(DNSMessage(
            id: 1, isResponse: true, isTruncated: true, questions: [DNSQuestion(name: Self.name("a.example"), type: .a)],
            answers: [ResourceRecord(name: Self.name("a.example"), type: .a, ttl: 1, data: .a([1, 2, 3, 4])),
                      ResourceRecord(name: Self.name("a.example"), type: .a, ttl: 1, data: .a([5, 6, 7, 8]))]))
        bytes.removeLast(3)
        let message = try DNSMessageCodec.decode(bytes)
        #expect(message.isTruncated && message.answers.count == 1)
    }

    @Test(arguments: [("bücher.example", "xn--bcher-kva.example"), ("例え.jp", "xn--r8jz45g.jp"),
                      ("MÜNCHEN.de", "xn--mnchen-3ya.de"), ("ドコモ.ne.jp", "xn--tck0b2d.ne.jp")])
    func internationalNamesBecomeALabels(_ pair: (String, String)) throws {
        #expect(try DomainName(pair.0).description == pair.1)
    }

    @Test func punycodeSampleFromRFC3492() {
        // RFC 3492 §7.1 (A) Arabic (Egyptian).
        let arabic = "\u{0644}\u{064A}\u{0647}\u{0645}\u{0627}\u{0628}\u{062A}\u{0643}\u{0644}\u{0645}\u{0648}\u{0634}\u{0639}\u{0631}\u{0628}\u{064A}\u{061F}"
        #expect(Punycode.encode(Substring(arabic)) == "egbpdaj6bu4bxfgehfvwxn")
    }

    @Test(arguments: ["", "a..b", String(repeating: "a", count: 64) + ".example"])
    func invalidNames(_ text: String) {
        if text.isEmpty {
            #expect(try! DomainName(text) == .root)
        } else {
            #expect(throws: DNSError.self) { try DomainName(text) }
        }
    }

    @Test func resolvConf() {
        let servers = ResolvConf.servers(from: "# comment\nnameserver 127.0.0.53\nsearch example\nnameserver ::1\nnameserver fe80::1%eth0\n")
        #expect(servers.map(\.description) == ["[IPv4]127.0.0.53:53", "[IPv6]::1:53", "[IPv6]fe80::1:53"])
    }

    @Test func fuzzSeed() throws {
        FuzzTargets.dnsMessage(try #require(FileManager.contents("mx-reply")))
    }
}

/// A scripted DNS "network": answers by (server, question) and records traffic.
final class ScriptedTransport: DNSTransport, @unchecked Sendable {
    typealias Script = @Sendable (_ query: DNSMessage, _ server: SocketAddress, _ overTCP: Bool) -> DNSMessage?
    let script: Script
    let log = NIOLockedValueBox<[(String, Bool)]>([])

    init(_ script: @escaping Script) {
        self.script = script
    }

    func exchange(_ query: [UInt8], id: UInt16, server: SocketAddress, overTCP: Bool, timeout: TimeAmount) async throws(DNSError) -> [UInt8] {
        let message = try DNSMessageCodec.decode(query)
        log.withLockedValue { $0.append((server.description, overTCP)) }
        guard var reply = script(message, server, overTCP) else { throw DNSError.timeout(server.description) }
        reply.id = message.id
        reply.isResponse = true
        reply.questions = message.questions
        return DNSMessageCodec.encode(reply)
    }
}

struct StubResolverTests {
    static let first = try! SocketAddress(ipAddress: "127.0.0.1", port: 5301)
    static let second = try! SocketAddress(ipAddress: "127.0.0.2", port: 5302)
    static func name(_ text: String) -> DomainName { try! DomainName(text) }

    func resolver(_ transport: ScriptedTransport, clock: NIOLockedValueBox<NIODeadline>? = nil) -> StubResolver {
        let clock = clock ?? NIOLockedValueBox(.uptimeNanoseconds(0))
        return StubResolver(options: .init(servers: [Self.first, Self.second], timeout: .milliseconds(10), attempts: 2),
                            transport: transport, now: { clock.withLockedValue { $0 } })
    }

    @Test func followsCNAMEChainsAndCachesForTheTTL() async throws {
        let transport = ScriptedTransport { query, _, _ in
            let question = query.questions[0]
            if question.name == Self.name("www.example") {
                return DNSMessage(id: 0, answers: [
                    ResourceRecord(name: Self.name("www.example"), type: .cname, ttl: 300, data: .cname(Self.name("web.example"))),
                    ResourceRecord(name: Self.name("web.example"), type: .cname, ttl: 300, data: .cname(Self.name("host.other"))),
                ])
            }
            return DNSMessage(id: 0, answers: [ResourceRecord(name: question.name, type: .a, ttl: 30, data: .a([192, 0, 2, 9]))])
        }
        let clock = NIOLockedValueBox(NIODeadline.uptimeNanoseconds(0))
        let resolver = resolver(transport, clock: clock)
        let answer = try await resolver.lookup(Self.name("www.example"), .a)
        #expect(answer.canonicalName == Self.name("host.other"))
        #expect(answer.records.map(\.data) == [.a([192, 0, 2, 9])])
        #expect(transport.log.withLockedValue { $0.count } == 2, "one query for the chain, one for its target")
        _ = try await resolver.lookup(Self.name("host.other"), .a)
        #expect(transport.log.withLockedValue { $0.count } == 2, "cached")
        clock.withLockedValue { $0 = $0 + .seconds(31) }
        _ = try await resolver.lookup(Self.name("host.other"), .a)
        #expect(transport.log.withLockedValue { $0.count } == 3, "expired after its TTL")
    }

    @Test func nxdomainIsPermanentAndCachedForTheSOAMinimum() async throws {
        let transport = ScriptedTransport { query, _, _ in
            DNSMessage(id: 0, responseCode: .nameError, authorities: [
                ResourceRecord(name: Self.name("example"), type: .soa, ttl: 900, data: .soa(primary: Self.name("ns.example"), minimum: 120))])
        }
        let clock = NIOLockedValueBox(NIODeadline.uptimeNanoseconds(0))
        let resolver = resolver(transport, clock: clock)
        await #expect(throws: DNSError.nameDoesNotExist("nope.example")) { try await resolver.lookup(Self.name("nope.example"), .mx) }
        #expect(!DNSError.nameDoesNotExist("x").isTransient)
        clock.withLockedValue { $0 = $0 + .seconds(119) }
        await #expect(throws: DNSError.self) { try await resolver.lookup(Self.name("nope.example"), .mx) }
        #expect(transport.log.withLockedValue { $0.count } == 1)
        clock.withLockedValue { $0 = $0 + .seconds(2) }
        await #expect(throws: DNSError.self) { try await resolver.lookup(Self.name("nope.example"), .mx) }
        #expect(transport.log.withLockedValue { $0.count } == 2)
    }

    @Test func servfailAndTimeoutsTryTheOtherServerThenFailTransiently() async throws {
        let transport = ScriptedTransport { query, server, _ in
            server == Self.first ? nil : DNSMessage(id: 0, responseCode: .serverFailure)
        }
        let resolver = resolver(transport)
        do {
            _ = try await resolver.lookup(Self.name("broken.example"), .mx)
            Issue.record("expected a failure")
        } catch {
            #expect(error.isTransient)
            #expect(error == .serverFailure("broken.example", .serverFailure))
        }
        #expect(transport.log.withLockedValue { $0.map(\.0) }.count == 4, "two rounds over two servers")
    }

    @Test func secondServerAnswersWhenTheFirstIsSilent() async throws {
        let transport = ScriptedTransport { query, server, _ in
            server == Self.first ? nil : DNSMessage(id: 0, answers: [
                ResourceRecord(name: query.questions[0].name, type: .mx, ttl: 60, data: .mx(preference: 5, exchange: Self.name("mx.example")))])
        }
        let answer = try await resolver(transport).lookup(Self.name("example"), .mx)
        #expect(answer.records.count == 1)
    }

    @Test func truncatedUDPReplyIsRetriedOverTCP() async throws {
        let transport = ScriptedTransport { query, _, overTCP in
            overTCP
                ? DNSMessage(id: 0, answers: [ResourceRecord(name: query.questions[0].name, type: .txt, ttl: 60, data: .txt([Array("long".utf8)]))])
                : DNSMessage(id: 0, isTruncated: true)
        }
        let answer = try await resolver(transport).lookup(Self.name("big.example"), .txt)
        #expect(answer.records.first?.data == .txt([Array("long".utf8)]))
        #expect(transport.log.withLockedValue { $0.map(\.1) } == [false, true])
    }

    @Test func nodataIsAnEmptyAnswerNotAnError() async throws {
        let transport = ScriptedTransport { _, _, _ in DNSMessage(id: 0) }
        let answer = try await resolver(transport).lookup(Self.name("example"), .mx)
        #expect(answer.records.isEmpty && answer.canonicalName == Self.name("example"))
    }

    @Test func cnameLoopIsAnError() async throws {
        let transport = ScriptedTransport { _, _, _ in
            DNSMessage(id: 0, answers: [
                ResourceRecord(name: Self.name("a.example"), type: .cname, ttl: 60, data: .cname(Self.name("b.example"))),
                ResourceRecord(name: Self.name("b.example"), type: .cname, ttl: 60, data: .cname(Self.name("a.example")))])
        }
        await #expect(throws: DNSError.self) { try await resolver(transport).lookup(Self.name("a.example"), .a) }
    }
}

extension FileManager {
    /// A file of the fuzz seed corpus.
    static func contents(_ seed: String) -> [UInt8]? {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus/dns/\(seed)").path
        return FileManager.default.contents(atPath: path).map(Array.init)
    }
}

import Foundation
