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
}

/// Enforces sending quotas and meters usage, for SMTP and the APIs alike.
///
/// Counting is in memory, under one lock, so that admitting a message costs
/// no database write; counts reach the `usage_hour` table on `flush()`
/// (every second from the server, and at shutdown). The 24-hour window is
/// rolling by the hour: the current hour and the 23 before it. The rate
/// limit is a token bucket holding one second of sending.
public final class SendingMeter: @unchecked Sendable {
    struct Counts: Equatable {
        var messages = 0
        var recipients = 0
        var bytes = 0
    }

    struct AccountState {
        var account: Account
        var loadedAt: Date
        var tokens: Double
        var refilledAt: Date
        /// Recipients per hour (hours since the epoch) for the window.
        var hours: [Int: Int]
    }

    private let store: SQLiteStore
    private let lock = NSLock()
    private var accounts: [Int64: AccountState] = [:]
    private var pending: [Int64: [Int: Counts]] = [:]
    /// How long quota settings are cached (changes by the CLI apply after this).
    let refresh: TimeInterval

    /// Whether a sandboxed account may send only to its verified domains
    /// (domains.requireVerified): a domain claimed but not proved counts for nothing.
    let sandboxNeedsVerifiedDomains: Bool

    public init(store: SQLiteStore, refresh: TimeInterval = 5, sandboxNeedsVerifiedDomains: Bool = true) {
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
        let batch = pending
        pending = [:]
        lock.unlock()
        guard !batch.isEmpty else { return }
        do {
            try store.database.write { db in
                let statement = try db.cachedStatement(sql: """
                    INSERT INTO usage_hour (account_id, hour, messages, recipients, bytes) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(account_id, hour) DO UPDATE SET messages = messages + excluded.messages,
                        recipients = recipients + excluded.recipients, bytes = bytes + excluded.bytes
                    """)
                for (account, hours) in batch {
                    for (hour, counts) in hours where counts != Counts() {
                        try statement.execute(arguments: [account, hour, counts.messages, counts.recipients, counts.bytes])
                    }
                }
            }
        } catch {
            // Keep the counts for the next flush rather than lose them.
            lock.lock()
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
                accounts[accountID] = state
            }
            return state
        }
        guard let account = try? store.account(id: accountID) else { return nil }
        let hour = SendingMeter.hour(now)
        let hours: [Int: Int] = (try? store.database.read { db -> [Int: Int] in
            var hours: [Int: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT hour, recipients FROM usage_hour WHERE account_id = ? AND hour > ?",
                                        arguments: [accountID, hour - 24]) {
                hours[row["hour"] as Int] = row["recipients"] as Int
            }
            return hours
        }) ?? [:]
        let state = AccountState(account: account, loadedAt: now, tokens: max(account.quota.maxSendRate, 1), refilledAt: now,
                                 hours: hours)
        accounts[accountID] = state
        return state
    }

    /// Hours since the epoch, clamped so that no date can trap the conversion.
    static func hour(_ date: Date) -> Int {
        let hours = (date.timeIntervalSince1970 / 3600).rounded(.down)
        return hours.isFinite ? Int(max(-1e12, min(1e12, hours))) : 0
    }
}

extension SendingMeter.Counts {
    mutating func add(_ messages: Int, _ recipients: Int, _ bytes: Int) {
        self.messages += messages
        self.recipients += recipients
        self.bytes += bytes
    }
}

extension SQLiteStore {
    /// Usage per UTC day from `since` (inclusive) to `until` (exclusive), as flushed.
    public func dailyUsage(accountID: Int64, since: Date, until: Date) throws -> [DailyUsage] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT hour / 24 AS day, SUM(messages) AS messages, SUM(recipients) AS recipients, SUM(bytes) AS bytes
                FROM usage_hour WHERE account_id = ? AND hour >= ? AND hour < ? GROUP BY day ORDER BY day
                """, arguments: [accountID, SendingMeter.hour(since), SendingMeter.hour(until)]).map { row in
                let day = Date(timeIntervalSince1970: Double((row["day"] as Int) * 86400))
                return DailyUsage(day: SQLiteStore.dayFormatter.string(from: day), messages: row["messages"],
                                  recipients: row["recipients"], bytes: row["bytes"])
            }
        }
    }

    static let dayFormatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter
    }()
}
