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
///
/// Anyone holding one token can repeat its request, so what strangers can
/// make the log record is limited too: per client address and minute, and
/// per recipient's copy and hour (`Limits`). Requests beyond them are still
/// answered (the image, the redirect) but not logged.
public final class EngagementRecorder: Sendable {
    public struct Limits: Sendable {
        public var perClientPerMinute: Int
        public var perCopyPerHour: Int
        /// Distinct clients and copies counted in one window at most; new ones beyond it are not logged.
        public var trackedKeys: Int

        public init(perClientPerMinute: Int = 600, perCopyPerHour: Int = 50, trackedKeys: Int = 200_000) {
            self.perClientPerMinute = perClientPerMinute
            self.perCopyPerHour = perCopyPerHour
            self.trackedKeys = trackedKeys
        }
    }

    /// Counts per key within a fixed window, forgotten when the window ends.
    struct WindowCounter {
        var window: Int64 = 0
        var counts: [String: Int] = [:]

        /// Counts one for `key`; false when the key is at `limit` or the table is full.
        mutating func admit(_ key: String, window current: Int64, limit: Int, capacity: Int) -> Bool {
            if current != window {
                window = current
                counts.removeAll(keepingCapacity: true)
            }
            let count = counts[key] ?? 0
            guard count < limit, count > 0 || counts.count < capacity else { return false }
            counts[key] = count + 1
            return true
        }
    }

    struct State {
        var pending: [Engagement] = []
        var dropped = 0
        var limited = 0
        var clients = WindowCounter()
        var copies = WindowCounter()
    }

    let index: QueueIndex
    let classifier: EngagementClassifier
    let capacity: Int
    let limits: Limits
    let logger: Logger
    private let state = NIOLockedValueBox(State())
    /// In a cluster: where engagements of another node's messages go.
    let forwarder: FeedbackForwarder?
    /// Engagements written per transaction, so that a burst never holds the log's writer for long.
    static let chunk = 1000

    public init(index: QueueIndex, classifier: EngagementClassifier, capacity: Int = 100_000, limits: Limits = Limits(),
                forwarder: FeedbackForwarder? = nil, logger: Logger) {
        self.forwarder = forwarder
        self.index = index
        self.classifier = classifier
        self.capacity = capacity
        self.limits = limits
        self.logger = logger
    }

    /// False when the engagement is not logged (over a limit, or the buffer is full).
    @discardableResult
    public func record(_ engagement: Engagement) -> Bool {
        let seconds = WebhookTime.seconds(engagement.at.timeIntervalSince1970)
        return state.withLockedValue { state in
            guard state.clients.admit(engagement.clientIP ?? "", window: seconds / 60, limit: limits.perClientPerMinute,
                                      capacity: limits.trackedKeys),
                  state.copies.admit("\(engagement.message.rawValue) \(engagement.position)", window: seconds / 3600,
                                     limit: limits.perCopyPerHour, capacity: limits.trackedKeys) else {
                state.limited += 1
                return false
            }
            guard state.pending.count < capacity else {
                state.dropped += 1
                return false
            }
            state.pending.append(engagement)
            return true
        }
    }

    /// Writes what is waiting; run by `run()` and at shutdown.
    public func flush() {
        let (batch, lost, limited) = state.withLockedValue { state in
            defer {
                state.pending = []
                state.dropped = 0
                state.limited = 0
            }
            return (state.pending, state.dropped, state.limited)
        }
        if lost > 0 { logger.warning("tracking: engagements dropped, the buffer was full", metadata: ["dropped": "\(lost)"]) }
        if limited > 0 { logger.debug("tracking: engagements over the per-client or per-copy limit, not logged", metadata: ["count": "\(limited)"]) }
        var start = 0
        while start < batch.count {
            let part = Array(batch[start..<min(batch.count, start + EngagementRecorder.chunk)])
            start += part.count
            do {
                let recorded = try index.recordEngagements(part) { engagement, deliveredAt in
                    classifier.isMachine(userAgent: engagement.userAgent, head: engagement.head, deliveredAt: deliveredAt, at: engagement.at)
                }
                if !recorded.unknown.isEmpty { forwarder?.forward(recorded.unknown) }
            } catch {
                logger.error("tracking: engagements not logged", metadata: ["count": "\(part.count)", "error": "\(error)"])
            }
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
