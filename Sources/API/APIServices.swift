import Foundation
import Logging
import MIME
import Relay
import Spool
import Store

/// What the API routes work with.
struct APIServices: Sendable {
    let store: SQLiteStore
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

    /// A stored template of the account, compiled; 404 when there is none.
    func renderer(template name: String, account: Account) throws(APIError) -> (TemplateRenderer, Template) {
        let stored: Template?
        do { stored = try store.template(accountID: account.id, name: name) } catch { throw APIError.storeFailure(error) }
        guard let stored else { throw APIError.notFound("template \(name)") }
        return (try TemplateRenderer(stored), stored)
    }

    /// A message of this account (another account's is "not found" too).
    /// The index row follows the durable write by a few milliseconds, so a
    /// message accepted a moment ago is waited for rather than reported missing.
    func message(_ text: String, account: Account) async throws(APIError) -> QueuedMessageDetails {
        guard let id = MessageID(text) else { throw APIError.notFound("message \(text)") }
        var details: QueuedMessageDetails?
        for _ in 0..<20 {
            do { details = try index.details(of: id) } catch { throw APIError.storeFailure(error) }
            guard details == nil, Date().timeIntervalSince(id.timestamp) < 2 else { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        guard let details, details.accountID == account.id else { throw APIError.notFound("message \(text)") }
        return details
    }
}

extension APIError {
    static func storeFailure(_ error: any Error) -> APIError {
        APIError(.serviceUnavailable, "store_unavailable", "the store could not be read or written: \(error)", ses: "InternalFailure")
    }
}
