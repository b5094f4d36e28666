import Foundation
import Hummingbird
import Spool
import Store

/// The management API: accounts (operators), API keys, SMTP credentials,
/// console users and queue operations. Every handler works on the caller's
/// account (an operator's `?account=NAME` names another, see
/// `APIGate.actingAs`), so an id from another account is "not found".
struct ManagementRoutes: Sendable {
    let services: APIServices

    func register(on routes: Routes) {
        registerAccounts(on: routes)
        registerCredentials(on: routes)
        registerUsers(on: routes)
        registerQueue(on: routes)
    }

    // MARK: Accounts

    struct QuotaInput: Decodable, Sendable {
        var maxSendRate: Double?
        var max24HourSend: Int?
        var sandbox: Bool?

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        /// Keys compared without case or underscores: the snake-case decoder spells `max_24h_send` in a way
        /// that differs between Foundation versions (`max24hSend` or `max24HSend`).
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            for key in container.allKeys {
                switch key.stringValue.lowercased().replacingOccurrences(of: "_", with: "") {
                case "maxsendrate": maxSendRate = try container.decode(Double.self, forKey: key)
                case "max24hsend": max24HourSend = try container.decode(Int.self, forKey: key)
                case "sandbox": sandbox = try container.decode(Bool.self, forKey: key)
                default:
                    throw DecodingError.dataCorruptedError(forKey: key, in: container,
                                                           debugDescription: "unknown quota field (max_send_rate, max_24h_send, sandbox)")
                }
            }
        }
    }

    struct AccountInput: Decodable, Sendable {
        var name: String
        var domains: [String]?
        var quota: QuotaInput?
        var egressPool: String?
    }

    struct AccountChange: Decodable, Sendable {
        var disabled: Bool?
        var quota: QuotaInput?
        /// "" returns the account to the default pool.
        var egressPool: String?
        var addDomains: [String]?
    }

    static func object(_ account: Account, sentLast24Hours: Int? = nil) -> [String: Any] {
        var quota: [String: Any] = ["max_send_rate": account.quota.maxSendRate, "max_24h_send": account.quota.max24HourSend,
                                    "sandbox": account.quota.sandbox]
        if let sentLast24Hours { quota["sent_last_24h"] = sentLast24Hours }
        return ["name": account.name, "disabled": account.disabled, "created_at": NativeAPI.iso(account.createdAt),
                "domains": account.domains, "verified_domains": account.verifiedDomains,
                "egress_pool": account.egressPool ?? "default", "quota": quota,
                "suppressed_reasons": account.suppressedReasons.map(\.rawValue).sorted()]
    }

    static func quota(_ input: QuotaInput?, over current: SendQuota) throws(APIError) -> SendQuota {
        var quota = current
        if let rate = input?.maxSendRate {
            guard rate == -1 || (rate > 0 && rate <= 1_000_000) else {
                throw APIError.badRequest("max_send_rate is -1 (unlimited) or 0 < rate ≤ 1000000", field: "quota.max_send_rate")
            }
            quota.maxSendRate = rate
        }
        if let daily = input?.max24HourSend {
            guard daily == -1 || daily > 0 else { throw APIError.badRequest("max_24h_send is -1 (unlimited) or positive", field: "quota.max_24h_send") }
            quota.max24HourSend = daily
        }
        if let sandbox = input?.sandbox { quota.sandbox = sandbox }
        return quota
    }

    func registerAccounts(on routes: Routes) {
        routes.get("/v1/accounts") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let accounts = call.principal.key.scope == .operator ? try services.store.accounts() : [call.account]
            return APIJSON.response(object: ["accounts": accounts.map { ManagementRoutes.object($0) }])
        }
        routes.post("/v1/accounts") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .operator)
            let input = try APIJSON.decode(AccountInput.self, from: call.body)
            // Checked before anything is created: a refused request leaves no half-made account.
            let quota = try ManagementRoutes.quota(input.quota, over: SendQuota())
            let created: NewAccountCredentials
            do {
                created = try services.store.createAccount(name: input.name, domains: input.domains ?? [])
                if input.quota != nil { try services.store.setQuota(quota, name: input.name) }
                if let pool = input.egressPool, !pool.isEmpty { try services.store.setEgressPool(pool, name: input.name) }
            } catch let error as AccountStoreError {
                if case .duplicateName = error { throw APIError(.conflict, "already_exists", error.description) }
                throw APIError.badRequest(error.description, field: "name")
            }
            let account = try services.store.account(named: input.name) ?? created.account
            var body = ManagementRoutes.object(account)
            body["smtp_username"] = created.account.smtpUsername
            body["smtp_password"] = created.smtpPassword
            return APIJSON.response(object: body, status: .created)
        }
        routes.get("/v1/accounts/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let account = try target(call, name: try context.parameters.require("name"))
            return APIJSON.response(object: ManagementRoutes.object(account,
                                                                   sentLast24Hours: services.meter.sentLast24Hours(accountID: account.id)))
        }
        routes.patch("/v1/accounts/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .operator)
            let account = try target(call, name: try context.parameters.require("name"))
            let change = try APIJSON.decode(AccountChange.self, from: call.body)
            do {
                for domain in change.addDomains ?? [] { try services.store.addDomain(domain, toAccountNamed: account.name) }
                if change.quota != nil {
                    try services.store.setQuota(try ManagementRoutes.quota(change.quota, over: account.quota), name: account.name)
                }
                if let pool = change.egressPool { try services.store.setEgressPool(pool.isEmpty ? nil : pool, name: account.name) }
                if let disabled = change.disabled { try services.store.setDisabled(disabled, name: account.name) }
            } catch let error as AccountStoreError {
                throw APIError.badRequest(error.description)
            }
            return APIJSON.response(object: ManagementRoutes.object(try services.store.account(named: account.name) ?? account))
        }
    }

    /// The named account if the caller may see it: an operator any, others their own (else 404).
    func target(_ call: APICall, name: String) throws -> Account {
        if call.principal.key.scope != .operator {
            guard name == call.account.name else { throw APIError.notFound("account \(name)") }
            return call.account
        }
        guard let account = try services.store.account(named: name) else { throw APIError.notFound("account \(name)") }
        return account
    }

    // MARK: API keys and SMTP credentials

    struct KeyInput: Decodable, Sendable {
        var scope: APIKeyScope
    }

    static func object(_ key: APIKey) -> [String: Any] {
        ["id": key.keyID, "scope": key.scope.rawValue, "created_at": NativeAPI.iso(key.createdAt), "revoked": key.revoked]
    }

    static func object(_ credential: SMTPCredential) -> [String: Any] {
        ["username": credential.username, "created_at": NativeAPI.iso(credential.createdAt), "primary": credential.primary,
         "revoked_at": credential.revokedAt.map(NativeAPI.iso) as Any? ?? NSNull()]
    }

    func registerCredentials(on routes: Routes) {
        routes.get("/v1/api-keys") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            return APIJSON.response(object: ["keys": try services.store.apiKeys(accountID: call.account.id).map(ManagementRoutes.object)])
        }
        routes.post("/v1/api-keys") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(KeyInput.self, from: call.body)
            // No key makes a stronger one than itself.
            guard input.scope <= call.principal.key.scope else {
                throw APIError(.forbidden, "forbidden", "a key may only create keys of its own scope or lower", field: "scope")
            }
            let created = try services.store.createAPIKey(accountNamed: call.account.name, scope: input.scope)
            var body = ManagementRoutes.object(created.key)
            body["token"] = created.token
            body["secret"] = created.secret
            return APIJSON.response(object: body, status: .created)
        }
        routes.delete("/v1/api-keys/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let id = try context.parameters.require("id")
            guard try services.store.apiKeys(accountID: call.account.id).contains(where: { $0.keyID == id }) else {
                throw APIError.notFound("key \(id)")
            }
            try services.store.revokeAPIKey(id)
            return Response(status: .noContent)
        }
        routes.get("/v1/smtp-credentials") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            return APIJSON.response(object: ["credentials": try services.store.smtpCredentials(accountID: call.account.id)
                .map(ManagementRoutes.object)])
        }
        routes.post("/v1/smtp-credentials") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            do {
                let created = try services.store.createSMTPCredential(accountID: call.account.id)
                var body = ManagementRoutes.object(created.credential)
                body["password"] = created.password
                return APIJSON.response(object: body, status: .created)
            } catch let error as SMTPCredentialError {
                throw APIError(.conflict, "too_many", error.description)
            }
        }
        routes.delete("/v1/smtp-credentials/:username") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let username = try context.parameters.require("username")
            do {
                guard try services.store.revokeSMTPCredential(username: username, accountID: call.account.id) else {
                    throw APIError.notFound("credential \(username)")
                }
            } catch let error as SMTPCredentialError {
                throw APIError(.conflict, "last_credential", error.description)
            }
            return Response(status: .noContent)
        }
    }

    // MARK: Console users

    struct UserInput: Decodable, Sendable {
        var email: String
        var role: ConsoleRole
    }

    static func object(_ user: ConsoleUser, accounts: [Int64: String]) -> [String: Any] {
        ["id": user.id, "email": user.email, "role": user.role.rawValue, "disabled": user.disabled,
         "account": user.accountID.flatMap { accounts[$0] } as Any? ?? NSNull(), "created_at": NativeAPI.iso(user.createdAt)]
    }

    func accountNames() throws -> [Int64: String] {
        Dictionary(try services.store.accounts().map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
    }

    func registerUsers(on routes: Routes) {
        routes.get("/v1/users") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let users = try services.store.consoleUsers(accountID: call.principal.allAccounts ? nil : call.account.id)
            let names = try accountNames()
            return APIJSON.response(object: ["users": users.map { ManagementRoutes.object($0, accounts: names) }])
        }
        routes.post("/v1/users") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(UserInput.self, from: call.body)
            guard input.role != .operator || call.principal.key.scope == .operator else {
                throw APIError(.forbidden, "forbidden", "only an operator key may create operators", field: "role")
            }
            do {
                let created = try services.store.createConsoleUser(email: input.email, role: input.role,
                                                                   accountID: input.role == .operator ? nil : call.account.id)
                var body = ManagementRoutes.object(created.user, accounts: try accountNames())
                body["password"] = created.password
                return APIJSON.response(object: body, status: .created)
            } catch let error as ConsoleUserError {
                if case .duplicateEmail = error { throw APIError(.conflict, "already_exists", error.description, field: "email") }
                throw APIError.badRequest(error.description, field: "email")
            }
        }
        routes.delete("/v1/users/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            guard let id = Int64(try context.parameters.require("id")), let user = try services.store.consoleUser(id: id),
                  call.principal.key.scope == .operator || user.accountID == call.account.id else {
                throw APIError.notFound("user")
            }
            try services.store.deleteConsoleUser(id: id)
            return Response(status: .noContent)
        }
    }

    // MARK: Queue

    enum QueueAction: String, Sendable, CaseIterable {
        case hold, release, retry, cancel

        /// Applies the action to `selection`; returns how many messages (hold, release) or recipients (retry, cancel) changed.
        /// `by` says who, in the cancelled recipients' reply text.
        func apply(to selection: QueueSelection, index: QueueIndex, by who: String) throws -> Int {
            switch self {
            case .hold: return try index.setHeld(selection, true)
            case .release: return try index.setHeld(selection, false)
            case .retry: return try index.retryNow(selection)
            case .cancel: return try index.cancel(selection, reason: "cancelled by \(who)")
            }
        }
    }

    struct QueueActionInput: Decodable, Sendable {
        var ids: [String]?
        var recipientDomain: String?
        var sender: String?
        var held: Bool?
        /// Required to act on every queued message of the account: no filter is no accident.
        var all: Bool?
    }

    func selection(_ call: APICall, ids: [String]?, recipientDomain: String?, sender: String?, held: Bool?) throws(APIError) -> QueueSelection {
        var parsed: [MessageID]?
        if let ids {
            guard ids.count <= 1000 else { throw APIError.badRequest("at most 1000 ids at once", field: "ids") }
            parsed = try ids.map { text throws(APIError) in
                guard let id = MessageID(text) else { throw APIError.badRequest("not a message id: \(text)", field: "ids") }
                return id
            }
        }
        return QueueSelection(accountID: call.principal.allAccounts ? nil : call.account.id, ids: parsed,
                              recipientDomain: recipientDomain, sender: sender, held: held)
    }

    static func object(_ summary: QueuedMessageSummary) -> [String: Any] {
        ["id": summary.id.rawValue, "received_at": NativeAPI.iso(summary.receivedAt), "from": summary.sender, "size": summary.size,
         "held": summary.held, "recipients": summary.recipientCount, "pending": summary.pendingCount]
    }

    func registerQueue(on routes: Routes) {
        routes.get("/v1/queue") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let held = try request.query("held").map { text throws(APIError) -> Bool in
                guard let value = Bool(text) else { throw APIError.badRequest("held is true or false", field: "held") }
                return value
            }
            let selection = try selection(call, ids: nil, recipientDomain: request.query("recipient_domain"),
                                          sender: request.query("sender"), held: held)
            let limit = try request.queryInteger("limit", default: 100, range: 1...10_000)
            return APIJSON.response(object: ["messages": try services.index.summaries(selection, limit: limit).map(ManagementRoutes.object)])
        }
        routes.get("/v1/queue/sites") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let sites = try services.index.sites(accountID: call.principal.allAccounts ? nil : call.account.id)
            return APIJSON.response(object: ["sites": sites.map { site -> [String: Any] in
                ["domain": site.domain, "queued": site.queued, "deferred": site.deferred, "held": site.held,
                 "oldest": site.oldest.map(NativeAPI.iso) as Any? ?? NSNull()]
            }])
        }
        // One literal path per action, so that /v1/queue/sites answers GET only.
        for action in QueueAction.allCases {
            routes.post("/v1/queue/\(action.rawValue)") { request, context in
                let call = try await services.gate.open(request, context: context, scope: .admin)
                let input = try APIJSON.decode(QueueActionInput.self, from: call.body)
                let selection = try selection(call, ids: input.ids, recipientDomain: input.recipientDomain, sender: input.sender,
                                              held: input.held)
                guard input.ids != nil || input.recipientDomain != nil || input.sender != nil || input.held != nil || input.all == true else {
                    throw APIError.badRequest("give ids, a filter (recipient_domain, sender, held) or \"all\": true")
                }
                let changed = try action.apply(to: selection, index: services.index, by: "API key \(call.principal.key.keyID)")
                return APIJSON.response(object: ["action": action.rawValue, "changed": changed])
            }
        }
    }
}
