import Foundation
import NIOCore
import PostgresNIO

/// A time as the shared store binds it: whole microseconds (what `timestamptz`
/// keeps, so a value read back equals the one written), within years 1–9999.
///
/// PostgresNIO's own `Date` encoding converts with a trapping `Int64(…)`, and a
/// time can come from a request (a search's `start_time`): an infinite or
/// absurd one would stop the process. Every `Date` the store interpolates
/// into a statement passes through here (the `appendInterpolation`
/// overloads below are chosen over PostgresNIO's generic ones).
struct StoredTime: PostgresNonThrowingEncodable, PostgresArrayEncodable, Sendable, Equatable {
    /// Microseconds since 2000-01-01, PostgreSQL's epoch.
    let microseconds: Int64

    /// PostgreSQL's epoch, as PostgresNIO decodes from it.
    private static let epoch = Date(timeIntervalSince1970: 946_684_800)

    init(_ date: Date) {
        let seconds = date.timeIntervalSince(StoredTime.epoch)
        // 0001-01-01 to 9999-12-31, relative to 2000-01-01 (an infinite time at the end of its sign); NaN as the epoch itself.
        let bounded = seconds.isNaN ? 0 : min(max(seconds, -63_082_281_600), 252_455_615_999)
        microseconds = Int64(exactly: (bounded * 1_000_000).rounded(.down)) ?? 0
    }

    /// The time as it reads back from the database.
    var date: Date { Date(timeInterval: Double(microseconds) / 1_000_000, since: StoredTime.epoch) }

    static var psqlType: PostgresDataType { .timestamptz }
    static var psqlFormat: PostgresFormat { .binary }
    static var psqlArrayType: PostgresDataType { .timestamptzArray }

    func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        byteBuffer.writeInteger(microseconds)
    }
}

extension PostgresQuery.StringInterpolation {
    /// A time, bound as a `StoredTime`.
    mutating func appendInterpolation(_ value: Date) {
        appendInterpolation(StoredTime(value))
    }

    /// A time or NULL, bound as a `StoredTime`.
    mutating func appendInterpolation(_ value: Date?) {
        appendInterpolation(value.map(StoredTime.init))
    }
}
