import Foundation
import GRDB
import GRDBSQLite

extension Statement {
    /// Executes the statement with `values` bound straight through SQLite's C API, one per parameter in
    /// order. GRDB's own binding checks and converts each argument through existentials, which cost the
    /// index more than SQLite's insert of the row itself; the values here are already `DatabaseValue`s.
    /// Throws (binds nothing) when the count is not the statement's.
    func execute(bound values: [DatabaseValue]) throws {
        guard Int32(exactly: values.count) == sqlite3_bind_parameter_count(sqliteStatement) else {
            throw DatabaseError(resultCode: .SQLITE_RANGE,
                                message: "\(values.count) values for \(sqlite3_bind_parameter_count(sqliteStatement)) parameters", sql: sql)
        }
        // Resets the statement and clears its bindings; GRDB then takes the bindings made below as the arguments.
        setUncheckedArguments(StatementArguments())
        for (offset, value) in values.enumerated() {
            let index = Int32(truncatingIfNeeded: offset + 1)
            let code: Int32
            switch value.storage {
            case .null: code = sqlite3_bind_null(sqliteStatement, index)
            case .int64(let integer): code = sqlite3_bind_int64(sqliteStatement, index, integer)
            case .double(let double): code = sqlite3_bind_double(sqliteStatement, index, double)
            case .string(let string):
                // NUL-terminated, as GRDB binds text (a NUL inside ends it): the same text compares alike either way.
                code = sqlite3_bind_text(sqliteStatement, index, string, -1, Statement.transient)
            case .blob(let data):
                code = data.withUnsafeBytes { bytes in
                    guard let length = Int32(exactly: bytes.count) else { return SQLITE_TOOBIG }
                    return sqlite3_bind_blob(sqliteStatement, index, bytes.baseAddress, length, Statement.transient)
                }
            }
            guard code == SQLITE_OK else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "value \(offset + 1) not bound", sql: sql)
            }
        }
        try execute()
    }

    /// `SQLITE_TRANSIENT`: SQLite copies the value before the call returns (the macro is a cast C gives no Swift name for).
    private static let transient = unsafeBitCast(-1 as Int, to: sqlite3_destructor_type.self)
}
