import Foundation
import Logging
import MIME
import Relay
import Spool
import Store

/// What the API routes work with.
struct APIServices: Sendable {
    let store: any HikyakuStore
    let spool: Spool
    let index: QueueIndex
    let layout: SpoolLayout
    let gate: APIGate
    let submitter: Submitter
    let builder: MessageBuilder
    let meter: SendingMeter
    /// Links for marketing mail, and the endpoint they lead to; nil: none added.
    let unsubscribe: UnsubscribeLinks?
    /// What one request may build.
    let draftLimits: MessageDraft.Limits
    /// Webhooks and tracking; nil: neither is offered.
    let eventsOut: EventsOut?

    var tracking: TrackingLinks? { eventsOut?.tracking }
    /// Where the log is searched: in a cluster the shared log with every node's events, else this node's index.
    var log: any DeliveryLogReader { (store as? any SharedDeliveryLog) ?? index }
    /// Finished messages' bytes after their spool segment is gone.
    let archive: MessageArchive?
    /// Rung when a campaign has work now (scheduled, resumed, its winner chosen): the runner looks at once.
    let campaignBell = Doorbell()

    /// A message's bytes: from the spool while its segment lives, then from the archive; nil when neither has them.
    func contents(of details: QueuedMessageDetails) -> [UInt8]? {
        if let bytes = try? Spool.contents(of: details, layout: layout) { return bytes }
        return (try? archive?.contents(of: details.id)) ?? nil
    }

    /// A cancelled campaign's mail still in this node's queue, cancelled; how many messages were.
    /// A batch the spool acknowledged may not be indexed yet, and is waited for.
    func withdrawCampaignMail(_ campaignID: Int64) async throws -> Int {
        _ = await spool.indexedBarrier(timeout: .seconds(5))
        var cancelled = 0
        let ids = try store.campaignMessageIDs(campaignID) { MessageID(claim: $0, contact: $1).rawValue }
        for text in ids {
            guard let id = MessageID(text) else { continue }
            if let count = try? index.cancel(id, reason: "campaign cancelled"), count > 0 { cancelled += 1 }
        }
        return cancelled
    }

    /// A stored template of the account, compiled; 404 when there is none.
    func renderer(template name: String, account: Account) throws(APIError) -> (TemplateRenderer, Template) {
        let stored: Template?
        do { stored = try store.template(accountID: account.id, name: name) } catch { throw APIError.storeFailure(error) }
        guard let stored else { throw APIError.notFound("template \(name)") }
        if stored.generation == .dynamic {
            guard stored.text != nil || stored.html != nil else {
                throw APIError.badRequest("template \(name) has no active version", field: "template_id")
            }
            // Written for SendGrid in Handlebars: its block helpers become Mustache sections.
            var translated = stored
            translated.subject = try HandlebarsDialect.mustache(stored.subject)
            translated.text = try stored.text.map { text throws(APIError) in try HandlebarsDialect.mustache(text) }
            translated.html = try stored.html.map { html throws(APIError) in try HandlebarsDialect.mustache(html) }
            return (try TemplateRenderer(translated), stored)
        }
        return (try TemplateRenderer(stored), stored)
    }

    /// A message of this account (another account's is "not found" too).
    /// The index row follows the durable write by a few milliseconds, so a
    /// message accepted a moment ago (under 2 s) is waited for rather than reported missing.
    func message(_ text: String, account: Account) async throws(APIError) -> QueuedMessageDetails {
        guard let id = MessageID(text) else { throw APIError.notFound("message \(text)") }
        var details: QueuedMessageDetails?
        for _ in 0..<200 {
            do { details = try index.details(of: id) } catch { throw APIError.storeFailure(error) }
            guard details == nil, Date().timeIntervalSince(id.timestamp) < 2 else { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        guard let details, details.accountID == account.id else { throw APIError.notFound("message \(text)") }
        return details
    }
}

extension APIServices {
    /// What a message tracks: the request's choice, else the account's default;
    /// nil when nothing is tracked or tracking is not offered.
    func trackingSettings(account: Account, opens: Bool?, clicks: Bool?) throws(APIError) -> TrackingSettings? {
        guard eventsOut != nil else { return nil }
        var defaults = (opens: false, clicks: false)
        if opens == nil || clicks == nil {
            do { defaults = try store.trackingDefaults(accountID: account.id) } catch { throw APIError.storeFailure(error) }
        }
        let settings = TrackingSettings(opens: opens ?? defaults.opens, clicks: clicks ?? defaults.clicks)
        return settings.any ? settings : nil
    }

    /// SES: a send naming a configuration set that does not exist is refused, as SES does; one whose
    /// event destinations want opens or clicks has them tracked.
    func configurationSet(_ name: String?, account: Account, metadata: inout MessageMetadata) throws(APIError) {
        guard let name else { return }
        do {
            guard try store.configurationSetExists(accountID: account.id, name: name) else {
                throw APIError(.notFound, "not_found", "Configuration set <\(name)> does not exist.", ses: "NotFoundException")
            }
            let types = Set(try store.eventDestinations(accountID: account.id, configurationSet: name).filter(\.enabled)
                .flatMap(\.matchingEventTypes))
            metadata.configurationSet = name
            if eventsOut != nil && (types.contains("OPEN") || types.contains("CLICK")) {
                metadata.tracking = TrackingSettings(opens: types.contains("OPEN"), clicks: types.contains("CLICK"))
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.storeFailure(error)
        }
    }
}

extension APIError {
    static func storeFailure(_ error: any Error) -> APIError {
        APIError(.serviceUnavailable, "store_unavailable", "the store could not be read or written: \(error)", ses: "InternalFailure")
    }
}

/// What the API needs for events going out: the webhook dispatcher (for
/// tests and the SNS certificate), the tracking links and their recorder.
public struct EventsOut: Sendable {
    public var webhooks: WebhookDispatcher
    public var tracking: TrackingLinks
    public var engagements: EngagementRecorder
    /// The PEM certificate that verifies SNS signatures, served at `/sns/certificate.pem`.
    public var snsCertificatePEM: String
    /// Endpoint URLs are checked against this when saved (scheme, and a literal address's range).
    public var allowPlainHTTP: Bool
    public var allowNonPublicAddresses: Bool

    public init(webhooks: WebhookDispatcher, tracking: TrackingLinks, engagements: EngagementRecorder, snsCertificatePEM: String,
                allowPlainHTTP: Bool, allowNonPublicAddresses: Bool) {
        self.webhooks = webhooks
        self.tracking = tracking
        self.engagements = engagements
        self.snsCertificatePEM = snsCertificatePEM
        self.allowPlainHTTP = allowPlainHTTP
        self.allowNonPublicAddresses = allowNonPublicAddresses
    }
}
