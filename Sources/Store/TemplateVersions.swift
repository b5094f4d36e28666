import Foundation
import GRDB

/// One version of a dynamic template (SendGrid's template versions): the
/// template sends with its active version's subject and content.
public struct TemplateVersion: Sendable, Equatable {
    /// A UUID, as SendGrid's.
    public var id: String
    /// The template's `d-…` id.
    public var templateID: String
    public var name: String
    public var subject: String
    public var html: String?
    public var text: String?
    public var active: Bool
    /// Sample data for previews (a JSON object as text, as SendGrid stores it).
    public var testData: String?
    /// `code` or `design`: only remembered, both are edited as code here.
    public var editor: String
    public var generatePlainContent: Bool
    public var updatedAt: Date

    public init(id: String = UUID().uuidString.lowercased(), templateID: String, name: String, subject: String, html: String?,
                text: String?, active: Bool, testData: String? = nil, editor: String = "code", generatePlainContent: Bool = true,
                updatedAt: Date = Date()) {
        self.id = id
        self.templateID = templateID
        self.name = name
        self.subject = subject
        self.html = html
        self.text = text
        self.active = active
        self.testData = testData
        self.editor = editor
        self.generatePlainContent = generatePlainContent
        self.updatedAt = updatedAt
    }
}

extension SQLiteStore {
    static func registerTemplateVersionMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v10-template-versions") { db in
            try db.execute(sql: """
                ALTER TABLE template ADD COLUMN display_name TEXT;
                ALTER TABLE template ADD COLUMN generation TEXT NOT NULL DEFAULT 'native';
                CREATE TABLE template_version (
                    id TEXT PRIMARY KEY NOT NULL,
                    account_id INTEGER NOT NULL,
                    template_name TEXT NOT NULL,
                    name TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    html TEXT,
                    text TEXT,
                    active INTEGER NOT NULL DEFAULT 0,
                    test_data TEXT,
                    editor TEXT NOT NULL DEFAULT 'code',
                    generate_plain INTEGER NOT NULL DEFAULT 1,
                    updated_at REAL NOT NULL,
                    FOREIGN KEY (account_id, template_name) REFERENCES template(account_id, name) ON DELETE CASCADE
                );
                CREATE INDEX template_version_template ON template_version(account_id, template_name);
                """)
        }
    }

    public func createDynamicTemplate(accountID: Int64, displayName: String) throws -> Template {
        let id = Template.newDynamicID()
        let now = Date().timeIntervalSince1970
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO template (account_id, name, subject, text, html, marketing, defaults, missing, created_at, updated_at,
                                      display_name, generation)
                VALUES (?, ?, '', NULL, NULL, 0, '{}', 'default', ?, ?, ?, 'dynamic')
                """, arguments: [accountID, id, now, now, displayName])
        }
        guard let template = try template(accountID: accountID, name: id) else { throw TemplateStoreError.notFound(id) }
        return template
    }

    public func dynamicTemplates(accountID: Int64, after: String?, limit: Int) throws -> [Template] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM template WHERE account_id = ? AND generation = 'dynamic' AND name > ? ORDER BY name LIMIT ?
                """, arguments: [accountID, after ?? "", limit]).map(SQLiteStore.template)
        }
    }

    public func renameDynamicTemplate(accountID: Int64, id: String, displayName: String) throws {
        try database.write { db in
            try db.execute(sql: """
                UPDATE template SET display_name = ?, updated_at = ? WHERE account_id = ? AND name = ? AND generation = 'dynamic'
                """, arguments: [displayName, Date().timeIntervalSince1970, accountID, id])
            if db.changesCount == 0 { throw TemplateStoreError.notFound(id) }
        }
    }

    public func templateVersions(accountID: Int64, templateID: String) throws -> [TemplateVersion] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM template_version WHERE account_id = ? AND template_name = ? ORDER BY updated_at, id
                """, arguments: [accountID, templateID]).map(SQLiteStore.version)
        }
    }

    public func templateVersion(accountID: Int64, templateID: String, id: String) throws -> TemplateVersion? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM template_version WHERE account_id = ? AND template_name = ? AND id = ?",
                             arguments: [accountID, templateID, id]).map(SQLiteStore.version)
        }
    }

    public func saveTemplateVersion(_ version: TemplateVersion, accountID: Int64) throws -> TemplateVersion {
        try database.write { db in
            guard try String.fetchOne(db, sql: "SELECT generation FROM template WHERE account_id = ? AND name = ?",
                                      arguments: [accountID, version.templateID]) == Template.Generation.dynamic.rawValue else {
                throw TemplateStoreError.notFound(version.templateID)
            }
            var version = version
            let others = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM template_version WHERE account_id = ? AND template_name = ? AND id != ?
                """, arguments: [accountID, version.templateID, version.id]) ?? 0
            if others == 0 { version.active = true }
            version.updatedAt = Date()
            try db.execute(sql: """
                INSERT INTO template_version (id, account_id, template_name, name, subject, html, text, active, test_data, editor,
                                              generate_plain, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET name = excluded.name, subject = excluded.subject, html = excluded.html,
                    text = excluded.text, active = excluded.active, test_data = excluded.test_data, editor = excluded.editor,
                    generate_plain = excluded.generate_plain, updated_at = excluded.updated_at
                    WHERE template_version.account_id = excluded.account_id AND template_version.template_name = excluded.template_name
                """, arguments: [version.id, accountID, version.templateID, version.name, version.subject, version.html, version.text,
                                 version.active, version.testData, version.editor, version.generatePlainContent,
                                 version.updatedAt.timeIntervalSince1970])
            if db.changesCount == 0 { throw TemplateStoreError.exists(version.id) }
            if version.active {
                try SQLiteStore.activate(version.id, accountID: accountID, templateID: version.templateID, db)
            } else {
                try SQLiteStore.syncActiveVersion(accountID: accountID, templateID: version.templateID, db)
            }
            return version
        }
    }

    public func activateTemplateVersion(accountID: Int64, templateID: String, id: String) throws {
        try database.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM template_version WHERE account_id = ? AND template_name = ? AND id = ?",
                                    arguments: [accountID, templateID, id]) != nil else { throw TemplateStoreError.notFound(id) }
            try SQLiteStore.activate(id, accountID: accountID, templateID: templateID, db)
        }
    }

    public func deleteTemplateVersion(accountID: Int64, templateID: String, id: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM template_version WHERE account_id = ? AND template_name = ? AND id = ?",
                           arguments: [accountID, templateID, id])
            if db.changesCount == 0 { throw TemplateStoreError.notFound(id) }
            try SQLiteStore.syncActiveVersion(accountID: accountID, templateID: templateID, db)
        }
    }

    private static func activate(_ id: String, accountID: Int64, templateID: String, _ db: Database) throws {
        try db.execute(sql: "UPDATE template_version SET active = (id = ?) WHERE account_id = ? AND template_name = ?",
                       arguments: [id, accountID, templateID])
        try syncActiveVersion(accountID: accountID, templateID: templateID, db)
    }

    /// Copies the active version's subject and content into the template (none active: nothing to send).
    private static func syncActiveVersion(accountID: Int64, templateID: String, _ db: Database) throws {
        let active = try Row.fetchOne(db, sql: """
            SELECT subject, html, text FROM template_version WHERE account_id = ? AND template_name = ? AND active = 1
            """, arguments: [accountID, templateID])
        try db.execute(sql: "UPDATE template SET subject = ?, html = ?, text = ?, updated_at = ? WHERE account_id = ? AND name = ?",
                       arguments: [active?["subject"] ?? "", active?["html"] as String?, active?["text"] as String?,
                                   Date().timeIntervalSince1970, accountID, templateID])
    }

    static func version(_ row: Row) -> TemplateVersion {
        TemplateVersion(id: row["id"], templateID: row["template_name"], name: row["name"], subject: row["subject"], html: row["html"],
                        text: row["text"], active: row["active"], testData: row["test_data"], editor: row["editor"],
                        generatePlainContent: row["generate_plain"], updatedAt: Date(timeIntervalSince1970: row["updated_at"]))
    }
}
