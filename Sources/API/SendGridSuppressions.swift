import Foundation
import Hummingbird
import Store

/// SendGrid's suppression writes: unsubscribe groups (`/v3/asm/groups`, a
/// topic a recipient can leave while staying in others), their
/// unsubscribes, global unsubscribes (`/v3/asm/suppressions/global`, the
/// account's suppression list with reason `unsubscribe`), and deleting
/// bounces and spam reports. A message sent with `asm.group_id` is not
/// delivered to the group's unsubscribed addresses.
struct SendGridSuppressions: Sendable {
    let services: APIServices

    struct GroupInput: Decodable, Sendable {
        var name: String?
        var description: String?
        var isDefault: Bool?
    }

    struct Emails: Decodable, Sendable {
        var recipientEmails: [String]
    }

    struct DeleteInput: Decodable, Sendable {
        var deleteAll: Bool?
        var emails: [String]?
    }

    static let maximumAddressesPerRequest = 1000

    func register(on routes: Routes) {
        routes.post("/v3/asm/groups") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(GroupInput.self, from: call.body)
            let name = try SendGridSuppressions.check(input.name, field: "name", limit: 30, required: true) ?? ""
            let description = try SendGridSuppressions.check(input.description, field: "description", limit: 100) ?? ""
            let group = try store {
                try services.store.createUnsubscribeGroup(accountID: call.account.id, name: name, description: description,
                                                          isDefault: input.isDefault ?? false)
            }
            return APIJSON.response(object: SendGridSuppressions.object(group, count: false), status: .created)
        }
        routes.get("/v3/asm/groups") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let groups = try store { try services.store.unsubscribeGroups(accountID: call.account.id) }
            return APIJSON.response(object: groups.map { SendGridSuppressions.object($0) })
        }
        routes.get("/v3/asm/groups/:group") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            return APIJSON.response(object: SendGridSuppressions.object(try group(context, call)))
        }
        routes.patch("/v3/asm/groups/:group") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let current = try group(context, call)
            let input = try APIJSON.decode(GroupInput.self, from: call.body)
            try store {
                try services.store.updateUnsubscribeGroup(
                    accountID: call.account.id, id: current.id, name: try SendGridSuppressions.check(input.name, field: "name", limit: 30),
                    description: try SendGridSuppressions.check(input.description, field: "description", limit: 100), isDefault: input.isDefault)
            }
            return APIJSON.response(object: SendGridSuppressions.object(try group(context, call), count: false), status: .created)
        }
        routes.delete("/v3/asm/groups/:group") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let current = try group(context, call)
            try store { try services.store.deleteUnsubscribeGroup(accountID: call.account.id, id: current.id) }
            return Response(status: .noContent)
        }
        routes.post("/v3/asm/groups/:group/suppressions") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let current = try group(context, call)
            let addresses = try SendGridSuppressions.addresses(try APIJSON.decode(Emails.self, from: call.body).recipientEmails)
            try store {
                try services.store.unsubscribe(addresses, fromGroup: current.id, accountID: call.account.id,
                                               source: "sendgrid api key \(call.principal.key.keyID)")
            }
            return APIJSON.response(object: ["recipient_emails": addresses], status: .created)
        }
        routes.get("/v3/asm/groups/:group/suppressions") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let current = try group(context, call)
            return APIJSON.response(object: try store { try services.store.groupUnsubscribes(accountID: call.account.id, group: current.id) })
        }
        routes.delete("/v3/asm/groups/:group/suppressions/:email") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let current = try group(context, call)
            let address = SuppressionRoutes.pathAddress(try context.parameters.require("email"))
            do { try services.store.resubscribe(address, toGroup: current.id, accountID: call.account.id) } catch {
                throw APIError.notFound("\(address) in group \(current.id)")
            }
            return Response(status: .noContent)
        }
        routes.get("/v3/asm/suppressions") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            // At most 10,000 entries in all (a group's own listing has the rest).
            var result: [[String: Any]] = []
            for group in try store({ try services.store.unsubscribeGroups(accountID: call.account.id) }) where result.count < 10_000 {
                for address in try store({
                    try services.store.groupUnsubscribes(accountID: call.account.id, group: group.id, limit: 10_000 - result.count)
                }) {
                    result.append(["email": address, "group_id": group.id, "group_name": group.name])
                }
            }
            return APIJSON.response(object: result)
        }
        routes.get("/v3/asm/suppressions/global/:email") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let address = SuppressionRoutes.pathAddress(try context.parameters.require("email"))
            let found = try store { try services.store.suppression(accountID: call.account.id, address: address) }
            return APIJSON.response(object: found?.reason == .unsubscribe ? ["recipient_email": address] : [:])
        }
        routes.get("/v3/asm/suppressions/:email") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let address = SuppressionRoutes.pathAddress(try context.parameters.require("email"))
            let left = try store { try services.store.groupsUnsubscribed(accountID: call.account.id, address: address) }
            let groups = try store { try services.store.unsubscribeGroups(accountID: call.account.id) }
            return APIJSON.response(object: ["suppressions": groups.map { group -> [String: Any] in
                SendGridSuppressions.object(group, count: false).merging(["suppressed": left.contains(group.id)]) { _, new in new }
            }])
        }
        routes.post("/v3/asm/suppressions/global") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let addresses = try SendGridSuppressions.addresses(try APIJSON.decode(Emails.self, from: call.body).recipientEmails)
            let source = "sendgrid global unsubscribe by api key \(call.principal.key.keyID)"
            try store {
                try services.store.suppress(addresses.map { Suppression(address: $0, reason: .unsubscribe, scope: .all, source: source) },
                                            accountID: call.account.id)
            }
            return APIJSON.response(object: ["recipient_emails": addresses], status: .created)
        }
        routes.delete("/v3/asm/suppressions/global/:email") { request, context in
            try await remove(request, context, reasons: [.unsubscribe])
        }
        for (path, reason) in [("bounces", Suppression.Reason.bounce), ("spam_reports", .complaint)] {
            routes.delete("/v3/suppression/\(path)/:email") { request, context in try await remove(request, context, reasons: [reason]) }
            routes.delete("/v3/suppression/\(path)") { request, context in try await removeMany(request, context, reason: reason) }
        }
    }

    /// Deletes one address's suppression if it is of one of `reasons` (SendGrid's lists are kept apart by reason).
    func remove(_ request: Request, _ context: APIRequestContext, reasons: Set<Suppression.Reason>) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .admin)
        let address = SuppressionRoutes.pathAddress(try context.parameters.require("email"))
        guard let found = try store({ try services.store.suppression(accountID: call.account.id, address: address) }),
              reasons.contains(found.reason) else { throw APIError.notFound("suppression of \(address)") }
        try store { try services.store.unsuppress(accountID: call.account.id, address: address) }
        return Response(status: .noContent)
    }

    /// `{"delete_all": true}` or `{"emails": [...]}`: the named addresses (or all) of one reason.
    func removeMany(_ request: Request, _ context: APIRequestContext, reason: Suppression.Reason) async throws -> Response {
        let call = try await services.gate.open(request, context: context, scope: .admin)
        let input = try APIJSON.decode(DeleteInput.self, from: call.body)
        var addresses: [String]
        if input.deleteAll == true {
            guard input.emails == nil else { throw APIError.badRequest("give delete_all or emails, not both", field: "emails") }
            addresses = []
            var offset = 0
            while true {
                let page = try store { try services.store.suppressions(accountID: call.account.id, reasons: [reason], offset: offset, limit: 1000) }
                addresses += page.map(\.address)
                guard page.count == 1000 else { break }
                offset += 1000
            }
        } else if let emails = input.emails {
            addresses = try SendGridSuppressions.addresses(emails)
        } else {
            throw APIError.badRequest("delete_all or emails is required", field: "emails")
        }
        for address in addresses {
            if let found = try store({ try services.store.suppression(accountID: call.account.id, address: address) }), found.reason == reason {
                try store { try services.store.unsuppress(accountID: call.account.id, address: address) }
            }
        }
        return Response(status: .noContent)
    }

    func group(_ context: APIRequestContext, _ call: APICall) throws -> UnsubscribeGroup {
        let text = try context.parameters.require("group")
        guard let id = Int64(text), let group = try store({ try services.store.unsubscribeGroup(accountID: call.account.id, id: id) }) else {
            throw APIError.notFound("group \(text)")
        }
        return group
    }

    static func object(_ group: UnsubscribeGroup, count: Bool = true) -> [String: Any] {
        var object: [String: Any] = ["id": group.id, "name": group.name, "description": group.description, "is_default": group.isDefault]
        if count {
            object["unsubscribes"] = group.unsubscribes
            object["last_email_sent_at"] = NSNull()
        }
        return object
    }

    static func check(_ text: String?, field: String, limit: Int, required: Bool = false) throws(APIError) -> String? {
        guard let text else {
            if required { throw APIError.badRequest("\(field) is required", field: field) }
            return nil
        }
        guard text.count <= limit, !text.contains(where: \.isNewline), !required || !text.isEmpty else {
            throw APIError.badRequest("\(field) is \(required ? "1" : "0")-\(limit) characters on one line", field: field)
        }
        return text
    }

    static func addresses(_ list: [String]) throws(APIError) -> [String] {
        guard list.count <= maximumAddressesPerRequest else {
            throw APIError.badRequest("at most \(maximumAddressesPerRequest) addresses per request", field: "recipient_emails")
        }
        return try list.map { text throws(APIError) in
            try NativeAPI.address(AddressInput(text: text), field: "recipient_emails").address.lowercased()
        }
    }

    func store<T>(_ work: () throws -> T) throws(APIError) -> T {
        do { return try work() } catch let error as UnsubscribeGroupError {
            switch error {
            case .notFound(let id): throw APIError.notFound("group \(id)")
            case .tooMany: throw APIError.badRequest("at most \(200) unsubscribe groups per account", field: "name")
            }
        } catch {
            throw APIError.storeFailure(error)
        }
    }
}
