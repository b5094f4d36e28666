import Foundation
import GRDB

/// A sending domain's own return-path (bounce) domain, such as
/// `bounce.acme.example` for `acme.example`: envelope senders on it make SPF
/// align with the From domain (DMARC). It is used only once `domain verify`
/// has found its MX pointing at this server, so that no mail leaves with a
/// return path its bounces cannot come back to.
public struct ReturnPathSetting: Sendable, Codable, Equatable {
    public var domain: String
    public var verified: Bool
}

/// The sending domains' return paths: one capability of the store, with an
/// implementation per engine (`SQLiteStore`, `PostgresStore`).
public protocol ReturnPathStore: Sendable {
    /// Sets (or with nil removes) the return-path domain of an account's
    /// domain: the domain itself or a name under it, never another party's
    /// domain. A new setting is unverified.
    func setReturnPath(_ returnPath: String?, domain: String, accountID: Int64) throws
    /// Records whether `domain verify` found the return path's MX pointing here.
    func setReturnPathVerified(domain: String, accountID: Int64, at date: Date?) throws
    func returnPath(domain: String, accountID: Int64) throws -> ReturnPathSetting?
    /// Sending domain → return-path domain, the verified ones only (for delivery and the SMTP intake).
    func verifiedReturnPaths() throws -> [String: String]
}

extension ReturnPathSetting {
    /// The return path normalised, if it is `domain` or a name under it.
    public static func check(_ returnPath: String, for domain: String) throws -> String {
        let normalised = try AccountNames.normaliseDomain(returnPath)
        let domain = domain.lowercased()
        guard normalised == domain || normalised.hasSuffix("." + domain) else {
            throw AccountStoreError.invalidDomain("\(normalised): a return path must be \(domain) or under it")
        }
        return normalised
    }
}

extension SQLiteStore: ReturnPathStore {
    public func setReturnPath(_ returnPath: String?, domain: String, accountID: Int64) throws {
        let domain = domain.lowercased()
        let normalised = try returnPath.map { try ReturnPathSetting.check($0, for: domain) }
        try database.write { db in
            try db.execute(sql: """
                UPDATE account_domain SET return_path = ?, return_path_verified_at = NULL WHERE account_id = ? AND domain = ?
                """, arguments: [normalised, accountID, domain])
            if db.changesCount == 0 { throw AccountStoreError.domainNotFound(domain) }
        }
    }

    public func setReturnPathVerified(domain: String, accountID: Int64, at date: Date?) throws {
        try database.write { db in
            try db.execute(sql: """
                UPDATE account_domain SET return_path_verified_at = ? WHERE account_id = ? AND domain = ? AND return_path IS NOT NULL
                """, arguments: [date?.timeIntervalSince1970, accountID, domain.lowercased()])
        }
    }

    public func returnPath(domain: String, accountID: Int64) throws -> ReturnPathSetting? {
        try database.read { db in
            try Row.fetchOne(db, sql: """
                SELECT return_path, return_path_verified_at FROM account_domain
                WHERE account_id = ? AND domain = ? AND return_path IS NOT NULL
                """, arguments: [accountID, domain.lowercased()])
                .map { ReturnPathSetting(domain: $0["return_path"], verified: $0["return_path_verified_at"] != nil) }
        }
    }

    public func verifiedReturnPaths() throws -> [String: String] {
        try database.read { db in
            var paths: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT domain, return_path FROM account_domain WHERE return_path IS NOT NULL AND return_path_verified_at IS NOT NULL
                """) {
                paths[row["domain"]] = row["return_path"]
            }
            return paths
        }
    }
}
