import Foundation
import Hummingbird
import Store

/// SendGrid's API keys (`/v3/api_keys`), mapped onto Hikyaku's keys, so that
/// `sg.client.api_keys.post(...)` and friends work unchanged. SendGrid's
/// fine-grained scopes become the nearest Hikyaku scope: only `mail.send`
/// (and reads of templates) is `send`; any scope that creates, updates or
/// deletes is `admin`; the rest `read`. No scopes asks for full access:
/// the caller's own scope.
struct SendGridKeys: Sendable {
    let services: APIServices

    struct CreateRequest: Decodable, Sendable {
        var name: String
        var scopes: [String]?
    }

    static func scope(for scopes: [String]?, caller: APIKeyScope) -> APIKeyScope {
        guard let scopes, !scopes.isEmpty else { return caller }
        if scopes.allSatisfy({ $0 == "mail.send" || $0.hasPrefix("templates.") && $0.hasSuffix(".read") }) { return .send }
        if scopes.contains(where: { $0.hasSuffix(".create") || $0.hasSuffix(".update") || $0.hasSuffix(".delete") }) { return .admin }
        return .read
    }

    /// The SendGrid scopes a Hikyaku scope stands for, as SendGrid lists them.
    static func scopes(of scope: APIKeyScope) -> [String] {
        switch scope {
        case .send: return ["mail.send", "templates.read"]
        case .read: return ["mail.send", "templates.read", "suppression.read", "stats.read", "user.webhooks.event.settings.read"]
        case .admin, .operator:
            return ["mail.send", "templates.read", "templates.create", "templates.update", "templates.delete", "suppression.read",
                    "suppression.create", "suppression.delete", "stats.read", "api_keys.read", "api_keys.create", "api_keys.delete",
                    "user.webhooks.event.settings.read", "user.webhooks.event.settings.update"]
        }
    }

    func register(on routes: Routes) {
        routes.get("/v3/api_keys") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let keys = try services.store.apiKeys(accountID: call.account.id).filter { !$0.revoked }
            return APIJSON.response(object: ["result": keys.map { ["api_key_id": $0.keyID, "name": $0.name ?? $0.keyID] }])
        }
        routes.post("/v3/api_keys") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(CreateRequest.self, from: call.body)
            guard (1...100).contains(input.name.count), !input.name.contains(where: \.isNewline) else {
                throw APIError.badRequest("name is 1-100 characters on one line", field: "name")
            }
            let scope = min(SendGridKeys.scope(for: input.scopes, caller: call.principal.key.scope), call.principal.key.scope)
            let created = try services.store.createAPIKey(accountNamed: call.account.name, scope: scope, label: input.name)
            return APIJSON.response(object: ["api_key": created.token, "api_key_id": created.key.keyID, "name": input.name,
                                             "scopes": SendGridKeys.scopes(of: scope)], status: .created)
        }
        routes.get("/v3/api_keys/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let key = try ownKey(try context.parameters.require("id"), call)
            return APIJSON.response(object: ["api_key_id": key.keyID, "name": key.name ?? key.keyID, "scopes": SendGridKeys.scopes(of: key.scope)])
        }
        routes.delete("/v3/api_keys/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let key = try ownKey(try context.parameters.require("id"), call)
            try services.store.revokeAPIKey(key.keyID)
            return Response(status: .noContent)
        }
    }

    /// A live key of the caller's account; 404 for any other.
    func ownKey(_ id: String, _ call: APICall) throws -> APIKey {
        guard let key = try services.store.apiKeys(accountID: call.account.id).first(where: { $0.keyID == id && !$0.revoked }) else {
            throw APIError.notFound("api key \(id)")
        }
        return key
    }
}
