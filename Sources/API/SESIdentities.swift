import DKIM
import Foundation
import Hummingbird
import Relay
import Store

/// SES v2's email identities, mapped onto sending domains: an identity is a
/// domain of the account with its DKIM keys (`/v1/domains`), so scripts that
/// call `create_email_identity` and poll `get_email_identity` work unchanged.
/// Only domain identities exist here: an address identity is refused.
struct SESIdentities: Sendable {
    let services: APIServices

    struct CreateRequest: Decodable, Sendable {
        var EmailIdentity: String
    }

    func register(on routes: Routes) {
        routes.get("/v2/email/identities") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let account = try services.store.account(id: call.account.id) ?? call.account
            let size = try request.queryInteger("PageSize", default: 100, range: 1...1000)
            let after = request.query("NextToken")
            let domains = account.domains.filter { after == nil || $0 > after ?? "" }.prefix(size)
            var body: [String: Any] = ["EmailIdentities": domains.map { domain -> [String: Any] in
                let verified = account.verifiedDomains.contains(domain)
                return ["IdentityType": "DOMAIN", "IdentityName": domain, "SendingEnabled": verified,
                        "VerificationStatus": verified ? "SUCCESS" : "PENDING"]
            }]
            if domains.count == size, let last = domains.last { body["NextToken"] = last }
            return APIJSON.response(object: body)
        }
        routes.post("/v2/email/identities") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(CreateRequest.self, from: call.body, snakeCase: false)
            let domain = input.EmailIdentity.lowercased().trimmingCharacters(in: .whitespaces)
            guard !domain.contains("@") else {
                throw APIError(.badRequest, "bad_request", "only domain identities are supported: verify the address's domain",
                               ses: "BadRequestException")
            }
            do {
                if try !services.store.dkimKeys(domain: domain, accountID: call.account.id).isEmpty {
                    throw APIError(.conflict, "already_exists", "Email identity \(domain) already exists.", ses: "AlreadyExistsException")
                }
                _ = try MessageSigning.addKey(store: services.store, accountNamed: call.account.name, domain: domain, algorithm: .rsa)
            } catch let error as DKIMKeyError {
                throw APIError(.conflict, "already_exists", error.description, ses: "AlreadyExistsException")
            } catch let error as AccountStoreError {
                throw APIError(.badRequest, "bad_request", error.description, ses: "BadRequestException")
            }
            var body = try identity(domain, accountID: call.account.id)
            body.removeValue(forKey: "VerificationStatus")
            return APIJSON.response(object: body)
        }
        routes.get("/v2/email/identities/:identity") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let domain = (try context.parameters.require("identity")).lowercased().trimmingCharacters(in: .whitespaces)
            return APIJSON.response(object: try identity(domain, accountID: call.account.id))
        }
    }

    /// GetEmailIdentity's shape for one of the account's domains; NotFoundException otherwise.
    func identity(_ domain: String, accountID: Int64) throws -> [String: Any] {
        guard let account = try services.store.account(id: accountID), account.domains.contains(domain) else {
            throw APIError(.notFound, "not_found", "Email identity \(domain) does not exist.", ses: "NotFoundException")
        }
        let keys = try services.store.dkimKeys(domain: domain, accountID: accountID)
        let verified = account.verifiedDomains.contains(domain)
        let status = verified ? "SUCCESS" : (keys.isEmpty ? "NOT_STARTED" : "PENDING")
        return ["IdentityType": "DOMAIN", "FeedbackForwardingStatus": true, "VerifiedForSendingStatus": verified,
                "VerificationStatus": status,
                "DkimAttributes": ["SigningEnabled": !keys.isEmpty, "Status": status,
                                   // Selectors: the TXT record of each is at <selector>._domainkey.<domain> (GET /v1/domains gives its value).
                                   "Tokens": keys.map(\.selector), "SigningAttributesOrigin": "AWS_SES"] as [String: Any],
                "Policies": [String: String](), "Tags": [[String: String]]()]
    }
}
