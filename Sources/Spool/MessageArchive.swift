import CZlib
import Foundation
import GRDB

/// The bytes of finished messages, zlib-compressed, kept after their spool
/// segment is reclaimed, so that a resend from the log works for as long as
/// the log keeps the message (`log.retentionDays`), not only while its
/// segment lives. Written by the spool's garbage collection just before a
/// segment file is removed (never on the intake's path), and purged with the
/// log. A separate SQLite file (`spool/archive.sqlite`): the spool's own
/// files stay append-only segments.
public final class MessageArchive: Sendable {
    let database: DatabasePool
    /// Larger records are refused on read (a damaged file cannot ask for a huge allocation).
    static let maximumSize = 1 << 30

    public init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        database = try DatabasePool(path: path, configuration: configuration)
        try database.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS archived_message (
                    id TEXT PRIMARY KEY NOT NULL,
                    archived_at REAL NOT NULL,
                    size INTEGER NOT NULL,
                    data BLOB NOT NULL
                );
                CREATE INDEX IF NOT EXISTS archived_message_at ON archived_message(archived_at);
                """)
        }
    }

    struct CompressionFailed: Error {}

    /// Keeps these messages' bytes (a message already kept is left as it is); throws, storing none, if one cannot be compressed.
    public func store(_ messages: [(MessageID, [UInt8])], at date: Date = Date()) throws {
        let compressed = try messages.map { id, bytes in
            guard let data = MessageArchive.compress(bytes) else { throw CompressionFailed() }
            return (id, bytes.count, data)
        }
        try database.write { db in
            let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO archived_message (id, archived_at, size, data) VALUES (?, ?, ?, ?)")
            for (id, size, data) in compressed {
                try insert.execute(arguments: [id.rawValue, date.timeIntervalSince1970, size, Data(data)])
            }
        }
    }

    /// A kept message's bytes, or nil.
    public func contents(of id: MessageID) throws -> [UInt8]? {
        guard let row = try database.read({ db in
            try Row.fetchOne(db, sql: "SELECT size, data FROM archived_message WHERE id = ?", arguments: [id.rawValue])
        }) else { return nil }
        let data: Data = row["data"]
        return MessageArchive.decompress(Array(data), size: row["size"])
    }

    /// Forgets messages archived before `cutoff`; returns how many.
    @discardableResult
    public func purge(before cutoff: Date) throws -> Int {
        try database.write { db in
            try db.execute(sql: "DELETE FROM archived_message WHERE archived_at < ?", arguments: [cutoff.timeIntervalSince1970])
            return db.changesCount
        }
    }

    /// How many messages are kept, their original and their stored bytes.
    public func totals() throws -> (messages: Int, originalBytes: Int64, storedBytes: Int64) {
        try database.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, SUM(size) AS original, SUM(length(data)) AS stored FROM archived_message")
            return (row?["n"] ?? 0, row?["original"] ?? 0, row?["stored"] ?? 0)
        }
    }

    /// zlib at level 6 (its default trade of time for size); nil if zlib fails.
    static func compress(_ bytes: [UInt8]) -> [UInt8]? {
        let sourceLength = uLong(truncatingIfNeeded: bytes.count)
        var destinationLength = compressBound(sourceLength)
        var destination = [UInt8](repeating: 0, count: Int(truncatingIfNeeded: destinationLength))
        let status = destination.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer { input in
                compress2(out.baseAddress, &destinationLength, input.baseAddress, sourceLength, 6)
            }
        }
        guard status == Z_OK else { return nil }
        destination.removeSubrange(Int(truncatingIfNeeded: destinationLength)...)
        return destination
    }

    /// The original bytes, which must be exactly `size` long; nil for damaged data.
    static func decompress(_ data: [UInt8], size: Int) -> [UInt8]? {
        guard size >= 0, size <= maximumSize else { return nil }
        var destinationLength = uLongf(truncatingIfNeeded: size)
        var destination = [UInt8](repeating: 0, count: size)
        let status = destination.withUnsafeMutableBufferPointer { out in
            data.withUnsafeBufferPointer { input in
                uncompress(out.baseAddress, &destinationLength, input.baseAddress, uLong(truncatingIfNeeded: data.count))
            }
        }
        guard status == Z_OK, destinationLength == uLongf(truncatingIfNeeded: size) else { return nil }
        return destination
    }
}
