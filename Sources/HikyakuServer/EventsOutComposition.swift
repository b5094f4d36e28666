import API
import Foundation
import Logging
import NIOCore
import Relay
import ServiceLifecycle
import Spool
import Store

/// Builds what sends events out (webhooks) and brings engagement in
/// (open and click tracking), from the configuration. Wiring only.
enum EventsOutComposition {
    static func make(configuration: Configuration, store: any WebhookStore & ConfigurationSetStore & APIKeyStore, index: QueueIndex, snsDirectory: String, group: any EventLoopGroup,
                     forwarder: FeedbackForwarder? = nil, logger: Logger) async throws -> EventsOut {
        let tracking = TrackingLinks(key: store.derivedKey("hikyaku tracking"), base: configuration.apiPublicURL)
        let client = try WebhookClient(
            policy: .init(allowNonPublicAddresses: configuration.webhooksAllowNonPublicAddresses,
                          allowPlainHTTP: configuration.webhooksAllowPlainHTTP,
                          timeout: .seconds(Int64(configuration.webhooksTimeoutSeconds))),
            resolver: try Compliance.resolver(configuration), group: group)
        let sns = try await SNSSigningCertificate.ensure(directory: snsDirectory, hostname: configuration.hostname)
        let signer = SNSSigner(key: sns.key, baseURL: { tracking.baseURL })
        let dispatcher = WebhookDispatcher(
            store: store, index: index, client: client, sns: signer,
            settings: .init(batchSize: configuration.webhooksBatchSize,
                            batchAge: Double(configuration.webhooksBatchAgeMilliseconds) / 1000,
                            minimumBackoff: Double(configuration.webhooksMinimumBackoffSeconds),
                            maximumBackoff: Double(configuration.webhooksMaximumBackoffSeconds),
                            disableAfter: Double(configuration.webhooksDisableAfterSeconds)),
            logger: logger)
        let engagements = EngagementRecorder(index: index, classifier: EngagementClassifier(window: Double(configuration.trackingMachineWindowSeconds)),
                                             forwarder: forwarder, logger: logger)
        return EventsOut(webhooks: dispatcher, tracking: tracking, engagements: engagements, snsCertificatePEM: sns.certificatePEM,
                         allowPlainHTTP: configuration.webhooksAllowPlainHTTP,
                         allowNonPublicAddresses: configuration.webhooksAllowNonPublicAddresses)
    }
}

/// Runs the webhook dispatcher and the engagement recorder until shutdown
/// (the recorder flushes what it holds on the way out).
struct EventsOutService: Service {
    let eventsOut: EventsOut

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await eventsOut.webhooks.run() }
                group.addTask { await eventsOut.engagements.run() }
            }
        }
    }
}
