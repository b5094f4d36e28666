import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// The answer to a lookup: the records of the asked type at the name the
/// CNAME chain ends on. Empty when the name exists without such records
/// (NODATA), which callers must tell apart from NXDOMAIN (an error).
public struct DNSAnswer: Equatable, Sendable {
    public var canonicalName: DomainName
    public var records: [ResourceRecord]

    public init(canonicalName: DomainName, records: [ResourceRecord]) {
        self.canonicalName = canonicalName
        self.records = records
    }
}

/// Looks names up. Implementations: `StubResolver`; tests inject fakes.
public protocol Resolver: Sendable {
    /// Throws `DNSError.nameDoesNotExist` for NXDOMAIN (permanent); other
    /// errors are transient (`isTransient`).
    func lookup(_ name: DomainName, _ type: RecordType) async throws(DNSError) -> DNSAnswer
}

/// A stub resolver: asks recursive servers (from /etc/resolv.conf, or
/// configured), follows CNAME chains, caches answers for their TTL and
/// negative answers for the SOA minimum (RFC 2308), retries across servers
/// and falls back to TCP when a UDP reply is truncated.
public final class StubResolver: Resolver {
    public struct Options: Sendable {
        public var servers: [SocketAddress]
        /// Per attempt.
        public var timeout: TimeAmount
        /// Rounds over the server list.
        public var attempts: Int
        /// Cap on any cached TTL, and the TTL of negative answers without an SOA.
        public var maximumTTL: UInt32
        public var negativeTTL: UInt32

        public init(servers: [SocketAddress], timeout: TimeAmount = .seconds(2), attempts: Int = 2,
                    maximumTTL: UInt32 = 86_400, negativeTTL: UInt32 = 60) {
            self.servers = servers
            self.timeout = timeout
            self.attempts = attempts
            self.maximumTTL = maximumTTL
            self.negativeTTL = negativeTTL
        }
    }

    static let maximumCNAMEChain = 8

    let options: Options
    let transport: any DNSTransport
    let cache: DNSCache

    public init(options: Options, transport: any DNSTransport, now: @escaping @Sendable () -> NIODeadline = { .now() }) {
        self.options = options
        self.transport = transport
        self.cache = DNSCache(now: now)
    }

    public func lookup(_ name: DomainName, _ type: RecordType) async throws(DNSError) -> DNSAnswer {
        var current = name
        var collected: [ResourceRecord] = []
        for _ in 0...Self.maximumCNAMEChain {
            let answer = try await lookupOnce(current, type)
            if !answer.records.isEmpty || answer.canonicalName == current {
                return DNSAnswer(canonicalName: answer.canonicalName, records: collected + answer.records)
            }
            // The chain left this reply's answers: ask for where it leads.
            current = answer.canonicalName
            collected = []
        }
        throw DNSError.malformedResponse("CNAME chain longer than \(Self.maximumCNAMEChain) at \(name)")
    }

    /// One query (or cache hit), following the CNAMEs within the reply.
    func lookupOnce(_ name: DomainName, _ type: RecordType) async throws(DNSError) -> DNSAnswer {
        if let cached = cache.get(name, type) { return try cached.get() }
        let reply = try await query(name, type)
        if reply.responseCode == .nameError {
            let ttl = negativeTTL(reply)
            cache.put(name, type, .failure(.nameDoesNotExist(name.description)), ttl: ttl)
            throw DNSError.nameDoesNotExist(name.description)
        }
        var canonical = name
        var seen: Set<DomainName> = [name]
        while true {
            let matching = reply.answers.filter { $0.name == canonical && $0.type == type }
            if !matching.isEmpty {
                let ttl = min(options.maximumTTL, matching.map(\.ttl).min() ?? 0)
                let answer = DNSAnswer(canonicalName: canonical, records: matching)
                cache.put(name, type, .success(answer), ttl: ttl)
                return answer
            }
            guard let alias = reply.answers.first(where: { $0.name == canonical && $0.type == .cname }),
                  case .cname(let target) = alias.data else { break }
            guard seen.insert(target).inserted else { throw DNSError.malformedResponse("CNAME loop at \(name)") }
            canonical = target
        }
        let answer = DNSAnswer(canonicalName: canonical, records: [])
        if canonical == name {
            // NODATA: cached like a negative answer.
            cache.put(name, type, .success(answer), ttl: negativeTTL(reply))
        }
        return answer
    }

    func negativeTTL(_ reply: DNSMessage) -> UInt32 {
        for record in reply.authorities {
            if case .soa(_, let minimum) = record.data { return min(record.ttl, minimum, options.maximumTTL) }
        }
        return options.negativeTTL
    }

    /// Asks the servers in turn until one gives a usable reply.
    func query(_ name: DomainName, _ type: RecordType) async throws(DNSError) -> DNSMessage {
        guard !options.servers.isEmpty else { throw DNSError.timeout("no DNS servers configured") }
        var lastError = DNSError.timeout(name.description)
        for _ in 0..<max(1, options.attempts) {
            for server in options.servers {
                let id = UInt16.random(in: 0...UInt16.max)
                let query = DNSMessageCodec.encode(DNSMessage.query(id: id, name: name, type: type))
                do {
                    var reply = try await exchange(query, id: id, server: server, overTCP: false, name: name, type: type)
                    if reply.isTruncated {
                        reply = try await exchange(query, id: id, server: server, overTCP: true, name: name, type: type)
                    }
                    switch reply.responseCode {
                    case .noError, .nameError:
                        return reply
                    default:
                        lastError = .serverFailure(name.description, reply.responseCode)
                    }
                } catch {
                    if case .timeout = lastError { lastError = error }
                    if case .malformedResponse = error { lastError = error }
                }
            }
        }
        throw lastError
    }

    private func exchange(_ query: [UInt8], id: UInt16, server: SocketAddress, overTCP: Bool,
                          name: DomainName, type: RecordType) async throws(DNSError) -> DNSMessage {
        let bytes = try await transport.exchange(query, id: id, server: server, overTCP: overTCP, timeout: options.timeout)
        let reply = try DNSMessageCodec.decode(bytes)
        // The reply must answer this question (RFC 5452 §9.1).
        guard reply.id == id, reply.isResponse, reply.questions.count == 1,
              reply.questions[0].name == name, reply.questions[0].type == type else {
            throw DNSError.malformedResponse("reply does not match the query")
        }
        return reply
    }
}

/// Answers and NXDOMAINs by (name, type) until their TTL runs out.
final class DNSCache: Sendable {
    struct Key: Hashable {
        var name: DomainName
        var type: RecordType
    }

    private let entries = NIOLockedValueBox<[Key: (Result<DNSAnswer, DNSError>, NIODeadline)]>([:])
    private let now: @Sendable () -> NIODeadline
    static let capacity = 100_000

    init(now: @escaping @Sendable () -> NIODeadline) {
        self.now = now
    }

    func get(_ name: DomainName, _ type: RecordType) -> Result<DNSAnswer, DNSError>? {
        let time = now()
        return entries.withLockedValue { entries in
            let key = Key(name: name, type: type)
            guard let (result, expiry) = entries[key] else { return nil }
            guard expiry > time else {
                entries[key] = nil
                return nil
            }
            return result
        }
    }

    func put(_ name: DomainName, _ type: RecordType, _ result: Result<DNSAnswer, DNSError>, ttl: UInt32) {
        guard ttl > 0 else { return }
        let expiry = now() + .seconds(Int64(ttl))
        let time = now()
        entries.withLockedValue { entries in
            if entries.count >= DNSCache.capacity {
                entries = entries.filter { $0.value.1 > time }
                if entries.count >= DNSCache.capacity { entries.removeAll() }
            }
            entries[Key(name: name, type: type)] = (result, expiry)
        }
    }
}

/// The `nameserver` lines of resolv.conf(5).
public enum ResolvConf {
    public static func servers(from text: String) -> [SocketAddress] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(whereSeparator: \.isWhitespace)
            guard fields.count >= 2, fields[0] == "nameserver" else { return nil }
            // Drop an IPv6 zone ("fe80::1%eth0"): not routable from here anyway.
            let address = String(fields[1].split(separator: "%").first ?? fields[1])
            return try? SocketAddress(ipAddress: address, port: 53)
        }
    }

    public static func systemServers(path: String = "/etc/resolv.conf") -> [SocketAddress] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return servers(from: text)
    }
}
