import DKIM
import Foundation
import NIOConcurrencyHelpers
import Store

/// Signs mail with the active DKIM key of its From domain (RFC 6376), for
/// SMTP and the API alike. Keys are read from the store and re-read every
/// 5 s, so a key added or rotated with `hikyaku domain` applies without a
/// restart. Only the account that owns a domain (or a trusted network,
/// which has no account) gets that domain's signature.
public final class MessageSigning: Sendable {
    private let store: SQLiteStore
    private let headers: [String]
    private let cache = NIOLockedValueBox<(signers: [String: (account: Int64, signer: DKIMSigner)], loaded: ContinuousClock.Instant?)>(([:], nil))

    public init(store: SQLiteStore, headers: [String] = DKIMSigner.defaultHeaders) {
        self.store = store
        // From first, whatever the list: a signature without From is worthless.
        self.headers = ["from"] + headers.map { $0.lowercased() }.filter { $0 != "from" }
    }

    /// The signer for a message (its header section is enough), or nil when
    /// its From domain has no key this sender may use.
    public func signer(for message: [UInt8], accountID: Int64?) -> DKIMSigner? {
        guard let domain = DKIMSigner.fromDomain(message) else { return nil }
        let now = ContinuousClock.now
        let entry = cache.withLockedValue { cache -> (account: Int64, signer: DKIMSigner)? in
            if cache.loaded.map({ now - $0 > .seconds(5) }) ?? true {
                if let keys = try? store.activeDKIMKeys() {
                    var signers: [String: (account: Int64, signer: DKIMSigner)] = [:]
                    for (record, privateKey) in keys {
                        guard let algorithm = DKIMKey.Algorithm(rawValue: record.algorithm),
                              let key = try? DKIMKey(algorithm: algorithm, privateKeyData: privateKey) else { continue }
                        signers[record.domain] = (record.accountID, DKIMSigner(domain: record.domain, selector: record.selector, key: key,
                                                                                     headers: headers))
                    }
                    cache.signers = signers
                }
                cache.loaded = now
            }
            return cache.signers[domain]
        }
        guard let entry, accountID == nil || accountID == entry.account else { return nil }
        return entry.signer
    }
}

extension MessageSigning {
    /// Generates a key for `domain` under a fresh dated selector and stores it
    /// for the account; the first key of a domain is active at once, a later
    /// one (a rotation) waits for `activateDKIMKey`.
    public static func addKey(store: SQLiteStore, accountNamed account: String, domain: String,
                              algorithm: DKIMKey.Algorithm) throws -> DKIMKeyRecord {
        let taken = Set(try store.dkimKeys(domain: domain).map(\.selector))
        let key = try DKIMKey.generate(algorithm)
        return try store.addDKIMKey(accountNamed: account, domain: domain, selector: DKIMSigner.selector(taken: taken),
                                    algorithm: algorithm.rawValue, privateKey: key.privateKeyData, publicKey: key.publicKeyBase64,
                                    activate: taken.isEmpty)
    }
}
