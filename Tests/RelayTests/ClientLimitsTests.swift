import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import Relay

struct TrustedNetworksTests {
    @Test func matchesCIDRBlocks() throws {
        let networks = try TrustedNetworks(["127.0.0.0/8", "10.1.0.0/16", "::1"])
        #expect(networks.contains(try .init(ipAddress: "127.9.9.9", port: 1)))
        #expect(networks.contains(try .init(ipAddress: "10.1.200.3", port: 1)))
        #expect(!networks.contains(try .init(ipAddress: "10.2.0.1", port: 1)))
        #expect(networks.contains(try .init(ipAddress: "::1", port: 1)))
        #expect(networks.contains(try .init(ipAddress: "::ffff:127.0.0.1", port: 1)))
        #expect(!networks.contains(try .init(ipAddress: "::2", port: 1)))
        #expect(throws: TrustedNetworksError.self) { try TrustedNetworks(["10.0.0.0/33"]) }
        #expect(throws: TrustedNetworksError.self) { try TrustedNetworks(["not-an-ip"]) }
    }

    @Test func connectionLimits() {
        let limiter = ConnectionLimiter(maximumConnections: 3, maximumPerClient: 2)
        #expect(limiter.acquire("a"))
        #expect(limiter.acquire("a"))
        #expect(!limiter.acquire("a"))
        #expect(limiter.acquire("b"))
        #expect(!limiter.acquire("c"))
        limiter.release("a")
        #expect(limiter.acquire("c"))
        #expect(limiter.openConnections == 3)
    }
}

struct AuthenticationThrottleTests {
    @Test func blocksAfterFailuresAndForgetsAfterTheWindow() {
        let clock = NIOLockedValueBox(NIODeadline.uptimeNanoseconds(1_000_000_000))
        let throttle = AuthenticationThrottle(maximumFailures: 3, window: .seconds(60), now: { clock.withLockedValue { $0 } })
        for _ in 0..<2 { throttle.recordFailure("192.0.2.1") }
        #expect(!throttle.isBlocked("192.0.2.1"))
        throttle.recordFailure("192.0.2.1")
        #expect(throttle.isBlocked("192.0.2.1"))
        #expect(!throttle.isBlocked("192.0.2.2"), "other addresses are not affected")
        clock.withLockedValue { $0 = $0 + .seconds(61) }
        #expect(!throttle.isBlocked("192.0.2.1"))
    }

    // Guards against many connections sending passwords at once: each attempt counts when it starts.
    @Test func attemptsCountWhenTheyStart() {
        let throttle = AuthenticationThrottle(maximumFailures: 3, window: .seconds(60), maximumConcurrent: 100)
        #expect((0..<3).map { _ in throttle.begin("192.0.2.1") } == [.proceed, .proceed, .proceed])
        #expect(throttle.begin("192.0.2.1") == .throttled, "three checks still running already used the allowance")
        throttle.end("192.0.2.1", succeeded: true)
        #expect(throttle.begin("192.0.2.1") == .proceed, "a success takes its attempt back")
    }

    @Test func concurrentChecksAreBounded() {
        let throttle = AuthenticationThrottle(maximumFailures: 100, window: .seconds(60), maximumConcurrent: 2)
        #expect(throttle.begin("192.0.2.1") == .proceed)
        #expect(throttle.begin("192.0.2.2") == .proceed)
        #expect(throttle.begin("192.0.2.3") == .busy)
        throttle.end("192.0.2.1", succeeded: false)
        #expect(throttle.begin("192.0.2.3") == .proceed)
    }

    @Test func ipv6IsCountedBySlash64() {
        let throttle = AuthenticationThrottle(maximumFailures: 2, window: .seconds(60))
        throttle.recordFailure("2001:db8:1:2::1")
        throttle.recordFailure("2001:db8:1:2:ffff::9")
        #expect(throttle.isBlocked("2001:db8:1:2::77"), "the same /64")
        #expect(!throttle.isBlocked("2001:db8:1:3::1"), "another /64")
        #expect(ClientNetwork.key("::ffff:192.0.2.1") == "192.0.2.1")
        #expect(ClientNetwork.key("192.0.2.1") == "192.0.2.1")
        #expect(ClientNetwork.key("2001:db8:1:2::1") == "2001:db8:1:2::/64")
    }
}
