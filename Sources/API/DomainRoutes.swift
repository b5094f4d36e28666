import DKIM
import Foundation
import Hummingbird
import NIOCore
import Relay
import Store

/// `/v1/domains`: an account's sending domains, DKIM keys and compliance report.
struct DomainRoutes: Sendable {
    let services: APIServices
    /// The compliance report of a domain as JSON (built by the server, which has the resolver and configuration).
    let compliance: APIServer.ComplianceReport?
    /// Checks a domain's records and records whether it is verified for an account, as JSON (built by the server, as `compliance`).
    let verification: APIServer.DomainVerification?

    struct AddInput: Decodable, Sendable {
        var domain: String
        var algorithm: DKIMKey.Algorithm?
        /// The domain's own bounce domain (the domain or under it), used once verified.
        var returnPath: String?
    }

    func register(on routes: Routes) {
        routes.get("/v1/domains") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let keys = try services.store.dkimKeys(accountID: call.account.id)
            let account = try services.store.account(id: call.account.id) ?? call.account
            return APIJSON.response(object: ["domains": account.domains.map { domain in
                var entry: [String: Any] = ["domain": domain, "verified": account.verifiedDomains.contains(domain),
                                            "dkim": keys.filter { $0.domain == domain }.map(DomainRoutes.object)]
                if let returnPath = try? services.store.returnPath(domain: domain, accountID: account.id) {
                    entry["return_path"] = ["domain": returnPath.domain, "verified": returnPath.verified]
                }
                return entry
            }])
        }
        routes.post("/v1/domains") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(AddInput.self, from: call.body)
            let record: DKIMKeyRecord
            do {
                if let returnPath = input.returnPath {
                    // Checked first, so that a bad return path adds no key.
                    do { _ = try ReturnPathSetting.check(returnPath, for: input.domain) } catch {
                        throw APIError.badRequest("return_path: \(error)", field: "return_path")
                    }
                }
                record = try MessageSigning.addKey(store: services.store, accountNamed: call.account.name, domain: input.domain,
                                                   algorithm: input.algorithm ?? .rsa)
                if let returnPath = input.returnPath {
                    try services.store.setReturnPath(returnPath, domain: record.domain, accountID: record.accountID)
                }
            } catch let error as DKIMKeyError {
                throw APIError(.conflict, "domain_taken", error.description)
            } catch let error as AccountStoreError {
                throw APIError.badRequest(error.description, field: "domain")
            }
            return APIJSON.response(object: DomainRoutes.object(record), status: .created)
        }
        routes.post("/v1/domains/:domain/verify") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let domain = (try context.parameters.require("domain")).lowercased()
            // Only the account holding the domain's DKIM key can verify it: the key is what DNS proves.
            guard try services.store.dkimKeys(domain: domain, accountID: call.account.id).isEmpty == false else {
                throw APIError.notFound("DKIM key for domain \(domain)")
            }
            guard let verification else { throw APIError(.serviceUnavailable, "unavailable", "domain verification is not available") }
            let result = try await verification(domain, call.account.id)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: result)))
        }
        routes.get("/v1/domains/:domain/compliance") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let domain = (try context.parameters.require("domain")).lowercased()
            // Read afresh: the principal's copy of the account is cached, and the domain may have just been added.
            guard (try services.store.account(id: call.account.id))?.domains.contains(domain) == true else {
                throw APIError.notFound("domain \(domain)")
            }
            guard let compliance else { throw APIError(.serviceUnavailable, "unavailable", "compliance checks are not available") }
            let report = try await compliance(domain, call.account.id)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: report)))
        }
    }

    static func object(_ key: DKIMKeyRecord) -> [String: Any] {
        ["domain": key.domain, "selector": key.selector, "algorithm": key.algorithm, "active": key.active,
         "created_at": NativeAPI.iso(key.createdAt),
         "record": ["name": "\(key.selector)._domainkey.\(key.domain)", "type": "TXT",
                    "value": "v=DKIM1; k=\(key.algorithm); p=\(key.publicKey)"]]
    }
}
