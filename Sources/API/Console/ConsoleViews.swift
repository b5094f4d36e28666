import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// The console's languages. Every string a page shows comes from the
/// language's catalogue (`Resources/console/i18n/<code>.json`), none from code.
enum ConsoleLanguage: String, Sendable, CaseIterable {
    case ja, en

    /// The first supported language of an `Accept-Language` header (RFC 9110 §12.5.4), by weight.
    static func negotiate(_ header: String?) -> ConsoleLanguage? {
        guard let header else { return nil }
        let ranges = header.split(separator: ",").prefix(32).compactMap { item -> (String, Double)? in
            let parts = item.split(separator: ";")
            guard let tag = parts.first?.trimmingCharacters(in: .whitespaces).lowercased(), !tag.isEmpty else { return nil }
            var weight = 1.0
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if pair.count == 2, pair[0] == "q", let value = Double(pair[1]) { weight = value }
            }
            return (tag, weight)
        }
        for (tag, weight) in ranges.sorted(by: { $0.1 > $1.1 }) where weight > 0 {
            if let language = ConsoleLanguage(rawValue: String(tag.prefix(while: { $0 != "-" }))) { return language }
        }
        return nil
    }

    /// Times are shown in the user's zone; this one until they choose.
    var defaultTimeZone: TimeZone {
        switch self {
        case .ja: return TimeZone(identifier: "Asia/Tokyo") ?? .gmt
        case .en: return .gmt
        }
    }
}

/// The page templates, catalogues and static files, loaded once from the
/// module's resources. Templates are Mustache: `{{value}}` is HTML-escaped,
/// so a subject of `<script>` is shown as text; only `{{{body}}}` in the
/// layout (itself rendered with escaping) is inserted as is.
final class ConsoleViews: Sendable {
    let libraries: [ConsoleLanguage: MustacheLibrary]
    let catalogs: [ConsoleLanguage: [String: String]]
    let staticFiles: [String: (type: String, bytes: ByteBuffer)]

    enum LoadError: Error, CustomStringConvertible {
        case missing(String)
        case incompleteCatalog(ConsoleLanguage, [String])
        case taggedText(ConsoleLanguage, [String])
        var description: String {
            switch self {
            case .missing(let what): return "console resource missing: \(what)"
            case .incompleteCatalog(let language, let keys): return "catalogue \(language) lacks \(keys.joined(separator: ", "))"
            case .taggedText(let language, let keys): return "catalogue \(language) has {{ in \(keys.joined(separator: ", "))"
            }
        }
    }

    init() throws {
        let manager = FileManager.default
        let root = try APIResources.directory().appendingPathComponent("console")
        let templates = root.appendingPathComponent("templates")
        var sources: [(name: String, text: String)] = []
        for name in try manager.contentsOfDirectory(atPath: templates.path) where name.hasSuffix(".mustache") {
            sources.append((String(name.dropLast(".mustache".count)),
                            try String(contentsOf: templates.appendingPathComponent(name), encoding: .utf8)))
        }
        var catalogs: [ConsoleLanguage: [String: String]] = [:]
        for language in ConsoleLanguage.allCases {
            let data = try Data(contentsOf: root.appendingPathComponent("i18n/\(language.rawValue).json"))
            guard let catalog = try JSONSerialization.jsonObject(with: data) as? [String: String] else {
                throw LoadError.missing("i18n/\(language.rawValue).json")
            }
            catalogs[language] = catalog
        }
        // Both catalogues have every key: a page never shows a key name.
        let keys = Set(catalogs.values.flatMap(\.keys))
        for (language, catalog) in catalogs where catalog.count != keys.count {
            throw LoadError.incompleteCatalog(language, keys.subtracting(catalog.keys).sorted())
        }
        // A catalogue text is inlined into templates: a `{{` in it would become a tag.
        for (language, catalog) in catalogs {
            let tagged = catalog.filter { $0.value.contains("{{") }.keys.sorted()
            if !tagged.isEmpty { throw LoadError.taggedText(language, tagged) }
        }
        self.catalogs = catalogs
        // One library per language with the catalogue's texts already in place of `{{t.key}}`: a page
        // then looks up only its own values (each lookup walks the context stack with dynamic casts, and
        // the catalogue's were most of them).
        var libraries: [ConsoleLanguage: MustacheLibrary] = [:]
        for (language, catalog) in catalogs {
            var library = MustacheLibrary()
            for source in sources { try library.register(ConsoleViews.inline(catalog, into: source.text), named: source.name) }
            libraries[language] = library
        }
        self.libraries = libraries
        var files: [String: (String, ByteBuffer)] = [:]
        for (name, type) in [("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8")] {
            let data = try Data(contentsOf: root.appendingPathComponent("static/\(name)"))
            files[name] = (type, ByteBuffer(bytes: data))
        }
        staticFiles = files
    }

    func catalog(_ language: ConsoleLanguage) -> [String: String] { catalogs[language] ?? [:] }

    /// `template` rendered with `context`, inside the layout, in the layout's language (`lang`).
    func page(_ template: String, _ context: [String: Any], layout: [String: Any]) -> String {
        let language = (layout["lang"] as? String).flatMap(ConsoleLanguage.init(rawValue:)) ?? .ja
        guard let library = libraries[language] else { return "" }
        var outer = layout
        outer["body"] = library.render(context.merging(layout) { own, _ in own }, withTemplate: template) ?? ""
        return library.render(outer, withTemplate: "layout") ?? ""
    }

    /// `text` with each `{{t.key}}` replaced by the catalogue's text, HTML-escaped as Mustache would
    /// (`{{{t.key}}}`: as is). A key the catalogue lacks is left for Mustache (it renders empty).
    static func inline(_ catalog: [String: String], into text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            output += rest[..<open.lowerBound]
            let triple = rest[open.upperBound...].hasPrefix("{")
            let closing = triple ? "}}}" : "}}"
            let nameStart = triple ? rest.index(after: open.upperBound) : open.upperBound
            guard let close = rest[nameStart...].range(of: closing) else {
                output += rest[open.lowerBound...]
                rest = ""
                break
            }
            let name = rest[nameStart..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            if name.hasPrefix("t."), let value = catalog[String(name.dropFirst(2))] {
                output += triple ? value : SVGChart.escape(value)
            } else {
                output += rest[open.lowerBound..<close.upperBound]
            }
            rest = rest[close.upperBound...]
        }
        output += rest
        return output
    }
}

/// What every console response carries: no framing, no inline script, no
/// caching of pages that show mail, no referrer leaking a message id.
enum ConsoleHeaders {
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    static func apply(_ headers: inout HTTPFields) {
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xFrameOptions] = "DENY"
        headers[.referrerPolicy] = "same-origin"
        headers[.xContentTypeOptions] = "nosniff"
        headers[.cacheControl] = "no-store"
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok, cookies: [String] = []) -> Response {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
        apply(&headers)
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// 303: the browser follows with a GET (after a form's POST).
    static func redirect(_ location: String, cookies: [String] = []) -> Response {
        var headers: HTTPFields = [.location: location]
        apply(&headers)
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: .seeOther, headers: headers)
    }
}

/// An `application/x-www-form-urlencoded` body or query (WHATWG URL §5).
struct FormFields: Sendable {
    private(set) var pairs: [(String, String)] = []

    init(_ text: String) {
        for item in text.split(separator: "&").prefix(2000) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            pairs.append((decode(parts[0]), parts.count > 1 ? decode(parts[1]) : ""))
        }
    }

    subscript(_ name: String) -> String? {
        pairs.first { $0.0 == name }.map(\.1).flatMap { $0.isEmpty ? nil : $0 }
    }

    func all(_ name: String) -> [String] { pairs.filter { $0.0 == name }.map(\.1) }
}
