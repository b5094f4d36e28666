import Dispatch
import Foundation
import Store
import Synchronization

/// A named site's connection slots as a cluster counts them (`SiteSlotLeases`
/// in the shared store): a node opens a connection to `gmail` only with one
/// of gmail's slots, whichever node it is.
///
/// The store is asked on a queue of its own, never on the concurrency pool's
/// threads. While the store does not answer, a node keeps to its share of
/// the site's limit (the limit divided by the live nodes, at least one), so
/// delivery goes on and the cluster stays near the limit; after a failure
/// the store is left alone for 5 seconds.
public final class SharedSiteSlots: Sendable {
    enum Grant: Equatable {
        /// One of the site's slots, to give back when the connection closes.
        case slot(Int)
        /// Every slot is held.
        case full
        /// The store did not answer; within this node's share.
        case share
    }

    let leases: any SiteSlotLeases
    let liveNodes: LiveNodes
    /// How long a slot is kept without renewal (the heartbeat renews them).
    public let lifetime: Int
    /// Takes, releases and renewals, one at a time and in order, so that what `held` says is what the
    /// store has.
    private let queue = DispatchQueue(label: "hikyaku.site-slots")
    private let quietUntil = Mutex<ContinuousClock.Instant?>(nil)
    /// The slots this node holds, as the store granted them.
    private let held = Mutex<Set<SiteSlot>>([])

    public init(leases: any SiteSlotLeases, liveNodes: LiveNodes, lifetime: Int) {
        self.leases = leases
        self.liveNodes = liveNodes
        self.lifetime = lifetime
    }

    /// A slot for one more connection to `site`, of which this node would then have `openHere` open.
    func take(site: String, limit: Int, openHere: Int) async -> Grant {
        let share = openHere <= max(1, limit / liveNodes.current) ? Grant.share : .full
        return await withCheckedContinuation { continuation in
            queue.async { [self] in
                // Checked here, in turn: takes queued behind a failure do not each wait out the store's deadline.
                if let quiet = quietUntil.withLock({ $0 }), quiet > .now { return continuation.resume(returning: share) }
                do {
                    guard let slot = try leases.takeSiteSlot(site: site, limit: limit, lifetime: lifetime) else {
                        return continuation.resume(returning: .full)
                    }
                    held.withLock { _ = $0.insert(SiteSlot(site: site, slot: slot)) }
                    continuation.resume(returning: .slot(slot))
                } catch {
                    quietUntil.withLock { $0 = .now + .seconds(5) }
                    continuation.resume(returning: share)
                }
            }
        }
    }

    /// Gives a slot back, without waiting. One that fails is given back by the next renewal, which keeps
    /// only what `held` lists; a slot not renewed lapses after `lifetime`.
    func release(site: String, slot: Int) {
        queue.async { [self] in
            held.withLock { _ = $0.remove(SiteSlot(site: site, slot: slot)) }
            try? leases.releaseSiteSlot(site: site, slot: slot)
        }
    }

    /// Keeps this node's slots, and only those (called with each heartbeat, on the slots' own queue).
    public func renew() throws {
        try queue.sync {
            try leases.renewSiteSlots(Array(held.withLock { $0 }), lifetime: lifetime)
        }
    }
}
