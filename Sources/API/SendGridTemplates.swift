import Foundation
import Hummingbird
import MIME
import Store

/// SendGrid's dynamic templates (`/v3/templates` with `generation: dynamic`
/// and their `/versions`), so that `sg.client.templates…` works unchanged
/// and the `d-…` id it returns is a `template_id` for `/v3/mail/send`.
/// A dynamic template is a Hikyaku template named by that id; its active
/// version is what it sends (`TemplateVersions.swift`). Legacy templates
/// (`generation: legacy`) are not offered.
struct SendGridTemplates: Sendable {
    let services: APIServices

    struct TemplateInput: Decodable, Sendable {
        var name: String?
        var generation: String?
    }

    /// 0/1 as SendGrid documents it, or true/false as some clients send it.
    struct Flag: Decodable, Sendable {
        var value: Bool
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(Int.self) { value = number != 0 } else { value = try container.decode(Bool.self) }
        }
    }

    struct VersionInput: Decodable, Sendable {
        var name: String?
        var subject: String?
        var htmlContent: String?
        var plainContent: String?
        var active: Flag?
        var generatePlainContent: Bool?
        var editor: String?
        /// SendGrid stores a JSON text; an object is accepted too.
        var testData: JSONValue?
    }

    static let maximumPageSize = 200

    func register(on routes: Routes) {
        routes.post("/v3/templates") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let input = try APIJSON.decode(TemplateInput.self, from: call.body)
            let name = try SendGridTemplates.name(input.name)
            guard (input.generation ?? "legacy") == "dynamic" else {
                throw APIError.badRequest("only dynamic templates are offered: give \"generation\": \"dynamic\"", field: "generation")
            }
            let template = try store { try services.store.createDynamicTemplate(accountID: call.account.id, displayName: name) }
            return APIJSON.response(object: try object(template, account: call.account.id), status: .created)
        }
        routes.get("/v3/templates") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let generations = request.query("generations")?.split(separator: ",").map(String.init) ?? ["legacy"]
            let size = try request.queryInteger("page_size", default: SendGridTemplates.maximumPageSize,
                                                range: 1...SendGridTemplates.maximumPageSize)
            let after = request.query("page_token")
            let templates = generations.contains("dynamic")
                ? try store { try services.store.dynamicTemplates(accountID: call.account.id, after: after, limit: size) } : []
            var metadata: [String: Any] = ["count": templates.count]
            if templates.count == size, let last = templates.last {
                metadata["next"] = "/v3/templates?generations=dynamic&page_size=\(size)&page_token=\(last.name)"
            }
            return APIJSON.response(object: ["result": try templates.map { template throws(APIError) in
                try object(template, account: call.account.id, full: false)
            }, "_metadata": metadata])
        }
        routes.get("/v3/templates/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let template = try dynamic(try context.parameters.require("id"), call)
            return APIJSON.response(object: try object(template, account: call.account.id))
        }
        routes.patch("/v3/templates/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let template = try dynamic(try context.parameters.require("id"), call)
            let name = try SendGridTemplates.name(try APIJSON.decode(TemplateInput.self, from: call.body).name)
            try store { try services.store.renameDynamicTemplate(accountID: call.account.id, id: template.name, displayName: name) }
            return APIJSON.response(object: try object(try dynamic(template.name, call), account: call.account.id))
        }
        routes.delete("/v3/templates/:id") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let template = try dynamic(try context.parameters.require("id"), call)
            try store { try services.store.deleteTemplate(accountID: call.account.id, name: template.name) }
            return Response(status: .noContent)
        }
        routes.post("/v3/templates/:id/versions") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let template = try dynamic(try context.parameters.require("id"), call)
            let input = try APIJSON.decode(VersionInput.self, from: call.body)
            var version = TemplateVersion(templateID: template.name, name: try SendGridTemplates.name(input.name),
                                          subject: "", html: nil, text: nil, active: false)
            try apply(input, to: &version, creating: true)
            let saved = try store { try services.store.saveTemplateVersion(version, accountID: call.account.id) }
            return APIJSON.response(object: SendGridTemplates.object(saved), status: .created)
        }
        routes.get("/v3/templates/:id/versions/:version") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .read)
            let version = try self.version(context, call)
            return APIJSON.response(object: SendGridTemplates.object(version))
        }
        routes.patch("/v3/templates/:id/versions/:version") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            var version = try self.version(context, call)
            try apply(try APIJSON.decode(VersionInput.self, from: call.body), to: &version, creating: false)
            let saved = try store { try services.store.saveTemplateVersion(version, accountID: call.account.id) }
            return APIJSON.response(object: SendGridTemplates.object(saved))
        }
        routes.delete("/v3/templates/:id/versions/:version") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let version = try self.version(context, call)
            try store { try services.store.deleteTemplateVersion(accountID: call.account.id, templateID: version.templateID, id: version.id) }
            return Response(status: .noContent)
        }
        routes.post("/v3/templates/:id/versions/:version/activate") { request, context in
            let call = try await services.gate.open(request, context: context, scope: .admin)
            let version = try self.version(context, call)
            try store { try services.store.activateTemplateVersion(accountID: call.account.id, templateID: version.templateID, id: version.id) }
            return APIJSON.response(object: SendGridTemplates.object(try self.version(context, call)))
        }
    }

    /// The fields given, checked as SendGrid does: a name and a subject are required on creation; content parses.
    func apply(_ input: VersionInput, to version: inout TemplateVersion, creating: Bool) throws(APIError) {
        if let name = input.name { version.name = try SendGridTemplates.name(name) }
        if let subject = input.subject {
            guard subject.utf8.count <= 255 else { throw APIError.badRequest("subject is at most 255 characters", field: "subject") }
            version.subject = subject
        } else if creating {
            throw APIError.badRequest("subject is required", field: "subject")
        }
        if let html = input.htmlContent { version.html = html.isEmpty ? nil : html }
        if let text = input.plainContent { version.text = text.isEmpty ? nil : text }
        // As in SendGrid, a template changes versions by activating another: `active: 0` on the active one is ignored,
        // so that a template is never left without a version to send.
        if let active = input.active, creating || !version.active { version.active = active.value }
        if let generate = input.generatePlainContent { version.generatePlainContent = generate }
        if let editor = input.editor {
            guard editor == "code" || editor == "design" else { throw APIError.badRequest("editor is code or design", field: "editor") }
            version.editor = editor
        }
        switch input.testData {
        case .string(let text)?: version.testData = text
        case .some(let value):
            version.testData = (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) }
        case nil: break
        }
        if (version.testData?.utf8.count ?? 0) > 64 * 1024 { throw APIError.badRequest("test_data is at most 64 KB", field: "test_data") }
        // Refuse now what could not be sent later.
        for part in [version.subject, version.text ?? "", version.html ?? ""] {
            _ = try TemplateRenderer(subject: try HandlebarsDialect.mustache(part), text: nil, html: nil)
        }
    }

    func dynamic(_ id: String, _ call: APICall) throws(APIError) -> Template {
        guard let template = try store({ try services.store.template(accountID: call.account.id, name: id) }),
              template.generation == .dynamic else {
            throw APIError.notFound("template \(id)")
        }
        return template
    }

    func version(_ context: APIRequestContext, _ call: APICall) throws -> TemplateVersion {
        let template = try dynamic(try context.parameters.require("id"), call)
        let id = try context.parameters.require("version")
        guard let version = try store({ try services.store.templateVersion(accountID: call.account.id, templateID: template.name, id: id) })
        else { throw APIError.notFound("template version \(id)") }
        return version
    }

    func object(_ template: Template, account: Int64, full: Bool = true) throws(APIError) -> [String: Any] {
        let versions = try store { try services.store.templateVersions(accountID: account, templateID: template.name) }
        return ["id": template.name, "name": template.displayName ?? template.name, "generation": "dynamic",
                "updated_at": SendGridTemplates.time(template.updatedAt),
                "versions": versions.map { full ? SendGridTemplates.object($0) : SendGridTemplates.summary($0) }]
    }

    static func summary(_ version: TemplateVersion) -> [String: Any] {
        ["id": version.id, "template_id": version.templateID, "active": version.active ? 1 : 0, "name": version.name,
         "subject": version.subject, "updated_at": time(version.updatedAt), "generate_plain_content": version.generatePlainContent,
         "editor": version.editor, "thumbnail_url": ""]
    }

    static func object(_ version: TemplateVersion) -> [String: Any] {
        summary(version).merging(["html_content": version.html ?? "", "plain_content": version.text ?? "",
                                  "test_data": version.testData ?? ""]) { _, new in new }
    }

    static func name(_ name: String?) throws(APIError) -> String {
        guard let name, (1...100).contains(name.count), !name.contains(where: \.isNewline) else {
            throw APIError.badRequest("name is required: 1-100 characters on one line", field: "name")
        }
        return name
    }

    /// SendGrid's `2021-04-28 13:12:46` (UTC).
    static func time(_ date: Date) -> String { MailDate.local(date, offset: 0) }

    func store<T>(_ work: () throws -> T) throws(APIError) -> T {
        do { return try work() } catch let error as TemplateStoreError {
            switch error {
            case .notFound(let name): throw APIError.notFound("template \(name)")
            case .exists(let name): throw APIError(.conflict, "already_exists", "\(name) already exists")
            case .invalidName(let name): throw APIError.badRequest("invalid template name \(name)", field: "name")
            }
        } catch {
            throw APIError.storeFailure(error)
        }
    }
}
