import Crypto
import Foundation
import GRDB

/// How a webhook endpoint's requests are shaped and signed.
public enum WebhookFormat: String, Sendable, Codable, CaseIterable {
    /// JSON batches signed per the Standard Webhooks specification (`whsec_` secret).
    case native
    /// SendGrid's Event Webhook: a JSON array, ECDSA P-256 signature.
    case sendgrid
    /// SES event JSON inside SNS HTTP notifications (an SNS "topic").
    case ses
}

/// An account's webhook endpoint and how far it has been sent.
public struct WebhookEndpoint: Sendable, Codable, Equatable {
    public var id: String
    public var accountID: Int64
    /// Unique per account; for the `ses` format the topic's name in its ARN.
    public var name: String
    public var url: String
    public var format: WebhookFormat
    /// Event types wanted (the log's names); empty: every type.
    public var eventTypes: [String]
    public var enabled: Bool
    public var createdAt: Date
    /// The last event id sent (or skipped as not wanted): the outbox position.
    public var cursor: Int64
    /// When requests started failing without a success since; nil: healthy.
    public var failingSince: Date?
    /// Why the server disabled it (it kept failing); nil when enabled or disabled by a user.
    public var disabledReason: String?
    /// For `ses`: the subscription was confirmed (SubscribeURL visited).
    public var confirmed: Bool
    /// For `sendgrid`: the verification key (base64 DER SubjectPublicKeyInfo), as SendGrid shows it.
    public var publicKey: String?

    /// The SNS topic ARN that names an `ses` endpoint in configuration-set event destinations.
    public var topicARN: String { WebhookEndpoint.topicARN(accountID: accountID, name: name) }

    public static func topicARN(accountID: Int64, name: String) -> String { "arn:aws:sns:hikyaku:\(accountID):\(name)" }

    /// The account and topic name of an ARN made by `topicARN`.
    public static func parseTopicARN(_ arn: String) -> (accountID: Int64, name: String)? {
        let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn", parts[2] == "sns", let account = Int64(parts[4]) else { return nil }
        return (account, String(parts[5]))
    }

    public func wants(_ type: String) -> Bool { eventTypes.isEmpty || eventTypes.contains(type) }
}

/// Returned once at creation: the secret is not shown again.
public struct NewWebhook: Sendable, Codable {
    public var webhook: WebhookEndpoint
    /// `whsec_…` for the native format; nil for the others (SendGrid's is the public key, SNS's the certificate).
    public var secret: String?
}

/// What signs an endpoint's requests.
public enum WebhookSigningKey: Sendable {
    case hmac(SymmetricKey)
    case ecdsa(P256.Signing.PrivateKey)
    /// Signed with the server's SNS key (`SNSSigner`).
    case sns
}

/// One request to an endpoint and how it went, for `GET /v1/webhooks/{id}/deliveries`.
public struct WebhookAttempt: Sendable, Codable, Equatable {
    public var at: Date
    public var events: Int
    public var firstEvent: Int64
    public var lastEvent: Int64
    /// The HTTP status; nil when no response came (refused, timed out, unreachable).
    public var status: Int?
    public var error: String?
    public var durationMilliseconds: Int
    public var replay: Bool
    public var test: Bool

    public init(at: Date, events: Int, firstEvent: Int64, lastEvent: Int64, status: Int?, error: String?, durationMilliseconds: Int,
                replay: Bool = false, test: Bool = false) {
        self.at = at
        self.events = events
        self.firstEvent = firstEvent
        self.lastEvent = lastEvent
        self.status = status
        self.error = error
        self.durationMilliseconds = durationMilliseconds
        self.replay = replay
        self.test = test
    }

    public var succeeded: Bool { status.map { (200..<300).contains($0) } ?? false }
}

/// Events of a past range to send again, without moving the endpoint's cursor.
public struct WebhookReplay: Sendable, Codable, Equatable {
    public var id: Int64
    public var webhookID: String
    /// Send events with ids in `after+1 ... through`.
    public var after: Int64
    public var through: Int64
}

public enum WebhookStoreError: Error, Equatable, CustomStringConvertible {
    case notFound(String)
    case duplicateName(String)

    public var description: String {
        switch self {
        case .notFound(let id): return "no webhook \(id)"
        case .duplicateName(let name): return "a webhook named \(name) already exists"
        }
    }
}

/// Webhook endpoints, how far each has been sent, its recent requests and
/// pending replays: one capability of the store, with an implementation per
/// engine (`SQLiteStore`, `PostgresStore`). Signing keys are sealed under
/// the node's `secrets.key`.
public protocol WebhookStore: Sendable {
    /// Creates an endpoint that starts after event `cursor` (the log's newest:
    /// it hears of what happens from now on). The native secret is returned only here.
    func createWebhook(accountID: Int64, name: String?, url: String, format: WebhookFormat, eventTypes: [String],
                       cursor: Int64) throws -> NewWebhook
    /// Endpoints of one account, or of all with nil; oldest first.
    func webhooks(accountID: Int64?) throws -> [WebhookEndpoint]
    /// One endpoint of an account (another account's is nil, as one that does not exist); any account's with nil.
    func webhook(id: String, accountID: Int64?) throws -> WebhookEndpoint?
    func webhook(named name: String, accountID: Int64) throws -> WebhookEndpoint?
    /// Changes what is given. Enabling clears the failure record, so the
    /// endpoint starts again where it stopped (its events waited on disk).
    /// A new URL of an SNS subscription must be confirmed again.
    func updateWebhook(id: String, accountID: Int64?, url: String?, eventTypes: [String]?, enabled: Bool?) throws -> WebhookEndpoint
    func deleteWebhook(id: String, accountID: Int64?) throws
    /// The key that signs an endpoint's requests, unsealed.
    func webhookSigningKey(id: String) throws -> WebhookSigningKey?
    /// The endpoint has everything up to `cursor` (delivered, or not wanted):
    /// it moves forward only, and a success ends a failure streak.
    func advanceWebhook(id: String, to cursor: Int64, succeeded: Bool) throws
    /// Where this node stands in its own log for the endpoint. On a node that is the whole service it is the
    /// endpoint's `cursor`. In a cluster each node numbers its own log's events and keeps its own position:
    /// nil until this node first sends the endpoint anything (it then starts at the endpoint's creation).
    func webhookPosition(id: String) throws -> Int64?
    /// Notes a failed request: the streak starts now if none is running.
    /// Returns when the streak started.
    @discardableResult
    func markWebhookFailing(id: String, at time: Date) throws -> Date
    /// Disabled by the server after failing too long; its events keep waiting.
    func disableWebhook(id: String, reason: String) throws
    /// An SNS subscription confirmed through its SubscribeURL; the endpoint, or nil for an unknown token.
    func confirmWebhook(token: String) throws -> WebhookEndpoint?
    /// The token the SubscriptionConfirmation carries, until confirmed.
    func webhookConfirmToken(id: String) throws -> String?
    /// Records a request; only the newest `keep` of an endpoint are kept.
    func recordWebhookAttempt(_ attempt: WebhookAttempt, webhookID: String, keep: Int) throws
    /// The newest requests first.
    func webhookAttempts(webhookID: String, limit: Int) throws -> [WebhookAttempt]
    func addWebhookReplay(webhookID: String, after: Int64, through: Int64) throws -> WebhookReplay
    /// Oldest first.
    func webhookReplays(webhookID: String) throws -> [WebhookReplay]
    /// A replay sent up to `position`; finished (removed) once past its end.
    func advanceWebhookReplay(id: Int64, to position: Int64) throws
}

extension WebhookStore {
    public func webhooks() throws -> [WebhookEndpoint] { try webhooks(accountID: nil) }

    public func updateWebhook(id: String, accountID: Int64?, url: String? = nil, eventTypes: [String]? = nil,
                              enabled: Bool? = nil) throws -> WebhookEndpoint {
        try updateWebhook(id: id, accountID: accountID, url: url, eventTypes: eventTypes, enabled: enabled)
    }

    @discardableResult
    public func markWebhookFailing(id: String) throws -> Date { try markWebhookFailing(id: id, at: Date()) }

    public func recordWebhookAttempt(_ attempt: WebhookAttempt, webhookID: String) throws {
        try recordWebhookAttempt(attempt, webhookID: webhookID, keep: 500)
    }
}

/// An endpoint's key material as made at creation: what both engines store.
struct WebhookKeyMaterial {
    /// `whsec_…`, shown once (native only).
    var secret: String?
    var sealedKey: Data?
    /// The verification key (SendGrid only).
    var publicKey: String?
    /// The token an SNS subscription confirms with (SES only); nil: confirmed from the start.
    var confirmToken: String?

    init(format: WebhookFormat, sealer: SecretSealer) throws {
        switch format {
        case .native:
            let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
            secret = "whsec_" + bytes.base64EncodedString()
            sealedKey = try sealer.seal(bytes.base64EncodedString())
        case .sendgrid:
            let key = P256.Signing.PrivateKey()
            sealedKey = try sealer.seal(key.rawRepresentation.base64EncodedString())
            publicKey = key.publicKey.derRepresentation.base64EncodedString()
        case .ses:
            // An SNS subscription waits for its confirmation; the others start at once.
            confirmToken = WebhookKeyMaterial.newConfirmToken()
        }
    }

    static func newID() -> String { "wh_" + CredentialGenerator.random(20, from: CredentialGenerator.lowerAlphabet) }

    static func newConfirmToken() -> String { CredentialGenerator.random(32, from: CredentialGenerator.lowerAlphabet) }

    /// The signing key from the stored format and sealed key.
    static func signingKey(format: WebhookFormat, sealedKey: Data?, sealer: SecretSealer) throws -> WebhookSigningKey? {
        guard format != .ses else { return .sns }
        guard let sealedKey, let raw = Data(base64Encoded: try sealer.open(sealedKey)) else { return nil }
        switch format {
        case .native: return .hmac(SymmetricKey(data: raw))
        case .sendgrid: return .ecdsa(try P256.Signing.PrivateKey(rawRepresentation: raw))
        case .ses: return .sns
        }
    }

    /// Event types as stored: a JSON array's text.
    static func typesJSON(_ types: [String]) throws -> String { String(decoding: try JSONEncoder().encode(types), as: UTF8.self) }

    static func types(_ json: String) -> [String] { (try? JSONDecoder().decode([String].self, from: Data(json.utf8))) ?? [] }
}

extension SQLiteStore: WebhookStore {
    static func registerWebhookMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v8-webhooks") { db in
            // Webhooks.swift: endpoints, their recent requests and pending replays;
            // SES configuration sets and their event destinations; per-account tracking.
            try db.execute(sql: """
                CREATE TABLE webhook (
                    id TEXT PRIMARY KEY NOT NULL,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    url TEXT NOT NULL,
                    format TEXT NOT NULL,
                    event_types TEXT NOT NULL,
                    enabled INTEGER NOT NULL DEFAULT 1,
                    sealed_key BLOB,
                    public_key TEXT,
                    created_at REAL NOT NULL,
                    cursor INTEGER NOT NULL,
                    failing_since REAL,
                    disabled_reason TEXT,
                    confirmed INTEGER NOT NULL DEFAULT 1,
                    confirm_token TEXT,
                    UNIQUE (account_id, name)
                );
                CREATE TABLE webhook_attempt (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    webhook_id TEXT NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
                    at REAL NOT NULL,
                    events INTEGER NOT NULL,
                    first_event INTEGER NOT NULL,
                    last_event INTEGER NOT NULL,
                    status INTEGER,
                    error TEXT,
                    duration_ms INTEGER NOT NULL,
                    replay INTEGER NOT NULL DEFAULT 0,
                    test INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX webhook_attempt_webhook ON webhook_attempt(webhook_id, id);
                CREATE TABLE webhook_replay (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    webhook_id TEXT NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
                    after INTEGER NOT NULL,
                    through INTEGER NOT NULL
                );
                CREATE TABLE configuration_set (
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    PRIMARY KEY (account_id, name)
                );
                CREATE TABLE event_destination (
                    account_id INTEGER NOT NULL,
                    configuration_set TEXT NOT NULL,
                    name TEXT NOT NULL,
                    enabled INTEGER NOT NULL,
                    event_types TEXT NOT NULL,
                    topic_arn TEXT NOT NULL,
                    PRIMARY KEY (account_id, configuration_set, name),
                    FOREIGN KEY (account_id, configuration_set) REFERENCES configuration_set(account_id, name) ON DELETE CASCADE
                );
                ALTER TABLE account ADD COLUMN track_opens INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE account ADD COLUMN track_clicks INTEGER NOT NULL DEFAULT 0;
                """)
        }
    }

    // MARK: Endpoints

    public func createWebhook(accountID: Int64, name: String?, url: String, format: WebhookFormat, eventTypes: [String],
                              cursor: Int64) throws -> NewWebhook {
        let id = WebhookKeyMaterial.newID()
        let name = name ?? id
        let keys = try WebhookKeyMaterial(format: format, sealer: sealer)
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded())
        let types = try WebhookKeyMaterial.typesJSON(eventTypes)
        try database.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM webhook WHERE account_id = ? AND name = ?", arguments: [accountID, name]) == true {
                throw WebhookStoreError.duplicateName(name)
            }
            try db.execute(sql: """
                INSERT INTO webhook (id, account_id, name, url, format, event_types, sealed_key, public_key, created_at, cursor,
                                     confirmed, confirm_token)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, accountID, name, url, format.rawValue, types, keys.sealedKey, keys.publicKey, now.timeIntervalSince1970,
                                 cursor, keys.confirmToken == nil, keys.confirmToken])
        }
        guard let webhook = try webhook(id: id, accountID: accountID) else { throw WebhookStoreError.notFound(id) }
        return NewWebhook(webhook: webhook, secret: keys.secret)
    }

    public func webhooks(accountID: Int64?) throws -> [WebhookEndpoint] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook WHERE ? IS NULL OR account_id = ? ORDER BY created_at, id",
                             arguments: [accountID, accountID]).map(SQLiteStore.webhook)
        }
    }

    public func webhook(id: String, accountID: Int64?) throws -> WebhookEndpoint? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM webhook WHERE id = ? AND (? IS NULL OR account_id = ?)",
                             arguments: [id, accountID, accountID]).map(SQLiteStore.webhook)
        }
    }

    public func webhook(named name: String, accountID: Int64) throws -> WebhookEndpoint? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM webhook WHERE name = ? AND account_id = ?", arguments: [name, accountID])
                .map(SQLiteStore.webhook)
        }
    }

    public func updateWebhook(id: String, accountID: Int64?, url: String?, eventTypes: [String]?,
                              enabled: Bool?) throws -> WebhookEndpoint {
        try database.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM webhook WHERE id = ? AND (? IS NULL OR account_id = ?)",
                                    arguments: [id, accountID, accountID]) == true else { throw WebhookStoreError.notFound(id) }
            if let url {
                // A new URL of an SNS subscription is a new subscriber: it confirms again.
                try db.execute(sql: """
                    UPDATE webhook SET url = ?,
                        confirmed = CASE WHEN format = 'ses' AND url != ? THEN 0 ELSE confirmed END,
                        confirm_token = CASE WHEN format = 'ses' AND url != ? THEN ? ELSE confirm_token END
                    WHERE id = ?
                    """, arguments: [url, url, url, WebhookKeyMaterial.newConfirmToken(), id])
            }
            if let eventTypes {
                try db.execute(sql: "UPDATE webhook SET event_types = ? WHERE id = ?",
                               arguments: [try WebhookKeyMaterial.typesJSON(eventTypes), id])
            }
            if let enabled {
                try db.execute(sql: """
                    UPDATE webhook SET enabled = ?, failing_since = CASE WHEN ? THEN NULL ELSE failing_since END,
                                       disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END WHERE id = ?
                    """, arguments: [enabled, enabled, enabled, id])
            }
        }
        guard let webhook = try webhook(id: id, accountID: accountID) else { throw WebhookStoreError.notFound(id) }
        return webhook
    }

    public func deleteWebhook(id: String, accountID: Int64?) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM webhook WHERE id = ? AND (? IS NULL OR account_id = ?)", arguments: [id, accountID, accountID])
            if db.changesCount == 0 { throw WebhookStoreError.notFound(id) }
        }
    }

    public func webhookSigningKey(id: String) throws -> WebhookSigningKey? {
        let row = try database.read { db in
            try Row.fetchOne(db, sql: "SELECT format, sealed_key FROM webhook WHERE id = ?", arguments: [id])
        }
        guard let row, let format = WebhookFormat(rawValue: row["format"]) else { return nil }
        return try WebhookKeyMaterial.signingKey(format: format, sealedKey: row["sealed_key"], sealer: sealer)
    }

    // MARK: Progress

    public func webhookPosition(id: String) throws -> Int64? {
        try database.read { db in try Int64.fetchOne(db, sql: "SELECT cursor FROM webhook WHERE id = ?", arguments: [id]) }
    }

    public func advanceWebhook(id: String, to cursor: Int64, succeeded: Bool) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE webhook SET cursor = MAX(cursor, ?) WHERE id = ?", arguments: [cursor, id])
            if succeeded { try db.execute(sql: "UPDATE webhook SET failing_since = NULL WHERE id = ?", arguments: [id]) }
        }
    }

    @discardableResult
    public func markWebhookFailing(id: String, at time: Date) throws -> Date {
        try database.write { db in
            try db.execute(sql: "UPDATE webhook SET failing_since = COALESCE(failing_since, ?) WHERE id = ?",
                           arguments: [time.timeIntervalSince1970, id])
            let since = try Double.fetchOne(db, sql: "SELECT failing_since FROM webhook WHERE id = ?", arguments: [id])
            return since.map(Date.init(timeIntervalSince1970:)) ?? time
        }
    }

    public func disableWebhook(id: String, reason: String) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE webhook SET enabled = 0, disabled_reason = ? WHERE id = ?", arguments: [reason, id])
        }
    }

    public func confirmWebhook(token: String) throws -> WebhookEndpoint? {
        guard !token.isEmpty else { return nil }
        let id: String? = try database.write { db in
            guard let id = try String.fetchOne(db, sql: "SELECT id FROM webhook WHERE confirm_token = ?", arguments: [token]) else {
                return nil
            }
            try db.execute(sql: "UPDATE webhook SET confirmed = 1 WHERE id = ?", arguments: [id])
            return id
        }
        return try id.flatMap { try webhook(id: $0, accountID: nil) }
    }

    public func webhookConfirmToken(id: String) throws -> String? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT confirm_token FROM webhook WHERE id = ? AND confirmed = 0", arguments: [id])
        }
    }

    // MARK: Attempts and replays

    public func recordWebhookAttempt(_ attempt: WebhookAttempt, webhookID: String, keep: Int) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO webhook_attempt (webhook_id, at, events, first_event, last_event, status, error, duration_ms, replay, test)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [webhookID, attempt.at.timeIntervalSince1970, attempt.events, attempt.firstEvent, attempt.lastEvent,
                                 attempt.status, attempt.error, attempt.durationMilliseconds, attempt.replay, attempt.test])
            try db.execute(sql: """
                DELETE FROM webhook_attempt WHERE webhook_id = ? AND id <= (
                    SELECT id FROM webhook_attempt WHERE webhook_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)
                """, arguments: [webhookID, webhookID, keep])
        }
    }

    public func webhookAttempts(webhookID: String, limit: Int) throws -> [WebhookAttempt] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_attempt WHERE webhook_id = ? ORDER BY id DESC LIMIT ?",
                             arguments: [webhookID, limit]).map {
                WebhookAttempt(at: Date(timeIntervalSince1970: $0["at"]), events: $0["events"], firstEvent: $0["first_event"],
                               lastEvent: $0["last_event"], status: $0["status"], error: $0["error"],
                               durationMilliseconds: $0["duration_ms"], replay: $0["replay"], test: $0["test"])
            }
        }
    }

    public func addWebhookReplay(webhookID: String, after: Int64, through: Int64) throws -> WebhookReplay {
        try database.write { db in
            try db.execute(sql: "INSERT INTO webhook_replay (webhook_id, after, through) VALUES (?, ?, ?)",
                           arguments: [webhookID, after, through])
            return WebhookReplay(id: db.lastInsertedRowID, webhookID: webhookID, after: after, through: through)
        }
    }

    public func webhookReplays(webhookID: String) throws -> [WebhookReplay] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_replay WHERE webhook_id = ? ORDER BY id", arguments: [webhookID]).map {
                WebhookReplay(id: $0["id"], webhookID: $0["webhook_id"], after: $0["after"], through: $0["through"])
            }
        }
    }

    public func advanceWebhookReplay(id: Int64, to position: Int64) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE webhook_replay SET after = MAX(after, ?) WHERE id = ?", arguments: [position, id])
            try db.execute(sql: "DELETE FROM webhook_replay WHERE id = ? AND after >= through", arguments: [id])
        }
    }

    static func webhook(_ row: Row) throws -> WebhookEndpoint {
        let types = WebhookKeyMaterial.types(row["event_types"])
        return WebhookEndpoint(
            id: row["id"], accountID: row["account_id"], name: row["name"], url: row["url"],
            format: WebhookFormat(rawValue: row["format"]) ?? .native, eventTypes: types, enabled: row["enabled"],
            createdAt: Date(timeIntervalSince1970: row["created_at"]), cursor: row["cursor"],
            failingSince: (row["failing_since"] as Double?).map(Date.init(timeIntervalSince1970:)),
            disabledReason: row["disabled_reason"], confirmed: row["confirmed"], publicKey: row["public_key"])
    }
}

// MARK: SES configuration sets

/// An event destination of a configuration set (SES v2): which event types
/// go to which SNS topic (an `ses`-format webhook).
public struct EventDestination: Sendable, Codable, Equatable {
    public var name: String
    public var enabled: Bool
    /// SES's names: SEND, REJECT, BOUNCE, COMPLAINT, DELIVERY, OPEN, CLICK, RENDERING_FAILURE, DELIVERY_DELAY, SUBSCRIPTION.
    public var matchingEventTypes: [String]
    public var topicARN: String

    public init(name: String, enabled: Bool, matchingEventTypes: [String], topicARN: String) {
        self.name = name
        self.enabled = enabled
        self.matchingEventTypes = matchingEventTypes
        self.topicARN = topicARN
    }
}

public enum ConfigurationSetError: Error, Equatable {
    case notFound(String)
    case alreadyExists(String)
}

/// SES configuration sets and their event destinations, and an account's
/// tracking defaults: one capability of the store, with an implementation
/// per engine (`SQLiteStore`, `PostgresStore`).
public protocol ConfigurationSetStore: Sendable {
    func createConfigurationSet(accountID: Int64, name: String) throws
    /// By name.
    func configurationSets(accountID: Int64) throws -> [String]
    func configurationSetExists(accountID: Int64, name: String) throws -> Bool
    func deleteConfigurationSet(accountID: Int64, name: String) throws
    /// Creates or replaces a destination (SES answers AlreadyExists for a create; the API decides).
    func saveEventDestination(_ destination: EventDestination, accountID: Int64, configurationSet: String, replace: Bool) throws
    /// By name.
    func eventDestinations(accountID: Int64, configurationSet: String) throws -> [EventDestination]
    /// Every destination of an account by configuration set (what the dispatcher routes SES events by).
    func eventDestinations(accountID: Int64) throws -> [String: [EventDestination]]
    func deleteEventDestination(accountID: Int64, configurationSet: String, name: String) throws
    /// Whether an account's mail is tracked unless a message says otherwise.
    func trackingDefaults(accountID: Int64) throws -> (opens: Bool, clicks: Bool)
    func setTrackingDefaults(accountID: Int64, opens: Bool, clicks: Bool) throws
}

extension SQLiteStore: ConfigurationSetStore {
    public func createConfigurationSet(accountID: Int64, name: String) throws {
        try database.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM configuration_set WHERE account_id = ? AND name = ?",
                                 arguments: [accountID, name]) == true { throw ConfigurationSetError.alreadyExists(name) }
            try db.execute(sql: "INSERT INTO configuration_set (account_id, name, created_at) VALUES (?, ?, ?)",
                           arguments: [accountID, name, Date().timeIntervalSince1970])
        }
    }

    public func configurationSets(accountID: Int64) throws -> [String] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM configuration_set WHERE account_id = ? ORDER BY name", arguments: [accountID])
        }
    }

    public func configurationSetExists(accountID: Int64, name: String) throws -> Bool {
        try database.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM configuration_set WHERE account_id = ? AND name = ?", arguments: [accountID, name]) == true
        }
    }

    public func deleteConfigurationSet(accountID: Int64, name: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM configuration_set WHERE account_id = ? AND name = ?", arguments: [accountID, name])
            if db.changesCount == 0 { throw ConfigurationSetError.notFound(name) }
        }
    }

    public func saveEventDestination(_ destination: EventDestination, accountID: Int64, configurationSet: String, replace: Bool) throws {
        let types = try WebhookKeyMaterial.typesJSON(destination.matchingEventTypes)
        try database.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM configuration_set WHERE account_id = ? AND name = ?",
                                    arguments: [accountID, configurationSet]) == true else {
                throw ConfigurationSetError.notFound(configurationSet)
            }
            let exists = try Bool.fetchOne(db, sql: """
                SELECT 1 FROM event_destination WHERE account_id = ? AND configuration_set = ? AND name = ?
                """, arguments: [accountID, configurationSet, destination.name]) == true
            if exists && !replace { throw ConfigurationSetError.alreadyExists(destination.name) }
            if !exists && replace { throw ConfigurationSetError.notFound(destination.name) }
            try db.execute(sql: """
                INSERT OR REPLACE INTO event_destination (account_id, configuration_set, name, enabled, event_types, topic_arn)
                VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [accountID, configurationSet, destination.name, destination.enabled, types, destination.topicARN])
        }
    }

    public func eventDestinations(accountID: Int64, configurationSet: String) throws -> [EventDestination] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM event_destination WHERE account_id = ? AND configuration_set = ? ORDER BY name
                """, arguments: [accountID, configurationSet]).map(SQLiteStore.eventDestination)
        }
    }

    public func eventDestinations(accountID: Int64) throws -> [String: [EventDestination]] {
        try database.read { db in
            var result: [String: [EventDestination]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM event_destination WHERE account_id = ?", arguments: [accountID]) {
                result[row["configuration_set"], default: []].append(SQLiteStore.eventDestination(row))
            }
            return result
        }
    }

    public func deleteEventDestination(accountID: Int64, configurationSet: String, name: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM event_destination WHERE account_id = ? AND configuration_set = ? AND name = ?",
                           arguments: [accountID, configurationSet, name])
            if db.changesCount == 0 { throw ConfigurationSetError.notFound(name) }
        }
    }

    static func eventDestination(_ row: Row) -> EventDestination {
        EventDestination(name: row["name"], enabled: row["enabled"],
                         matchingEventTypes: WebhookKeyMaterial.types(row["event_types"]),
                         topicARN: row["topic_arn"])
    }

    // MARK: Tracking defaults

    public func trackingDefaults(accountID: Int64) throws -> (opens: Bool, clicks: Bool) {
        try database.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT track_opens, track_clicks FROM account WHERE id = ?", arguments: [accountID])
            return (row?["track_opens"] ?? false, row?["track_clicks"] ?? false)
        }
    }

    public func setTrackingDefaults(accountID: Int64, opens: Bool, clicks: Bool) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE account SET track_opens = ?, track_clicks = ? WHERE id = ?", arguments: [opens, clicks, accountID])
        }
    }
}
