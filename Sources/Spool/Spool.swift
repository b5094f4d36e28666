import Foundation
import GRDB
import Logging
import NIOConcurrencyHelpers

/// Where the spool keeps its files inside the data directory.
public struct SpoolLayout: Sendable {
    public var directory: String
    public init(directory: String) { self.directory = directory }
    public var segmentsDirectory: String { directory + "/segments" }
    public var indexPath: String { directory + "/queue.sqlite" }
}

/// The durable message store.
///
/// Contract: `append`'s completion reports success only after the message
/// bytes are fdatasync'd in a segment (whose directory entry was synced when
/// the segment was created) **and** the index rows are committed with a WAL
/// sync. Only then may a server answer 250. Appends that arrive while a
/// batch is being written wait for the next batch: many sessions share one
/// pair of syncs (group commit). On any write or sync failure the whole batch
/// fails and nothing of it is reported as stored.
public final class Spool: @unchecked Sendable {
    public typealias Completion = @Sendable (Result<MessageID, SpoolError>) -> Void

    public let layout: SpoolLayout
    public let index: QueueIndex
    private let logger: Logger

    /// Rotate to a new segment past this size.
    private let segmentLimit: Int64

    // Guarded by `lock`.
    private let lock = ConditionLock(value: Spool.idle)
    private var pending: [(IncomingMessage, Completion)] = []
    private var stopping = false
    private var committerFinished = false

    // Touched only by the committer thread (and by `open` before it starts).
    private var activeSegment: SegmentFile
    /// Set after a failed sync: the kernel may have dropped dirty pages, so
    /// nothing more is accepted until a restart re-validates the spool.
    private let failure = NIOLockedValueBox<SpoolError?>(nil)
    /// The number of `activeSegment`, readable from any thread.
    private let activeSegmentNumber = NIOLockedValueBox<Int64>(0)

    private static let idle = 0
    private static let work = 1

    /// Opens (creating if needed) the spool and recovers it: every message in
    /// the index is kept; bytes past the last indexed message of a segment
    /// were never acknowledged and are cut away; segments with no indexed
    /// message are removed. Appends go to a fresh segment.
    public init(layout: SpoolLayout, segmentLimit: Int64 = 64 << 20, logger: Logger) throws {
        self.layout = layout
        self.logger = logger
        self.segmentLimit = segmentLimit
        try FileManager.default.createDirectory(atPath: layout.segmentsDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        index = try QueueIndex(path: layout.indexPath)
        let existing = try Spool.segmentNumbers(in: layout.segmentsDirectory)
        let extents = try index.segmentExtents()
        for number in existing {
            let path = SegmentFile.path(directory: layout.segmentsDirectory, number: number)
            guard let end = extents[number] else {
                logger.info("spool recovery: removing segment with no acknowledged message", metadata: ["segment": "\(number)"])
                unlink(path)
                continue
            }
            let segment = try SegmentFile(directory: layout.segmentsDirectory, number: number, create: false)
            if segment.size > end {
                logger.info("spool recovery: sweeping unacknowledged bytes",
                            metadata: ["segment": "\(number)", "bytes": "\(segment.size - end)"])
                try segment.truncate(to: end)
            } else if segment.size < end {
                logger.critical("spool recovery: segment shorter than its index",
                                metadata: ["segment": "\(number)", "size": "\(segment.size)", "expected": "\(end)"])
            }
        }
        let next = max(existing.max() ?? 0, extents.keys.max() ?? 0) + 1
        try SegmentFile.syncDirectory(layout.segmentsDirectory)
        activeSegment = try SegmentFile(directory: layout.segmentsDirectory, number: next, create: true)
        activeSegmentNumber.withLockedValue { $0 = next }
        let thread = Thread { [self] in runCommitter() }
        thread.name = "spool-commit"
        thread.start()
    }

    /// Queues `message` for the next group commit; `completion` runs on the
    /// spool's thread once the batch is durable or has failed.
    public func append(_ message: IncomingMessage, completion: @escaping Completion) {
        if let failure = failure.withLockedValue({ $0 }) {
            completion(.failure(failure))
            return
        }
        lock.lock()
        guard !stopping else {
            lock.unlock()
            completion(.failure(.unavailable("spool is shutting down")))
            return
        }
        pending.append((message, completion))
        lock.unlock(withValue: Spool.work)
    }

    /// Async form of `append`.
    public func append(_ message: IncomingMessage) async throws(SpoolError) -> MessageID {
        let result = await withCheckedContinuation { continuation in
            append(message) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Finishes the batches already queued, then stops the committer.
    public func close() {
        lock.lock()
        stopping = true
        lock.unlock(withValue: Spool.work)
        lock.lock(whenValue: Spool.idle)
        let finished = committerFinished
        lock.unlock()
        precondition(finished)
    }

    public var isHealthy: Bool { failure.withLockedValue { $0 == nil } }

    // MARK: Committer

    private func runCommitter() {
        while true {
            lock.lock(whenValue: Spool.work)
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            let shouldStop = stopping && batch.isEmpty
            if shouldStop {
                committerFinished = true
                lock.unlock(withValue: Spool.idle)
                return
            }
            lock.unlock(withValue: Spool.idle)
            commit(batch)
            // More may have arrived meanwhile; the lock value tells the loop.
            lock.lock()
            let more = !pending.isEmpty || stopping
            lock.unlock(withValue: more ? Spool.work : Spool.idle)
        }
    }

    private func commit(_ batch: [(IncomingMessage, Completion)]) {
        guard !batch.isEmpty else { return }
        do {
            if activeSegment.size >= segmentLimit {
                activeSegment = try SegmentFile(directory: layout.segmentsDirectory,
                                                number: activeSegment.number + 1, create: true)
                activeSegmentNumber.withLockedValue { $0 = activeSegment.number }
            }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(batch.reduce(0) { $0 + $1.0.size })
            var rows: [QueueIndex.Row] = []
            rows.reserveCapacity(batch.count)
            let start = activeSegment.size
            let now = Date()
            for (message, _) in batch {
                let offset = start + Int64(bytes.count)
                bytes.append(contentsOf: message.prefix)
                bytes.append(contentsOf: message.content)
                rows.append(QueueIndex.Row(id: message.id,
                                           message: message, segment: activeSegment.number, offset: offset,
                                           receivedAt: now))
            }
            _ = try activeSegment.append(bytes)
            do {
                try activeSegment.sync()
            } catch {
                // After a failed fsync the page cache may no longer hold our
                // bytes (fsyncgate); refuse everything until a restart.
                failure.withLockedValue { $0 = .unavailable("spool sync failed") }
                throw error
            }
            try index.insert(rows)
            for (row, (_, completion)) in zip(rows, batch) { completion(.success(row.id)) }
        } catch {
            let spoolError: SpoolError
            if let systemError = error as? SystemError, systemError.isOutOfSpace {
                spoolError = .insufficientStorage
            } else if let databaseError = error as? DatabaseError, databaseError.resultCode == .SQLITE_FULL {
                spoolError = .insufficientStorage
            } else {
                spoolError = .unavailable("\(error)")
            }
            logger.error("spool write failed", metadata: ["error": "\(error)", "messages": "\(batch.count)"])
            for (_, completion) in batch { completion(.failure(spoolError)) }
        }
    }

    // MARK: Reading and housekeeping

    /// The stored bytes of a message.
    public func contents(of id: MessageID) throws -> [UInt8]? {
        try Spool.contents(of: id, layout: layout, index: index)
    }

    /// Reads a message's bytes without a running spool (for the CLI).
    public static func contents(of id: MessageID, layout: SpoolLayout, index: QueueIndex) throws -> [UInt8]? {
        guard let details = try index.details(of: id) else { return nil }
        let path = SegmentFile.path(directory: layout.segmentsDirectory, number: details.segment)
        return try SegmentFile.read(path: path, offset: details.offset, length: details.length)
    }

    /// Removes segment files that no longer hold a live message.
    public func collectGarbage() throws {
        let live = try index.liveSegments()
        let active = activeSegmentNumber.withLockedValue { $0 }
        for number in try Spool.segmentNumbers(in: layout.segmentsDirectory) where number < active && !live.contains(number) {
            unlink(SegmentFile.path(directory: layout.segmentsDirectory, number: number))
        }
    }

    static func segmentNumbers(in directory: String) throws -> [Int64] {
        try FileManager.default.contentsOfDirectory(atPath: directory).compactMap { name in
            guard name.hasSuffix(".seg") else { return nil }
            return Int64(name.dropLast(4))
        }.sorted()
    }
}
