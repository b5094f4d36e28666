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

    private let store: any AccountStore & UsageLedger
    private let lock = NSLock()
    private var accounts: [Int64: AccountState] = [:]
    private var pending: [Int64: [Int: Counts]] = [:]
    /// Counts a flush is writing: in neither `pending` nor (until it commits) the ledger.
    private var flushing: [Int64: [Int: Counts]] = [:]
    /// How long quota settings are cached (changes by the CLI apply after this).
    let refresh: TimeInterval

    /// Whether a sandboxed account may send only to its verified domains
    /// (domains.requireVerified): a domain claimed but not proved counts for nothing.
    let sandboxNeedsVerifiedDomains: Bool

    public init(store: any AccountStore & UsageLedger, refresh: TimeInterval = 5, sandboxNeedsVerifiedDomains: Bool = true) {
        self.store = store
        self.refresh = refresh
        self.sandboxNeedsVerifiedDomains = sandboxNeedsVerifiedDomains
    }

    /// Admits and counts `messages` messages to `recipients`, or says why not (counting nothing).
    public func admit(accountID: Int64, messages: Int, recipients: [String], bytes: Int, now: Date = Date()) -> Admission {
        lock.lock()
        defer { lock.unlock() }
        guard var state = self.state(accountID, now: now) else { return .unknownAccount }
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
            let capacity = max(quota.maxSendRate, 1)
            state.tokens = min(capacity, state.tokens + now.timeIntervalSince(state.refilledAt) * quota.maxSendRate)
            state.refilledAt = now
            let needed = Double(recipients.count)
            if needed > state.tokens {
                accounts[accountID] = state
                let wait = quota.maxSendRate > 0 ? (min(needed, capacity) - state.tokens) / quota.maxSendRate : 86400
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
        lock.lock()
        defer { lock.unlock() }
        let hour = SendingMeter.hour(now)
        return state(accountID, now: now)?.hours.filter { $0.key > hour - 24 }.values.reduce(0, +) ?? 0
    }

    /// Writes the counts gathered since the last flush.
    public func flush() throws {
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

    private func state(_ accountID: Int64, now: Date) -> AccountState? {
        if var state = accounts[accountID] {
            if now.timeIntervalSince(state.loadedAt) > refresh, let account = try? store.account(id: accountID) {
                state.account = account
                state.loadedAt = now
                // Other nodes' sending, as they flushed it; a failed read keeps this node's own count.
                if let hours = try? window(accountID, now: now) { state.hours = hours }
                accounts[accountID] = state
            }
            return state
        }
        guard let account = try? store.account(id: accountID) else { return nil }
        let state = AccountState(account: account, loadedAt: now, tokens: max(account.quota.maxSendRate, 1), refilledAt: now,
                                 hours: (try? window(accountID, now: now)) ?? [:])
        accounts[accountID] = state
        return state
    }

    /// Recipients per hour of the 24-hour window: the ledger's, and this node's not yet in it.
    private func window(_ accountID: Int64, now: Date) throws -> [Int: Int] {
        let hour = SendingMeter.hour(now)
        var hours = try store.recipientsPerHour(accountID: accountID, after: hour - 24)
        for unrecorded in [pending[accountID], flushing[accountID]] {
            for (counted, counts) in unrecorded ?? [:] where counted > hour - 24 {
                hours[counted, default: 0] += counts.recipients
            }
        }
        return hours
    }

    /// Hours since the epoch, clamped so that no date can trap the conversion.
    static func hour(_ date: Date) -> Int {
        let hours = (date.timeIntervalSince1970 / 3600).rounded(.down)
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
                """, arguments: [accountID, SendingMeter.hour(since), SendingMeter.hour(until)]).map { row in
                DailyUsage(day: row["day"], messages: row["messages"], recipients: row["recipients"], bytes: row["bytes"])
            }
        }
    }
}
