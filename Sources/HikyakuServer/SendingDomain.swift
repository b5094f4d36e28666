import DKIM
import DNS
import Foundation
import Store

/// A DNS record a sending domain should publish.
public struct DNSRecordSuggestion: Sendable, Codable, Equatable {
    public var name: String
    public var type: String
    public var value: String
    public var purpose: String

    /// In zone-file syntax, a TXT value in strings of at most 255 octets (RFC 1035 §3.3.14).
    public var zoneLine: String {
        guard type == "TXT" else { return "\(name). IN \(type) \(value)." }
        var chunks: [String] = []
        var rest = Substring(value)
        while !rest.isEmpty {
            chunks.append("\"" + rest.prefix(255) + "\"")
            rest = rest.dropFirst(255)
        }
        return "\(name). IN \(type) \(chunks.joined(separator: " "))"
    }
}

/// What a sending domain needs in DNS: its DKIM keys, SPF for the addresses
/// mail leaves from, and a DMARC policy to start with.
public enum SendingDomain {
    /// Every address of every egress pool: where mail from any domain can leave from.
    public static func egressAddresses(_ configuration: Configuration) throws -> [String] {
        Set(try DeliveryComposition.egressPools(configuration.deliveryEgressPools).values.flatMap { $0 }).sorted()
    }

    /// The records for a domain as stored: the keys of `accountID` (by
    /// default the account that verified the domain, else its first
    /// claimant; `activeOnly`: the active ones), and that account's return path.
    public static func records(domain: String, store: any AccountStore & DKIMKeyStore & ReturnPathStore, configuration: Configuration,
                               activeOnly: Bool = false, accountID: Int64? = nil) throws -> [DNSRecordSuggestion] {
        let domain = domain.lowercased()
        let all = try store.dkimKeys(domain: domain)
        guard let account = try accountID ?? owner(of: domain, keys: all, store: store) else {
            return try records(domain: domain, keys: [], configuration: configuration)
        }
        let keys = all.filter { $0.accountID == account }
        let returnPath = try store.returnPath(domain: domain, accountID: account)
        return try records(domain: domain, keys: activeOnly ? keys.filter(\.active) : keys, configuration: configuration,
                           returnPath: returnPath?.domain)
    }

    /// The account a domain's records are shown for: the one that verified it, else the first to add a key.
    public static func owner(of domain: String, keys: [DKIMKeyRecord], store: any AccountStore & DKIMKeyStore & ReturnPathStore) throws -> Int64? {
        let claimants = claimants(keys)
        for account in claimants where try store.account(id: account)?.verifiedDomains.contains(domain) == true { return account }
        return claimants.first
    }

    /// Accounts holding keys for a domain, in the order their first key was added.
    static func claimants(_ keys: [DKIMKeyRecord]) -> [Int64] {
        var seen = Set<Int64>()
        return keys.sorted { $0.createdAt < $1.createdAt }.map(\.accountID).filter { seen.insert($0).inserted }
    }

    public static func records(domain: String, keys: [DKIMKeyRecord], configuration: Configuration,
                               returnPath: String? = nil) throws -> [DNSRecordSuggestion] {
        var records = keys.map { key in
            DNSRecordSuggestion(name: "\(key.selector)._domainkey.\(domain)", type: "TXT",
                                value: "v=DKIM1; k=\(key.algorithm); p=\(key.publicKey)",
                                purpose: key.active ? "DKIM key (active)" : "DKIM key (published, not yet active)")
        }
        let addresses = try egressAddresses(configuration)
        let spf = addresses.isEmpty
            ? "v=spf1 a:\(configuration.hostname) ~all"
            : "v=spf1 " + addresses.map { ($0.contains(":") ? "ip6:" : "ip4:") + $0 }.joined(separator: " ") + " -all"
        records.append(DNSRecordSuggestion(name: domain, type: "TXT", value: spf,
                                           purpose: addresses.isEmpty ? "SPF (the relay's host; list the egress addresses once known)"
                                                                      : "SPF: the egress pools' addresses"))
        records.append(DNSRecordSuggestion(name: "_dmarc.\(domain)", type: "TXT", value: "v=DMARC1; p=none; rua=mailto:dmarc-reports@\(domain)",
                                           purpose: "DMARC, monitoring first; move to p=quarantine or p=reject once reports are clean"))
        if let returnPath {
            records.append(DNSRecordSuggestion(name: returnPath, type: "MX", value: "10 \(configuration.hostname.lowercased())",
                                               purpose: "Return path: bounces and complaints come back to this server"))
            records.append(DNSRecordSuggestion(name: returnPath, type: "TXT", value: spf,
                                               purpose: "SPF of the return path (the envelope sender receivers check; aligns with the From domain)"))
        }
        return records
    }
}

/// The outcome of checking one suggested record against DNS.
public struct DNSRecordCheck: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        case ok, missing, wrong
        /// The lookup itself failed (SERVFAIL, timeout): nothing can be said.
        case unknown
    }

    public var name: String
    public var type: String
    public var purpose: String
    public var expected: String
    public var found: [String]
    public var status: Status
    public var detail: String
}

extension SendingDomain {
    /// TXT records at a name, each as one string; nil for NXDOMAIN or no TXT; throws when the lookup failed.
    public typealias TXTLookup = @Sendable (String) async throws -> [String]
    /// MX records at a name as `preference host`; empty for NXDOMAIN or none; throws when the lookup failed.
    public typealias MXLookup = @Sendable (String) async throws -> [String]

    /// Checks each suggested record (`records`) in DNS: DKIM must carry the
    /// same public key; SPF must be one `v=spf1` record with the suggested
    /// mechanisms; DMARC must be a `v=DMARC1` record.
    public static func verify(_ records: [DNSRecordSuggestion], lookup: TXTLookup, mx: MXLookup? = nil) async -> [DNSRecordCheck] {
        var checks: [DNSRecordCheck] = []
        for record in records {
            var check = DNSRecordCheck(name: record.name, type: record.type, purpose: record.purpose, expected: record.value, found: [],
                                       status: .missing, detail: "")
            do {
                if record.type == "MX" {
                    guard let mx else { continue }
                    check.found = try await mx(record.name)
                } else {
                    check.found = try await lookup(record.name)
                }
            } catch {
                check.status = .unknown
                check.detail = "lookup failed: \(error)"
                checks.append(check)
                continue
            }
            if record.type == "MX" {
                // Bounces reach this server when one of the exchanges is it; others may stand beside it.
                let host = record.value.split(separator: " ").last.map { $0.lowercased() } ?? ""
                let hosts = check.found.map { $0.split(separator: " ").last.map { String($0).lowercased() } ?? "" }
                    .map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 }
                if hosts.isEmpty { check.detail = "no MX record: bounces cannot come back" }
                else if hosts.contains(host) { check.status = .ok }
                else { (check.status, check.detail) = (.wrong, "no exchange is \(host)") }
            } else if record.name.contains("._domainkey.") {
                let keys = check.found.filter { $0.hasPrefix("v=DKIM1") }.map { tag("p", in: $0) }
                let expected = tag("p", in: record.value)
                if keys.isEmpty { check.detail = "no DKIM record" }
                else if keys.contains(expected) { check.status = .ok }
                else { (check.status, check.detail) = (.wrong, "the published key is not this selector's key") }
            } else if record.value.hasPrefix("v=spf1") {
                let spf = check.found.filter { $0.lowercased().hasPrefix("v=spf1") }
                let wanted = record.value.split(separator: " ").dropFirst().filter { !$0.hasSuffix("all") }.map { $0.lowercased() }
                if spf.isEmpty { check.detail = "no SPF record" }
                else if spf.count > 1 { (check.status, check.detail) = (.wrong, "more than one SPF record (RFC 7208 §4.5: permerror)") }
                else {
                    let terms = Set(spf[0].lowercased().split(separator: " ").map(String.init))
                    let absent = wanted.filter { !terms.contains($0) }
                    if absent.isEmpty { check.status = .ok }
                    else { (check.status, check.detail) = (.wrong, "SPF lacks \(absent.joined(separator: " "))") }
                }
            } else if record.value.hasPrefix("v=DMARC1") {
                let dmarc = check.found.filter { $0.hasPrefix("v=DMARC1") }
                if dmarc.isEmpty { check.detail = "no DMARC record" }
                else if dmarc.count > 1 { (check.status, check.detail) = (.wrong, "more than one DMARC record") }
                else { (check.status, check.detail) = (.ok, "policy " + tag("p", in: dmarc[0])) }
            }
            checks.append(check)
        }
        return checks
    }

    /// A domain's records checked, and whether that made it verified.
    public struct Verification: Sendable, Codable {
        public var domain: String
        /// The active DKIM keys' records are published: the account controls the domain's DNS.
        public var verified: Bool
        /// The domain's own return path, verified when its MX points at this server.
        public var returnPath: ReturnPathSetting?
        public var records: [DNSRecordCheck]

        enum CodingKeys: String, CodingKey {
            case domain, verified, records
            case returnPath = "return_path"
        }
    }

    /// Checks a domain's records (`verify`) and records the verdicts for
    /// each account holding keys for it (or only `accountID`): a domain is
    /// verified for an account when that account's active keys' records are
    /// published, as SES verifies a domain by its DKIM records, so a claim by
    /// an account that cannot publish counts for nothing; its return path
    /// when its MX names this server. A failed lookup (`unknown`) changes
    /// nothing; a domain without a key is not verified. The result is that of
    /// `accountID`, else of an account it verified, else of the first claimant.
    static func verifyAndRecord(domain: String, configuration: Configuration, store: any AccountStore & DKIMKeyStore & ReturnPathStore,
                                lookup: TXTLookup, mx: @escaping MXLookup, accountID: Int64? = nil) async throws -> Verification {
        let domain = domain.lowercased()
        let active = try store.dkimKeys(domain: domain).filter(\.active)
        let accounts = accountID.map { [$0] } ?? claimants(active)
        var results: [Verification] = []
        for owner in accounts {
            let checks = await verify(try records(domain: domain, store: store, configuration: configuration, accountID: owner),
                                      lookup: lookup, mx: mx)
            func status(_ name: String, type: String) -> DNSRecordCheck.Status {
                checks.first { $0.name == name && $0.type == type }?.status ?? .missing
            }
            // Every active key (one per algorithm) must be published: each signs every message.
            let keys = active.filter { $0.accountID == owner }.map { status("\($0.selector)._domainkey.\(domain)", type: "TXT") }
            if !keys.isEmpty, !keys.contains(.unknown) {
                try store.setDomainVerified(domain, accountID: owner, at: keys.allSatisfy { $0 == .ok } ? Date() : nil)
            }
            if let returnPath = try store.returnPath(domain: domain, accountID: owner) {
                let mx = status(returnPath.domain, type: "MX")
                if mx != .unknown { try store.setReturnPathVerified(domain: domain, accountID: owner, at: mx == .ok ? Date() : nil) }
            }
            let account = try store.account(id: owner)
            results.append(Verification(domain: domain, verified: account?.verifiedDomains.contains(domain) ?? false,
                                        returnPath: try store.returnPath(domain: domain, accountID: owner), records: checks))
        }
        if let result = results.first(where: \.verified) ?? results.first { return result }
        let checks = await verify(try records(domain: domain, keys: [], configuration: configuration), lookup: lookup, mx: mx)
        return Verification(domain: domain, verified: false, records: checks)
    }

    /// `verifyAndRecord` looking records up with `resolver`.
    public static func verifyAndRecord(domain: String, configuration: Configuration, store: any AccountStore & DKIMKeyStore & ReturnPathStore,
                                       resolver: StubResolver, accountID: Int64? = nil) async throws -> Verification {
        try await verifyAndRecord(domain: domain, configuration: configuration, store: store,
                                  lookup: { name in try await Compliance.txt(name, resolver) },
                                  mx: { name in try await Compliance.mx(name, resolver) }, accountID: accountID)
    }

    /// The value of `name=` in a tag list (`v=DKIM1; k=rsa; p=…`), white space removed.
    static func tag(_ name: String, in record: String) -> String {
        for part in record.split(separator: ";") {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces) == name {
                return pair[1].filter { !$0.isWhitespace }
            }
        }
        return ""
    }
}
