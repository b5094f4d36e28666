import DKIM
import Foundation
import Store

/// A DNS record a sending domain should publish.
public struct DNSRecordSuggestion: Sendable, Codable, Equatable {
    public var name: String
    public var type: String
    public var value: String
    public var purpose: String

    /// In zone-file syntax, the TXT value in strings of at most 255 octets (RFC 1035 §3.3.14).
    public var zoneLine: String {
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

    public static func records(domain: String, keys: [DKIMKeyRecord], configuration: Configuration) throws -> [DNSRecordSuggestion] {
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
    public var purpose: String
    public var expected: String
    public var found: [String]
    public var status: Status
    public var detail: String
}

extension SendingDomain {
    /// TXT records at a name, each as one string; nil for NXDOMAIN or no TXT; throws when the lookup failed.
    public typealias TXTLookup = @Sendable (String) async throws -> [String]

    /// Checks each suggested record (`records`) in DNS: DKIM must carry the
    /// same public key; SPF must be one `v=spf1` record with the suggested
    /// mechanisms; DMARC must be a `v=DMARC1` record.
    public static func verify(_ records: [DNSRecordSuggestion], lookup: TXTLookup) async -> [DNSRecordCheck] {
        var checks: [DNSRecordCheck] = []
        for record in records {
            var check = DNSRecordCheck(name: record.name, purpose: record.purpose, expected: record.value, found: [], status: .missing,
                                       detail: "")
            do {
                check.found = try await lookup(record.name)
            } catch {
                check.status = .unknown
                check.detail = "lookup failed: \(error)"
                checks.append(check)
                continue
            }
            if record.name.contains("._domainkey.") {
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
        /// The active DKIM key's record is published: the account controls the domain's DNS.
        public var verified: Bool
        public var records: [DNSRecordCheck]
    }

    /// Checks a domain's records (`verify`) and records the verdict for the
    /// account owning its DKIM key: verified when the active key's record is
    /// published, as SES verifies a domain by its DKIM records. A failed
    /// lookup (`unknown`) changes nothing; a domain without a key is not verified.
    public static func verifyAndRecord(domain: String, configuration: Configuration, store: SQLiteStore,
                                       lookup: TXTLookup) async throws -> Verification {
        let domain = domain.lowercased()
        let keys = try store.dkimKeys(domain: domain)
        let checks = await verify(try records(domain: domain, keys: keys, configuration: configuration), lookup: lookup)
        guard let active = keys.first(where: \.active) else {
            return Verification(domain: domain, verified: false, records: checks)
        }
        let name = "\(active.selector)._domainkey.\(domain)"
        let status = checks.first { $0.name == name }?.status ?? .missing
        if status != .unknown {
            try store.setDomainVerified(domain, accountID: active.accountID, at: status == .ok ? Date() : nil)
        }
        let account = try store.account(id: active.accountID)
        return Verification(domain: domain, verified: account?.verifiedDomains.contains(domain) ?? false, records: checks)
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
