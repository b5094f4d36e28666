import Foundation
import Logging
import NIOConcurrencyHelpers
import Spool

/// Opens and clicks are answered at once and logged in batches: the
/// tracking endpoints are public and must stay fast, and one transaction per
/// image fetched would make the log's writer their bottleneck. What waits
/// is bounded (`capacity`); past it, engagements are counted as dropped and
/// logged, never queued without limit. A crash loses at most one flush
/// interval of opens and clicks, never mail.
public final class EngagementRecorder: Sendable {
    let index: QueueIndex
    let classifier: EngagementClassifier
    let capacity: Int
    let logger: Logger
    private let pending = NIOLockedValueBox<[Engagement]>([])
    private let dropped = NIOLockedValueBox<Int>(0)

    public init(index: QueueIndex, classifier: EngagementClassifier, capacity: Int = 100_000, logger: Logger) {
        self.index = index
        self.classifier = classifier
        self.capacity = capacity
        self.logger = logger
    }

    /// False when the buffer is full (the engagement is not recorded).
    @discardableResult
    public func record(_ engagement: Engagement) -> Bool {
        let accepted = pending.withLockedValue { pending in
            guard pending.count < capacity else { return false }
            pending.append(engagement)
            return true
        }
        if !accepted { dropped.withLockedValue { $0 += 1 } }
        return accepted
    }

    /// Writes what is waiting; run by `run()` and at shutdown.
    public func flush() {
        let batch = pending.withLockedValue { pending in
            defer { pending = [] }
            return pending
        }
        let lost = dropped.withLockedValue { count in
            defer { count = 0 }
            return count
        }
        if lost > 0 { logger.warning("tracking: engagements dropped, the buffer was full", metadata: ["dropped": "\(lost)"]) }
        guard !batch.isEmpty else { return }
        do {
            try index.recordEngagements(batch) { engagement, deliveredAt in
                classifier.isMachine(userAgent: engagement.userAgent, head: engagement.head, deliveredAt: deliveredAt, at: engagement.at)
            }
        } catch {
            logger.error("tracking: engagements not logged", metadata: ["count": "\(batch.count)", "error": "\(error)"])
        }
    }

    /// Flushes every 100 ms until cancelled, then once more.
    public func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            flush()
        }
        flush()
    }
}
