import Foundation
import Store

/// Which variant of an A/B test won, and how sure that is: each variant's
/// rate (unique human opens or clicks over delivered), and a two-proportion
/// z-test of the best against the runner-up. A tie or too few events is
/// said, never hidden; the first variant is then sent to the rest.
struct ABTestDecision: Sendable, Equatable {
    struct Arm: Sendable, Equatable {
        var delivered: Int
        /// Recipients who opened (or clicked), people only.
        var successes: Int
        /// Opens that look like machines (privacy proxies, scanners): when they are most opens, the open rate says little.
        var machineOpens: Int = 0

        var rate: Double { delivered > 0 ? Double(successes) / Double(delivered) : 0 }
    }

    /// Below this many successes in all, the test says nothing.
    static let minimumEvents = 10

    var winner: Int
    /// `winner`, `tie` or `too_few_events`.
    var outcome: String
    /// The confidence that the winner's rate is higher than the runner-up's (one-sided), 0–1.
    var confidence: Double?
    var z: Double?
    var explanation: String

    init(arms: [Arm], criterion: String) {
        let names = arms.indices.map { Campaign.variantName($0) }
        let ranked = arms.indices.sorted { arms[$0].rate > arms[$1].rate || (arms[$0].rate == arms[$1].rate && $0 < $1) }
        let rates = arms.indices.map { "\(names[$0]) \(ABTestDecision.percent(arms[$0].rate))" }.joined(separator: ", ")
        let total = arms.reduce(0) { $0 + $1.successes }
        guard ranked.count >= 2, total >= ABTestDecision.minimumEvents else {
            winner = 0
            outcome = "too_few_events"
            explanation = "too few \(criterion) (\(total), fewer than \(ABTestDecision.minimumEvents)) to choose; variant A is sent to the rest (\(rates))"
            return
        }
        let best = arms[ranked[0]]
        let second = arms[ranked[1]]
        if best.rate == second.rate {
            winner = 0
            outcome = "tie"
            explanation = "a tie at \(ABTestDecision.percent(best.rate)); variant A is sent to the rest (\(rates))"
            return
        }
        winner = ranked[0]
        outcome = "winner"
        let z = ABTestDecision.twoProportionZ(best, second)
        self.z = z
        confidence = z.map(ABTestDecision.normalCDF)
        let sure = confidence.map { " (confidence \(ABTestDecision.percent($0)) that it beats \(names[ranked[1]]))" } ?? ""
        explanation = "variant \(names[winner]) has the highest unique \(criterion) rate\(sure): \(rates)"
    }

    /// z for p1 > p2 with the pooled proportion; nil when it cannot be computed (no variance).
    static func twoProportionZ(_ first: Arm, _ second: Arm) -> Double? {
        guard first.delivered > 0, second.delivered > 0 else { return nil }
        let pooled = Double(first.successes + second.successes) / Double(first.delivered + second.delivered)
        let variance = pooled * (1 - pooled) * (1 / Double(first.delivered) + 1 / Double(second.delivered))
        guard variance > 0 else { return nil }
        return (first.rate - second.rate) / variance.squareRoot()
    }

    /// Φ(z), the standard normal distribution function.
    static func normalCDF(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }

    static func percent(_ value: Double) -> String {
        let tenths = Int(exactly: (min(max(value, 0), 1) * 1000).rounded()) ?? 0
        return "\(tenths / 10).\(tenths % 10)%"
    }
}
