import Foundation
import Testing
@testable import Store

struct TemplateVersionTests {
    func makeStore(_ engine: StoreEngine) throws -> (any SharedStore, Int64, Int64) {
        let store = try engine.makeStore()
        let acme = try store.createAccount(name: "acme", domains: ["acme.example"]).account.id
        let other = try store.createAccount(name: "other", domains: ["other.example"]).account.id
        return (store, acme, other)
    }

    @Test(arguments: StoreEngine.available)
    func theActiveVersionIsWhatTheTemplateSends(engine: StoreEngine) throws {
        let (store, acme, _) = try makeStore(engine)
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

    @Test(arguments: StoreEngine.available)
    func anotherAccountReachesNoneOfIt(engine: StoreEngine) throws {
        let (store, acme, other) = try makeStore(engine)
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
        // Another account's version id is not taken over by a save of the same id.
        let theirs = try store.createDynamicTemplate(accountID: other, displayName: "Theirs")
        #expect(throws: TemplateStoreError.exists(version.id)) {
            try store.saveTemplateVersion(TemplateVersion(id: version.id, templateID: theirs.name, name: "x", subject: "x", html: nil,
                                                          text: "x", active: true), accountID: other)
        }
        #expect(try store.templateVersion(accountID: acme, templateID: template.name, id: version.id)?.subject == "s")
    }

    @Test(arguments: StoreEngine.available)
    func nativeTemplatesAreSavedReplacedPagedAndDeleted(engine: StoreEngine) throws {
        let (store, acme, other) = try makeStore(engine)
        let template = Template(name: "welcome", subject: "Hi {{name}}", text: "x", html: nil, marketing: true,
                                defaults: ["name": .string("you"), "points": .number(3)], missing: .default)
        try store.saveTemplate(template, accountID: acme, replace: false)
        #expect(throws: TemplateStoreError.exists("welcome")) { try store.saveTemplate(template, accountID: acme, replace: false) }
        #expect(throws: TemplateStoreError.notFound("other")) {
            try store.saveTemplate(Template(name: "other", subject: "", text: "", html: nil), accountID: acme, replace: true)
        }
        #expect(throws: TemplateStoreError.invalidName("no good")) {
            try store.saveTemplate(Template(name: "no good", subject: "", text: "", html: nil), accountID: acme, replace: false)
        }
        let saved = try #require(try store.template(accountID: acme, name: "welcome"))
        #expect(saved.defaults == ["name": .string("you"), "points": .number(3)] && saved.marketing && saved.missing == .default)
        #expect(saved.subject == "Hi {{name}}" && saved.text == "x" && saved.html == nil && saved.generation == .native)
        try store.saveTemplate(Template(name: "welcome", subject: "Hello", text: nil, html: "<p>h</p>"), accountID: acme, replace: true)
        #expect(try store.template(accountID: acme, name: "welcome").map { ($0.subject, $0.html) } ?? ("", nil) == ("Hello", "<p>h</p>"))
        for name in ["b", "a", "C", "a.b"] {
            try store.saveTemplate(Template(name: name, subject: "", text: "", html: nil), accountID: acme, replace: false)
        }
        // Byte order on both engines: upper case first, then '.' before letters.
        #expect(try store.templates(accountID: acme).map(\.name) == ["C", "a", "a.b", "b", "welcome"])
        #expect(try store.templates(accountID: acme, after: "a", limit: 2).map(\.name) == ["a.b", "b"])
        #expect(try store.template(accountID: other, name: "welcome") == nil)
        try store.deleteTemplate(accountID: acme, name: "welcome")
        #expect(throws: TemplateStoreError.notFound("welcome")) { try store.deleteTemplate(accountID: acme, name: "welcome") }
    }

    @Test(arguments: StoreEngine.available)
    func suppressionsImportInOneTransaction(engine: StoreEngine) throws {
        let (store, acme, _) = try makeStore(engine)
        try store.suppress([Suppression(address: "A@example.jp", reason: .manual), Suppression(address: "b@example.jp", reason: .bounce)],
                           accountID: acme)
        #expect(try store.suppression(accountID: acme, address: "a@example.jp")?.reason == .manual)
        #expect(try store.suppressions(accountID: acme).count == 2)
    }
}
