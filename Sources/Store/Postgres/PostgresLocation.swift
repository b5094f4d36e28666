import Foundation
import NIOSSL
import PostgresNIO

/// Where a shared PostgreSQL store is, read from a `postgres://` URL as libpq
/// reads one: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE?OPTIONS`.
///
/// - `host=/dir` in the options (or an empty host) connects over the Unix
///   socket `/dir/.s.PGSQL.PORT` instead of TCP.
/// - `sslmode=disable|prefer|require|verify-full` (default `prefer` over TCP,
///   `disable` on a socket): `require` encrypts without checking the
///   server's certificate, `verify-full` checks it against the system's
///   roots or `sslrootcert=FILE` and its name against the host.
/// - `pool_size=N` (default 8): connections this node keeps open.
/// - `connect_timeout=S` (default 10) and `statement_timeout=MS` (default
///   30000): bounds on how long a call may wait for the database.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case socket(path: String)
    }

    public enum TLSMode: String, Sendable, Equatable {
        case disable, prefer, require
        case verifyFull = "verify-full"
    }

    public var endpoint: Endpoint
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    public var rootCertificatePath: String?
    public var poolSize: Int
    public var connectTimeoutSeconds: Int
    public var statementTimeoutMilliseconds: Int

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notPostgres(String)
        case invalid(String)

        public var description: String {
            switch self {
            case .notPostgres(let scheme): return "a storage URL starts with postgres:// or postgresql://, not \(scheme)"
            case .invalid(let why): return "invalid storage URL: \(why)"
            }
        }
    }

    public init(url text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw ParseError.invalid("not a URL")
        }
        guard scheme == "postgres" || scheme == "postgresql" else { throw ParseError.notPostgres(scheme) }
        var options: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard let value = item.value else { throw ParseError.invalid("option \(item.name) has no value") }
            options[item.name] = value
        }
        let known: Set<String> = ["host", "port", "sslmode", "sslrootcert", "pool_size", "connect_timeout", "statement_timeout",
                                  "user", "password", "dbname"]
        if let unknown = options.keys.sorted().first(where: { !known.contains($0) }) {
            throw ParseError.invalid("unknown option \(unknown)")
        }
        func number(_ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
            guard let text = options[name] else { return value }
            guard let number = Int(text), range.contains(number) else {
                throw ParseError.invalid("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        let port = try number("port", default: components.port ?? 5432, range: 1...65535)
        let host = options["host"] ?? components.host ?? ""
        if host.isEmpty || host.hasPrefix("/") {
            let directory = host.isEmpty ? "/var/run/postgresql" : host
            endpoint = .socket(path: directory + "/.s.PGSQL.\(port)")
        } else {
            endpoint = .tcp(host: host, port: port)
        }
        username = options["user"] ?? components.user ?? "hikyaku"
        password = options["password"] ?? components.password
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = options["dbname"] ?? (path.isEmpty ? username : path)
        guard !username.isEmpty, !database.isEmpty, !database.contains("/") else {
            throw ParseError.invalid("a user and a database are needed")
        }
        if let mode = options["sslmode"] {
            guard let parsed = TLSMode(rawValue: mode) else {
                throw ParseError.invalid("sslmode is disable, prefer, require or verify-full, not \(mode)")
            }
            tls = parsed
        } else {
            if case .socket = endpoint { tls = .disable } else { tls = .prefer }
        }
        rootCertificatePath = options["sslrootcert"]
        poolSize = try number("pool_size", default: 8, range: 1...200)
        connectTimeoutSeconds = try number("connect_timeout", default: 10, range: 1...600)
        statementTimeoutMilliseconds = try number("statement_timeout", default: 30_000, range: 100...3_600_000)
    }

    /// The URL without its password, for logs and status pages.
    public var description: String {
        let place: String
        switch endpoint {
        case .tcp(let host, let port): place = "\(host):\(port)"
        case .socket(let path): place = path
        }
        return "postgres://\(username)@\(place)/\(database) (sslmode=\(tls.rawValue), pool_size=\(poolSize))"
    }

    /// PostgresNIO's form of it.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let mode: PostgresConnection.Configuration.TLS
        switch tls {
        case .disable:
            mode = .disable
        case .prefer, .require:
            var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
            tlsConfiguration.certificateVerification = .none
            let context = try NIOSSLContext(configuration: tlsConfiguration)
            mode = tls == .prefer ? .prefer(context) : .require(context)
        case .verifyFull:
            var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
            tlsConfiguration.certificateVerification = .fullVerification
            if let rootCertificatePath {
                tlsConfiguration.trustRoots = .file(rootCertificatePath)
            }
            mode = .require(try NIOSSLContext(configuration: tlsConfiguration))
        }
        var configuration: PostgresConnection.Configuration
        switch endpoint {
        case .tcp(let host, let port):
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: mode)
        case .socket(let path):
            configuration = .init(unixSocketPath: path, username: username, password: password, database: database)
            configuration.tls = mode
        }
        configuration.options.connectTimeout = .seconds(Int64(clamping: connectTimeoutSeconds))
        // The server ends a statement that runs longer, so that no caller waits on one for ever.
        configuration.options.additionalStartupParameters = [("statement_timeout", String(statementTimeoutMilliseconds)),
                                                              ("application_name", "hikyaku")]
        return configuration
    }
}
