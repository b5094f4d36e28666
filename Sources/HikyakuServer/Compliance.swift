import DNS
import Foundation
import NIOCore
import NIOPosix
import Spool
import Store

/// One requirement of the bulk-sender rules (Gmail and Yahoo, 2024) and how a domain fares.
public struct ComplianceCheck: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        case pass, warn, fail
    }

    public var name: String
    public var status: Status
    public var detail: String
    /// What to do about a warn or fail.
    public var fix: String?
}

/// A domain and its checks, as `/v1/domains/{domain}/compliance` answers.
public struct ComplianceReport: Sendable, Codable, Equatable {
    public var domain: String
    public var checks: [ComplianceCheck]
}

/// The compliance report of a sending domain: SPF, DKIM, DMARC and its
/// alignment, forward-confirmed reverse DNS of the egress addresses, TLS on
/// delivery, one-click unsubscribe, and the complaint rate against 0.3 %.
public enum Compliance {
    public static let complaintLimit = 0.003

    public struct Context: Sendable {
        public var domain: String
        public var configuration: Configuration
        public var store: any AccountStore & DKIMKeyStore & ReturnPathStore
        public var index: QueueIndex
        public var resolver: StubResolver
        public var now: Date
        /// Whose keys and return path the report is about; nil: the domain's owner (the account that verified it).
        public var accountID: Int64?

        public init(domain: String, configuration: Configuration, store: any AccountStore & DKIMKeyStore & ReturnPathStore, index: QueueIndex, resolver: StubResolver,
                    now: Date = Date(), accountID: Int64? = nil) {
            self.accountID = accountID
            self.domain = domain.lowercased()
            self.configuration = configuration
            self.store = store
            self.index = index
            self.resolver = resolver
            self.now = now
        }
    }

    public static func resolver(_ configuration: Configuration, servers: [String] = []) throws -> StubResolver {
        StubResolver(options: .init(servers: try DeliveryComposition.dnsServers(servers.isEmpty ? configuration.dnsServers : servers),
                                    timeout: .milliseconds(Int64(configuration.dnsTimeoutMilliseconds))),
                     transport: NIODNSTransport(group: MultiThreadedEventLoopGroup.singleton))
    }

    public static func check(_ context: Context) async throws -> [ComplianceCheck] {
        let all = try context.store.dkimKeys(domain: context.domain)
        // Another account's claim is its own business: a caller sees its own keys.
        let owner = try context.accountID ?? SendingDomain.owner(of: context.domain, keys: all, store: context.store)
        let keys = all.filter { $0.accountID == owner }
        let returnPath = try owner.flatMap { try context.store.returnPath(domain: context.domain, accountID: $0) }
        let records = try SendingDomain.records(domain: context.domain, keys: keys.filter(\.active), configuration: context.configuration,
                                                returnPath: returnPath?.domain)
        let verified = await SendingDomain.verify(records) { name in try await txt(name, context.resolver) }
        var checks: [ComplianceCheck] = []
        func record(_ kind: String) -> DNSRecordCheck? {
            verified.first { check in
                switch kind {
                case "dmarc": return check.name.hasPrefix("_dmarc.")
                default: return check.name == context.domain
                }
            }
        }
        let spf = record("spf")
        checks.append(ComplianceCheck(name: "spf", status: spf?.status == .ok ? .pass : .fail,
                                      detail: spf.map { "\($0.status.rawValue): \($0.found.first ?? "no record")" } ?? "",
                                      fix: spf?.status == .ok ? nil : "publish: \(spf?.expected ?? "")"))
        // One active key per algorithm: each signs every message, so each record must be published.
        let dkimRecords = verified.filter { $0.name.contains("._domainkey.") }
        let dkimPublished = !dkimRecords.isEmpty && dkimRecords.allSatisfy { $0.status == .ok }
        if keys.contains(where: \.active) {
            checks.append(ComplianceCheck(
                name: "dkim", status: dkimPublished ? .pass : .fail,
                detail: dkimRecords.map { "selector \($0.name.prefix { $0 != "." }): \($0.status.rawValue)" }.joined(separator: ", "),
                fix: dkimPublished ? nil : "publish the DKIM records (hikyaku domain records \(context.domain))"))
        } else {
            checks.append(ComplianceCheck(name: "dkim", status: .fail, detail: "no DKIM key: mail from this domain is not signed",
                                          fix: "hikyaku domain add \(context.domain) --account NAME"))
        }
        let dmarc = record("dmarc")
        checks.append(ComplianceCheck(name: "dmarc", status: dmarc?.status == .ok ? .pass : .fail,
                                      detail: dmarc.map { $0.status == .ok ? $0.detail : "\($0.status.rawValue)" } ?? "",
                                      fix: dmarc?.status == .ok ? nil : "publish: \(dmarc?.expected ?? "")"))
        // Alignment: DKIM signs with d= the From domain; SPF aligns when the return path is the domain or under it:
        // the domain's own verified return path, else the server's bounce domain, else the sender's own address.
        let ownReturnPath = returnPath?.verified == true ? returnPath?.domain : nil
        let bounce = ownReturnPath ?? context.configuration.bounceDomain?.lowercased()
        let spfAligned = bounce.map { $0 == context.domain || $0.hasSuffix("." + context.domain) } ?? true
        let spfPasses = ownReturnPath.map { name in verified.first { $0.name == name && $0.type == "TXT" }?.status == .ok }
            ?? (spf?.status == .ok)
        let dkimAligned = dkimPublished
        checks.append(ComplianceCheck(
            name: "dmarc_alignment", status: dkimAligned ? .pass : (spfAligned && spfPasses ? .pass : .fail),
            detail: "DKIM \(dkimAligned ? "aligned (d=\(context.domain))" : "not aligned"); SPF "
                + (bounce.map { spfAligned ? "aligned (return path @\($0))" : "not aligned (return path @\($0))" } ?? "aligned (the sender's own address)"),
            fix: dkimAligned ? (spfAligned ? nil : "for SPF alignment too: hikyaku domain return-path \(context.domain) bounce.\(context.domain)")
                : "publish the DKIM key so that signatures align with the From domain"))
        checks.append(try await reverseDNS(context))
        checks.append(try tls(context))
        checks.append(unsubscribe(context))
        checks.append(try complaints(context))
        return checks
    }

    /// MX records at a name as `preference exchange`; none for NXDOMAIN; throws when the lookup failed.
    public static func mx(_ name: String, _ resolver: StubResolver) async throws(DNSError) -> [String] {
        try await lookup(name, .mx, resolver) { data in
            guard case .mx(let preference, let exchange) = data else { return nil }
            return "\(preference) \(exchange)"
        }
    }

    /// TXT strings at a name; none for NXDOMAIN; throws when the lookup failed.
    public static func txt(_ name: String, _ resolver: StubResolver) async throws(DNSError) -> [String] {
        try await lookup(name, .txt, resolver) { data in
            guard case .txt(let strings) = data else { return nil }
            return String(decoding: strings.joined(), as: UTF8.self)
        }
    }

    /// The records of one type at a name, each as text; a permanent failure (NXDOMAIN) is none.
    static func lookup(_ name: String, _ type: RecordType, _ resolver: StubResolver,
                       _ text: (RecordData) -> String?) async throws(DNSError) -> [String] {
        let answer: DNSAnswer
        do {
            answer = try await resolver.lookup(try DomainName(name), type)
        } catch {
            if error.isTransient { throw error }
            return []
        }
        return answer.records.compactMap { text($0.data) }
    }

    /// Every egress address must have a PTR whose name resolves back to it (FCrDNS).
    static func reverseDNS(_ context: Context) async throws -> ComplianceCheck {
        let addresses = try SendingDomain.egressAddresses(context.configuration)
        guard !addresses.isEmpty else {
            return ComplianceCheck(name: "reverse_dns", status: .warn, detail: "no egress addresses configured; the kernel chooses the source",
                                   fix: "configure delivery.egressPools so that the addresses (and their PTR) are known")
        }
        var failures: [String] = []
        for address in addresses {
            guard let reverse = reverseName(address),
                  let answer = try? await context.resolver.lookup(try DomainName(reverse), .ptr),
                  case .ptr(let host)? = answer.records.first?.data else {
                failures.append("\(address): no PTR")
                continue
            }
            let type: RecordType = address.contains(":") ? .aaaa : .a
            let forward = (try? await context.resolver.lookup(host, type))?.records.compactMap { record -> String? in
                switch record.data {
                case .a(let bytes): return bytes.map(String.init).joined(separator: ".")
                case .aaaa(let bytes): return (try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 0))?.ipAddress
                default: return nil
                }
            } ?? []
            if !forward.contains(address) { failures.append("\(address): PTR \(host) does not resolve back to it") }
        }
        return ComplianceCheck(name: "reverse_dns", status: failures.isEmpty ? .pass : .fail,
                               detail: failures.isEmpty ? "\(addresses.count) egress address(es) forward-confirmed" : failures.joined(separator: "; "),
                               fix: failures.isEmpty ? nil : "set a PTR for each egress address to a name that resolves back to it")
    }

    static func reverseName(_ address: String) -> String? {
        if address.contains(":") {
            guard let socket = try? SocketAddress(ipAddress: address, port: 0), case .v6(let v6) = socket else { return nil }
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            return bytes.reversed().flatMap { [String($0 & 0xF, radix: 16), String($0 >> 4, radix: 16)] }.joined(separator: ".") + ".ip6.arpa"
        }
        let parts = address.split(separator: ".")
        guard parts.count == 4 else { return nil }
        return parts.reversed().joined(separator: ".") + ".in-addr.arpa"
    }

    /// Deliveries of the last 7 days from this domain, and how many used TLS.
    static func tls(_ context: Context) throws -> ComplianceCheck {
        let (total, encrypted) = try context.index.tlsShare(senderDomain: context.domain, since: context.now.addingTimeInterval(-7 * 86400))
        guard total > 0 else { return ComplianceCheck(name: "tls", status: .warn, detail: "no deliveries in the last 7 days", fix: nil) }
        let share = Double(encrypted) / Double(total)
        return ComplianceCheck(name: "tls", status: share >= 0.99 ? .pass : .warn,
                               detail: String(format: "%.1f %% of %d deliveries in 7 days used TLS", share * 100, total),
                               fix: share >= 0.99 ? nil : "receivers without STARTTLS; consider delivery.tlsPolicy for the sites that matter")
    }

    /// Marketing mail gets one-click unsubscribe; the link must be reachable by recipients.
    static func unsubscribe(_ context: Context) -> ComplianceCheck {
        guard let url = context.configuration.apiPublicURL, url.lowercased().hasPrefix("https://") else {
            return ComplianceCheck(name: "one_click_unsubscribe", status: .fail,
                                   detail: "marketing mail carries List-Unsubscribe, but its link is the API's own address",
                                   fix: "set api.publicUrl to the https:// address recipients reach (through a TLS proxy)")
        }
        return ComplianceCheck(name: "one_click_unsubscribe", status: .pass,
                               detail: "marketing mail carries List-Unsubscribe and List-Unsubscribe-Post (\(url)/u/…)", fix: nil)
    }

    /// Complaints over deliveries in the last 7 days, against the 0.3 % limit (warn from 0.1 %).
    static func complaints(_ context: Context) throws -> ComplianceCheck {
        let (delivered, complained) = try context.index.complaintCounts(senderDomain: context.domain,
                                                                        since: context.now.addingTimeInterval(-7 * 86400))
        let rate = delivered > 0 ? Double(complained) / Double(delivered) : 0
        let status: ComplianceCheck.Status = rate >= complaintLimit ? .fail : rate >= 0.001 ? .warn : .pass
        return ComplianceCheck(name: "complaint_rate", status: status,
                               detail: String(format: "%.3f %% (%d complaints / %d delivered, 7 days; limit 0.3 %%)", rate * 100,
                                              complained, delivered),
                               fix: status == .pass ? nil : "complaining recipients are suppressed; review who is mailed and how often")
    }
}
