import Foundation
import Mustache
import Store

/// A subject, text and HTML compiled once and rendered per recipient with
/// Mustache: the HTML part escapes values, the subject and text do not.
/// When the template says so, a variable missing from the data (and from
/// the template's defaults) is an error instead of an empty string.
///
/// Templates and data come from tenants, so the work is bounded before and
/// during rendering: a part is at most `maximumPartSize` bytes, sections nest
/// at most `maximumDepth` deep, set-delimiter, parent and block tags are
/// refused (the shape check below reads the default delimiters), and each
/// render draws on a byte budget: every value written and every pass through
/// a section (charged at the size of the largest section body) spends it.
/// A render that runs out is refused, not truncated.
struct TemplateRenderer: Sendable {
    struct Rendered: Sendable, Equatable {
        var subject: String
        var text: String?
        var html: String?
    }

    static let maximumPartSize = 512 * 1024
    static let maximumDepth = 32

    let subject: MustacheTemplate
    let text: MustacheTemplate?
    let html: MustacheTemplate?
    let defaults: [String: JSONValue]
    let missing: Template.MissingVariables
    /// Top-level names used outside sections: the data must provide them.
    let required: Set<String>
    /// The largest section body of any part: what one pass through a section may write.
    let sectionCost: Int
    /// The Mustache names of the names the template uses, made once rather than per render.
    let aliases: [String: String]

    init(subject: String, text: String?, html: String?, defaults: [String: JSONValue] = [:],
         missing: Template.MissingVariables = .default) throws(APIError) {
        var shapes: [Shape] = []
        for part in [subject, text ?? "", html ?? ""] { shapes.append(try TemplateRenderer.shape(of: part)) }
        do {
            self.subject = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + MustacheNames.rewrite(subject))
            self.text = try text.map { try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + MustacheNames.rewrite($0)) }
            self.html = try html.map { try MustacheTemplate(string: MustacheNames.rewrite($0)) }
        } catch {
            throw APIError(.unprocessableContent, "invalid_template", "template does not parse: \(error)",
                           ses: "BadRequestException")
        }
        self.defaults = defaults
        self.missing = missing
        required = shapes.reduce(into: Set<String>()) { $0.formUnion($1.topLevelNames) }
        // Each pass costs at least a little, so the number of passes is bounded too.
        sectionCost = max(64, shapes.map(\.largestSection).max() ?? 0)
        aliases = Dictionary(uniqueKeysWithValues: required.union(defaults.keys).map { ($0, MustacheNames.alias($0)) })
    }

    init(_ template: Template) throws(APIError) {
        try self.init(subject: template.subject, text: template.text, html: template.html, defaults: template.defaults,
                      missing: template.missing)
    }

    /// Renders every part within `budget` bytes in all.
    func render(_ data: [String: JSONValue], budget: Int = 4 << 20) throws(APIError) -> Rendered {
        let merged = defaults.merging(data) { _, new in new }
        if missing == .error {
            let absent = required.subtracting(merged.keys).sorted()
            if !absent.isEmpty {
                throw APIError(.unprocessableContent, "missing_variables",
                               "template data lacks: \(absent.joined(separator: ", "))", ses: "BadRequestException")
            }
        }
        let meter = RenderBudget(bytes: budget, sectionCost: sectionCost)
        var object: [String: Any] = [:]
        for (key, value) in merged { object[aliases[key] ?? MustacheNames.alias(key)] = TemplateRenderer.mustacheValue(value, meter) }
        let rendered = Rendered(subject: subject.render(object), text: text?.render(object), html: html?.render(object))
        let size = rendered.subject.utf8.count + (rendered.text?.utf8.count ?? 0) + (rendered.html?.utf8.count ?? 0)
        guard !meter.exhausted, size <= budget else {
            throw APIError(.contentTooLarge, "template_output_too_large",
                           "the rendered template would exceed \(budget) bytes", ses: "MessageRejected")
        }
        return rendered
    }

    static func mustacheValue(_ value: JSONValue, _ budget: RenderBudget) -> Any {
        switch value {
        case .null: return ""
        case .bool(let bool): return TemplateScalar.bool(bool)
        // 120 renders as "120", not "120.0".
        case .number(let number):
            if abs(number) < 1e15, let integer = Int(exactly: number) { return TemplateScalar.integer(integer) }
            return TemplateScalar.double(number)
        case .string(let string): return BudgetedText(text: string, budget: budget)
        case .array(let array): return BudgetedSequence(items: array.map { mustacheValue($0, budget) }, budget: budget)
        case .object(let object):
            var values: [String: Any] = [:]
            for (key, value) in object { values[MustacheNames.alias(key)] = mustacheValue(value, budget) }
            return BudgetedObject(values: values, budget: budget)
        }
    }

    /// What the shape check learns of one part.
    struct Shape {
        var topLevelNames: Set<String> = []
        var largestSection = 0
    }

    /// Checks a part's size, tags and nesting (default delimiters), and
    /// collects the names of `{{name}}`, `{{{name}}}`, `{{&name}}` and section
    /// tags at the top level (outside any section, where names resolve
    /// against the section's item instead): the first component of a dotted name.
    static func shape(of template: String) throws(APIError) -> Shape {
        guard template.utf8.count <= maximumPartSize else {
            throw APIError(.contentTooLarge, "template_too_large", "a template part is limited to \(maximumPartSize) bytes",
                           ses: "BadRequestException")
        }
        var shape = Shape()
        // Read by Characters, as swift-mustache's parser reads: a `{` with a combining mark on it is
        // text to the parser, so it must be text here too, or the check would see tags the parser does not.
        let characters = Array(template)
        // UTF-8 offset of each Character, for section sizes in bytes.
        var offsets: [Int] = []
        offsets.reserveCapacity(characters.count + 1)
        var total = 0
        for character in characters {
            offsets.append(total)
            total += character.utf8.count
        }
        offsets.append(total)
        // Where each open section's body starts, as a Character index.
        var open: [Int] = []
        var index = 0
        func refuse(_ message: String) -> APIError {
            APIError(.unprocessableContent, "invalid_template", message, ses: "BadRequestException")
        }
        while index + 1 < characters.count {
            guard characters[index] == "{", characters[index + 1] == "{" else { index += 1; continue }
            let triple = index + 2 < characters.count && characters[index + 2] == "{"
            let tagStart = index + (triple ? 3 : 2)
            var close = tagStart
            while close + 1 < characters.count, !(characters[close] == "}" && characters[close + 1] == "}") { close += 1 }
            guard close + 1 < characters.count else { break }
            let tagEnd = close + (triple && close + 2 < characters.count && characters[close + 2] == "}" ? 3 : 2)
            let tag = String(characters[tagStart..<close]).trimmingCharacters(in: .whitespaces)
            index = tagEnd
            guard let sigil = tag.first else { continue }
            switch sigil {
            case "!", "%", ">":
                continue
            case "=":
                throw refuse("set-delimiter tags ({{=…=}}) are not supported")
            case "<", "$":
                throw refuse("parent and block tags ({{<…}}, {{$…}}) are not supported")
            case "/":
                guard let start = open.popLast() else { throw refuse("{{\(tag)}} closes no section") }
                shape.largestSection = max(shape.largestSection, offsets[tagStart] - offsets[start])
            case "#", "^":
                let name = tag.dropFirst().trimmingCharacters(in: .whitespaces)
                if open.isEmpty, let first = name.split(separator: ".").first { shape.topLevelNames.insert(String(first)) }
                open.append(tagEnd)
                guard open.count <= maximumDepth else { throw refuse("sections nest more than \(maximumDepth) deep") }
            default:
                let name = (sigil == "&" ? tag.dropFirst() : tag[...]).trimmingCharacters(in: .whitespaces)
                if open.isEmpty, name != ".", let first = name.split(separator: ".").first { shape.topLevelNames.insert(String(first)) }
            }
        }
        guard open.isEmpty else { throw refuse("a section is not closed") }
        return shape
    }

    /// Names of top-level variables and sections (see `shape(of:)`); empty for a part that fails the check.
    static func variables(in template: String) -> Set<String> {
        (try? shape(of: template).topLevelNames) ?? []
    }
}

/// What one render may still write. Rendering is synchronous and confined
/// to one call, so the counter needs no lock.
final class RenderBudget: @unchecked Sendable {
    private(set) var remaining: Int
    private(set) var exhausted = false
    let sectionCost: Int

    init(bytes: Int, sectionCost: Int) {
        remaining = bytes
        self.sectionCost = sectionCost
    }

    /// Whether `cost` more bytes may be written; once not, never again.
    func spend(_ cost: Int) -> Bool {
        guard !exhausted, cost <= remaining else {
            exhausted = true
            return false
        }
        remaining -= cost
        return true
    }
}

/// A string value that spends the budget when written. A parent without
/// children: otherwise Mustache would reach its stored properties (`{{name.text}}`)
/// by reflection, around the budget.
struct BudgetedText: MustacheCustomRenderable, MustacheTransformable, MustacheParent, CustomStringConvertible {
    let text: String
    let budget: RenderBudget

    func child(named: String) -> Any? { nil }

    var renderText: String { budget.spend(text.utf8.count) ? text : "" }
    var isNull: Bool { false }
    var description: String { renderText }

    func transform(_ name: String) -> Any? {
        if name == "truthy" { return !text.isEmpty }
        switch text.transform(name) {
        case let string as String: return BudgetedText(text: string, budget: budget)
        case let substring as Substring: return BudgetedText(text: String(substring), budget: budget)
        case let other: return other
        }
    }
}

/// A list value whose every pass through a section spends the budget; a
/// parent without children, as `BudgetedText`.
struct BudgetedSequence: MustacheSequence, MustacheTransformable, MustacheParent {
    let items: [Any]
    let budget: RenderBudget

    func child(named: String) -> Any? { nil }

    struct Iterator: IteratorProtocol {
        var base: IndexingIterator<[Any]>
        let budget: RenderBudget

        mutating func next() -> Any? {
            guard let item = base.next(), budget.spend(budget.sectionCost) else { return nil }
            return item
        }
    }

    func makeIterator() -> Iterator { Iterator(base: items.makeIterator(), budget: budget) }

    func transform(_ name: String) -> Any? {
        switch name {
        case "first": return items.first
        case "last": return items.last
        case "count": return items.count
        case "empty": return items.isEmpty
        case "truthy": return !items.isEmpty
        case "reversed": return BudgetedSequence(items: items.reversed(), budget: budget)
        default: return nil
        }
    }
}

/// An object value: its members by name, and its transforms (`enumerated`,
/// `sorted`, `count`, `empty`) as budgeted values, so that no transform hands
/// Mustache a sequence the budget does not see.
struct BudgetedObject: MustacheParent, MustacheTransformable {
    let values: [String: Any]
    let budget: RenderBudget

    func child(named name: String) -> Any? { values[name] }

    func transform(_ name: String) -> Any? {
        switch name {
        case "count": return values.count
        case "empty": return values.isEmpty
        case "truthy": return true
        case "enumerated", "sorted":
            let pairs = values.sorted { $0.key < $1.key }.map { pair -> Any in
                BudgetedObject(values: ["key": BudgetedText(text: pair.key, budget: budget), "value": pair.value], budget: budget)
            }
            return BudgetedSequence(items: pairs, budget: budget)
        default: return nil
        }
    }
}

/// A boolean or a number of template data. It renders as its text; `false`
/// counts as missing in a section (as a Bool would), and looking a name up
/// in it finds nothing (the lookup goes on outward). `truthy` is Handlebars'
/// `#if` (false and 0 are false), which SendGrid templates use
/// (`HandlebarsDialect`); integers keep swift-mustache's own transforms.
enum TemplateScalar: MustacheCustomRenderable, MustacheTransformable, MustacheParent {
    case bool(Bool)
    case integer(Int)
    case double(Double)

    func child(named: String) -> Any? { nil }

    var renderText: String {
        switch self {
        case .bool(let value): return value ? "true" : "false"
        case .integer(let value): return String(value)
        case .double(let value): return String(value)
        }
    }

    var isNull: Bool {
        if case .bool(false) = self { return true }
        return false
    }

    func transform(_ name: String) -> Any? {
        switch (self, name) {
        case (.bool(let value), "truthy"): return value
        case (.integer(let value), "truthy"): return value != 0
        case (.double(let value), "truthy"): return value != 0
        case (.integer(let value), _): return value.transform(name)
        default: return nil
        }
    }
}

/// Names Mustache can read for names it cannot: swift-mustache reads tag
/// names of ASCII letters, digits, `_` and `-` only, while a marketer's
/// fields are called 氏名 or ポイント. Such a name becomes `u_` and the hex of
/// its UTF-8 in the template and in the data alike, so `{{氏名}}` renders the
/// contact's 氏名.
enum MustacheNames {
    /// What swift-mustache's parser reads as a name (its `sectionNameCharsWithoutBrackets`, less the `.` of paths).
    static let nameScalars = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_?*".unicodeScalars)

    static func alias(_ name: String) -> String {
        if !name.isEmpty, name.unicodeScalars.allSatisfy(nameScalars.contains) { return name }
        let digits = Array("0123456789abcdef".unicodeScalars)
        var alias = "u_"
        for byte in name.utf8 {
            alias.unicodeScalars.append(digits[Int(byte >> 4)])
            alias.unicodeScalars.append(digits[Int(byte & 0x0F)])
        }
        return alias
    }

    /// A dotted name with each part aliased; `.` and helper calls (`truthy(x)`) stay as they are.
    static func aliasPath(_ path: String) -> String {
        guard path != ".", !path.contains("(") else { return path }
        return path.split(separator: ".", omittingEmptySubsequences: false).map { alias(String($0)) }.joined(separator: ".")
    }

    /// The template with every variable and section name aliased (comments, pragmas, partials and
    /// delimiter changes untouched). ASCII templates come back unchanged.
    static func rewrite(_ template: String) -> String {
        guard template.unicodeScalars.contains(where: { !$0.isASCII }) else { return template }
        var output = ""
        var rest = template[...]
        while let open = rest.range(of: "{{") {
            output += rest[..<open.lowerBound]
            var after = rest[open.upperBound...]
            guard let close = after.range(of: "}}") else {
                output += rest[open.lowerBound...]
                return output
            }
            var inner = String(after[..<close.lowerBound])
            after = after[close.upperBound...]
            var (prefix, suffix) = ("{{", "}}")
            if inner.hasPrefix("{"), after.hasPrefix("}") {
                inner.removeFirst()
                after = after.dropFirst()
                (prefix, suffix) = ("{{{", "}}}")
            }
            var sigil = ""
            if let first = inner.first, "#^/&".contains(first) {
                sigil = String(first)
                inner.removeFirst()
            }
            if let first = inner.first, sigil.isEmpty, "!%=>".contains(first) {
                output += prefix + inner + suffix
            } else {
                output += prefix + sigil + aliasPath(inner.trimmingCharacters(in: .whitespaces)) + suffix
            }
            rest = after
        }
        output += rest
        return output
    }
}
