import Foundation
import PostgresNIO

extension PostgresStore: UnsubscribeGroupStore {
    public func createUnsubscribeGroup(accountID: Int64, name: String, description: String, isDefault: Bool) throws -> UnsubscribeGroup {
        try pool.transaction { transaction in
            // The account's row, locked, serialises the count with another node's creation.
            _ = try transaction.query("SELECT id FROM account WHERE id = \(accountID) FOR UPDATE")
            let count: Int = try transaction.query("""
                SELECT count(*)::bigint AS groups FROM unsubscribe_group WHERE account_id = \(accountID)
                """).records.first?.decode("groups") ?? 0
            guard count < UnsubscribeGroup.maximumPerAccount else { throw UnsubscribeGroupError.tooMany }
            if isDefault { _ = try transaction.query("UPDATE unsubscribe_group SET is_default = FALSE WHERE account_id = \(accountID)") }
            guard let id: Int64 = try transaction.query("""
                INSERT INTO unsubscribe_group (account_id, name, description, is_default, created_at)
                VALUES (\(accountID), \(name), \(description), \(isDefault), now()) RETURNING id
                """).records.first?.decode("id") else { throw PostgresStoreError.missingColumn("id") }
            return UnsubscribeGroup(id: id, name: name, description: description, isDefault: isDefault)
        }
    }

    public func unsubscribeGroups(accountID: Int64) throws -> [UnsubscribeGroup] {
        try pool.query("""
            SELECT g.*, (SELECT count(*) FROM group_unsubscribe u WHERE u.group_id = g.id)::bigint AS unsubscribes
            FROM unsubscribe_group g WHERE g.account_id = \(accountID) ORDER BY g.id
            """).records.map(PostgresStore.group)
    }

    public func unsubscribeGroup(accountID: Int64, id: Int64) throws -> UnsubscribeGroup? {
        try pool.query("""
            SELECT g.*, (SELECT count(*) FROM group_unsubscribe u WHERE u.group_id = g.id)::bigint AS unsubscribes
            FROM unsubscribe_group g WHERE g.account_id = \(accountID) AND g.id = \(id)
            """).records.first.map(PostgresStore.group)
    }

    public func updateUnsubscribeGroup(accountID: Int64, id: Int64, name: String?, description: String?, isDefault: Bool?) throws {
        try pool.transaction { transaction in
            guard try !transaction.query("""
                SELECT 1 FROM unsubscribe_group WHERE account_id = \(accountID) AND id = \(id) FOR UPDATE
                """).rows.isEmpty else { throw UnsubscribeGroupError.notFound(id) }
            if isDefault == true { _ = try transaction.query("UPDATE unsubscribe_group SET is_default = FALSE WHERE account_id = \(accountID)") }
            _ = try transaction.query("""
                UPDATE unsubscribe_group SET name = coalesce(\(name), name), description = coalesce(\(description), description),
                    is_default = coalesce(\(isDefault), is_default) WHERE account_id = \(accountID) AND id = \(id)
                """)
        }
    }

    public func deleteUnsubscribeGroup(accountID: Int64, id: Int64) throws {
        if try pool.query("DELETE FROM unsubscribe_group WHERE account_id = \(accountID) AND id = \(id)").changes == 0 {
            throw UnsubscribeGroupError.notFound(id)
        }
    }

    public func unsubscribe(_ addresses: [String], fromGroup id: Int64, accountID: Int64, source: String?) throws {
        try pool.transaction { transaction in
            guard try !transaction.query("""
                SELECT 1 FROM unsubscribe_group WHERE account_id = \(accountID) AND id = \(id)
                """).rows.isEmpty else { throw UnsubscribeGroupError.notFound(id) }
            let lowered = addresses.map { $0.lowercased() }
            for start in stride(from: 0, to: lowered.count, by: 1000) {
                let chunk = Array(lowered[start..<min(start + 1000, lowered.count)])
                _ = try transaction.query("""
                    INSERT INTO group_unsubscribe (group_id, address, created_at, source)
                    SELECT \(id), address, now(), \(source) FROM unnest(\(chunk)::text[]) AS entry(address)
                    ON CONFLICT (group_id, address) DO NOTHING
                    """)
            }
        }
    }

    public func resubscribe(_ address: String, toGroup id: Int64, accountID: Int64) throws {
        if try pool.query("""
            DELETE FROM group_unsubscribe WHERE address = \(address.lowercased())
                AND group_id IN (SELECT id FROM unsubscribe_group WHERE account_id = \(accountID) AND id = \(id))
            """).changes == 0 {
            throw UnsubscribeGroupError.notFound(id)
        }
    }

    public func groupUnsubscribes(accountID: Int64, group id: Int64, limit: Int) throws -> [String] {
        try pool.query("""
            SELECT u.address FROM group_unsubscribe u JOIN unsubscribe_group g ON g.id = u.group_id
            WHERE g.account_id = \(accountID) AND g.id = \(id) ORDER BY u.address LIMIT \(max(0, limit))
            """).records.map { try $0.decode("address") }
    }

    public func groupsUnsubscribed(accountID: Int64, address: String) throws -> Set<Int64> {
        Set(try pool.query("""
            SELECT u.group_id FROM group_unsubscribe u JOIN unsubscribe_group g ON g.id = u.group_id
            WHERE g.account_id = \(accountID) AND u.address = \(address.lowercased())
            """).records.map { try $0.decode("group_id") })
    }

    public func groupUnsubscribesByGroup() throws -> [Int64: Set<String>] {
        var result: [Int64: Set<String>] = [:]
        for record in try pool.query("SELECT group_id, address FROM group_unsubscribe").records {
            result[try record.decode("group_id"), default: []].insert(try record.decode("address"))
        }
        return result
    }

    public func saveTopicPreferences(accountID: Int64, address: String, staying: Set<Int64>, leaveAll requested: Bool,
                                     source: String, now: Date) throws -> (left: Bool, changed: Bool) {
        let address = address.lowercased()
        return try pool.transaction { transaction in
            let groups: [Int64] = try transaction.query("""
                SELECT id FROM unsubscribe_group WHERE account_id = \(accountID) ORDER BY id
                """).records.map { try $0.decode("id") }
            let leaveAll = requested || (!groups.isEmpty && staying.isDisjoint(with: groups))
            let rejoined = leaveAll ? [] : groups.filter { staying.contains($0) }
            let leaving = groups.filter { !rejoined.contains($0) }
            var changed = try transaction.query("""
                DELETE FROM group_unsubscribe WHERE group_id = ANY(\(rejoined)) AND address = \(address)
                """).changes > 0
            var left = try transaction.query("""
                INSERT INTO group_unsubscribe (group_id, address, created_at, source)
                SELECT group_id, \(address), \(now), \(source) FROM unnest(\(leaving)::bigint[]) AS entry(group_id)
                ON CONFLICT (group_id, address) DO NOTHING
                """).changes > 0
            if leaveAll {
                // A suppression already there stays as it is, widened to everything if it covered transactional mail only.
                left = try transaction.query("""
                    INSERT INTO suppression (account_id, address, reason, scope, created_at, source)
                    VALUES (\(accountID), \(address), 'unsubscribe', 'marketing', \(now), \(source))
                    ON CONFLICT (account_id, address) DO UPDATE SET scope = 'all' WHERE suppression.scope = 'transactional'
                    """).changes > 0 || left
            } else {
                changed = try transaction.query("""
                    DELETE FROM suppression WHERE account_id = \(accountID) AND address = \(address) AND reason = 'unsubscribe'
                        AND scope = 'marketing' AND (source LIKE 'preference page%' OR source LIKE '% unsubscribe from message %')
                    """).changes > 0 || changed
            }
            return (left, changed || left)
        }
    }

    static func group(_ record: PostgresRecord) throws -> UnsubscribeGroup {
        UnsubscribeGroup(id: try record.decode("id"), name: try record.decode("name"), description: try record.decode("description"),
                         isDefault: try record.decode("is_default"), unsubscribes: try record.decode("unsubscribes"))
    }
}
