import DKIM
import Foundation
import Store

/// Signs mail with the active DKIM keys of its From domain (RFC 6376), for
/// SMTP and the API alike: one key per algorithm, so a domain with an RSA and
/// an Ed25519 key carries both signatures (RFC 8463 §4: verifiers without
/// Ed25519 still find the RSA one). Keys are read from the store and re-read
/// every 5 s, so a key added or rotated with `hikyaku domain` applies without
/// a restart. Only the account that owns a domain (or a trusted network,
/// which has no account) gets that domain's signatures.
public final class MessageSigning: Sendable {
    /// Per domain, the signers of each account holding keys for it, and which accounts verified it.
    struct Keys: Sendable {
        var signers: [String: [Int64: [DKIMSigner]]] = [:]
        var verified: [String: Set<Int64>] = [:]
    }

    private let keys: RefreshingSnapshot<Keys>

    public init(store: any DKIMKeyStore & AccountStore, headers: [String] = DKIMSigner.defaultHeaders) {
        // From first, whatever the list: a signature without From is worthless.
        let headers = ["from"] + headers.map { $0.lowercased() }.filter { $0 != "from" }
        keys = RefreshingSnapshot(lifetime: .seconds(5), initial: Keys()) { try MessageSigning.load(store, headers: headers) }
    }

    /// Keys and verifications read together from the one database: if either read fails, both stay as they were.
    static func load(_ store: any DKIMKeyStore & AccountStore, headers: [String]) throws -> Keys {
        var keys = Keys()
        let active = try store.activeDKIMKeys().sorted { ($0.record.algorithm == "rsa" ? 0 : 1) < ($1.record.algorithm == "rsa" ? 0 : 1) }
        for (record, privateKey) in active {
            guard let algorithm = DKIMKey.Algorithm(rawValue: record.algorithm),
                  let key = try? DKIMKey(algorithm: algorithm, privateKeyData: privateKey) else { continue }
            let signer = DKIMSigner(domain: record.domain, selector: record.selector, key: key, headers: headers)
            keys.signers[record.domain, default: [:]][record.accountID, default: []].append(signer)
        }
        for account in try store.accounts() {
            for domain in account.verifiedDomains { keys.verified[domain, default: []].insert(account.id) }
        }
        return keys
    }

    /// The signers for mail whose (first) From mailbox is in `domain`
    /// (normalised, as `SenderPolicy.domain`), RSA first; empty when the
    /// domain has no key this sender may use.
    public func signers(forDomain domain: String, accountID: Int64?) -> [DKIMSigner] {
        let keys = keys.current
        guard let byAccount = keys.signers[domain] else { return [] }
        if let accountID { return byAccount[accountID] ?? [] }
        // A trusted network has no account: the keys of the account that proved the domain (or of its only claimant).
        if let owner = keys.verified[domain]?.sorted().first(where: { byAccount[$0] != nil }) { return byAccount[owner] ?? [] }
        return byAccount.count == 1 ? byAccount.values.first ?? [] : []
    }

    /// The DKIM-Signature fields of `signers` over `message`, to put on top of it.
    public static func signatures(_ signers: [DKIMSigner], over message: [UInt8]) -> [UInt8] {
        signers.reduce(into: []) { fields, signer in
            if let field = try? signer.signature(for: message) { fields += field }
        }
    }
}

extension MessageSigning {
    /// Generates a key for `domain` under a fresh dated selector and stores it
    /// for the account; the domain's first key of an algorithm is active at
    /// once (a second algorithm adds a second signature), a later one of the
    /// same algorithm (a rotation) waits for `activateDKIMKey`.
    public static func addKey(store: any DKIMKeyStore & AccountStore, accountNamed account: String, domain: String,
                              algorithm: DKIMKey.Algorithm) throws -> DKIMKeyRecord {
        // Selectors are unique per domain; which key is active is each account's own (another's claim may exist).
        let existing = try store.dkimKeys(domain: domain)
        let owner = try store.account(named: account)?.id
        let key = try DKIMKey.generate(algorithm)
        return try store.addDKIMKey(accountNamed: account, domain: domain, selector: DKIMSigner.selector(taken: Set(existing.map(\.selector))),
                                    algorithm: algorithm.rawValue, privateKey: key.privateKeyData, publicKey: key.publicKeyBase64,
                                    activate: !existing.contains { $0.accountID == owner && $0.algorithm == algorithm.rawValue })
    }
}
