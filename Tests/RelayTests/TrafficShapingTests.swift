import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import Relay

struct TrafficShapingTests {
    @Test func presetsNameProvidersByDomainAndByMXHost() {
        let shaping = TrafficShaping()
        #expect(shaping.site(domain: "gmail.com", mxHosts: ["gmail-smtp-in.l.google.com"]).name == "gmail")
        // A Google Workspace domain shares Gmail's site through its MX hosts.
        #expect(shaping.site(domain: "example.co.jp", mxHosts: ["ASPMX.L.GOOGLE.COM."]).name == "gmail")
        #expect(shaping.site(domain: "docomo.ne.jp", mxHosts: ["mfsmax.docomo.ne.jp"]).name == "docomo")
        #expect(shaping.site(domain: "au.com", mxHosts: []).name == "au")
        #expect(shaping.site(domain: "ezweb.ne.jp", mxHosts: []).name == "au")
        #expect(shaping.site(domain: "i.softbank.jp", mxHosts: []).name == "softbank")
        #expect(shaping.site(domain: "yahoo.co.jp", mxHosts: []).name == "yahoo-japan")
        #expect(shaping.site(domain: "hotmail.com", mxHosts: []).name == "outlook")
        #expect(shaping.site(domain: "icloud.com", mxHosts: []).name == "icloud")
        // Unnamed destinations: one site per set of MX hosts, whatever the domain.
        let a = shaping.site(domain: "a.example", mxHosts: ["mx2.host.example", "mx1.host.example"])
        let b = shaping.site(domain: "b.example", mxHosts: ["mx1.host.example", "mx2.host.example"])
        #expect(a.name == "mx:mx1.host.example,mx2.host.example" && a == b)
        #expect(a.limits == ShapingLimits())
    }

    @Test func theOperatorFileComesFirstAndReplacesPresetsByName() throws {
        let path = NSTemporaryDirectory() + "shaping-" + UUID().uuidString + ".json"
        try Data("""
            {"default": {"maxConnections": 7},
             "sites": [{"name": "gmail", "domains": ["gmail.com"], "maxConnections": 2},
                       {"name": "partner", "mxHosts": ["partner.example"], "maxMessagesPerMinute": 30, "tlsPolicy": "required"}]}
            """.utf8).write(to: URL(fileURLWithPath: path))
        let shaping = try TrafficShaping.load(operatorFile: path)
        let gmail = shaping.site(domain: "gmail.com", mxHosts: [])
        #expect(gmail.limits.maxConnections == 2 && gmail.limits.maxMessagesPerConnection == 100)
        #expect(shaping.site(domain: "googlemail.com", mxHosts: []).name != "gmail", "the preset was replaced, not merged")
        #expect(shaping.site(domain: "x.example", mxHosts: ["in.partner.example"]).limits.maxMessagesPerMinute == 30)
        #expect(shaping.site(domain: "x.example", mxHosts: ["in.partner.example"]).limits.tlsPolicy == .required)
        #expect(gmail.limits.tlsPolicy == nil, "unset: delivery.tlsPolicy applies")
        #expect(shaping.site(domain: "x.example", mxHosts: ["mx.other.example"]).limits.maxConnections == 7)
        #expect(shaping.site(domain: "docomo.ne.jp", mxHosts: []).name == "docomo", "other presets stay")
    }

    @Test func eachSourceAddressHasItsOwnSite() {
        let directory = SiteDirectory(shaping: TrafficShaping())
        let a = directory.site(domain: "gmail.com", mxHosts: [], source: "192.0.2.1")
        let b = directory.site(domain: "gmail.com", mxHosts: [], source: "192.0.2.2")
        #expect(a.name == "gmail from 192.0.2.1" && b.name == "gmail from 192.0.2.2")
        #expect(a === directory.site(domain: "googlemail.com", mxHosts: [], source: "192.0.2.1"), "one site per rule and source")
        #expect(directory.site(domain: "gmail.com", mxHosts: []).name == "gmail")
    }

    // Guards against memory and metrics growing with every destination domain a tenant mails.
    @Test func anAccountSeesProvidersNotMXSetsOrSourceAddresses() {
        let limits = ShapingLimits(maxConnections: 3)
        let sites = [SiteActivity(name: "gmail from 192.0.2.1", openConnections: 2, idleConnections: 1, waiting: 0, limits: limits, postponements: 4),
                     SiteActivity(name: "gmail from 192.0.2.2", openConnections: 1, idleConnections: 0, waiting: 2, limits: limits, postponements: 1),
                     SiteActivity(name: "mx:mx.secret-customer.example", openConnections: 5, idleConnections: 0, waiting: 0, limits: limits,
                                  postponements: 0),
                     SiteActivity(name: "docomo", openConnections: 0, idleConnections: 0, waiting: 0, limits: limits, postponements: 7)]
        let shown = SiteActivity.byProvider(sites)
        #expect(shown.map(\.name) == ["gmail", "docomo"])
        #expect(shown[0].openConnections == 3 && shown[0].idleConnections == 1 && shown[0].waiting == 2 && shown[0].postponements == 5)
    }

    @Test func adHocSitesAreBounded() {
        let directory = SiteDirectory(shaping: TrafficShaping())
        let gmail = directory.site(domain: "gmail.com", mxHosts: ["gmail-smtp-in.l.google.com"])
        for number in 0..<(SiteDirectory.maximumSites + 50) {
            _ = directory.site(domain: "d\(number).example", mxHosts: ["mx.d\(number).example"])
        }
        #expect(directory.count <= SiteDirectory.maximumSites)
        #expect(directory.site(domain: "gmail.com", mxHosts: ["gmail-smtp-in.l.google.com"]) === gmail, "named sites stay")
        #expect(DeliverySite.metricsLabel("mx:mx.d1.example") == "other" && DeliverySite.metricsLabel("gmail") == "gmail")
    }

    @Test func tokenBucketSpacesMessagesOut() {
        let start = Date(timeIntervalSince1970: 1000)
        var bucket = TokenBucket(capacity: 2, perSecond: 0.5, now: start)
        #expect(bucket.readyAt(start) == start)
        bucket.take(at: start)
        bucket.take(at: start)
        #expect(bucket.readyAt(start) == start.addingTimeInterval(2))
        #expect(bucket.readyAt(start.addingTimeInterval(3)) == start.addingTimeInterval(3))
    }

    @Test func aSiteNeverHasMoreConnectionSlotsThanItsLimit() async throws {
        let site = DeliverySite(name: "s", limits: ShapingLimits(maxConnections: 2))
        guard case .open = await site.acquire(), case .open = await site.acquire() else {
            Issue.record("the first two callers get slots")
            return
        }
        #expect(await site.openConnections == 2)
        let third = Task { await site.acquire() }
        try await Task.sleep(for: .milliseconds(50))
        // A freed slot passes to the waiter; the count never goes past the limit.
        await site.release(nil, reusable: false)
        guard case .open = await third.value else {
            Issue.record("the waiter gets the freed slot")
            return
        }
        #expect(await site.openConnections == 2)
        await site.release(nil, reusable: false)
        await site.release(nil, reusable: false)
        #expect(await site.openConnections == 0)
    }

    @Test func aSiteOverItsRatePostponesInsteadOfWaiting() async {
        let clock = NIOLockedValueBox(Date(timeIntervalSince1970: 5000))
        let site = DeliverySite(name: "s", limits: ShapingLimits(maxConnections: 0, maxMessagesPerMinute: 2),
                                now: { clock.withLockedValue { $0 } })
        for _ in 0..<2 {
            guard case .open = await site.acquire() else { Issue.record("within the rate"); return }
        }
        guard case .postpone(let until) = await site.acquire() else { Issue.record("over the rate"); return }
        #expect(until == Date(timeIntervalSince1970: 5030), "one message per 30 s at 2 per minute")
        clock.withLockedValue { $0 = until }
        guard case .open = await site.acquire() else { Issue.record("the rate has refilled"); return }
    }
}
