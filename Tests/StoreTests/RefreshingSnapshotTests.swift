import Foundation
import Synchronization
import Testing
@testable import Store

struct RefreshingSnapshotTests {
    @Test func aStaleValueIsReadAgainOnTheFirstCallAfterItsLifetime() throws {
        let source = Mutex(1)
        let snapshot = RefreshingSnapshot(lifetime: .milliseconds(50), initial: 0, patience: .seconds(30)) { source.withLock { $0 } }
        #expect(snapshot.current == 1)
        source.withLock { $0 = 2 }
        #expect(snapshot.current == 1, "fresh: not read again")
        Thread.sleep(forTimeInterval: 0.1)
        #expect(snapshot.current == 2, "a quick store is waited for: the change shows at once")
    }

    @Test func aStoreThatHangsCostsACallerItsPatienceNotTheStoresDeadline() throws {
        let hang = Mutex(false)
        let snapshot = RefreshingSnapshot(lifetime: .milliseconds(10), initial: 0, patience: .milliseconds(100)) { () -> Int in
            if hang.withLock({ $0 }) {
                Thread.sleep(forTimeInterval: 3)
                return 3
            }
            return 1
        }
        #expect(snapshot.current == 1)
        hang.withLock { $0 = true }
        Thread.sleep(forTimeInterval: 0.05)
        let start = ContinuousClock.now
        #expect(snapshot.current == 1, "the last value serves")
        #expect(snapshot.current == 1)
        #expect(ContinuousClock.now - start < .seconds(2), "one reload, waited for 100 ms, not 3 s each")
        Thread.sleep(forTimeInterval: 3.2)
        #expect(snapshot.current == 3, "the reload's value once it came")
    }

    @Test func aFailedReloadKeepsTheLastValue() throws {
        struct Down: Error {}
        let down = Mutex(false)
        let snapshot = RefreshingSnapshot(lifetime: .milliseconds(10), initial: 0) { () throws -> Int in
            if down.withLock({ $0 }) { throw Down() }
            return 5
        }
        #expect(snapshot.current == 5)
        down.withLock { $0 = true }
        Thread.sleep(forTimeInterval: 0.05)
        #expect(snapshot.current == 5)
    }
}
