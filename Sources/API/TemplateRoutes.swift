import Foundation
import Hummingbird
import NIOCore
import Store

/// `/v1/templates`: stored Mustache templates, and a preview that renders one.
struct TemplateRoutes: Sendable {
    let services: APIServices

    struct TemplateInput: Decodable, Sendable {
        var name: String?
        var subject: String
        var text: String?
        var html: String?
        var marketing: Bool?
        var defaults: [String: JSONValue]?
        var missing: Template.MissingVariables?
    }

    struct RenderInput: Decodable, Sendable {
        var data: [String: JSONValue]?
    }

    func register(on routes: Routes) {
        routes.get("/v1/templates") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .send)
            let limit = try request.queryInteger("limit", default: 100, range: 1...1000)
            let templates = try services.store.templates(accountID: call.account.id, after: request.query("after"), limit: limit)
            return APIJSON.response(object: ["templates": templates.map(TemplateRoutes.object),
                                             "next": templates.count == limit ? (templates.last?.name as Any? ?? NSNull()) : NSNull()])
        }
        routes.post("/v1/templates") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(TemplateInput.self, from: call.body)
            guard let name = input.name else { throw APIError.badRequest("name is required", field: "name") }
            let template = try save(input, name: name, account: call.account, replace: false)
            return APIJSON.response(object: TemplateRoutes.object(template), status: .created)
        }
        routes.get("/v1/templates/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .send)
            let (_, template) = try services.renderer(template: try context.parameters.require("name"), account: call.account)
            return APIJSON.response(object: TemplateRoutes.object(template))
        }
        routes.put("/v1/templates/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(TemplateInput.self, from: call.body)
            let template = try save(input, name: try context.parameters.require("name"), account: call.account, replace: true)
            return APIJSON.response(object: TemplateRoutes.object(template))
        }
        routes.delete("/v1/templates/:name") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let name = try context.parameters.require("name")
            do { try services.store.deleteTemplate(accountID: call.account.id, name: name) } catch {
                throw TemplateRoutes.map(error, name: name)
            }
            return Response(status: .noContent)
        }
        routes.post("/v1/templates/:name/render") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .send)
            let (renderer, _) = try services.renderer(template: try context.parameters.require("name"), account: call.account)
            let input = call.body.isEmpty ? RenderInput() : try APIJSON.decode(RenderInput.self, from: call.body)
            let rendered = try renderer.render(input.data ?? [:])
            return APIJSON.response(object: ["subject": rendered.subject, "text": rendered.text as Any? ?? NSNull(),
                                             "html": rendered.html as Any? ?? NSNull()])
        }
    }

    func save(_ input: TemplateInput, name: String, account: Account, replace: Bool) throws(APIError) -> Template {
        guard input.text != nil || input.html != nil else { throw APIError.badRequest("text or html is required", field: "text") }
        let template = Template(name: name, subject: input.subject, text: input.text, html: input.html,
                                marketing: input.marketing ?? false, defaults: input.defaults ?? [:], missing: input.missing ?? .error)
        _ = try TemplateRenderer(template) // refuse templates that do not parse
        do {
            if replace, try services.store.template(accountID: account.id, name: name)?.generation == .dynamic {
                throw APIError(.conflict, "dynamic_template", "template \(name) is changed through its versions (/v3/templates/\(name)/versions)")
            }
            try services.store.saveTemplate(template, accountID: account.id, replace: replace)
            return try services.store.template(accountID: account.id, name: name) ?? template
        } catch let error as APIError {
            throw error
        } catch {
            throw TemplateRoutes.map(error, name: name)
        }
    }

    static func map(_ error: any Error, name: String) -> APIError {
        switch error as? TemplateStoreError {
        case .exists: return APIError(.conflict, "already_exists", "template \(name) already exists", ses: "AlreadyExistsException")
        case .notFound: return APIError.notFound("template \(name)")
        case .invalidName:
            return APIError.badRequest("template names are 1-64 letters, digits, '.', '_' or '-'", field: "name")
        case nil: return APIError.storeFailure(error)
        }
    }

    static func object(_ template: Template) -> [String: Any] {
        ["name": template.name, "subject": template.subject, "text": template.text as Any? ?? NSNull(), "html": template.html as Any? ?? NSNull(),
         "marketing": template.marketing, "defaults": template.defaults.mapValues(\.plain),
         "missing": template.missing.rawValue, "created_at": NativeAPI.iso(template.createdAt),
         "updated_at": NativeAPI.iso(template.updatedAt)]
    }
}

/// `/v1/suppressions`: the addresses an account does not send to.
struct SuppressionRoutes: Sendable {
    let services: APIServices

    struct SuppressionInput: Decodable, Sendable {
        var address: String
        var reason: Suppression.Reason?
        var scope: Suppression.Scope?
    }

    func register(on routes: Routes) {
        routes.get("/v1/suppressions") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            var reasons: [Suppression.Reason] = []
            for text in request.queryAll("reason").flatMap({ $0.split(separator: ",") }) {
                guard let reason = Suppression.Reason(rawValue: String(text)) else {
                    throw APIError.badRequest("reason must be bounce, complaint, unsubscribe or manual", field: "reason")
                }
                reasons.append(reason)
            }
            let limit = try request.queryInteger("limit", default: 100, range: 1...1000)
            let offset = try request.queryInteger("offset", default: 0, range: 0...Int(Int32.max))
            let list = try services.store.suppressions(accountID: call.account.id, reasons: reasons, since: try request.queryDate("since"),
                                                       until: try request.queryDate("until"), offset: offset, limit: limit)
            return APIJSON.response(object: ["suppressions": list.map(SuppressionRoutes.object),
                                             "next_offset": list.count == limit ? (offset + limit) as Any : NSNull()])
        }
        routes.post("/v1/suppressions") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(SuppressionInput.self, from: call.body)
            let address = try NativeAPI.address(AddressInput(text: input.address), field: "address").address
            let suppression = Suppression(address: address, reason: input.reason ?? .manual, scope: input.scope ?? .all,
                                          source: "api key \(call.principal.key.keyID)")
            try services.store.suppress(suppression, accountID: call.account.id)
            return APIJSON.response(object: SuppressionRoutes.object(suppression), status: .created)
        }
        routes.get("/v1/suppressions/export") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let text = try SuppressionCSV.export(store: services.store, accountID: call.account.id)
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8",
                                                   .contentDisposition: "attachment; filename=\"suppressions.csv\""],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        routes.post("/v1/suppressions/import") { request, context in
            // CSV (`text/csv`): a header row naming address, reason, scope; or one address per line.
            // Good rows are added in one transaction; the others are listed with their line numbers.
            let call = try await services.gate.open(request, context: context, scope: .admin, bodyLimit: SuppressionCSV.maximumBytes)
            guard let text = String(validating: call.body, as: UTF8.self) else {
                throw APIError.badRequest("the CSV must be UTF-8")
            }
            var reason = Suppression.Reason.manual
            if let name = request.query("reason") {
                guard let value = Suppression.Reason(rawValue: name) else {
                    throw APIError.badRequest("reason must be bounce, complaint, unsubscribe or manual", field: "reason")
                }
                reason = value
            }
            let parsed = SuppressionCSV.parse(text, reason: reason, source: "import by api key \(call.principal.key.keyID)")
            do { try services.store.suppress(parsed.suppressions, accountID: call.account.id) } catch { throw APIError.storeFailure(error) }
            return APIJSON.response(object: ["imported": parsed.suppressions.count,
                                             "errors": parsed.errors.map { ["line": $0.line, "message": $0.message] as [String: Any] }])
        }
        routes.get("/v1/suppressions/:address") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let address = SuppressionRoutes.pathAddress(try context.parameters.require("address"))
            guard let suppression = try services.store.suppression(accountID: call.account.id, address: address) else {
                throw APIError.notFound("suppression of \(address)")
            }
            return APIJSON.response(object: SuppressionRoutes.object(suppression))
        }
        routes.delete("/v1/suppressions/:address") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let address = SuppressionRoutes.pathAddress(try context.parameters.require("address"))
            do { try services.store.unsuppress(accountID: call.account.id, address: address) } catch {
                throw APIError.notFound("suppression of \(address)")
            }
            return Response(status: .noContent)
        }
    }

    static func pathAddress(_ raw: String) -> String { (raw.removingPercentEncoding ?? raw).lowercased() }

    static func object(_ suppression: Suppression) -> [String: Any] {
        ["address": suppression.address, "reason": suppression.reason.rawValue, "scope": suppression.scope.rawValue,
         "created_at": NativeAPI.iso(suppression.createdAt), "source": suppression.source as Any? ?? NSNull()]
    }
}
