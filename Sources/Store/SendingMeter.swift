import Foundation
import GRDB

/// Whether a submission may be accepted under its account's quotas.
public enum Admission: Sendable, Equatable {
    case accepted
    /// Over `maxSendRate`; enough capacity returns after this many seconds.
    case rateExceeded(retryAfter: Double)
    /// Over `max24HourSend` in the last 24 hours.
    case dailyQuotaExceeded
    /// A sandboxed account addressed someone outside its own domains.
    case sandboxRecipient(String)
    case unknownAccount
}

/// Per-account usage for a day (UTC), the basis for billing.
public struct DailyUsage: Sendable, Codable, Equatable {
    public var day: String
    public var messages: Int
    public var recipients: Int
    public var bytes: Int

    /// `day` is days since the epoch.
    init(day: Int, messages: Int, recipients: Int, bytes: Int) {
        self.day = DailyUsage.dayFormatter.string(from: Date(timeIntervalSince1970: Double(day) * 86400))
        self.messages = messages
        self.recipients = recipients
        self.bytes = bytes
    }

    static let dayFormatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter
    }()
}

/// What was sent in one hour: counted per account by each node's meter.
public struct UsageCounts: Sendable, Equatable {
    public var messages = 0
    public var recipients = 0
    public var bytes = 0

    mutating func add(_ messages: Int, _ recipients: Int, _ bytes: Int) {
        self.messages += messages
        self.recipients += recipients
        self.bytes += bytes
    }
}

/// Usage per account and hour: one capability of the store, with an
/// implementation per engine (`SQLiteStore`, `PostgresStore`). Every node
/// adds its own counts, so that what is read back is the whole service's.
public protocol UsageLedger: Sendable {
    /// Adds counts per account and per hour (hours since the epoch) to those recorded, all or none.
    func addUsage(_ counts: [Int64: [Int: UsageCounts]]) throws
    /// Recipients per hour recorded for an account in the hours after `hour`.
    func recipientsPerHour(accountID: Int64, after hour: Int) throws -> [Int: Int]
    /// Usage per UTC day from `since` (inclusive) to `until` (exclusive), as recorded.
    func dailyUsage(accountID: Int64, since: Date, until: Date) throws -> [DailyUsage]
}

/// Enforces sending quotas and meters usage, for SMTP and the APIs alike.
///
/// Counting is in memory, under one lock, so that admitting a message costs
/// no database write; counts reach the ledger on `flush()` (every second
/// from the server, and at shutdown). The 24-hour window is rolling by the
/// hour: the current hour and the 23 before it. The rate limit is a token
/// bucket holding one second of sending.
///
/// Nodes sharing a store share the daily quota: every `refresh` seconds an
/// account's window is read again from the ledger (every node's flushed
/// counts) plus this node's counts not yet flushed. So another node's
/// sending counts here within `refresh` plus its flush interval, and the
/// nodes together may pass the quota by what they admit in that time
/// (docs/cluster.md). The rate limit is each node's own.
public final class SendingMeter: @unchecked Sendable {
    typealias Counts = UsageCounts

    struct AccountState {
        var account: Account
        var loadedAt: Date
        var tokens: Double
        var refilledAt: Date
        /// Recipients per hour (hours since the epoch) for the window.
        var hours: [Int: Int]
    }

    /// An account and its window as read from the store, outside the lock.
    struct Reading {
        var account: Account
        /// The ledger's recipients per hour.
        var ledger: [Int: Int]?
        /// Which flush had last committed when the ledger was read (`flushes`).
        var flushesBefore: Int
    }

    private let store: any AccountStore & UsageLedger
    private let lock = NSLock()
    /// One flush at a time: a second waits, so that `flushing` is only ever one batch.
    private let flushLock = NSLock()
    private var accounts: [Int64: AccountState] = [:]
    private var pending: [Int64: [Int: Counts]] = [:]
    /// Counts a flush is writing: in neither `pending` nor (until it commits) the ledger.
    private var flushing: [Int64: [Int: Counts]] = [:]
    /// When reading an account from the store last failed.
    private var failedReadings: [Int64: Date] = [:]
    /// Flushes committed so far. A window read from the ledger is used only if none committed since it was
    /// read: otherwise a batch would be counted twice, or not at all.
    private var flushes = 0
    /// How long quota settings are cached (changes by the CLI apply after this).
    let refresh: TimeInterval

    /// Whether a sandboxed account may send only to its verified domains
    /// (domains.requireVerified): a domain claimed but not proved counts for nothing.
    let sandboxNeedsVerifiedDomains: Bool

    /// In a cluster: the nodes that share an account's sending rate, each taking its part.
    let liveNodes: LiveNodes?

    /// What this node admits of an account's sending rate: all of it alone, its part in a cluster.
    public func nodeShare(ofRate rate: Double) -> Double {
        rate / Double(liveNodes?.current ?? 1)
    }

    public init(store: any AccountStore & UsageLedger, refresh: TimeInterval = 5, sandboxNeedsVerifiedDomains: Bool = true,
                liveNodes: LiveNodes? = nil) {
        self.liveNodes = liveNodes
        self.store = store
        self.refresh = refresh
        self.sandboxNeedsVerifiedDomains = sandboxNeedsVerifiedDomains
    }

    /// Admits and counts `messages` messages to `recipients`, or says why not (counting nothing).
    public func admit(accountID: Int64, messages: Int, recipients: [String], bytes: Int, now: Date = Date()) -> Admission {
        let reading = read(accountID, now: now)
        lock.lock()
        defer { lock.unlock() }
        guard var state = self.state(accountID, now: now, reading: reading) else { return .unknownAccount }
        let quota = state.account.quota
        if quota.sandbox {
            let domains = Set(sandboxNeedsVerifiedDomains ? state.account.verifiedDomains : state.account.domains)
            for recipient in recipients {
                let domain = recipient.split(separator: "@").last.map { $0.lowercased() } ?? ""
                if !domains.contains(domain) { return .sandboxRecipient(recipient) }
            }
        }
        let hour = SendingMeter.hour(now)
        state.hours = state.hours.filter { $0.key > hour - 24 }
        if quota.max24HourSend >= 0, state.hours.values.reduce(0, +) + recipients.count > quota.max24HourSend {
            accounts[accountID] = state
            return .dailyQuotaExceeded
        }
        if quota.maxSendRate >= 0 {
            // Each node of a cluster admits its part of the rate (the tolerance is a node's burst of one second).
            let rate = nodeShare(ofRate: quota.maxSendRate)
            let capacity = max(rate, 1)
            state.tokens = min(capacity, state.tokens + now.timeIntervalSince(state.refilledAt) * rate)
            state.refilledAt = now
            let needed = Double(recipients.count)
            if needed > state.tokens {
                accounts[accountID] = state
                let wait = rate > 0 ? (min(needed, capacity) - state.tokens) / rate : 86400
                return .rateExceeded(retryAfter: max(wait, needed > capacity ? 1 : 0))
            }
            state.tokens -= needed
        }
        state.hours[hour, default: 0] += recipients.count
        accounts[accountID] = state
        pending[accountID, default: [:]][hour, default: Counts()].add(messages, recipients.count, bytes)
        return .accepted
    }

    /// Takes back an admission whose messages were not accepted after all (the spool refused them).
    public func release(accountID: Int64, messages: Int, recipients: Int, bytes: Int, now: Date = Date()) {
        lock.lock()
        defer { lock.unlock() }
        let hour = SendingMeter.hour(now)
        accounts[accountID]?.hours[hour, default: 0] -= recipients
        pending[accountID, default: [:]][hour, default: Counts()].add(-messages, -recipients, -bytes)
    }

    /// Recipients counted against the 24-hour quota now.
    public func sentLast24Hours(accountID: Int64, now: Date = Date()) -> Int {
        let reading = read(accountID, now: now)
        lock.lock()
        defer { lock.unlock() }
        let hour = SendingMeter.hour(now)
        return state(accountID, now: now, reading: reading)?.hours.filter { $0.key > hour - 24 }.values.reduce(0, +) ?? 0
    }

    /// Writes the counts gathered since the last flush, once any flush under way has ended.
    public func flush() throws {
        flushLock.lock()
        defer { flushLock.unlock() }
        try flushLocked()
    }

    /// As `flush`, waiting at most `limit` for a flush (or a reading of the ledger) under way, which then
    /// writes the counts: for request handlers, which should not wait long on the store.
    public func flush(waitingAtMost limit: TimeInterval) throws {
        guard flushLock.lock(before: Date().addingTimeInterval(limit)) else { return }
        defer { flushLock.unlock() }
        try flushLocked()
    }

    private func flushLocked() throws {
        lock.lock()
        let batch = pending.mapValues { $0.filter { $0.value != Counts() } }.filter { !$0.value.isEmpty }
        pending = [:]
        flushing = batch
        lock.unlock()
        guard !batch.isEmpty else { return }
        do {
            try store.addUsage(batch)
            lock.lock()
            flushing = [:]
            flushes += 1
            lock.unlock()
        } catch {
            // Keep the counts for the next flush rather than lose them.
            lock.lock()
            flushing = [:]
            for (account, hours) in batch {
                for (hour, counts) in hours {
                    pending[account, default: [:]][hour, default: Counts()].add(counts.messages, counts.recipients, counts.bytes)
                }
            }
            lock.unlock()
            throw error
        }
    }

    /// The account and its window from the store, when the state held is missing or older than `refresh`;
    /// read outside the lock, so that a slow store holds up no other account's admissions, and under
    /// `flushLock`, so that no flush commits while the ledger is read (only in the moment between this and
    /// `state`, which then finds `flushes` changed and leaves the reading for the next admission).
    private func read(_ accountID: Int64, now: Date) -> Reading? {
        lock.lock()
        let held = accounts[accountID]
        let failed = failedReadings[accountID]
        lock.unlock()
        if let held, now.timeIntervalSince(held.loadedAt) <= refresh { return nil }
        // After a failed reading the store is left alone for `refresh` seconds: an outage does not make every
        // admission wait on it. The state held (the account's last settings and this node's counts) goes on.
        if held != nil, let failed, now.timeIntervalSince(failed) <= refresh { return nil }
        flushLock.lock()
        defer { flushLock.unlock() }
        lock.lock()
        let flushesBefore = flushes
        lock.unlock()
        do {
            guard let account = try store.account(id: accountID) else { return nil }
            let ledger = try store.recipientsPerHour(accountID: accountID, after: SendingMeter.hour(now) - 24)
            return Reading(account: account, ledger: ledger, flushesBefore: flushesBefore)
        } catch {
            lock.lock()
            failedReadings[accountID] = now
            lock.unlock()
            return nil
        }
    }

    /// The state under the lock, with a fresh reading applied. Another node's sending arrives through the
    /// ledger; this node's own, not yet in it, is added from `pending` (and `flushing`).
    private func state(_ accountID: Int64, now: Date, reading: Reading?) -> AccountState? {
        let hour = SendingMeter.hour(now)
        func window(_ ledger: [Int: Int], adding batches: [[Int64: [Int: Counts]]]) -> [Int: Int] {
            var window = ledger
            for batch in batches {
                for (counted, counts) in batch[accountID] ?? [:] where counted > hour - 24 {
                    window[counted, default: 0] += counts.recipients
                }
            }
            return window
        }
        // A window is exact when no flush committed since the ledger was read (none ran while it was).
        let exact = reading?.flushesBefore == flushes
        if var state = accounts[accountID] {
            guard let reading else { return state }
            state.account = reading.account
            if let ledger = reading.ledger, exact {
                // A flush may have begun since: its batch, no longer pending, is not in the ledger yet either.
                state.hours = window(ledger, adding: [pending, flushing])
                state.loadedAt = now
            }
            // Otherwise a flush committed in the moment since: the count held stays, and the next admission reads again.
            accounts[accountID] = state
            return state
        }
        guard let reading else { return nil }
        // The account's first admission on this node: nothing of it is pending or flushing here, so the ledger is the count.
        let state = AccountState(account: reading.account, loadedAt: now, tokens: max(reading.account.quota.maxSendRate, 1),
                                 refilledAt: now, hours: window(reading.ledger ?? [:], adding: [pending, flushing]))
        accounts[accountID] = state
        return state
    }

    /// Hours since the epoch, clamped so that no date can trap the conversion.
    static func hour(_ date: Date) -> Int {
        let hours = (date.timeIntervalSince1970 / 3600).rounded(.down)
        return hours.isFinite ? Int(max(-1e12, min(1e12, hours))) : 0
    }

    /// The first hour that starts at or after `date`: the end (exclusive) of the hours a range up to
    /// `date` touches, so that usage "until now" includes the hour under way.
    static func hourEnding(_ date: Date) -> Int {
        let hours = (date.timeIntervalSince1970 / 3600).rounded(.up)
        return hours.isFinite ? Int(max(-1e12, min(1e12, hours))) : 0
    }
}

extension SQLiteStore: UsageLedger {
    public func addUsage(_ counts: [Int64: [Int: UsageCounts]]) throws {
        try database.write { db in
            let statement = try db.cachedStatement(sql: """
                INSERT INTO usage_hour (account_id, hour, messages, recipients, bytes) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(account_id, hour) DO UPDATE SET messages = messages + excluded.messages,
                    recipients = recipients + excluded.recipients, bytes = bytes + excluded.bytes
                """)
            for (account, hours) in counts {
                for (hour, counts) in hours {
                    try statement.execute(arguments: [account, hour, counts.messages, counts.recipients, counts.bytes])
                }
            }
        }
    }

    public func recipientsPerHour(accountID: Int64, after hour: Int) throws -> [Int: Int] {
        try database.read { db in
            var hours: [Int: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT hour, recipients FROM usage_hour WHERE account_id = ? AND hour > ?",
                                        arguments: [accountID, hour]) {
                hours[row["hour"] as Int] = row["recipients"] as Int
            }
            return hours
        }
    }

    public func dailyUsage(accountID: Int64, since: Date, until: Date) throws -> [DailyUsage] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT hour / 24 AS day, SUM(messages) AS messages, SUM(recipients) AS recipients, SUM(bytes) AS bytes
                FROM usage_hour WHERE account_id = ? AND hour >= ? AND hour < ? GROUP BY day ORDER BY day
                """, arguments: [accountID, SendingMeter.hour(since), SendingMeter.hourEnding(until)]).map { row in
                DailyUsage(day: row["day"], messages: row["messages"], recipients: row["recipients"], bytes: row["bytes"])
            }
        }
    }
}
