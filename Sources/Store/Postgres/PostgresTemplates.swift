import Foundation
import PostgresNIO

extension PostgresStore: TemplateStore {
    public func templates(accountID: Int64, after: String?, limit: Int) throws -> [Template] {
        try pool.query("""
            SELECT * FROM template WHERE account_id = \(accountID) AND name > \(after ?? "") ORDER BY name LIMIT \(max(0, limit))
            """).records.map(PostgresStore.template)
    }

    public func template(accountID: Int64, name: String) throws -> Template? {
        try pool.query("SELECT * FROM template WHERE account_id = \(accountID) AND name = \(name)").records.first.map(PostgresStore.template)
    }

    public func saveTemplate(_ template: Template, accountID: Int64, replace: Bool) throws {
        guard AccountNames.isValid(template.name) else { throw TemplateStoreError.invalidName(template.name) }
        let defaults = try template.defaultsJSON
        let now = Date()
        try pool.transaction { transaction in
            // The account's row, locked, serialises this with another node's save of the same name: a lock on
            // a template row that does not exist yet would lock nothing.
            _ = try transaction.query("SELECT id FROM account WHERE id = \(accountID) FOR UPDATE")
            let exists = try !transaction.query("""
                SELECT 1 FROM template WHERE account_id = \(accountID) AND name = \(template.name)
                """).rows.isEmpty
            if replace && !exists { throw TemplateStoreError.notFound(template.name) }
            if !replace && exists { throw TemplateStoreError.exists(template.name) }
            _ = try transaction.query("""
                INSERT INTO template (account_id, name, subject, text, html, marketing, defaults, missing, created_at, updated_at)
                VALUES (\(accountID), \(template.name), \(template.subject), \(template.text), \(template.html), \(template.marketing),
                        \(defaults), \(template.missing.rawValue), \(now), \(now))
                ON CONFLICT (account_id, name) DO UPDATE SET subject = excluded.subject, text = excluded.text,
                    html = excluded.html, marketing = excluded.marketing, defaults = excluded.defaults,
                    missing = excluded.missing, updated_at = excluded.updated_at
                """)
        }
    }

    public func deleteTemplate(accountID: Int64, name: String) throws {
        if try pool.query("DELETE FROM template WHERE account_id = \(accountID) AND name = \(name)").changes == 0 {
            throw TemplateStoreError.notFound(name)
        }
    }

    public func createDynamicTemplate(accountID: Int64, displayName: String) throws -> Template {
        let id = Template.newDynamicID()
        let now = Date()
        guard let created = try pool.query("""
            INSERT INTO template (account_id, name, subject, marketing, defaults, missing, created_at, updated_at, display_name, generation)
            VALUES (\(accountID), \(id), '', FALSE, '{}', 'default', \(now), \(now), \(displayName), 'dynamic') RETURNING *
            """).records.first else { throw TemplateStoreError.notFound(id) }
        return try PostgresStore.template(created)
    }

    public func dynamicTemplates(accountID: Int64, after: String?, limit: Int) throws -> [Template] {
        try pool.query("""
            SELECT * FROM template WHERE account_id = \(accountID) AND generation = 'dynamic' AND name > \(after ?? "")
            ORDER BY name LIMIT \(max(0, limit))
            """).records.map(PostgresStore.template)
    }

    public func renameDynamicTemplate(accountID: Int64, id: String, displayName: String) throws {
        if try pool.query("""
            UPDATE template SET display_name = \(displayName), updated_at = now()
            WHERE account_id = \(accountID) AND name = \(id) AND generation = 'dynamic'
            """).changes == 0 {
            throw TemplateStoreError.notFound(id)
        }
    }

    public func templateVersions(accountID: Int64, templateID: String) throws -> [TemplateVersion] {
        try pool.query("""
            SELECT * FROM template_version WHERE account_id = \(accountID) AND template_name = \(templateID) ORDER BY updated_at, id
            """).records.map(PostgresStore.version)
    }

    public func templateVersion(accountID: Int64, templateID: String, id: String) throws -> TemplateVersion? {
        try pool.query("""
            SELECT * FROM template_version WHERE account_id = \(accountID) AND template_name = \(templateID) AND id = \(id)
            """).records.first.map(PostgresStore.version)
    }

    public func saveTemplateVersion(_ version: TemplateVersion, accountID: Int64) throws -> TemplateVersion {
        try pool.transaction { transaction in
            // The template's row, locked, serialises the versions' writers (which one is active).
            guard try transaction.query("""
                SELECT generation FROM template WHERE account_id = \(accountID) AND name = \(version.templateID) FOR UPDATE
                """).records.first?.decode("generation", as: String.self) == Template.Generation.dynamic.rawValue else {
                throw TemplateStoreError.notFound(version.templateID)
            }
            var version = version
            let others: Int = try transaction.query("""
                SELECT count(*)::bigint AS others FROM template_version
                WHERE account_id = \(accountID) AND template_name = \(version.templateID) AND id <> \(version.id)
                """).records.first?.decode("others") ?? 0
            if others == 0 { version.active = true }
            version.updatedAt = StoredTime(Date()).date
            let saved = try transaction.query("""
                INSERT INTO template_version (id, account_id, template_name, name, subject, html, text, active, test_data, editor,
                                              generate_plain, updated_at)
                VALUES (\(version.id), \(accountID), \(version.templateID), \(version.name), \(version.subject), \(version.html),
                        \(version.text), \(version.active), \(version.testData), \(version.editor), \(version.generatePlainContent),
                        \(version.updatedAt))
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, subject = excluded.subject, html = excluded.html,
                    text = excluded.text, active = excluded.active, test_data = excluded.test_data, editor = excluded.editor,
                    generate_plain = excluded.generate_plain, updated_at = excluded.updated_at
                    WHERE template_version.account_id = excluded.account_id AND template_version.template_name = excluded.template_name
                """)
            // A version id of another template or account is not taken over.
            if saved.changes == 0 { throw TemplateStoreError.exists(version.id) }
            if version.active {
                try PostgresStore.activate(version.id, accountID: accountID, templateID: version.templateID, transaction)
            } else {
                try PostgresStore.syncActiveVersion(accountID: accountID, templateID: version.templateID, transaction)
            }
            return version
        }
    }

    public func activateTemplateVersion(accountID: Int64, templateID: String, id: String) throws {
        try pool.transaction { transaction in
            guard try !transaction.query("""
                SELECT 1 FROM template_version WHERE account_id = \(accountID) AND template_name = \(templateID) AND id = \(id) FOR UPDATE
                """).rows.isEmpty else { throw TemplateStoreError.notFound(id) }
            try PostgresStore.activate(id, accountID: accountID, templateID: templateID, transaction)
        }
    }

    public func deleteTemplateVersion(accountID: Int64, templateID: String, id: String) throws {
        try pool.transaction { transaction in
            if try transaction.query("""
                DELETE FROM template_version WHERE account_id = \(accountID) AND template_name = \(templateID) AND id = \(id)
                """).changes == 0 {
                throw TemplateStoreError.notFound(id)
            }
            try PostgresStore.syncActiveVersion(accountID: accountID, templateID: templateID, transaction)
        }
    }

    private static func activate(_ id: String, accountID: Int64, templateID: String, _ transaction: PostgresTransaction) throws {
        _ = try transaction.query("""
            UPDATE template_version SET active = (id = \(id)) WHERE account_id = \(accountID) AND template_name = \(templateID)
            """)
        try syncActiveVersion(accountID: accountID, templateID: templateID, transaction)
    }

    /// Copies the active version's subject and content into the template (none active: nothing to send).
    private static func syncActiveVersion(accountID: Int64, templateID: String, _ transaction: PostgresTransaction) throws {
        _ = try transaction.query("""
            UPDATE template t SET subject = coalesce(v.subject, ''), html = v.html, text = v.text, updated_at = now()
            FROM (SELECT 1) AS one
            LEFT JOIN template_version v ON v.account_id = \(accountID) AND v.template_name = \(templateID) AND v.active
            WHERE t.account_id = \(accountID) AND t.name = \(templateID)
            """)
    }

    static func template(_ record: PostgresRecord) throws -> Template {
        var template = Template(name: try record.decode("name"), subject: try record.decode("subject"), text: try record.decode("text"),
                                html: try record.decode("html"), marketing: try record.decode("marketing"),
                                defaults: Template.defaults(try record.decode("defaults")),
                                missing: Template.MissingVariables(rawValue: try record.decode("missing")) ?? .error,
                                createdAt: try record.decode("created_at"), updatedAt: try record.decode("updated_at"))
        template.displayName = try record.decode("display_name")
        template.generation = Template.Generation(rawValue: try record.decode("generation")) ?? .native
        return template
    }

    static func version(_ record: PostgresRecord) throws -> TemplateVersion {
        TemplateVersion(id: try record.decode("id"), templateID: try record.decode("template_name"), name: try record.decode("name"),
                        subject: try record.decode("subject"), html: try record.decode("html"), text: try record.decode("text"),
                        active: try record.decode("active"), testData: try record.decode("test_data"), editor: try record.decode("editor"),
                        generatePlainContent: try record.decode("generate_plain"), updatedAt: try record.decode("updated_at"))
    }
}
