import Foundation
import Hummingbird
import MIME
import Relay
import Spool
import Store

/// The marketer's and the integrator's pages: templates (an editor whose
/// preview renders the edited text with sample data, and a test send of
/// the same), and webhooks (endpoints, their recent deliveries, a replay).
struct ConsoleTemplatePages: Sendable {
    let console: ConsoleRoutes
    var services: APIServices { console.services }
    var store: any HikyakuStore { services.store }

    func register(on routes: Routes) {
        console.page(routes, .get, "/console/templates") { request, _, viewer in
            let account = try ConsoleRoutes.account(viewer)
            let templates = try store.templates(accountID: account.id, after: request.query("after"), limit: 100)
            let t = console.views.catalog(viewer.language)
            let context: [String: Any] = [
                "can_change": viewer.canChange, "empty": templates.isEmpty,
                "templates": templates.map { template -> [String: Any] in
                    var row: [String: Any] = ["name": template.name, "subject": template.subject,
                                              "kind": t["template_\(template.generation.rawValue)"] ?? template.generation.rawValue,
                                              "updated": ConsoleFormat.time(template.updatedAt, viewer.timeZone)]
                    // Mustache takes an empty string as true: a missing name is a missing key.
                    row["display_name"] = template.displayName
                    return row
                },
                "next": templates.count == 100 ? "/console/templates?after=" + ConsoleRoutes.percentEncoded(templates.last?.name ?? "") : false,
            ]
            return console.render("templates", context, viewer: viewer, title: "nav_templates", current: "nav_templates",
                                  path: request.uri.path)
        }
        console.post(routes, "/console/templates", limit: 2 << 20) { form, _, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            guard let name = form["name"] else { throw ConsoleRefusal(status: .badRequest, key: "error_template_name") }
            let template = Template(name: name, subject: form["subject"] ?? "", text: form["text"], html: form["html"])
            guard template.text != nil || template.html != nil else { throw APIError.badRequest("text or html is required", field: "text") }
            _ = try TemplateRenderer(template)
            do { try store.saveTemplate(template, accountID: account.id, replace: false) } catch TemplateStoreError.exists {
                throw ConsoleRefusal(status: .conflict, key: "error_template_exists")
            } catch TemplateStoreError.invalidName {
                throw ConsoleRefusal(status: .badRequest, key: "error_template_name")
            }
            return ConsoleHeaders.redirect("/console/templates/" + ConsoleRoutes.percentEncoded(name))
        }
        console.page(routes, .get, "/console/templates/:name") { request, context, viewer in
            let template = try stored(try context.parameters.require("name"), viewer)
            let sample = try sampleData(template, viewer)
            let draft = Draft(subject: template.subject, text: template.text ?? "", html: template.html ?? "", data: sample)
            return editor(template, draft, viewer, path: request.uri.path, notice: request.query("saved") != nil ? "template_saved" : nil)
        }
        // One form, three buttons: preview (anyone), test send (anyone who may send), save (admins).
        console.post(routes, "/console/templates/:name", limit: 2 << 20) { form, context, viewer, request in
            let template = try stored(try context.parameters.require("name"), viewer)
            let draft = Draft(subject: form["subject"] ?? "", text: form["text"] ?? "", html: form["html"] ?? "", data: form["data"] ?? "{}")
            switch form["action"] {
            case "save":
                try ConsoleRoutes.requireChange(viewer)
                try save(template, draft, viewer)
                return ConsoleHeaders.redirect("/console/templates/" + ConsoleRoutes.percentEncoded(template.name) + "?saved=1")
            case "test":
                let id = try await testSend(template, draft, form: form, viewer: viewer, client: context.clientAddress)
                return ConsoleHeaders.redirect("/console/messages/\(id.rawValue)")
            default:
                return editor(template, draft, viewer, path: request.uri.path, preview: true)
            }
        }
        console.page(routes, .get, "/console/webhooks") { request, _, viewer in
            let account = try ConsoleRoutes.account(viewer)
            let endpoints = try store.webhooks(accountID: account.id)
            let t = console.views.catalog(viewer.language)
            let context: [String: Any] = [
                "can_change": viewer.canChange, "empty": endpoints.isEmpty, "offered": services.eventsOut != nil,
                "replayed": request.query("replayed") != nil,
                "webhooks": try endpoints.map { endpoint -> [String: Any] in
                    let attempts = try store.webhookAttempts(webhookID: endpoint.id, limit: 20)
                    return ["id": endpoint.id, "name": endpoint.name, "url": endpoint.url, "format": endpoint.format.rawValue,
                            "events": endpoint.eventTypes.isEmpty ? (t["all_events"] ?? "*") : endpoint.eventTypes.joined(separator: ", "),
                            "state": endpoint.disabledReason.map { (t["webhook_disabled"] ?? "") + ": " + $0 }
                                ?? (endpoint.failingSince.map { (t["webhook_failing"] ?? "") + " " + ConsoleFormat.time($0, viewer.timeZone) }
                                    ?? (endpoint.confirmed ? (t["webhook_ok"] ?? "") : (t["webhook_unconfirmed"] ?? ""))),
                            "has_attempts": !attempts.isEmpty,
                            "attempts": attempts.map { attempt -> [String: Any] in
                                ["at": ConsoleFormat.time(attempt.at, viewer.timeZone), "events": ConsoleFormat.number(attempt.events),
                                 "status": attempt.status.map(String.init) ?? "—", "error": attempt.error ?? "",
                                 "ms": ConsoleFormat.number(attempt.durationMilliseconds), "ok": attempt.status.map { (200..<300).contains($0) } ?? false,
                                 "kind": attempt.replay ? (t["replay"] ?? "") : attempt.test ? (t["test"] ?? "") : ""]
                            }]
                },
            ]
            return console.render("webhooks", context, viewer: viewer, title: "nav_webhooks", current: "nav_webhooks", path: request.uri.path)
        }
        console.post(routes, "/console/webhooks/replay") { form, _, viewer, _ in
            try ConsoleRoutes.requireChange(viewer)
            let account = try ConsoleRoutes.account(viewer)
            guard let id = form["id"], let endpoint = try store.webhook(id: id, accountID: account.id) else {
                throw APIError.notFound("webhook")
            }
            guard let since = ConsoleFormat.localInput(form["since"], viewer.timeZone) else {
                throw ConsoleRefusal(status: .badRequest, key: "error_since")
            }
            let until = ConsoleFormat.localInput(form["until"], viewer.timeZone) ?? Date()
            guard since < until else { throw ConsoleRefusal(status: .badRequest, key: "error_since") }
            if let range = try services.index.eventIDRange(since: since, until: until) {
                _ = try store.addWebhookReplay(webhookID: endpoint.id, after: range.after, through: range.through)
            }
            return ConsoleHeaders.redirect("/console/webhooks?replayed=1")
        }
    }

    /// What the editor form holds: the template's parts as edited, and the sample data as JSON text.
    struct Draft {
        var subject: String
        var text: String
        var html: String
        var data: String

        var template: (subject: String, text: String?, html: String?) {
            (subject, text.isEmpty ? nil : text, html.isEmpty ? nil : html)
        }
    }

    func stored(_ name: String, _ viewer: ConsoleViewer) throws -> Template {
        let account = try ConsoleRoutes.account(viewer)
        guard let template = try store.template(accountID: account.id, name: name) else { throw APIError.notFound("template \(name)") }
        return template
    }

    /// The sample data the preview starts from: a dynamic template's active version's test data, else the template's defaults.
    func sampleData(_ template: Template, _ viewer: ConsoleViewer) throws -> String {
        let account = try ConsoleRoutes.account(viewer)
        if template.generation == .dynamic,
           let active = try store.templateVersions(accountID: account.id, templateID: template.name).first(where: \.active),
           let data = active.testData, !data.isEmpty {
            return data
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(template.defaults)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// The edited parts compiled as the template would be when sent (a dynamic one's Handlebars helpers translated).
    func renderer(_ template: Template, _ draft: Draft) throws(APIError) -> TemplateRenderer {
        var parts = draft.template
        if template.generation == .dynamic {
            parts.subject = try HandlebarsDialect.mustache(parts.subject)
            parts.text = try parts.text.map { text throws(APIError) in try HandlebarsDialect.mustache(text) }
            parts.html = try parts.html.map { html throws(APIError) in try HandlebarsDialect.mustache(html) }
        }
        return try TemplateRenderer(subject: parts.subject, text: parts.text, html: parts.html, defaults: template.defaults,
                                    missing: template.missing)
    }

    static func data(_ text: String) throws(APIError) -> [String: JSONValue] {
        do { return try JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8)) } catch {
            throw APIError.badRequest("the sample data is not a JSON object", field: "data")
        }
    }

    func editor(_ template: Template, _ draft: Draft, _ viewer: ConsoleViewer, path: String, preview: Bool = false,
                notice: String? = nil) -> Response {
        let t = console.views.catalog(viewer.language)
        var context: [String: Any] = [
            "name": template.name, "dynamic": template.generation == .dynamic,
            "subject": draft.subject, "text": draft.text, "html": draft.html, "data": draft.data,
            "can_change": viewer.canChange, "test_from": "test@" + (viewer.account?.domains.first ?? "example.com"),
            "test_to": viewer.user.email,
        ]
        context["display_name"] = template.displayName
        if let notice { context["notice"] = t[notice] ?? notice }
        if preview {
            do {
                let rendered = try renderer(template, draft).render(try ConsoleTemplatePages.data(draft.data), budget: 2 << 20)
                // false, not absent: inside the section an absent name would find the editor's own text.
                let shown: [String: Any] = ["subject": rendered.subject, "text": rendered.text ?? false, "html": rendered.html ?? false]
                context["preview"] = shown
            } catch {
                context["preview_error"] = error.message
            }
        }
        return console.render("template", context, viewer: viewer, title: "nav_templates", current: "nav_templates", path: path)
    }

    func save(_ template: Template, _ draft: Draft, _ viewer: ConsoleViewer) throws {
        let account = try ConsoleRoutes.account(viewer)
        _ = try renderer(template, draft)
        let parts = draft.template
        guard parts.text != nil || parts.html != nil else { throw APIError.badRequest("text or html is required", field: "text") }
        if template.generation == .dynamic {
            // A dynamic template sends its active version: the edit goes there (a first version if it has none).
            var version = try store.templateVersions(accountID: account.id, templateID: template.name).first(where: \.active)
                ?? TemplateVersion(templateID: template.name, name: "Version 1", subject: "", html: nil, text: nil, active: true)
            version.subject = parts.subject
            version.text = parts.text
            version.html = parts.html
            if (try? ConsoleTemplatePages.data(draft.data)) != nil { version.testData = draft.data }
            _ = try store.saveTemplateVersion(version, accountID: account.id)
        } else {
            var changed = template
            changed.subject = parts.subject
            changed.text = parts.text
            changed.html = parts.html
            try store.saveTemplate(changed, accountID: account.id, replace: true)
        }
    }

    /// Sends the edited template, rendered with the sample data, to one address through the intake (as the API would).
    func testSend(_ template: Template, _ draft: Draft, form: FormFields, viewer: ConsoleViewer, client: String) async throws -> MessageID {
        let account = try ConsoleRoutes.account(viewer)
        let from = try NativeAPI.address(AddressInput(text: form["from"] ?? ""), field: "from")
        let to = try NativeAPI.address(AddressInput(text: form["to"] ?? ""), field: "to")
        // A member may send tests, to themselves or inside the account's own domains; any address is an admin's call.
        if !viewer.canChange {
            let domain = to.address.split(separator: "@").last.map { String($0).lowercased() } ?? ""
            guard to.address.lowercased() == viewer.user.email || account.domains.contains(domain) else {
                throw ConsoleRefusal(status: .forbidden, key: "error_test_recipient")
            }
        }
        var personalization = Personalization(to: [to])
        personalization.data = try ConsoleTemplatePages.data(draft.data)
        let message = MessageDraft(base: Composition(from: from, subject: ""), renderer: try renderer(template, draft),
                                   personalizations: [personalization],
                                   metadata: MessageMetadata(tags: ["template-test"], marketing: template.marketing, source: "console"))
        let messages = try message.messages(builder: services.builder, unsubscribe: services.unsubscribe, tracking: nil,
                                            limits: services.draftLimits)
        guard let id = try await services.submitter.submit(messages, door: .api, account: account, client: client).first else {
            throw APIError.badRequest("nothing to send", field: "to")
        }
        return id
    }
}
