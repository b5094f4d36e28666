import Foundation
import PostgresNIO

extension PostgresStore: WebhookStore {
    public func createWebhook(accountID: Int64, name: String?, url: String, format: WebhookFormat, eventTypes: [String],
                              cursor: Int64) throws -> NewWebhook {
        let id = WebhookKeyMaterial.newID()
        let name = name ?? id
        let keys = try WebhookKeyMaterial(format: format, sealer: sealer)
        // Whole seconds, down: the other nodes start at their first event since this time, which must not be later than now.
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let types = try WebhookKeyMaterial.typesJSON(eventTypes)
        let created: PostgresRecord
        do {
            // With this node's position: the others start at the endpoint's creation in their own logs.
            guard let record = try pool.query("""
                WITH created AS (
                    INSERT INTO webhook (id, account_id, name, url, format, event_types, sealed_key, public_key, created_at, cursor,
                                         confirmed, confirm_token)
                    VALUES (\(id), \(accountID), \(name), \(url), \(format.rawValue), \(types), \(keys.sealedKey), \(keys.publicKey),
                            \(now), \(cursor), \(keys.confirmToken == nil), \(keys.confirmToken))
                    RETURNING *
                ), position AS (
                    INSERT INTO webhook_position (webhook_id, node, position) SELECT id, \(nodeName), cursor FROM created
                )
                SELECT * FROM created
                """).records.first else { throw WebhookStoreError.notFound(id) }
            created = record
        } catch let error as PostgresStoreError where error.isUniqueViolation(of: "webhook_account_id_name_key") {
            throw WebhookStoreError.duplicateName(name)
        }
        return NewWebhook(webhook: try PostgresStore.webhook(created), secret: keys.secret)
    }

    public func webhooks(accountID: Int64?) throws -> [WebhookEndpoint] {
        try pool.query("""
            SELECT w.*, p.position AS node_position FROM webhook w
            LEFT JOIN webhook_position p ON p.webhook_id = w.id AND p.node = \(nodeName)
            WHERE \(accountID)::bigint IS NULL OR w.account_id = \(accountID) ORDER BY w.created_at, w.id
            """).records.map(PostgresStore.webhook)
    }

    public func webhook(id: String, accountID: Int64?) throws -> WebhookEndpoint? {
        try pool.query("""
            SELECT w.*, p.position AS node_position FROM webhook w
            LEFT JOIN webhook_position p ON p.webhook_id = w.id AND p.node = \(nodeName)
            WHERE w.id = \(id) AND (\(accountID)::bigint IS NULL OR w.account_id = \(accountID))
            """).records.first.map(PostgresStore.webhook)
    }

    public func webhook(named name: String, accountID: Int64) throws -> WebhookEndpoint? {
        try pool.query("""
            SELECT w.*, p.position AS node_position FROM webhook w
            LEFT JOIN webhook_position p ON p.webhook_id = w.id AND p.node = \(nodeName)
            WHERE w.name = \(name) AND w.account_id = \(accountID)
            """).records.first.map(PostgresStore.webhook)
    }

    public func updateWebhook(id: String, accountID: Int64?, url: String?, eventTypes: [String]?, enabled: Bool?) throws -> WebhookEndpoint {
        let types = try eventTypes.map(WebhookKeyMaterial.typesJSON)
        // One statement: what is not given stays; a new URL of an SNS subscription is a new subscriber, who confirms again.
        guard let updated = try pool.query("""
            UPDATE webhook SET
                confirmed = CASE WHEN format = 'ses' AND \(url)::text IS NOT NULL AND url <> \(url) THEN FALSE ELSE confirmed END,
                confirm_token = CASE WHEN format = 'ses' AND \(url)::text IS NOT NULL AND url <> \(url)
                                     THEN \(WebhookKeyMaterial.newConfirmToken()) ELSE confirm_token END,
                url = coalesce(\(url), url),
                event_types = coalesce(\(types), event_types),
                enabled = coalesce(\(enabled), enabled),
                failing_since = CASE WHEN \(enabled) THEN NULL ELSE failing_since END,
                disabled_reason = CASE WHEN \(enabled) THEN NULL ELSE disabled_reason END
            WHERE id = \(id) AND (\(accountID)::bigint IS NULL OR account_id = \(accountID))
            RETURNING *
            """).records.first else { throw WebhookStoreError.notFound(id) }
        // As listed, with this node's position.
        return try webhook(id: try updated.decode("id"), accountID: nil) ?? PostgresStore.webhook(updated)
    }

    public func deleteWebhook(id: String, accountID: Int64?) throws {
        if try pool.query("""
            DELETE FROM webhook WHERE id = \(id) AND (\(accountID)::bigint IS NULL OR account_id = \(accountID))
            """).changes == 0 {
            throw WebhookStoreError.notFound(id)
        }
    }

    public func webhookSigningKey(id: String) throws -> WebhookSigningKey? {
        guard let found = try pool.query("SELECT format, sealed_key FROM webhook WHERE id = \(id)").records.first,
              let format = WebhookFormat(rawValue: try found.decode("format")) else { return nil }
        return try WebhookKeyMaterial.signingKey(format: format, sealedKey: try found.decode("sealed_key"), sealer: sealer)
    }

    public func webhookPosition(id: String) throws -> Int64? {
        try pool.query("""
            SELECT position FROM webhook_position WHERE webhook_id = \(id) AND node = \(nodeName)
            """).records.first?.decode("position")
    }

    /// This node's position moves; the endpoint's `cursor` stays where it was made (each node counts its own log).
    public func advanceWebhook(id: String, to cursor: Int64, succeeded: Bool) throws {
        _ = try pool.query("""
            WITH moved AS (
                INSERT INTO webhook_position (webhook_id, node, position)
                SELECT id, \(nodeName), \(cursor) FROM webhook WHERE id = \(id)
                ON CONFLICT (webhook_id, node) DO UPDATE SET position = greatest(webhook_position.position, excluded.position)
            )
            UPDATE webhook SET failing_since = CASE WHEN \(succeeded) THEN NULL ELSE failing_since END WHERE id = \(id)
            """)
    }

    @discardableResult
    public func markWebhookFailing(id: String, at time: Date) throws -> Date {
        try pool.query("""
            UPDATE webhook SET failing_since = coalesce(failing_since, \(time)) WHERE id = \(id) RETURNING failing_since
            """).records.first?.decode("failing_since") ?? time
    }

    public func disableWebhook(id: String, reason: String) throws {
        _ = try pool.query("UPDATE webhook SET enabled = FALSE, disabled_reason = \(reason) WHERE id = \(id)")
    }

    public func confirmWebhook(token: String) throws -> WebhookEndpoint? {
        guard !token.isEmpty else { return nil }
        return try pool.query("UPDATE webhook SET confirmed = TRUE WHERE confirm_token = \(token) RETURNING *").records.first
            .map(PostgresStore.webhook)
    }

    public func webhookConfirmToken(id: String) throws -> String? {
        try pool.query("SELECT confirm_token FROM webhook WHERE id = \(id) AND NOT confirmed").records.first?.decode("confirm_token")
    }

    public func recordWebhookAttempt(_ attempt: WebhookAttempt, webhookID: String, keep: Int) throws {
        try pool.transaction { transaction in
            _ = try transaction.query("""
                INSERT INTO webhook_attempt (webhook_id, at, events, first_event, last_event, status, error, duration_ms, replay, test)
                VALUES (\(webhookID), \(attempt.at), \(attempt.events), \(attempt.firstEvent), \(attempt.lastEvent), \(attempt.status),
                        \(attempt.error), \(attempt.durationMilliseconds), \(attempt.replay), \(attempt.test))
                """)
            _ = try transaction.query("""
                DELETE FROM webhook_attempt WHERE webhook_id = \(webhookID) AND id <= (
                    SELECT id FROM webhook_attempt WHERE webhook_id = \(webhookID) ORDER BY id DESC LIMIT 1 OFFSET \(max(0, keep)))
                """)
        }
    }

    public func webhookAttempts(webhookID: String, limit: Int) throws -> [WebhookAttempt] {
        try pool.query("""
            SELECT * FROM webhook_attempt WHERE webhook_id = \(webhookID) ORDER BY id DESC LIMIT \(max(0, limit))
            """).records.map { record in
            WebhookAttempt(at: try record.decode("at"), events: try record.decode("events"), firstEvent: try record.decode("first_event"),
                           lastEvent: try record.decode("last_event"), status: try record.decode("status"), error: try record.decode("error"),
                           durationMilliseconds: try record.decode("duration_ms"), replay: try record.decode("replay"),
                           test: try record.decode("test"))
        }
    }

    public func addWebhookReplay(webhookID: String, after: Int64, through: Int64) throws -> WebhookReplay {
        guard let id: Int64 = try pool.query("""
            INSERT INTO webhook_replay (webhook_id, after, through) VALUES (\(webhookID), \(after), \(through)) RETURNING id
            """).records.first?.decode("id") else { throw PostgresStoreError.missingColumn("id") }
        return WebhookReplay(id: id, webhookID: webhookID, after: after, through: through)
    }

    public func webhookReplays(webhookID: String) throws -> [WebhookReplay] {
        try pool.query("SELECT * FROM webhook_replay WHERE webhook_id = \(webhookID) ORDER BY id").records.map { record in
            WebhookReplay(id: try record.decode("id"), webhookID: try record.decode("webhook_id"), after: try record.decode("after"),
                          through: try record.decode("through"))
        }
    }

    public func advanceWebhookReplay(id: Int64, to position: Int64) throws {
        try pool.transaction { transaction in
            _ = try transaction.query("UPDATE webhook_replay SET after = greatest(after, \(position)) WHERE id = \(id)")
            _ = try transaction.query("DELETE FROM webhook_replay WHERE id = \(id) AND after >= through")
        }
    }

    static func webhook(_ record: PostgresRecord) throws -> WebhookEndpoint {
        WebhookEndpoint(id: try record.decode("id"), accountID: try record.decode("account_id"), name: try record.decode("name"),
                        url: try record.decode("url"), format: WebhookFormat(rawValue: try record.decode("format")) ?? .native,
                        eventTypes: WebhookKeyMaterial.types(try record.decode("event_types")), enabled: try record.decode("enabled"),
                        createdAt: try record.decode("created_at"),
                        // This node's position where it has one: each node counts its own log.
                        cursor: try record.row.contains("node_position") ? record.decode("node_position", as: Int64?.self) ?? record.decode("cursor")
                            : record.decode("cursor"),
                        failingSince: try record.decode("failing_since"), disabledReason: try record.decode("disabled_reason"),
                        confirmed: try record.decode("confirmed"), publicKey: try record.decode("public_key"))
    }
}

extension PostgresStore: ConfigurationSetStore {
    public func createConfigurationSet(accountID: Int64, name: String) throws {
        do {
            _ = try pool.query("INSERT INTO configuration_set (account_id, name, created_at) VALUES (\(accountID), \(name), now())")
        } catch let error as PostgresStoreError where error.isUniqueViolation(of: "configuration_set_pkey") {
            throw ConfigurationSetError.alreadyExists(name)
        }
    }

    public func configurationSets(accountID: Int64) throws -> [String] {
        try pool.query("SELECT name FROM configuration_set WHERE account_id = \(accountID) ORDER BY name").records.map { try $0.decode("name") }
    }

    public func configurationSetExists(accountID: Int64, name: String) throws -> Bool {
        try !pool.query("SELECT 1 FROM configuration_set WHERE account_id = \(accountID) AND name = \(name)").rows.isEmpty
    }

    public func deleteConfigurationSet(accountID: Int64, name: String) throws {
        if try pool.query("DELETE FROM configuration_set WHERE account_id = \(accountID) AND name = \(name)").changes == 0 {
            throw ConfigurationSetError.notFound(name)
        }
    }

    public func saveEventDestination(_ destination: EventDestination, accountID: Int64, configurationSet: String, replace: Bool) throws {
        let types = try WebhookKeyMaterial.typesJSON(destination.matchingEventTypes)
        try pool.transaction { transaction in
            guard try !transaction.query("""
                SELECT 1 FROM configuration_set WHERE account_id = \(accountID) AND name = \(configurationSet) FOR UPDATE
                """).rows.isEmpty else { throw ConfigurationSetError.notFound(configurationSet) }
            let exists = try !transaction.query("""
                SELECT 1 FROM event_destination
                WHERE account_id = \(accountID) AND configuration_set = \(configurationSet) AND name = \(destination.name)
                """).rows.isEmpty
            if exists && !replace { throw ConfigurationSetError.alreadyExists(destination.name) }
            if !exists && replace { throw ConfigurationSetError.notFound(destination.name) }
            _ = try transaction.query("""
                INSERT INTO event_destination (account_id, configuration_set, name, enabled, event_types, topic_arn)
                VALUES (\(accountID), \(configurationSet), \(destination.name), \(destination.enabled), \(types), \(destination.topicARN))
                ON CONFLICT (account_id, configuration_set, name) DO UPDATE SET enabled = excluded.enabled,
                    event_types = excluded.event_types, topic_arn = excluded.topic_arn
                """)
        }
    }

    public func eventDestinations(accountID: Int64, configurationSet: String) throws -> [EventDestination] {
        try pool.query("""
            SELECT * FROM event_destination WHERE account_id = \(accountID) AND configuration_set = \(configurationSet) ORDER BY name
            """).records.map(PostgresStore.eventDestination)
    }

    public func eventDestinations(accountID: Int64) throws -> [String: [EventDestination]] {
        var result: [String: [EventDestination]] = [:]
        for record in try pool.query("SELECT * FROM event_destination WHERE account_id = \(accountID) ORDER BY name").records {
            result[try record.decode("configuration_set"), default: []].append(try PostgresStore.eventDestination(record))
        }
        return result
    }

    public func deleteEventDestination(accountID: Int64, configurationSet: String, name: String) throws {
        if try pool.query("""
            DELETE FROM event_destination WHERE account_id = \(accountID) AND configuration_set = \(configurationSet) AND name = \(name)
            """).changes == 0 {
            throw ConfigurationSetError.notFound(name)
        }
    }

    public func trackingDefaults(accountID: Int64) throws -> (opens: Bool, clicks: Bool) {
        guard let found = try pool.query("SELECT track_opens, track_clicks FROM account WHERE id = \(accountID)").records.first else {
            return (false, false)
        }
        return (try found.decode("track_opens"), try found.decode("track_clicks"))
    }

    public func setTrackingDefaults(accountID: Int64, opens: Bool, clicks: Bool) throws {
        _ = try pool.query("UPDATE account SET track_opens = \(opens), track_clicks = \(clicks) WHERE id = \(accountID)")
    }

    static func eventDestination(_ record: PostgresRecord) throws -> EventDestination {
        EventDestination(name: try record.decode("name"), enabled: try record.decode("enabled"),
                         matchingEventTypes: WebhookKeyMaterial.types(try record.decode("event_types")),
                         topicARN: try record.decode("topic_arn"))
    }
}
