import Hummingbird
import NIOConcurrencyHelpers

/// The paths and methods the API answers, so that a known path asked with
/// another method gets 405 with `Allow` (RFC 9110 §15.5.6), not 404.
final class RouteTable: Sendable {
    private let entries = NIOLockedValueBox<[(method: HTTPRequest.Method, path: [Substring])]>([])

    func add(_ method: HTTPRequest.Method, _ path: String) {
        entries.withLockedValue { $0.append((method, path.split(separator: "/"))) }
    }

    /// The methods allowed on `path` (empty: no such path). As the router does, a literal segment wins
    /// over a parameter: `/v1/suppressions/export` is that route's, not `/v1/suppressions/{address}`'s.
    func methods(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/")
        return entries.withLockedValue { entries in
            let matching = entries.filter { entry in
                entry.path.count == segments.count && zip(entry.path, segments).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
            }
            // Literal segments first, left to right: the most specific pattern among those that match.
            let rank = { (pattern: [Substring]) in pattern.map { $0.hasPrefix(":") ? 1 : 0 } }
            guard let best = matching.map({ rank($0.path) }).min(by: { $0.lexicographicallyPrecedes($1) }) else { return [] }
            return matching.filter { rank($0.path) == best }.map(\.method)
        }
    }
}

/// Registers handlers on the router and records them in the table.
struct Routes {
    typealias Handler = @Sendable (Request, APIRequestContext) async throws -> Response

    let router: Router<APIRequestContext>
    let table: RouteTable

    func get(_ path: String, _ handler: @escaping Handler) { add(.get, path, handler) }
    func post(_ path: String, _ handler: @escaping Handler) { add(.post, path, handler) }
    func put(_ path: String, _ handler: @escaping Handler) { add(.put, path, handler) }
    func delete(_ path: String, _ handler: @escaping Handler) { add(.delete, path, handler) }
    func patch(_ path: String, _ handler: @escaping Handler) { add(.patch, path, handler) }
    func head(_ path: String, _ handler: @escaping Handler) { add(.head, path, handler) }

    private func add(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping Handler) {
        table.add(method, path)
        router.on(RouterPath(path), method: method, use: handler)
    }
}
