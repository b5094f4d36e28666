import DNS
import NIOCore
import SMTPCore
import Testing
@testable import Relay

/// Answers from a table; names not in it are NXDOMAIN, "fail.*" SERVFAIL.
struct TableResolver: Resolver {
    var records: [String: [RecordData]]

    func lookup(_ name: DomainName, _ type: RecordType) async throws(DNSError) -> DNSAnswer {
        let text = name.description
        if text.hasPrefix("fail.") { throw DNSError.serverFailure(text, .serverFailure) }
        guard let all = records[text] else { throw DNSError.nameDoesNotExist(text) }
        let matching = all.filter { data in
            switch (data, type) {
            case (.mx, .mx), (.a, .a), (.aaaa, .aaaa): return true
            default: return false
            }
        }
        return DNSAnswer(canonicalName: name, records: matching.map { ResourceRecord(name: name, type: type, ttl: 60, data: $0) })
    }
}

struct MXRouterTests {
    static func mx(_ preference: UInt16, _ host: String) -> RecordData { .mx(preference: preference, exchange: try! DomainName(host)) }
    static let world: [String: [RecordData]] = [
        "example.com": [mx(20, "mx2.example.com"), mx(10, "mx1a.example.com"), mx(10, "mx1b.example.com")],
        "mx1a.example.com": [.a([203, 0, 114, 1])],
        "mx1b.example.com": [.a([203, 0, 114, 2]), .aaaa([0x24, 0x04] + Array(repeating: 0, count: 13) + [1])],
        "mx2.example.com": [.a([203, 0, 114, 3])],
        "implicit.example": [.a([203, 0, 114, 4])],
        "nullmx.example": [mx(0, ".")],
        "nothing.example": [],
        "private.example": [mx(10, "internal.private.example")],
        "internal.private.example": [.a([10, 0, 0, 5]), .a([127, 0, 0, 1])],
        "mixed.example": [mx(10, "internal.private.example"), mx(20, "mx2.example.com")],
        "loop.example": [mx(10, "relay.hikyaku.test"), mx(20, "mx2.example.com"), mx(5, "mx1a.example.com")],
        "onlyloop.example": [mx(10, "relay.hikyaku.test")],
        "relay.hikyaku.test": [.a([203, 0, 114, 9])],
        "flaky.example": [mx(10, "fail.mx.example")],
        "smart.example": [.a([203, 0, 114, 50])],
    ]

    func router(_ policy: RoutingPolicy = RoutingPolicy(localNames: ["relay.hikyaku.test"])) -> MXRouter {
        // Deterministic "shuffle": reverse, so the test sees that equals are reordered.
        MXRouter(resolver: TableResolver(records: Self.world), policy: policy, shuffle: { $0.reversed() })
    }

    func names(_ decision: RoutingDecision) -> [String] {
        guard case .deliver(let hosts) = decision else { return [] }
        return hosts.map(\.name)
    }

    @Test func preferenceOrderWithEqualsShuffled() async {
        let decision = await router().route("Example.COM")
        #expect(names(decision) == ["mx1b.example.com", "mx1a.example.com", "mx2.example.com"])
        guard case .deliver(let hosts) = decision else { return }
        #expect(hosts[0].addresses.count == 2, "A and AAAA")
    }

    @Test func implicitMX() async {
        #expect(names(await router().route("implicit.example")) == ["implicit.example"])
    }

    @Test func nullMXIsPermanentWithoutConnecting() async {
        #expect(await router().route("nullmx.example") == .permanentFailure(EnhancedStatusCode(5, 1, 10), "nullmx.example does not accept mail (null MX)"))
    }

    @Test func nxdomainIsPermanentAndServfailTransient() async {
        guard case .permanentFailure(let code, _) = await router().route("no-such-domain.example") else {
            Issue.record("expected a permanent failure")
            return
        }
        #expect(code == EnhancedStatusCode(5, 1, 2))
        guard case .transientFailure(let transient, _) = await router().route("fail.example") else {
            Issue.record("expected a transient failure")
            return
        }
        #expect(transient == EnhancedStatusCode(4, 4, 3))
        guard case .transientFailure = await router().route("flaky.example") else {
            Issue.record("an MX host whose address lookup fails transiently is a transient failure")
            return
        }
    }

    @Test func domainWithoutAnyAddressIsPermanent() async {
        guard case .permanentFailure(let code, _) = await router().route("nothing.example") else {
            Issue.record("expected a permanent failure")
            return
        }
        #expect(code == EnhancedStatusCode(5, 4, 4))
    }

    @Test func nonPublicAddressesAreRefusedUnlessAllowed() async {
        guard case .permanentFailure(let code, _) = await router().route("private.example") else {
            Issue.record("expected a refusal")
            return
        }
        #expect(code == EnhancedStatusCode(5, 4, 4))
        #expect(names(await router().route("mixed.example")) == ["mx2.example.com"], "the public MX is still used")
        let open = router(RoutingPolicy(allowNonPublicAddresses: true))
        guard case .deliver(let hosts) = await open.route("private.example") else {
            Issue.record("expected delivery when allowed")
            return
        }
        #expect(hosts[0].addresses.compactMap(\.ipAddress) == ["10.0.0.5", "127.0.0.1"])
    }

    @Test func ownNameDropsItselfAndLessPreferredHosts() async {
        #expect(names(await router().route("loop.example")) == ["mx1a.example.com"])
        guard case .permanentFailure(let code, _) = await router().route("onlyloop.example") else {
            Issue.record("expected a loop")
            return
        }
        #expect(code == EnhancedStatusCode(5, 4, 6))
        let byAddress = router(RoutingPolicy(localAddresses: ["203.0.114.9"]))
        guard case .permanentFailure(let loopCode, _) = await byAddress.route("onlyloop.example") else {
            Issue.record("expected a loop by address")
            return
        }
        #expect(loopCode == EnhancedStatusCode(5, 4, 6))
    }

    @Test func routesAndSmarthost() async throws {
        let policy = RoutingPolicy(routes: ["example.com": NextHop(host: "192.0.2.25", port: 2525)],
                                   smarthost: NextHop(host: "smart.example", port: 587))
        let routed = router(policy)
        guard case .deliver(let direct) = await routed.route("example.com") else {
            Issue.record("expected the route")
            return
        }
        #expect(direct.first?.addresses == [try SocketAddress(ipAddress: "192.0.2.25", port: 2525)])
        guard case .deliver(let smart) = await routed.route("anything.example") else {
            Issue.record("expected the smarthost")
            return
        }
        #expect(smart.first?.name == "smart.example" && smart.first?.port == 587)
        #expect(smart.first?.addresses.first?.port == 587)
    }

    @Test(arguments: [("127.0.0.1", false), ("10.1.2.3", false), ("172.16.0.1", false), ("172.32.0.1", true),
                      ("192.168.1.1", false), ("169.254.0.1", false), ("100.64.0.1", false), ("8.8.8.8", true),
                      ("0.0.0.0", false), ("224.0.0.1", false), ("::1", false), ("fe80::1", false), ("fd00::1", false),
                      ("2404:6800::1", true), ("::ffff:127.0.0.1", false), ("::ffff:8.8.8.8", true),
                      // Each of these reaches a private or reserved address another way.
                      ("64:ff9b::a00:1", false), ("64:ff9b::808:808", true), ("64:ff9b:1::1", false), ("2002:a00:1::1", false),
                      ("2002:808:808::1", true), ("::127.0.0.1", false), ("::10.0.0.1", false), ("fec0::1", false),
                      ("192.0.0.8", false), ("192.88.99.1", false), ("2001::1", false), ("100::1", false),
                      ("2001:10::1", false), ("3fff::1", false), ("::", false), ("240.0.0.1", false)])
    func publicAddresses(_ row: (String, Bool)) throws {
        #expect(PublicAddress.isPublic(try SocketAddress(ipAddress: row.0, port: 25)) == row.1)
    }
}
