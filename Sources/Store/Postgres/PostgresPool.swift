import Dispatch
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

public enum PostgresStoreError: Error, CustomStringConvertible {
    /// Every connection stayed busy for the pool's wait limit.
    case busy
    /// A row lacked a column the store's own statement names.
    case missingColumn(String)
    /// The server refused a statement; `state` is its SQLSTATE (e.g. 23505),
    /// `constraint` the constraint or index it broke, if any.
    case server(state: String, message: String, constraint: String?)
    /// The connection failed or closed.
    case connection(String)
    /// This node's secrets.key is not the one the other nodes seal with.
    case secretsKeyDiffers

    public var description: String {
        switch self {
        case .busy: return "every PostgreSQL connection of this node stayed busy: raise pool_size or look for slow statements"
        case .missingColumn(let name): return "PostgreSQL returned no column \(name)"
        case .server(let state, let message, _): return "PostgreSQL refused a statement (\(state)): \(message)"
        case .connection(let message): return "PostgreSQL connection failed: \(message)"
        case .secretsKeyDiffers:
            return "this node's secrets.key is not the cluster's: copy secrets.key (mode 0600) from a running node into the data directory"
        }
    }

    /// The server could not be reached or was too busy: the same call may succeed later.
    public var isUnreachable: Bool {
        switch self {
        case .busy, .connection: return true
        case .server(let state, _, _):
            // 57P01-03: the server is shutting down or starting; 53300: too many connections; 08: a connection exception.
            return state.hasPrefix("57P") || state == "53300" || state.hasPrefix("08")
        case .missingColumn, .secretsKeyDiffers: return false
        }
    }

    /// The statement's data was refused (SQLSTATE classes 22, data exception, and 23, integrity
    /// constraint): the same statement will never succeed.
    public var isAboutTheData: Bool {
        guard case .server(let state, _, _) = self else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23")
    }

    /// SQLSTATE 23505, on `constraint` if one is named.
    func isUniqueViolation(of constraint: String? = nil) -> Bool {
        guard case .server("23505", _, let broken) = self else { return false }
        return constraint == nil || broken == constraint
    }

    /// PostgresNIO's error as one of these, keeping the server's SQLSTATE and message.
    static func from(_ error: any Error) -> any Error {
        guard let error = error as? PSQLError else { return error }
        if let state = error.serverInfo?[.sqlState] {
            return PostgresStoreError.server(state: state, message: error.serverInfo?[.message] ?? "",
                                             constraint: error.serverInfo?[.constraintName])
        }
        return PostgresStoreError.connection(String(describing: error.code))
    }
}

/// A fixed number of connections to one PostgreSQL database for the store,
/// whose callers are synchronous as SQLite's are: a call borrows a
/// connection, waits for the answer, and gives the connection back.
///
/// The connections run on an event loop of the pool's own, never one a
/// caller may be on (the servers' loops, Hummingbird's), so that waiting
/// cannot block the loop the answer must arrive on.
final class PostgresPool: Sendable {
    private let configuration: PostgresConnection.Configuration
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let idle = Mutex<[PostgresConnection]>([])
    private let permits: DispatchSemaphore
    private let nextID = Atomic<Int>(0)
    /// How long a call waits for a free connection before `busy`.
    private let waitLimit: DispatchTimeInterval
    /// How long a statement's answer may take: the server's `statement_timeout` ends a slow statement
    /// sooner; this is for a connection that went silent (a dead peer, a half-open TCP connection).
    private let answerLimit: TimeAmount
    /// How long opening a connection may take, TLS and the startup exchange included.
    private let connectLimit: TimeAmount

    init(location: PostgresLocation, logger: Logger = Logger(label: "hikyaku.postgres"),
         waitLimit: DispatchTimeInterval = .seconds(30)) throws {
        configuration = try location.connectionConfiguration()
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.logger = logger
        permits = DispatchSemaphore(value: location.poolSize)
        self.waitLimit = waitLimit
        answerLimit = .milliseconds(Int64(clamping: location.statementTimeoutMilliseconds)) + .seconds(10)
        connectLimit = .seconds(Int64(clamping: location.connectTimeoutSeconds))
    }

    deinit {
        let connections = idle.withLock { connections in
            defer { connections.removeAll() }
            return connections
        }
        let group = self.group
        // A connection must outlive its close (PostgresNIO asserts it), so the closure holds them.
        EventLoopFuture.andAllComplete(connections.map { $0.close() }, on: group.next()).whenComplete { _ in
            withExtendedLifetime(connections) {}
            group.shutdownGracefully { _ in }
        }
    }

    /// Runs `body` with a connection of its own; a connection found closed
    /// afterwards is dropped, and the next call opens a new one.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        guard permits.wait(timeout: .now() + waitLimit) == .success else { throw PostgresStoreError.busy }
        defer { permits.signal() }
        let connection = try idleConnection() ?? connect()
        defer { if !connection.isClosed { idle.withLock { $0.append(connection) } } }
        return try body(connection)
    }

    /// An idle connection still open; those the server closed meanwhile (a restart, an idle timeout) are dropped.
    private func idleConnection() -> PostgresConnection? {
        idle.withLock { connections in
            while let connection = connections.popLast() {
                if !connection.isClosed { return connection }
            }
            return nil
        }
    }

    /// One statement on a borrowed connection.
    func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
        try withConnection { try run(query, on: $0) }
    }

    /// `body`'s statements in one transaction: committed when it returns,
    /// rolled back when it throws.
    func transaction<T>(_ body: (PostgresTransaction) throws -> T) throws -> T {
        try withConnection { connection in
            let transaction = PostgresTransaction(connection: connection, pool: self)
            _ = try run("BEGIN", on: connection)
            do {
                let result = try body(transaction)
                _ = try run("COMMIT", on: connection)
                return result
            } catch {
                _ = try? run("ROLLBACK", on: connection)
                throw error
            }
        }
    }

    /// One statement; `bounded` false only for those allowed to run long (migrations, under `statement_timeout = 0`).
    func run(_ query: PostgresQuery, on connection: PostgresConnection, bounded: Bool = true) throws -> PostgresQueryResult {
        do {
            guard bounded else { return try PostgresPool.block(on: connection.query(query, logger: logger)) }
            // A connection that does not answer in time is closed: it is never lent again mid-statement.
            return try PostgresPool.wait(for: connection.query(query, logger: logger), limit: answerLimit, what: "a statement") {
                let _: EventLoopFuture<Void> = connection.close()
            }
        } catch {
            throw PostgresStoreError.from(error)
        }
    }

    private func connect() throws -> PostgresConnection {
        let opening = PostgresConnection.connect(on: group.next(), configuration: configuration,
                                                 id: nextID.wrappingAdd(1, ordering: .relaxed).oldValue, logger: logger)
        do {
            // A connection that opens after its caller gave up is closed, not leaked.
            return try PostgresPool.wait(for: opening, limit: connectLimit + .seconds(5), what: "opening a connection") {
                opening.whenSuccess { connection in
                    let _: EventLoopFuture<Void> = connection.close()
                }
            }
        } catch {
            throw PostgresStoreError.from(error)
        }
    }

    /// `future`'s value, or an error once `limit` has passed without one; then `abandon` runs (on the
    /// future's event loop, only if no answer came).
    static func wait<Value: Sendable>(for future: EventLoopFuture<Value>, limit: TimeAmount, what: String,
                                      abandon: @escaping @Sendable () -> Void) throws -> Value {
        let loop = future.eventLoop
        let outcome = loop.makePromise(of: Value.self)
        let answered = Answered()
        future.whenComplete { result in
            answered.flag.withLock { $0 = true }
            outcome.completeWith(result)
        }
        let timer = loop.scheduleTask(in: limit) {
            guard !answered.flag.withLock({ $0 }) else { return }
            // The waiter hears of the deadline first (closing the connection fails its statement with another
            // error); the connection, closed then, is dropped when it is next taken.
            outcome.fail(PostgresStoreError.connection("no answer from PostgreSQL within \(limit.nanoseconds / 1_000_000_000) s (\(what))"))
            abandon()
        }
        defer { timer.cancel() }
        return try block(on: outcome.futureResult)
    }

    /// Waits for `future` on this thread, whatever thread it is. The store's callers include event loops
    /// (an SMTP session's RCPT reads a snapshot that may reload), where NIO's own `wait()` traps by design;
    /// blocking one of those loops on the pool's loop cannot deadlock, as it never waits on itself, and is
    /// what a call into the embedded SQLite store does too.
    static func block<Value: Sendable>(on future: EventLoopFuture<Value>) throws -> Value {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<Value, any Error>?>(nil)
        future.whenComplete { result in
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        guard let result = outcome.withLock({ $0 }) else { throw PostgresStoreError.connection("no outcome") }
        return try result.get()
    }

    /// Whether a future answered before its deadline; both are settled on the future's event loop.
    private final class Answered: Sendable {
        let flag = Mutex(false)
    }
}

/// The statements of one transaction (`PostgresPool.transaction`).
struct PostgresTransaction {
    let connection: PostgresConnection
    let pool: PostgresPool

    func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
        try pool.run(query, on: connection)
    }

    /// A statement that may run as long as it takes (a migration's).
    func queryWithoutDeadline(_ query: PostgresQuery) throws -> PostgresQueryResult {
        try pool.run(query, on: connection, bounded: false)
    }
}

/// A row read by column name, throwing where PostgresNIO would trap on a
/// name the row does not have.
struct PostgresRecord {
    let row: PostgresRandomAccessRow

    init(_ row: PostgresRow) {
        self.row = row.makeRandomAccess()
    }

    func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard row.contains(column) else { throw PostgresStoreError.missingColumn(column) }
        return try row[column].decode(T.self)
    }

    subscript<T: PostgresDecodable>(_ column: String) -> T {
        get throws { try decode(column) }
    }
}

extension PostgresQueryResult {
    var records: [PostgresRecord] { rows.map(PostgresRecord.init) }
    /// Rows an INSERT, UPDATE or DELETE changed.
    var changes: Int { metadata.rows ?? 0 }
}
