import Foundation
import PostgresNIO

extension PostgresStore: SuppressionList {
    public func suppress(_ suppressions: [Suppression], accountID: Int64) throws {
        // The last of an address's entries wins, as when they are written one after the other;
        // one statement may not change the same row twice.
        var latest: [String: Suppression] = [:]
        var order: [String] = []
        for suppression in suppressions {
            let address = suppression.address.lowercased()
            if latest.updateValue(suppression, forKey: address) == nil { order.append(address) }
        }
        try pool.transaction { transaction in
            for start in stride(from: 0, to: order.count, by: 1000) {
                let chunk = order[start..<min(start + 1000, order.count)].compactMap { address in latest[address].map { (address, $0) } }
                let addresses = chunk.map(\.0)
                let reasons = chunk.map(\.1.reason.rawValue)
                let scopes = chunk.map(\.1.scope.rawValue)
                let times = chunk.map { StoredTime($0.1.createdAt) }
                let sources = chunk.map { $0.1.source ?? "" }
                let hasSource = chunk.map { $0.1.source != nil }
                _ = try transaction.query("""
                    INSERT INTO suppression (account_id, address, reason, scope, created_at, source)
                    SELECT \(accountID), address, reason, scope, created_at, CASE WHEN has_source THEN source END
                    FROM unnest(\(addresses)::text[], \(reasons)::text[], \(scopes)::text[], \(times)::timestamptz[], \(sources)::text[],
                                \(hasSource)::boolean[])
                        AS entry(address, reason, scope, created_at, source, has_source)
                    ON CONFLICT (account_id, address) DO UPDATE SET reason = excluded.reason, scope = excluded.scope,
                        created_at = excluded.created_at, source = excluded.source
                    """)
            }
        }
    }

    public func suppression(accountID: Int64, address: String) throws -> Suppression? {
        try pool.query("SELECT * FROM suppression WHERE account_id = \(accountID) AND address = \(address.lowercased())")
            .records.first.map(PostgresStore.suppression)
    }

    public func suppressions(accountID: Int64, reasons: [Suppression.Reason], since: Date?, until: Date?,
                             containing: String?, offset: Int, limit: Int) throws -> [Suppression] {
        var binds = PostgresBindings()
        var sql = "SELECT * FROM suppression WHERE account_id = $1"
        binds.append(accountID)
        func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }
        if let containing, !containing.isEmpty {
            sql += " AND address LIKE \(bind(Self.likePattern(containing: containing.lowercased()))) ESCAPE '\\'"
        }
        if !reasons.isEmpty { sql += " AND reason = ANY(\(bind(reasons.map(\.rawValue))))" }
        if let since { sql += " AND created_at >= \(bind(StoredTime(since)))" }
        if let until { sql += " AND created_at < \(bind(StoredTime(until)))" }
        sql += " ORDER BY created_at DESC, address LIMIT \(bind(max(0, limit))) OFFSET \(bind(max(0, offset)))"
        return try pool.query(PostgresQuery(unsafeSQL: sql, binds: binds)).records.map(PostgresStore.suppression)
    }

    public func unsuppress(accountID: Int64, address: String) throws {
        let removed = try pool.query("DELETE FROM suppression WHERE account_id = \(accountID) AND address = \(address.lowercased())")
        if removed.changes == 0 { throw AccountStoreError.notFound(address) }
    }

    public func suppressionsByAccount() throws -> [Int64: [String: Suppression]] {
        var result: [Int64: [String: Suppression]] = [:]
        for record in try pool.query("SELECT * FROM suppression").records {
            let suppression = try PostgresStore.suppression(record)
            result[try record.decode("account_id"), default: [:]][suppression.address] = suppression
        }
        return result
    }

    static func suppression(_ record: PostgresRecord) throws -> Suppression {
        Suppression(address: try record.decode("address"), reason: Suppression.Reason(rawValue: try record.decode("reason")) ?? .manual,
                    scope: Suppression.Scope(rawValue: try record.decode("scope")) ?? .all,
                    createdAt: try record.decode("created_at"), source: try record.decode("source"))
    }

    public func suppressAutomatically(_ suppression: Suppression, accountID: Int64) throws -> Bool {
        guard let account = try account(id: accountID), account.suppressedReasons.contains(suppression.reason) else { return false }
        // One statement: an entry that already covers all mail is never replaced, whatever another node does meanwhile.
        return try pool.query("""
            INSERT INTO suppression (account_id, address, reason, scope, created_at, source)
            VALUES (\(accountID), \(suppression.address.lowercased()), \(suppression.reason.rawValue), \(suppression.scope.rawValue),
                    \(suppression.createdAt), \(suppression.source))
            ON CONFLICT (account_id, address) DO UPDATE SET reason = excluded.reason, scope = excluded.scope,
                created_at = excluded.created_at, source = excluded.source
                WHERE suppression.scope <> 'all'
            """).changes > 0
    }
}
