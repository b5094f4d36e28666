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
    let library: MustacheLibrary
    let catalogs: [ConsoleLanguage: [String: String]]
    let staticFiles: [String: (type: String, bytes: ByteBuffer)]

    enum LoadError: Error, CustomStringConvertible {
        case missing(String)
        case incompleteCatalog(ConsoleLanguage, [String])
        var description: String {
            switch self {
            case .missing(let what): return "console resource missing: \(what)"
            case .incompleteCatalog(let language, let keys): return "catalogue \(language) lacks \(keys.joined(separator: ", "))"
            }
        }
    }

    init() throws {
        let manager = FileManager.default
        let root = try APIResources.directory().appendingPathComponent("console")
        var library = MustacheLibrary()
        let templates = root.appendingPathComponent("templates")
        for name in try manager.contentsOfDirectory(atPath: templates.path) where name.hasSuffix(".mustache") {
            let text = try String(contentsOf: templates.appendingPathComponent(name), encoding: .utf8)
            try library.register(text, named: String(name.dropLast(".mustache".count)))
        }
        self.library = library
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
        self.catalogs = catalogs
        var files: [String: (String, ByteBuffer)] = [:]
        for (name, type) in [("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8")] {
            let data = try Data(contentsOf: root.appendingPathComponent("static/\(name)"))
            files[name] = (type, ByteBuffer(bytes: data))
        }
        staticFiles = files
    }

    func catalog(_ language: ConsoleLanguage) -> [String: String] { catalogs[language] ?? [:] }

    /// `template` rendered with `context`, inside the layout.
    func page(_ template: String, _ context: [String: Any], layout: [String: Any]) -> String {
        var outer = layout
        outer["body"] = library.render(context.merging(layout) { own, _ in own }, withTemplate: template) ?? ""
        return library.render(outer, withTemplate: "layout") ?? ""
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
