import Foundation
import GRDB

/// A stored message template: Mustache text for the subject, the text part
/// and the HTML part, rendered per recipient with that recipient's data.
public struct Template: Sendable, Codable, Equatable {
    /// What to do when the data lacks a variable the template uses.
    public enum MissingVariables: String, Sendable, Codable {
        /// Refuse to render (the message is not sent).
        case error
        /// Use `defaults`, then the empty string.
        case `default`
    }

    /// Where it was made: Hikyaku's own API, or SendGrid's dynamic templates (versions; `d-` ids).
    public enum Generation: String, Sendable, Codable {
        case native
        case dynamic
    }

    /// The key it is used by (`template_id`); a dynamic template's is its `d-…` id.
    public var name: String
    /// A dynamic template's free-text name (SendGrid's `name`).
    public var displayName: String? = nil
    public var generation: Generation = .native
    public var subject: String
    public var text: String?
    public var html: String?
    /// Messages from this template are marketing mail.
    public var marketing: Bool
    /// Values used where the data has none (a JSON object).
    public var defaults: [String: JSONValue]
    public var missing: MissingVariables
    public var createdAt: Date
    public var updatedAt: Date

    public init(name: String, subject: String, text: String?, html: String?, marketing: Bool = false,
                defaults: [String: JSONValue] = [:], missing: MissingVariables = .error,
                createdAt: Date = Date(), updatedAt: Date = Date()) {
        self.name = name
        self.subject = subject
        self.text = text
        self.html = html
        self.marketing = marketing
        self.defaults = defaults
        self.missing = missing
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public enum TemplateStoreError: Error, Equatable {
    case exists(String)
    case notFound(String)
    case invalidName(String)
}

/// Templates, native and dynamic with their versions: one capability of the
/// store, with an implementation per engine (`SQLiteStore`, `PostgresStore`).
/// Dynamic templates are templates (named by their `d-…` id) whose subject
/// and content are those of their active version, copied there whenever the
/// active version changes: the senders (every door's `template_id`) read
/// templates only, never versions.
public protocol TemplateStore: Sendable {
    /// By name, after `after`.
    func templates(accountID: Int64, after: String?, limit: Int) throws -> [Template]
    func template(accountID: Int64, name: String) throws -> Template?
    /// Creates (`replace` false: fails if it exists) or replaces (fails if it does not).
    func saveTemplate(_ template: Template, accountID: Int64, replace: Bool) throws
    func deleteTemplate(accountID: Int64, name: String) throws
    /// A new dynamic template without versions (it cannot send until one is active).
    func createDynamicTemplate(accountID: Int64, displayName: String) throws -> Template
    func dynamicTemplates(accountID: Int64, after: String?, limit: Int) throws -> [Template]
    func renameDynamicTemplate(accountID: Int64, id: String, displayName: String) throws
    /// A dynamic template's versions, oldest first.
    func templateVersions(accountID: Int64, templateID: String) throws -> [TemplateVersion]
    func templateVersion(accountID: Int64, templateID: String, id: String) throws -> TemplateVersion?
    /// Adds or replaces a version of a dynamic template of the account. A
    /// template's first version is active whatever it says; an active one
    /// makes the others inactive and becomes what the template sends.
    func saveTemplateVersion(_ version: TemplateVersion, accountID: Int64) throws -> TemplateVersion
    func activateTemplateVersion(accountID: Int64, templateID: String, id: String) throws
    /// Deleting the active version leaves the template with nothing to send until another is activated.
    func deleteTemplateVersion(accountID: Int64, templateID: String, id: String) throws
}

extension TemplateStore {
    public func templates(accountID: Int64, after: String? = nil, limit: Int = 100) throws -> [Template] {
        try templates(accountID: accountID, after: after, limit: limit)
    }

    public func dynamicTemplates(accountID: Int64, after: String? = nil, limit: Int = 200) throws -> [Template] {
        try dynamicTemplates(accountID: accountID, after: after, limit: limit)
    }
}

extension Template {
    /// A new dynamic template's id: `d-` and 32 hex digits, as SendGrid's.
    static func newDynamicID() -> String {
        "d-" + CredentialGenerator.random(32, from: Array("0123456789abcdef"))
    }

    /// `defaults` as stored: a JSON object's text.
    var defaultsJSON: String {
        get throws { String(decoding: try JSONEncoder().encode(defaults), as: UTF8.self) }
    }

    /// Stored defaults back; unreadable ones (none are written) as none.
    static func defaults(_ json: String?) -> [String: JSONValue] {
        json.flatMap { try? JSONDecoder().decode([String: JSONValue].self, from: Data($0.utf8)) } ?? [:]
    }
}

extension SQLiteStore: TemplateStore {
    public func templates(accountID: Int64, after: String?, limit: Int) throws -> [Template] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM template WHERE account_id = ? AND name > ? ORDER BY name LIMIT ?",
                             arguments: [accountID, after ?? "", limit]).map(SQLiteStore.template)
        }
    }

    public func template(accountID: Int64, name: String) throws -> Template? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM template WHERE account_id = ? AND name = ?", arguments: [accountID, name])
                .map(SQLiteStore.template)
        }
    }

    public func saveTemplate(_ template: Template, accountID: Int64, replace: Bool) throws {
        guard AccountNames.isValid(template.name) else { throw TemplateStoreError.invalidName(template.name) }
        let defaults = try template.defaultsJSON
        let now = Date().timeIntervalSince1970
        try database.write { db in
            let exists = try Bool.fetchOne(db, sql: "SELECT 1 FROM template WHERE account_id = ? AND name = ?",
                                           arguments: [accountID, template.name]) != nil
            if replace && !exists { throw TemplateStoreError.notFound(template.name) }
            if !replace && exists { throw TemplateStoreError.exists(template.name) }
            try db.execute(sql: """
                INSERT INTO template (account_id, name, subject, text, html, marketing, defaults, missing, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(account_id, name) DO UPDATE SET subject = excluded.subject, text = excluded.text,
                    html = excluded.html, marketing = excluded.marketing, defaults = excluded.defaults,
                    missing = excluded.missing, updated_at = excluded.updated_at
                """, arguments: [accountID, template.name, template.subject, template.text, template.html, template.marketing,
                                 defaults, template.missing.rawValue, now, now])
        }
    }

    public func deleteTemplate(accountID: Int64, name: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM template WHERE account_id = ? AND name = ?", arguments: [accountID, name])
            if db.changesCount == 0 { throw TemplateStoreError.notFound(name) }
        }
    }

    static func template(_ row: Row) throws -> Template {
        let defaults = Template.defaults(row["defaults"])
        var template = Template(name: row["name"], subject: row["subject"], text: row["text"], html: row["html"],
                                marketing: row["marketing"], defaults: defaults,
                                missing: Template.MissingVariables(rawValue: row["missing"]) ?? .error,
                                createdAt: Date(timeIntervalSince1970: row["created_at"]),
                                updatedAt: Date(timeIntervalSince1970: row["updated_at"]))
        template.displayName = row["display_name"]
        template.generation = (row["generation"] as String?).flatMap(Template.Generation.init(rawValue:)) ?? .native
        return template
    }
}

/// Any JSON value: template data and defaults are free-form.
public enum JSONValue: Sendable, Codable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        // Strings first: template data is mostly strings, and each failed try costs an error.
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// The value as plain Swift values (String, Double, Bool, arrays, dictionaries; NSNull for null), for JSON responses.
    public var plain: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let value): return value
        case .number(let value): return value
        case .string(let value): return value
        case .array(let value): return value.map(\.plain)
        case .object(let value): return value.mapValues(\.plain)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
