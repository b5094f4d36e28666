import Foundation
import PostgresNIO

extension PostgresStore: UsageLedger {
    /// One statement for a whole flush, whatever the number of accounts and hours in it.
    public func addUsage(_ counts: [Int64: [Int: UsageCounts]]) throws {
        var accounts: [Int64] = [], hours: [Int] = [], messages: [Int] = [], recipients: [Int] = [], bytes: [Int] = []
        for (account, perHour) in counts {
            for (hour, counted) in perHour {
                accounts.append(account)
                hours.append(hour)
                messages.append(counted.messages)
                recipients.append(counted.recipients)
                bytes.append(counted.bytes)
            }
        }
        guard !accounts.isEmpty else { return }
        _ = try pool.query("""
            INSERT INTO usage_hour (account_id, hour, messages, recipients, bytes)
            SELECT * FROM unnest(\(accounts)::bigint[], \(hours)::bigint[], \(messages)::bigint[], \(recipients)::bigint[], \(bytes)::bigint[])
            ON CONFLICT (account_id, hour) DO UPDATE SET messages = usage_hour.messages + excluded.messages,
                recipients = usage_hour.recipients + excluded.recipients, bytes = usage_hour.bytes + excluded.bytes
            """)
    }

    public func recipientsPerHour(accountID: Int64, after hour: Int) throws -> [Int: Int] {
        var hours: [Int: Int] = [:]
        for record in try pool.query("""
            SELECT hour, recipients FROM usage_hour WHERE account_id = \(accountID) AND hour > \(hour)
            """).records {
            hours[try record.decode("hour")] = try record.decode("recipients", as: Int.self)
        }
        return hours
    }

    public func dailyUsage(accountID: Int64, since: Date, until: Date) throws -> [DailyUsage] {
        try pool.query("""
            SELECT hour / 24 AS day, sum(messages)::bigint AS messages, sum(recipients)::bigint AS recipients, sum(bytes)::bigint AS bytes
            FROM usage_hour WHERE account_id = \(accountID) AND hour >= \(SendingMeter.hour(since)) AND hour < \(SendingMeter.hourEnding(until))
            GROUP BY day ORDER BY day
            """).records.map { record in
            DailyUsage(day: try record.decode("day"), messages: try record.decode("messages"), recipients: try record.decode("recipients"),
                       bytes: try record.decode("bytes"))
        }
    }
}
