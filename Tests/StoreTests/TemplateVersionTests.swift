import Foundation
import Testing
@testable import Store

struct TemplateVersionTests {
    func makeStore() throws -> (SQLiteStore, Int64, Int64) {
        let path = NSTemporaryDirectory() + "hikyaku-versions-" + UUID().uuidString + ".sqlite"
        let store = try SQLiteStore(path: path, hashParameters: PasswordHash.Parameters(rounds: 1 << 10, blockSize: 8, parallelism: 1))
        let acme = try store.createAccount(name: "acme", domains: ["acme.example"]).account.id
        let other = try store.createAccount(name: "other", domains: ["other.example"]).account.id
        return (store, acme, other)
    }

    @Test func theActiveVersionIsWhatTheTemplateSends() throws {
        let (store, acme, _) = try makeStore()
        let template = try store.createDynamicTemplate(accountID: acme, displayName: "Welcome")
        #expect(template.name.hasPrefix("d-") && template.name.count == 34 && template.generation == .dynamic)
        #expect(template.text == nil && template.html == nil, "no version: nothing to send")
        // The first version is active even when it says otherwise.
        let first = try store.saveTemplateVersion(TemplateVersion(templateID: template.name, name: "v1", subject: "One", html: nil,
                                                                  text: "one", active: false), accountID: acme)
        #expect(first.active)
        #expect(try store.template(accountID: acme, name: template.name)?.subject == "One")
        let second = try store.saveTemplateVersion(TemplateVersion(templateID: template.name, name: "v2", subject: "Two", html: "<p>2</p>",
                                                                   text: nil, active: true), accountID: acme)
        var current = try #require(try store.template(accountID: acme, name: template.name))
        #expect(current.subject == "Two" && current.text == nil && current.html == "<p>2</p>")
        #expect(try store.templateVersions(accountID: acme, templateID: template.name).map(\.active) == [false, true])
        try store.activateTemplateVersion(accountID: acme, templateID: template.name, id: first.id)
        current = try #require(try store.template(accountID: acme, name: template.name))
        #expect(current.subject == "One" && current.text == "one")
        // Deleting the active version leaves nothing to send until another is activated.
        try store.deleteTemplateVersion(accountID: acme, templateID: template.name, id: first.id)
        current = try #require(try store.template(accountID: acme, name: template.name))
        #expect(current.text == nil && current.html == nil && current.subject == "")
        try store.activateTemplateVersion(accountID: acme, templateID: template.name, id: second.id)
        #expect(try store.template(accountID: acme, name: template.name)?.subject == "Two")
        // Deleting the template takes its versions with it.
        try store.deleteTemplate(accountID: acme, name: template.name)
        #expect(try store.templateVersions(accountID: acme, templateID: template.name).isEmpty)
    }

    @Test func anotherAccountReachesNoneOfIt() throws {
        let (store, acme, other) = try makeStore()
        let template = try store.createDynamicTemplate(accountID: acme, displayName: "Welcome")
        let version = try store.saveTemplateVersion(TemplateVersion(templateID: template.name, name: "v1", subject: "s", html: nil,
                                                                    text: "t", active: true), accountID: acme)
        #expect(try store.template(accountID: other, name: template.name) == nil)
        #expect(try store.templateVersion(accountID: other, templateID: template.name, id: version.id) == nil)
        #expect(try store.dynamicTemplates(accountID: other).isEmpty)
        #expect(throws: TemplateStoreError.notFound(template.name)) {
            try store.saveTemplateVersion(TemplateVersion(templateID: template.name, name: "x", subject: "x", html: nil, text: "x",
                                                          active: true), accountID: other)
        }
        #expect(throws: TemplateStoreError.notFound(version.id)) {
            try store.activateTemplateVersion(accountID: other, templateID: template.name, id: version.id)
        }
        #expect(throws: TemplateStoreError.notFound(template.name)) {
            try store.renameDynamicTemplate(accountID: other, id: template.name, displayName: "mine")
        }
        // A native template is not a dynamic one: it has no versions to add.
        try store.saveTemplate(Template(name: "plain", subject: "s", text: "t", html: nil), accountID: acme, replace: false)
        #expect(throws: TemplateStoreError.notFound("plain")) {
            try store.saveTemplateVersion(TemplateVersion(templateID: "plain", name: "x", subject: "x", html: nil, text: "x",
                                                          active: true), accountID: acme)
        }
        #expect(try store.dynamicTemplates(accountID: acme).map(\.name) == [template.name])
    }

    @Test func suppressionsImportInOneTransaction() throws {
        let (store, acme, _) = try makeStore()
        try store.suppress([Suppression(address: "A@example.jp", reason: .manual), Suppression(address: "b@example.jp", reason: .bounce)],
                           accountID: acme)
        #expect(try store.suppression(accountID: acme, address: "a@example.jp")?.reason == .manual)
        #expect(try store.suppressions(accountID: acme).count == 2)
    }
}
