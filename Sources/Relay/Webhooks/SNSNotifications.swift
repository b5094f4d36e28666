import _CryptoExtras
import Crypto
import Foundation

/// SNS HTTP(S) messages as Amazon SNS sends them to a subscribed endpoint,
/// signed with SignatureVersion 2 (RSA PKCS#1 v1.5, SHA-256) under the
/// server's own key, whose certificate is served at `<api>/sns/certificate.pem`.
/// A receiver's SNS message validator accepts them once told to trust
/// that certificate URL instead of `sns.<region>.amazonaws.com`.
public struct SNSSigner: Sendable {
    let key: _RSA.Signing.PrivateKey
    /// The base URL of the API (for SubscribeURL, SigningCertURL and UnsubscribeURL);
    /// nil until the API listens (without api.publicUrl): nothing is sent before.
    public let baseURL: @Sendable () -> String?

    public init(key: _RSA.Signing.PrivateKey, baseURL: @escaping @Sendable () -> String?) {
        self.key = key
        self.baseURL = baseURL
    }

    public struct NotReady: Error, CustomStringConvertible {
        public var description: String { "the API's address is not known yet (it has not started listening)" }
    }

    /// A Notification carrying `message` (the SES event JSON as a string).
    public func notification(topicARN: String, messageID: String, message: String, at time: Date) throws -> (headers: [(String, String)], body: String) {
        guard let base = baseURL() else { throw NotReady() }
        let timestamp = WebhookTime.iso(time)
        // The string to sign: these fields, in this order, each name and value on its own line.
        let signed = "Message\n\(message)\nMessageId\n\(messageID)\nTimestamp\n\(timestamp)\nTopicArn\n\(topicARN)\nType\nNotification\n"
        let body = JSONOut.object([
            ("Type", .string("Notification")),
            ("MessageId", .string(messageID)),
            ("TopicArn", .string(topicARN)),
            ("Message", .string(message)),
            ("Timestamp", .string(timestamp)),
            ("SignatureVersion", .string("2")),
            ("Signature", .string(try sign(signed))),
            ("SigningCertURL", .string(base + "/sns/certificate.pem")),
            ("UnsubscribeURL", .string(base + "/sns/unsubscribe")),
        ]).text
        return (headers(type: "Notification", messageID: messageID, topicARN: topicARN), body)
    }

    /// The SubscriptionConfirmation sent before any notification: the endpoint visits SubscribeURL.
    public func subscriptionConfirmation(topicARN: String, messageID: String, token: String, at time: Date) throws
        -> (headers: [(String, String)], body: String) {
        guard let base = baseURL() else { throw NotReady() }
        let timestamp = WebhookTime.iso(time)
        let message = "You have chosen to subscribe to the topic \(topicARN).\nTo confirm the subscription, visit the SubscribeURL included in this message."
        let subscribeURL = base + "/sns/confirm?token=\(token)"
        let signed = "Message\n\(message)\nMessageId\n\(messageID)\nSubscribeURL\n\(subscribeURL)\nTimestamp\n\(timestamp)\n"
            + "Token\n\(token)\nTopicArn\n\(topicARN)\nType\nSubscriptionConfirmation\n"
        let body = JSONOut.object([
            ("Type", .string("SubscriptionConfirmation")),
            ("MessageId", .string(messageID)),
            ("Token", .string(token)),
            ("TopicArn", .string(topicARN)),
            ("Message", .string(message)),
            ("SubscribeURL", .string(subscribeURL)),
            ("Timestamp", .string(timestamp)),
            ("SignatureVersion", .string("2")),
            ("Signature", .string(try sign(signed))),
            ("SigningCertURL", .string(base + "/sns/certificate.pem")),
        ]).text
        return (headers(type: "SubscriptionConfirmation", messageID: messageID, topicARN: topicARN), body)
    }

    func headers(type: String, messageID: String, topicARN: String) -> [(String, String)] {
        [("Content-Type", "text/plain; charset=UTF-8"), ("x-amz-sns-message-type", type), ("x-amz-sns-message-id", messageID),
         ("x-amz-sns-topic-arn", topicARN)]
    }

    func sign(_ text: String) throws -> String {
        try key.signature(for: Data(text.utf8), padding: .insecurePKCS1v1_5).rawRepresentation.base64EncodedString()
    }
}
