import Foundation
import PostgresNIO

extension PostgresStore: ContactImportStore {
    public func beginContactImport(accountID: Int64, listID: Int64?, maximumRunning: Int) throws -> Int64 {
        try pool.transaction { transaction in
            // One import start at a time across the cluster, so that uploads made at once cannot all pass the count.
            _ = try transaction.query("SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey + 1))")
            guard let counts = try transaction.query("""
                SELECT count(*)::bigint AS total, count(*) FILTER (WHERE account_id = \(accountID))::bigint AS mine
                FROM contact_import WHERE state IN ('running', 'applying')
                """).records.first else { throw PostgresStoreError.missingColumn("total") }
            guard try counts.decode("mine", as: Int.self) == 0 else { throw ContactError.importRunning(thisAccount: true) }
            guard try counts.decode("total", as: Int.self) < maximumRunning else { throw ContactError.importRunning(thisAccount: false) }
            if let listID, try transaction.query("""
                SELECT 1 FROM contact_list WHERE id = \(listID) AND account_id = \(accountID)
                """).rows.isEmpty {
                throw ContactError.notFound("list \(listID)")
            }
            guard let id: Int64 = try transaction.query("""
                INSERT INTO contact_import (account_id, node, state, list_id, started_at)
                VALUES (\(accountID), \(nodeName), 'running', \(listID), now()) RETURNING id
                """).records.first?.decode("id") else { throw PostgresStoreError.missingColumn("id") }
            return id
        }
    }

    public func stageContactRows(importID: Int64, slots: [Int], rows: [(address: String, values: [ContactValue?])],
                                 errors: [ContactImport.RowError], invalid: Int, rowsRead: Int) throws {
        let rows = rows.filter { $0.values.count == slots.count }
        // One statement per chunk: each slot a column of values and one of presence (an empty cell is NULL),
        // in the slot's text or number column, whichever its values are.
        var binds = PostgresStore.binds(importID, rows.map { $0.address.lowercased() })
        var columns: [String] = []
        var arrays: [String] = []
        for (index, slot) in slots.enumerated() where (1...ContactField.maximumPerAccount).contains(slot) {
            let values = rows.map { $0.values[index]?.postgresColumnValue }
            var texts: [String] = [], numbers: [Double] = [], present: [Bool] = []
            for value in values {
                switch value {
                case .text(let text)?: texts.append(text); numbers.append(0); present.append(true)
                case .number(let number)?: texts.append(""); numbers.append(number); present.append(true)
                case nil: texts.append(""); numbers.append(0); present.append(false)
                }
            }
            let isText = values.contains { if case .text? = $0 { return true } else { return false } }
            let isNumber = values.contains { if case .number? = $0 { return true } else { return false } }
            guard !(isText && isNumber) else { throw ContactError.invalidValue(field: "slot \(slot)", kind: .text) }
            guard isText || isNumber else { continue }
            let name = isText ? "t\(slot)" : "n\(slot)"
            if isText { binds.append(texts) } else { binds.append(numbers) }
            binds.append(present)
            columns.append(name)
            arrays.append("$\(binds.count - 1)::\(isText ? "text" : "float8")[], $\(binds.count)::boolean[]")
        }
        let selected = columns.map { "CASE WHEN \($0)_p THEN \($0)_v END" }
        let aliases = ["address"] + columns.flatMap { ["\($0)_v", "\($0)_p"] }
        try pool.transaction { transaction in
            // An import failed meanwhile (a restart's clean-up) takes nothing more.
            guard try transaction.query("SELECT state FROM contact_import WHERE id = \(importID) FOR UPDATE").records.first?
                .decode("state", as: String.self) == "running" else {
                throw ContactError.notFound("running import \(importID)")
            }
            if !rows.isEmpty {
                _ = try transaction.query(PostgresQuery(unsafeSQL: """
                    INSERT INTO contact_import_row (import_id, address\(columns.map { ", " + $0 }.joined()))
                    SELECT $1, address\(selected.map { ", " + $0 }.joined())
                    FROM unnest($2::text[]\(arrays.map { ", " + $0 }.joined())) WITH ORDINALITY AS staged(\(aliases.joined(separator: ", ")), position)
                    ORDER BY position
                    """, binds: binds))
            }
            if !errors.isEmpty {
                let stored: String? = try transaction.query("SELECT errors FROM contact_import WHERE id = \(importID)").records.first?
                    .decode("errors")
                _ = try transaction.query("""
                    UPDATE contact_import SET errors = \(try ContactImport.errors(stored, adding: errors)) WHERE id = \(importID)
                    """)
            }
            _ = try transaction.query("""
                UPDATE contact_import SET rows_read = \(rowsRead), rows_valid = rows_valid + \(rows.count),
                    rows_invalid = rows_invalid + \(invalid) WHERE id = \(importID)
                """)
        }
    }

    public func finishContactImport(importID: Int64, accountID: Int64) throws -> ContactImport {
        let fields = try contactFields(accountID: accountID).filter { (1...ContactField.maximumPerAccount).contains($0.slot) }
        let columns = fields.map { $0.kind == .text ? "t\($0.slot)" : "n\($0.slot)" }
        // Per address, each column's last non-empty value: the later row wins, an empty cell keeps what was there.
        let latest = columns.map { "(array_agg(\($0) ORDER BY seq DESC) FILTER (WHERE \($0) IS NOT NULL))[1] AS \($0)" }
        let updates = (["updated_at = excluded.updated_at"] + columns.map { "\($0) = coalesce(excluded.\($0), contact.\($0))" })
            .joined(separator: ", ")
        let now = Date().timeIntervalSince1970
        return try pool.transaction { transaction in
            guard try transaction.query("""
                UPDATE contact_import SET state = 'applying' WHERE id = \(importID) AND state = 'running' RETURNING id
                """).records.first != nil else { throw ContactError.notFound("running import \(importID)") }
            // A large import is one long statement, by design: not a slow one to cut off.
            _ = try transaction.query("SET LOCAL statement_timeout = 0")
            _ = try transaction.queryWithoutDeadline(PostgresQuery(unsafeSQL: """
                INSERT INTO contact (account_id, address, created_at, updated_at\(columns.map { ", " + $0 }.joined()))
                SELECT $1, address, $2, $2\(columns.map { ", " + $0 }.joined())
                FROM (SELECT address\(latest.map { ", " + $0 }.joined()) FROM contact_import_row WHERE import_id = $3 GROUP BY address) staged
                ON CONFLICT (account_id, address) DO UPDATE SET \(updates)
                """, binds: PostgresStore.binds(accountID, now, importID)))
            let applied: Int = try transaction.query("""
                SELECT count(DISTINCT address)::bigint AS applied FROM contact_import_row WHERE import_id = \(importID)
                """).records.first?.decode("applied") ?? 0
            if let listID: Int64 = try transaction.query("SELECT list_id FROM contact_import WHERE id = \(importID)").records.first?
                .decode("list_id") {
                _ = try transaction.query("""
                    INSERT INTO contact_list_member (list_id, contact_id)
                    SELECT DISTINCT \(listID)::bigint, c.id FROM contact_import_row r JOIN contact c ON c.account_id = \(accountID) AND c.address = r.address
                    WHERE r.import_id = \(importID)
                    ON CONFLICT DO NOTHING
                    """)
            }
            _ = try transaction.query("DELETE FROM contact_import_row WHERE import_id = \(importID)")
            guard let ended = try transaction.query("""
                UPDATE contact_import SET state = 'done', applied = \(applied), finished_at = now() WHERE id = \(importID) RETURNING *
                """).records.first else { throw ContactError.notFound("import \(importID)") }
            return try PostgresStore.contactImport(ended)
        }
    }

    public func failContactImport(importID: Int64, reason: String, line: Int) throws {
        try pool.transaction { transaction in
            // Only an import still under way: one applied a moment ago (its caller may not have heard) stays done.
            guard let record = try transaction.query("""
                SELECT errors FROM contact_import WHERE id = \(importID) AND state IN ('running', 'applying') FOR UPDATE
                """).records.first else { return }
            _ = try transaction.query("DELETE FROM contact_import_row WHERE import_id = \(importID)")
            _ = try transaction.query("""
                UPDATE contact_import SET state = 'failed', finished_at = now(),
                    errors = \(try ContactImport.errors(try record.decode("errors"), ending: ContactImport.RowError(line: line, message: reason)))
                WHERE id = \(importID)
                """)
        }
    }

    public func abandonUnfinishedContactImports() throws -> Int {
        try pool.transaction { transaction in
            // This node's own: another node's import is still running there.
            let unfinished = try transaction.query("""
                SELECT id, errors FROM contact_import WHERE node = \(nodeName) AND state IN ('running', 'applying') FOR UPDATE
                """).records
            for record in unfinished {
                let id: Int64 = try record.decode("id")
                _ = try transaction.query("DELETE FROM contact_import_row WHERE import_id = \(id)")
                _ = try transaction.query("""
                    UPDATE contact_import SET state = 'failed', finished_at = now(),
                        errors = \(try ContactImport.errors(try record.decode("errors"), ending: ContactImport.interrupted))
                    WHERE id = \(id)
                    """)
            }
            return unfinished.count
        }
    }

    public func contactImport(id: Int64, accountID: Int64?) throws -> ContactImport? {
        try pool.query("""
            SELECT * FROM contact_import WHERE id = \(id) AND (\(accountID)::bigint IS NULL OR account_id = \(accountID))
            """).records.first.map(PostgresStore.contactImport)
    }

    public func contactImports(accountID: Int64, limit: Int) throws -> [ContactImport] {
        try pool.query("""
            SELECT * FROM contact_import WHERE account_id = \(accountID) ORDER BY id DESC LIMIT \(max(0, limit))
            """).records.map(PostgresStore.contactImport)
    }

    static func contactImport(_ record: PostgresRecord) throws -> ContactImport {
        ContactImport(id: try record.decode("id"), state: ContactImport.State(rawValue: try record.decode("state")) ?? .failed,
                      rowsRead: try record.decode("rows_read"), rowsValid: try record.decode("rows_valid"),
                      rowsInvalid: try record.decode("rows_invalid"), applied: try record.decode("applied"),
                      errors: ContactImport.errors(try record.decode("errors")), startedAt: try record.decode("started_at"),
                      finishedAt: try record.decode("finished_at"))
    }
}
