import Foundation
import SMTPCore

/// A reply with the category its source gives it: one line of a labelled
/// corpus (`Tests/ClassificationCorpus`, `hikyaku classify --corpus`).
public struct LabelledReply: Decodable, Sendable {
    public var text: String
    public var code: Int?
    public var enhanced: String?
    public var command: String?
    public var mx: String?
    public var domain: String?
    public var category: BounceCategory

    /// The failure as the classifier sees it; a source that gives only the enhanced code lends its class to the reply.
    public var observation: FailureObservation {
        let enhancedCode = enhanced.flatMap { EnhancedStatusCode(parsing: Substring($0)) }
        return FailureObservation(kind: .reply(code: code ?? ((enhancedCode?.statusClass ?? 5) * 100 + 50), enhanced: enhancedCode, text: text),
                                  remoteHost: mx, recipientDomain: domain, command: command?.uppercased())
    }

    /// JSON lines, one reply each.
    public static func corpus(_ text: String) throws -> [LabelledReply] {
        let decoder = JSONDecoder()
        // Lines end at LF only: JSON may hold U+2028 raw inside a string.
        return try text.split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }
            .map { try decoder.decode(LabelledReply.self, from: Data($0.utf8)) }
    }
}
