import Foundation
import Synchronization

/// How many nodes serve from the store now, as their heartbeats say (at
/// least 1: this one). A cluster divides what is limited per service, not
/// per node, by it: an account's sending rate, a site's messages per minute.
public final class LiveNodes: Sendable {
    private let count = Mutex(1)

    public init() {}

    public var current: Int { count.withLock { $0 } }

    public func set(_ nodes: Int) {
        count.withLock { $0 = max(1, nodes) }
    }
}

/// One of a site's connection slots.
public struct SiteSlot: Sendable, Hashable {
    public var site: String
    public var slot: Int

    public init(site: String, slot: Int) {
        self.site = site
        self.slot = slot
    }
}

/// Connection slots to a destination site, shared by a cluster's nodes: a
/// site limited to 2 connections has 2 in all, not 2 per node. A slot is a
/// lease: a node that stops renewing its own (it crashed, or lost the
/// database) loses them after `lifetime` seconds.
///
/// Only the shared store has them. On SQLite a node is the whole service,
/// and its own count of open connections is the site's.
public protocol SiteSlotLeases: Sendable {
    /// Takes a free one of the site's slots `0..<limit` for this node, for
    /// `lifetime` seconds; nil when every one is held.
    func takeSiteSlot(site: String, limit: Int, lifetime: Int) throws -> Int?
    /// Gives a slot back (its connection closed).
    func releaseSiteSlot(site: String, slot: Int) throws
    /// Keeps the slots this node holds for another `lifetime` seconds, and gives back any other row under
    /// its name (a release that failed, a take whose answer never came).
    func renewSiteSlots(_ held: [SiteSlot], lifetime: Int) throws
    /// Gives back every slot of this node: at start, what a previous run left.
    func releaseAllSiteSlots() throws
}
