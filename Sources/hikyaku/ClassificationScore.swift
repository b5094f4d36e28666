import Foundation
import Relay
import SMTPCore

/// `hikyaku classify --corpus FILE`: how the rules in effect (shipped and the
/// operator's) do on a labelled corpus of replies, and what a reply costs.
struct ClassificationScore {
    /// Categories that put an address on the suppression list.
    static let addressCategories: Set<BounceCategory> = [.invalidRecipient, .inactiveMailbox]
    /// Each reply is classified this many times for the timing.
    static let repetitions = 200

    let classifier: BounceClassifier
    let replies: [LabelledReply]

    /// As delivery decides: a 5yz reply whose classification is evidence against the address.
    static func suppresses(_ reply: LabelledReply, _ result: Classification) -> Bool {
        guard case .reply(let code, _, _) = reply.observation.kind else { return false }
        return code >= 500 && result.isEvidenceAgainstTheAddress
    }

    init(classifier: BounceClassifier, path: String) throws {
        self.classifier = classifier
        replies = try LabelledReply.corpus(String(contentsOfFile: path, encoding: .utf8))
    }

    func report(misses: Bool, json: Bool) throws {
        var right = 0
        var wrongAddress: [(LabelledReply, Classification)] = []
        var wrong: [(LabelledReply, Classification)] = []
        var nanoseconds: [UInt64] = []
        var slowest: (nanoseconds: UInt64, text: String, rule: String) = (0, "", "")
        nanoseconds.reserveCapacity(replies.count * ClassificationScore.repetitions)
        for reply in replies {
            let observation = reply.observation
            let result = classifier.classify(observation)
            if result.category == reply.category {
                right += 1
            } else {
                wrong.append((reply, result))
                // A reply that says nothing against the address, read as a bad address: the error that suppresses a good recipient.
                if ClassificationScore.addressCategories.contains(result.category),
                   !ClassificationScore.addressCategories.contains(reply.category), reply.category != .badDomain, reply.category != .other {
                    wrongAddress.append((reply, result))
                }
            }
            var own: [UInt64] = []
            for _ in 0..<ClassificationScore.repetitions {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = classifier.classify(observation)
                own.append(DispatchTime.now().uptimeNanoseconds - start)
            }
            nanoseconds += own
            let median = own.sorted()[own.count / 2]
            if median > slowest.nanoseconds { slowest = (median, reply.text, result.rule) }
        }
        nanoseconds.sort()
        let percentile = { (p: Double) -> Double in
            nanoseconds.isEmpty ? 0 : Double(nanoseconds[min(nanoseconds.count - 1, Int(exactly: (Double(nanoseconds.count) * p).rounded(.down)) ?? 0)]) / 1000
        }
        let longest = replies.map(\.text.utf8.count).max() ?? 0
        if json {
            struct Output: Encodable {
                var replies, right, wrongAddress, wrongAddressSuppressing, longestReplyBytes: Int
                var p50Microseconds, p99Microseconds, maxMicroseconds: Double
            }
            try printJSON(Output(replies: replies.count, right: right, wrongAddress: wrongAddress.count,
                                 wrongAddressSuppressing: wrongAddress.filter { ClassificationScore.suppresses($0.0, $0.1) }.count,
                                 longestReplyBytes: longest,
                                 p50Microseconds: percentile(0.5), p99Microseconds: percentile(0.99), maxMicroseconds: percentile(1)))
        } else {
            let suppressing = wrongAddress.filter { ClassificationScore.suppresses($0.0, $0.1) }.count
            print(String(format: "%d/%d right (%.1f %%), %d read as a bad address that say nothing against it (%d of them would suppress)",
                         right, replies.count, replies.isEmpty ? 0 : 100 * Double(right) / Double(replies.count), wrongAddress.count, suppressing))
            print(String(format: "time per reply (longest %d bytes, %d runs each): p50 %.1f µs, p99 %.1f µs, max %.1f µs",
                         longest, ClassificationScore.repetitions, percentile(0.5), percentile(0.99), percentile(1)))
            print(String(format: "slowest reply (median %.1f µs, ", Double(slowest.nanoseconds) / 1000)
                  + "rule \(slowest.rule)): \(slowest.text.prefix(100))")
        }
        guard misses, !json else { return }
        for (reply, result) in wrong {
            print("  \(reply.category.rawValue) <- \(result.category.rawValue) (\(result.rule)) \(reply.code.map(String.init) ?? "-") "
                  + "\(reply.enhanced ?? "") [\(reply.command ?? "-")] \(reply.mx ?? reply.domain ?? ""): \(reply.text.prefix(400))")
        }
    }
}
