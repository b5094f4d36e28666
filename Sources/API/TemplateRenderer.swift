import Foundation
import Mustache
import Store

/// A subject, text and HTML compiled once and rendered per recipient with
/// Mustache: the HTML part escapes values, the subject and text do not.
/// When the template says so, a variable missing from the data (and from
/// the template's defaults) is an error instead of an empty string.
struct TemplateRenderer: Sendable {
    struct Rendered: Sendable, Equatable {
        var subject: String
        var text: String?
        var html: String?
    }

    let subject: MustacheTemplate
    let text: MustacheTemplate?
    let html: MustacheTemplate?
    let defaults: [String: JSONValue]
    let missing: Template.MissingVariables
    /// Top-level names used outside sections: the data must provide them.
    let required: Set<String>

    init(subject: String, text: String?, html: String?, defaults: [String: JSONValue] = [:],
         missing: Template.MissingVariables = .default) throws(APIError) {
        do {
            self.subject = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + subject)
            self.text = try text.map { try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + $0) }
            self.html = try html.map { try MustacheTemplate(string: $0) }
        } catch {
            throw APIError(.unprocessableContent, "invalid_template", "template does not parse: \(error)",
                           ses: "BadRequestException")
        }
        self.defaults = defaults
        self.missing = missing
        required = [subject, text ?? "", html ?? ""].reduce(into: Set<String>()) { $0.formUnion(TemplateRenderer.variables(in: $1)) }
    }

    init(_ template: Template) throws(APIError) {
        try self.init(subject: template.subject, text: template.text, html: template.html, defaults: template.defaults,
                      missing: template.missing)
    }

    func render(_ data: [String: JSONValue]) throws(APIError) -> Rendered {
        let merged = defaults.merging(data) { _, new in new }
        if missing == .error {
            let absent = required.subtracting(merged.keys).sorted()
            if !absent.isEmpty {
                throw APIError(.unprocessableContent, "missing_variables",
                               "template data lacks: \(absent.joined(separator: ", "))", ses: "BadRequestException")
            }
        }
        let object = merged.mapValues(TemplateRenderer.mustacheValue)
        return Rendered(subject: subject.render(object), text: text?.render(object), html: html?.render(object))
    }

    static func mustacheValue(_ value: JSONValue) -> Any {
        switch value {
        case .null: return ""
        case .bool(let bool): return bool
        // 120 renders as "120", not "120.0".
        case .number(let number): return number.rounded() == number && abs(number) < 1e15 ? Int(number) as Any : number
        case .string(let string): return string
        case .array(let array): return array.map(mustacheValue)
        case .object(let object): return object.mapValues(mustacheValue)
        }
    }

    /// Names of `{{name}}`, `{{{name}}}`, `{{&name}}` and section tags at the
    /// top level (outside any section, where names resolve against the
    /// section's item instead); the first component of a dotted name.
    static func variables(in template: String) -> Set<String> {
        var names = Set<String>()
        var depth = 0
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            let afterOpen = rest[open.upperBound...]
            let triple = afterOpen.hasPrefix("{")
            guard let close = afterOpen.range(of: triple ? "}}}" : "}}") else { break }
            var tag = afterOpen[afterOpen.startIndex..<close.lowerBound]
            if triple { tag = tag.dropFirst() }
            rest = afterOpen[close.upperBound...]
            tag = Substring(tag.trimmingCharacters(in: .whitespaces))
            guard let sigil = tag.first else { continue }
            switch sigil {
            case "!", "%", ">", "<", "$": continue
            case "=": return names // changed delimiters: stop looking
            case "/": depth = max(0, depth - 1)
            case "#", "^":
                let name = tag.dropFirst().trimmingCharacters(in: .whitespaces)
                if depth == 0, let first = name.split(separator: ".").first { names.insert(String(first)) }
                depth += 1
            default:
                let name = (sigil == "&" ? tag.dropFirst() : tag).trimmingCharacters(in: .whitespaces)
                if depth == 0, name != ".", let first = name.split(separator: ".").first { names.insert(String(first)) }
            }
        }
        return names
    }
}
