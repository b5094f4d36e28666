import CoreMetrics
import Foundation
import NIOConcurrencyHelpers

/// One destination site's share of the sender: its open connections (at
/// most `maxConnections`, idle ones kept for reuse) and its message rate
/// (token buckets per minute and per hour).
///
/// A caller `acquire`s before each transaction and `release`s after. When
/// the rate is spent, or when too many callers already wait for a
/// connection, `acquire` says when to come back instead of waiting, so one
/// throttled provider never holds the scheduler's slots that other sites need.
actor DeliverySite {
    enum Grant {
        /// An idle connection to use; release it afterwards.
        case reuse(OutboundConnection)
        /// A connection slot: open a connection, then release it (or nil).
        case open
        /// Nothing now; try again at this time.
        case postpone(until: Date)
    }

    nonisolated let name: String
    nonisolated let limits: ShapingLimits
    private let now: @Sendable () -> Date
    private var open = 0 {
        didSet { connections?.record(open) }
    }
    /// Only sites of a named shaping rule have a gauge of their own: a site
    /// per MX set would give the metrics one series per destination domain.
    private let connections: Gauge?
    private var idle: [OutboundConnection] = []
    private var waiters: [CheckedContinuation<Grant, Never>] = []
    private var minuteBucket: TokenBucket?
    private var hourBucket: TokenBucket?
    /// In a cluster: the site's connection slots across the nodes (named sites only), and this node's
    /// share of its message rate. Nil on a node that is the whole service.
    private let cluster: SharedSiteSlots?
    /// What this site's open connections hold in the cluster, one entry per connection: a slot, or nil
    /// for a connection opened on this node's share while the store did not answer.
    private var slots: [Int?] = []
    /// Callers that may wait for a connection before the rest are postponed.
    private var maximumWaiters: Int { max(4, limits.maxConnections * 4) }

    init(name: String, limits: ShapingLimits, cluster: SharedSiteSlots? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        self.name = name
        // A site per MX set is one per destination: leasing each would cost the store a statement per
        // message for mail to small domains. Limits across nodes are for the named providers.
        self.cluster = DeliverySite.isAdHoc(name) ? nil : cluster
        self.limits = limits
        self.now = now
        connections = DeliverySite.isAdHoc(name) ? nil : Gauge(label: "hikyaku_site_connections", dimensions: [("site", name)])
        let start = now()
        if limits.maxMessagesPerMinute > 0 {
            minuteBucket = TokenBucket(capacity: Double(limits.maxMessagesPerMinute), perSecond: Double(limits.maxMessagesPerMinute) / 60, now: start)
        }
        if limits.maxMessagesPerHour > 0 {
            hourBucket = TokenBucket(capacity: Double(limits.maxMessagesPerHour), perSecond: Double(limits.maxMessagesPerHour) / 3600, now: start)
        }
    }

    var openConnections: Int { open }
    /// Times a caller was told to come back later (rate spent, or too many waiting), since start.
    private var postponements = 0

    /// What the console's queue page shows of this site.
    var activity: SiteActivity {
        SiteActivity(name: name, openConnections: open, idleConnections: idle.count, waiting: waiters.count, limits: limits,
                     postponements: postponements)
    }

    /// A site made for one MX set (no named rule matched): there is one per destination provider.
    nonisolated static func isAdHoc(_ name: String) -> Bool { name.hasPrefix("mx:") }

    /// The site as a metrics label: its rule's name, or `other` for an ad-hoc site.
    nonisolated static func metricsLabel(_ name: String?) -> String {
        guard let name else { return "" }
        return isAdHoc(name) ? "other" : name
    }

    func acquire() async -> Grant {
        let time = now()
        if let cluster {
            // Each of the live nodes takes its share of the site's rate.
            let nodes = Double(cluster.liveNodes.current)
            minuteBucket?.share = nodes
            hourBucket?.share = nodes
        }
        let readyAt = [minuteBucket?.readyAt(time), hourBucket?.readyAt(time)].compactMap { $0 }.max()
        if let readyAt, readyAt > time {
            postponements += 1
            return .postpone(until: readyAt)
        }
        if let connection = idle.popLast() {
            take(at: time)
            return .reuse(connection)
        }
        if limits.maxConnections <= 0 || open < limits.maxConnections {
            open += 1
            if let cluster, limits.maxConnections > 0 {
                switch await cluster.take(site: name, limit: limits.maxConnections, openHere: open) {
                case .slot(let slot): slots.append(slot)
                case .share: slots.append(nil)
                case .full:
                    // Other nodes hold the site's connections: come back in a second. Those that queued up
                    // meanwhile, for the slot this one hoped for, are told the same.
                    open -= 1
                    postponements += 1
                    let later = now().addingTimeInterval(1)
                    for waiter in waiters { waiter.resume(returning: .postpone(until: later)) }
                    postponements += waiters.count
                    waiters.removeAll()
                    return .postpone(until: later)
                }
            }
            take(at: now())
            return .open
        }
        guard waiters.count < maximumWaiters else {
            postponements += 1
            return .postpone(until: time.addingTimeInterval(1))
        }
        let grant = await withCheckedContinuation { waiters.append($0) }
        if case .postpone = grant { return grant }
        take(at: now())
        return grant
    }

    private func take(at time: Date) {
        minuteBucket?.take(at: time)
        hourBucket?.take(at: time)
    }

    /// The transaction is over. A reusable connection below its message
    /// limit goes to the next waiter or the idle list; anything else is
    /// closed and its slot freed.
    func release(_ connection: OutboundConnection?, reusable: Bool) {
        if let connection, reusable, connection.channel.isActive,
           limits.maxMessagesPerConnection <= 0 || connection.transactions < limits.maxMessagesPerConnection {
            if !waiters.isEmpty {
                waiters.removeFirst().resume(returning: .reuse(connection))
            } else {
                idle.append(connection)
            }
            return
        }
        if let connection, connection.channel.isActive {
            // The slot is free once the remote side sees the connection gone, not when QUIT is sent:
            // a site limited to 2 connections never sees a third while one says goodbye.
            connection.quit()
            connection.channel.closeFuture.whenComplete { _ in Task { await self.freeSlot() } }
            return
        }
        freeSlot()
    }

    /// An idle connection closed by itself (idle timeout, remote close).
    func closed(_ connection: OutboundConnection) {
        guard let position = idle.firstIndex(where: { $0 === connection }) else { return }
        idle.remove(at: position)
        freeSlot()
    }

    private func freeSlot() {
        if !waiters.isEmpty {
            // The slot passes straight to the next waiter.
            waiters.removeFirst().resume(returning: .open)
        } else {
            open -= 1
            // Which connection closed is not known here: a share's entry goes first, so that a slot is never
            // given back while more connections are open than slots are held.
            if let cluster {
                if let share = slots.firstIndex(where: { $0 == nil }) {
                    slots.remove(at: share)
                } else if let slot = slots.popLast() ?? nil {
                    cluster.release(site: name, slot: slot)
                }
            }
        }
    }

    /// Closes idle connections (shutdown).
    func closeIdle() {
        for connection in idle { connection.quit() }
    }
}

/// A classic token bucket: `capacity` tokens, refilled at `perSecond`;
/// in a cluster, this node's `1/share` of both.
struct TokenBucket {
    private let fullCapacity: Double
    private let fullRate: Double
    var share: Double = 1
    var capacity: Double { fullCapacity / share }
    var perSecond: Double { fullRate / share }
    private var tokens: Double
    private var updated: Date

    init(capacity: Double, perSecond: Double, now: Date) {
        fullCapacity = capacity
        fullRate = perSecond
        tokens = capacity
        updated = now
    }

    private func available(at time: Date) -> Double {
        min(capacity, tokens + max(0, time.timeIntervalSince(updated)) * perSecond)
    }

    /// When the next token is there (now or later).
    func readyAt(_ time: Date) -> Date {
        let have = available(at: time)
        return have >= 1 ? time : time.addingTimeInterval((1 - have) / perSecond)
    }

    mutating func take(at time: Date) {
        tokens = available(at: time) - 1
        updated = time
    }
}

/// A delivery site's state at one moment: its connections, its limits, how often it said "later".
public struct SiteActivity: Sendable {
    public var name: String
    public var openConnections: Int
    public var idleConnections: Int
    /// Transactions waiting for a connection.
    public var waiting: Int
    public var limits: ShapingLimits
    public var postponements: Int
}

extension SiteActivity {
    /// The sites of named shaping rules only, one per rule: the same rule from several source
    /// addresses (`gmail from 192.0.2.1`) summed, its limits (per source address) kept.
    public static func byProvider(_ sites: [SiteActivity]) -> [SiteActivity] {
        var merged: [String: SiteActivity] = [:]
        for site in sites where !DeliverySite.isAdHoc(site.name) {
            let rule = site.name.components(separatedBy: " from ").first ?? site.name
            if var existing = merged[rule] {
                existing.openConnections += site.openConnections
                existing.idleConnections += site.idleConnections
                existing.waiting += site.waiting
                existing.postponements += site.postponements
                merged[rule] = existing
            } else {
                var named = site
                named.name = rule
                merged[rule] = named
            }
        }
        return merged.values.sorted { ($0.openConnections, $1.name) > ($1.openConnections, $0.name) }
    }
}

/// The sites seen so far, created on first use.
final class SiteDirectory: Sendable {
    private struct Destination: Hashable {
        var domain: String
        var mxHosts: [String]
        var source: String?
    }

    private let shaping: TrafficShaping
    private let cluster: SharedSiteSlots?
    private let sites = NIOLockedValueBox<[String: DeliverySite]>([:])
    /// Rule matching costs string work; a destination's site is looked up once.
    private let known = NIOLockedValueBox<[Destination: DeliverySite]>([:])

    init(shaping: TrafficShaping, cluster: SharedSiteSlots? = nil) {
        self.shaping = shaping
        self.cluster = cluster
    }

    /// The site for a destination as seen from `source` (nil: the kernel's
    /// choice): each source address has its own connections and limits.
    func site(domain: String, mxHosts: [String], source: String? = nil) -> DeliverySite {
        let destination = Destination(domain: domain, mxHosts: mxHosts, source: source)
        if let site = known.withLockedValue({ $0[destination] }) { return site }
        let found = shaping.site(domain: domain, mxHosts: mxHosts)
        let name = source.map { "\(found.name) from \($0)" } ?? found.name
        let site = sites.withLockedValue { sites in
            if let site = sites[name] { return site }
            // Bounded: past 10,000 sites the ad-hoc ones (one per MX set) are forgotten; a forgotten
            // site's connections finish their work and close, and the next message makes a new one.
            if sites.count >= SiteDirectory.maximumSites { sites = sites.filter { !DeliverySite.isAdHoc($0.key) } }
            let site = DeliverySite(name: name, limits: found.limits, cluster: cluster)
            sites[name] = site
            return site
        }
        known.withLockedValue { known in
            // Bounded: destinations are forgotten wholesale past 100,000.
            if known.count >= 100_000 { known.removeAll() }
            known[destination] = site
        }
        return site
    }

    var all: [DeliverySite] { sites.withLockedValue { Array($0.values) } }

    static let maximumSites = 10_000
    var count: Int { sites.withLockedValue { $0.count } }
}
