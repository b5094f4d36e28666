import Foundation
import Testing
@testable import API
import Store

struct TemplateDialectTests {
    @Test func handlebarsBlocksBecomeMustacheSections() throws {
        #expect(try HandlebarsDialect.mustache("{{#if vip}}VIP{{else}}member{{/if}}") == "{{#vip}}VIP{{/vip}}{{^vip}}member{{/vip}}")
        #expect(try HandlebarsDialect.mustache("{{#unless a}}x{{else}}y{{/unless}}") == "{{^a}}x{{/a}}{{#a}}y{{/a}}")
        #expect(try HandlebarsDialect.mustache("{{#each items}}{{this}}, {{this.name}}{{/each}}") == "{{#items}}{{.}}, {{name}}{{/items}}")
        #expect(try HandlebarsDialect.mustache("{{{ raw }}} {{ name }} {{! note }}") == "{{{ raw }}} {{ name }} {{! note }}")
        #expect(try HandlebarsDialect.mustache("no tags, {{ unclosed") == "no tags, {{ unclosed")
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("{{#if (eq a b)}}x{{/if}}") }
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("{{formatDate when \"YYYY\"}}") }
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("{{#if a}}x") }
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("x{{/if}}") }
        #expect(throws: APIError.self) { try HandlebarsDialect.mustache("{{else}}") }
    }

    @Test func translatedTemplatesRenderAsSendGridDoes() throws {
        let renderer = try TemplateRenderer(subject: try HandlebarsDialect.mustache("Hi {{name}}"),
                                            text: try HandlebarsDialect.mustache("{{#if vip}}VIP{{else}}-{{/if}} {{#each items}}[{{this}}]{{/each}}"),
                                            html: nil)
        let rendered = try renderer.render(["name": .string("山田"), "vip": .bool(false), "items": .array([.string("a"), .string("b")])])
        #expect(rendered.subject == "Hi 山田" && rendered.text == "- [a][b]")
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
