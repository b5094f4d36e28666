import Foundation
import Testing
@testable import API
import Store

struct TemplateDialectTests {
    @Test func handlebarsBlocksBecomeMustacheSections() throws {
        #expect(try HandlebarsDialect.mustache("{{#if vip}}VIP{{else}}member{{/if}}")
                == "{{#truthy(vip)}}VIP{{/truthy(vip)}}{{^truthy(vip)}}member{{/truthy(vip)}}")
        #expect(try HandlebarsDialect.mustache("{{#unless a}}x{{else}}y{{/unless}}") == "{{^truthy(a)}}x{{/truthy(a)}}{{#truthy(a)}}y{{/truthy(a)}}")
        #expect(try HandlebarsDialect.mustache("{{#each items}}{{this}}, {{this.name}}{{/each}}") == "{{#items}}{{.}}, {{name}}{{/items}}")
        #expect(try HandlebarsDialect.mustache("{{{ raw }}} {{ name }} {{! note }} {{{this}}} {{{this.x}}}")
                == "{{{ raw }}} {{ name }} {{! note }} {{{.}}} {{{x}}}")
        #expect(try HandlebarsDialect.mustache("no tags, {{ unclosed") == "no tags, {{ unclosed")
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("{{#if (eq a b)}}x{{/if}}") }
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("{{formatDate when \"YYYY\"}}") }
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("{{#if a}}x") }
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("x{{/if}}") }
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("{{else}}") }
    }

    func render(_ handlebars: String, _ data: [String: JSONValue]) throws -> String? {
        try TemplateRenderer(subject: "", text: try HandlebarsDialect.mustache(handlebars), html: nil).render(data).text
    }

    @Test func translatedTemplatesRenderAsSendGridDoes() throws {
        let renderer = try TemplateRenderer(subject: try HandlebarsDialect.mustache("Hi {{name}}"),
                                            text: try HandlebarsDialect.mustache("{{#if vip}}VIP{{else}}-{{/if}} {{#each items}}[{{this}}]{{/each}}"),
                                            html: nil)
        let rendered = try renderer.render(["name": .string("山田"), "vip": .bool(false), "items": .array([.string("a"), .string("b")])])
        #expect(rendered.subject == "Hi 山田" && rendered.text == "- [a][b]")
        // #if neither repeats for a list nor enters an object.
        let list = "{{#if items}}<{{#each items}}{{this}}{{/each}}>{{/if}}"
        #expect(try render(list, ["items": .array([.string("a"), .string("b")])]) == "<ab>")
        #expect(try render(list, ["items": .array([])]) == "")
        #expect(try render("{{#if user}}{{name}}{{/if}}", ["user": .object(["name": .string("inner")]), "name": .string("top")]) == "top")
        // Handlebars' falsy values: false, 0, "", null, [], a missing name.
        for value: JSONValue in [.bool(false), .number(0), .string(""), .null, .array([])] {
            #expect(try render("{{#if x}}yes{{else}}no{{/if}}", ["x": value]) == "no")
        }
        #expect(try render("{{#if x}}yes{{else}}no{{/if}}", [:]) == "no")
        for value: JSONValue in [.bool(true), .number(2), .number(0.5), .string("s"), .object([:]), .array([.null])] {
            #expect(try render("{{#if x}}yes{{else}}no{{/if}}", ["x": value]) == "yes")
        }
        #expect(try render("{{#each people}}{{#if this.vip}}*{{/if}}{{name}} {{/each}}",
                           ["people": .array([.object(["name": .string("a"), "vip": .bool(true)]),
                                              .object(["name": .string("b"), "vip": .bool(false)])])]) == "*a b ")
    }

    @Test func csvRecordsFollowRFC4180() {
        let records = CSVReader.records("\u{FEFF}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\nlines\",z\nlast")
        #expect(records.map(\.line) == [1, 2, 3, 5])
        #expect(records.map(\.fields) == [["a", "b"], ["x, y", "say \"hi\""], ["two\nlines", "z"], ["last"]])
        #expect(CSVReader.records("").isEmpty)
    }

    @Test func suppressionImportsReportTheLinesTheyRefuse() {
        let imported = SuppressionCSV.parse("email,scope\none@example.jp,marketing\nnot-an-address\n\nTWO@example.jp,everywhere\nthree@example.jp,",
                                            source: "test")
        #expect(imported.suppressions.map(\.address) == ["one@example.jp", "three@example.jp"])
        #expect(imported.suppressions.map(\.scope) == [.marketing, .all])
        #expect(imported.errors.map(\.line) == [3, 5])
        // Without a header row, the first column is the address.
        let bare = SuppressionCSV.parse("a@example.jp\nb@example.jp,ignored", reason: .bounce, source: "test")
        #expect(bare.suppressions.map(\.address) == ["a@example.jp", "b@example.jp"] && bare.suppressions.allSatisfy { $0.reason == .bounce })
    }
}

struct JSONBodyTests {
    @Test func plainValuesBecomeTheJSONThatFoundationWouldWrite() throws {
        let optional: Int? = nil
        let object: [String: Any] = ["b": 1, "a": "x\"\n/é", "c": [true, 2.5, 3.0, NSNull()] as [Any], "d": ["z": optional as Any, "y": Int64(7)],
                                     "e": Double.infinity, "f": [String](), "g": Optional<String>.some("s") as Any]
        let text = JSONBody.text(object)
        #expect(text == #"{"a":"x\"\n/é","b":1,"c":[true,2.5,3,null],"d":{"y":7,"z":null},"e":null,"f":[],"g":"s"}"#)
        // Foundation reads it back as the same values.
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(parsed["a"] as? String == "x\"\n/é" && (parsed["c"] as? [Any])?.count == 4)
        // Keys sort by their bytes, not by a locale.
        #expect(JSONBody.text(["é": 1, "Z": 2, "a": 3]) == #"{"Z":2,"a":3,"é":1}"#)
    }
}

struct ImportBoundsTests {
    @Test func anImportStopsReadingAtItsRowLimit() {
        var seen = 0
        CSVReader.forEachRecord("a\nb\nc\nd\n") { _, _ in
            seen += 1
            return seen < 2
        }
        #expect(seen == 2)
        let many = String(repeating: "x@example.jp\n", count: SuppressionCSV.maximumRows + 5)
        let imported = SuppressionCSV.parse(many, source: "test")
        #expect(imported.suppressions.count == SuppressionCSV.maximumRows && imported.errors.count == 1)
    }
}
