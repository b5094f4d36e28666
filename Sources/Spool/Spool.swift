import Dispatch
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
    public var archivePath: String { directory + "/archive.sqlite" }
}

/// The durable message store.
///
/// Contract: `append`'s completion reports success only after the message's
/// record — envelope and bytes, with a CRC — is fdatasync'd in a segment
/// (whose directory entry was synced when the segment was created). Only
/// then may a server answer 250. Appends that arrive while a batch is being
/// written wait for the next batch: many sessions share one sync (group
/// commit). On any write or sync failure the whole batch fails and nothing
/// of it is reported as stored.
///
/// The SQLite queue index is updated right after the batch is acknowledged,
/// on a thread of its own (`SpoolIndexer`); it is derived data: on start-up
/// every record past its segment's mark is (re-)indexed, so a crash between
/// the sync and the index commit loses nothing.
public final class Spool: @unchecked Sendable {
    public typealias Completion = @Sendable (Result<MessageID, SpoolError>) -> Void

    public let layout: SpoolLayout
    public let index: QueueIndex
    /// Finished messages' bytes, kept after their segment is reclaimed (resends during the log's retention).
    public let archive: MessageArchive
    /// Remote acceptances, written as they arrive (see `AcceptanceLog`).
    public let acceptances: AcceptanceLog
    private let logger: Logger

    /// Rotate to a new segment past this size.
    private let segmentLimit: Int64
    /// Refuse new messages (452 4.3.1) when the file system has less free
    /// space than this, so the index and the log can still be written
    /// (Postfix's `queue_minfree`).
    private let minimumFreeBytes: Int64
    /// How long the committer waits for more appends before syncing a batch.
    private let commitDelayMicroseconds: Int

    // Guarded by `lock`.
    private let lock = ConditionLock(value: Spool.idle)
    private var pending: [(IncomingMessage, Completion)] = []
    private var stopping = false

    // Touched only by the committer thread (and by `init` before it starts).
    private var activeSegment: SegmentFile
    /// Takes acknowledged rows to the index.
    private let indexer: SpoolIndexer
    /// Set after a failed sync: the kernel may have dropped dirty pages, so
    /// nothing more is accepted until a restart re-validates the spool.
    private let failure = NIOLockedValueBox<SpoolError?>(nil)
    /// The number of `activeSegment`, readable from any thread.
    private let activeSegmentNumber = NIOLockedValueBox<Int64>(0)

    private static let idle = 0
    private static let work = 1
    private static let finished = 2
    /// No commit delay once this many messages are already waiting.
    private static let commitDelayBatchLimit = 64

    /// Opens (creating if needed) the spool and recovers it: every intact
    /// record past its segment's index mark is indexed; bytes after the last
    /// intact record (a write torn by a crash, never acknowledged) are cut
    /// away. Appends go to a fresh segment.
    public init(layout: SpoolLayout, segmentLimit: Int64 = 64 << 20, minimumFreeBytes: Int64 = 0,
                commitDelayMicroseconds: Int = 0, logger: Logger) throws {
        self.layout = layout
        self.commitDelayMicroseconds = commitDelayMicroseconds
        self.logger = logger
        self.segmentLimit = segmentLimit
        self.minimumFreeBytes = minimumFreeBytes
        try FileManager.default.createDirectory(atPath: layout.segmentsDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        index = try QueueIndex(path: layout.indexPath)
        archive = try MessageArchive(path: layout.archivePath)
        let existing = try Spool.segmentNumbers(in: layout.segmentsDirectory)
        let marks = try index.segmentMarks()
        for number in existing {
            try Spool.recover(segment: number, from: marks[number] ?? 0, layout: layout, index: index, logger: logger)
        }
        // Recipients a remote server had accepted when the last run stopped are delivered, whatever the index says.
        let index = self.index
        try AcceptanceLog.replay(directory: layout.directory, logger: logger) { entries in
            let changed = try index.recordAcceptedBeforeRestart(entries)
            if changed > 0 { logger.notice("spool recovery: recipients delivered just before the restart", metadata: ["recipients": "\(changed)"]) }
        }
        acceptances = AcceptanceLog(directory: layout.directory)
        let next = (existing.max() ?? 0) + 1
        try SegmentFile.syncDirectory(layout.segmentsDirectory)
        activeSegment = try SegmentFile(directory: layout.segmentsDirectory, number: next, create: true)
        activeSegmentNumber.withLockedValue { $0 = next }
        indexer = SpoolIndexer(index: index, logger: logger)
        let thread = Thread { [self] in runCommitter() }
        thread.name = "spool-commit"
        thread.start()
    }

    static func recover(segment number: Int64, from mark: Int64, layout: SpoolLayout, index: QueueIndex, logger: Logger) throws {
        let segment = try SegmentFile(directory: layout.segmentsDirectory, number: number, create: false)
        let (rows, end) = scan(segment, from: mark)
        if segment.size > end {
            logger.info("spool recovery: sweeping bytes after the last intact record",
                        metadata: ["segment": "\(number)", "bytes": "\(segment.size - end)"])
            try segment.truncate(to: end)
        }
        if end == 0 {
            // Nothing was ever acknowledged from this segment.
            unlink(segment.path)
            try index.forgetSegment(number)
            return
        }
        if !rows.isEmpty {
            logger.info("spool recovery: indexing records", metadata: ["segment": "\(number)", "messages": "\(rows.count)"])
        }
        try index.insert(rows, marks: [number: end])
    }

    /// The intact records of `segment` from `offset` on, and where they end.
    static func scan(_ segment: SegmentFile, from offset: Int64) -> (rows: [QueueIndex.Row], end: Int64) {
        var offset = offset
        var rows: [QueueIndex.Row] = []
        while let scanned = SegmentRecord.read(from: segment, at: offset) {
            rows.append(QueueIndex.Row(scanned.record, segment: segment.number, offset: scanned.bodyOffset,
                                       length: scanned.bodyLength))
            offset = scanned.end
        }
        return (rows, offset)
    }

    /// Brings the index up to date with the segments without touching them,
    /// for readers in another process (the `hikyaku queue` commands) while
    /// the server runs: a message is visible there as soon as its 250 is sent,
    /// not only once the server's next index transaction is in.
    public static func catchUpIndex(layout: SpoolLayout, index: QueueIndex) throws {
        let marks = try index.segmentMarks()
        for number in try segmentNumbers(in: layout.segmentsDirectory) {
            guard let segment = try? SegmentFile(directory: layout.segmentsDirectory, number: number, create: false,
                                                 readOnly: true) else { continue }
            let (rows, end) = scan(segment, from: marks[number] ?? 0)
            if !rows.isEmpty { try index.insert(rows, marks: [number: end]) }
        }
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
        let alreadyStopped = stopping
        stopping = true
        lock.unlock(withValue: Spool.work)
        guard !alreadyStopped else { return }
        // A committer waiting for room in the index's backlog goes on, or it would never finish.
        indexer.stopWaiting()
        lock.lock(whenValue: Spool.finished)
        lock.unlock(withValue: Spool.finished)
        indexer.close()
    }

    public var isHealthy: Bool { failure.withLockedValue { $0 == nil } }

    /// Called on the index thread after new messages reach the index
    /// (the scheduler wakes up instead of waiting for its next look).
    public var onIndexed: (@Sendable () -> Void)? {
        get { indexer.onIndexed }
        set { indexer.onIndexed = newValue }
    }

    // MARK: Committer

    private func runCommitter() {
        while true {
            lock.lock(whenValue: Spool.work)
            if commitDelayMicroseconds > 0 && !stopping && pending.count < Spool.commitDelayBatchLimit {
                // Group-commit window (PostgreSQL's commit_delay): sessions
                // finishing DATA right now share this sync instead of paying
                // for the next one.
                lock.unlock(withValue: Spool.work)
                usleep(UInt32(commitDelayMicroseconds))
                lock.lock()
            }
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            let shouldStop = stopping && batch.isEmpty
            lock.unlock(withValue: Spool.idle)
            commit(batch)
            lock.lock()
            if shouldStop && pending.isEmpty {
                lock.unlock(withValue: Spool.finished)
                return
            }
            // More may have arrived meanwhile; the lock value tells the loop.
            let more = !pending.isEmpty || stopping
            lock.unlock(withValue: more ? Spool.work : Spool.idle)
        }
    }

    private func commit(_ batch: [(IncomingMessage, Completion)]) {
        guard !batch.isEmpty else { return }
        let rows: [QueueIndex.Row]
        do {
            if minimumFreeBytes > 0, let free = activeSegment.freeBytes(), free < minimumFreeBytes {
                throw SystemError(code: ENOSPC, message: "free space below the spool minimum")
            }
            if activeSegment.size >= segmentLimit {
                activeSegment = try SegmentFile(directory: layout.segmentsDirectory,
                                                number: activeSegment.number + 1, create: true)
                activeSegmentNumber.withLockedValue { $0 = activeSegment.number }
            }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(batch.reduce(0) { $0 + $1.0.size + 256 })
            var located: [(bodyStart: Int, length: Int, metadataJSON: [UInt8]?)] = []
            located.reserveCapacity(batch.count)
            let now = Date()
            for (message, _) in batch {
                let recordStart = bytes.count
                let json = message.metadata?.json
                let bodyOffset = SegmentRecord.encode(message, metadataJSON: json, receivedAt: now, into: &bytes)
                located.append((recordStart + bodyOffset, message.size, json))
            }
            let start = try activeSegment.append(bytes)
            do {
                try activeSegment.sync()
            } catch {
                // After a failed fsync the page cache may no longer hold our
                // bytes (fsyncgate); refuse everything until a restart.
                failure.withLockedValue { $0 = .unavailable("spool sync failed") }
                throw error
            }
            rows = zip(batch, located).map { entry, location in
                let message = entry.0
                let record = SegmentRecord(id: message.id, receivedAt: now, accountID: message.accountID,
                                           smtpUTF8: message.smtpUTF8, sender: message.sender, heloName: message.heloName,
                                           clientAddress: message.clientAddress, recipients: message.recipients,
                                           metadata: message.metadata)
                return QueueIndex.Row(record, segment: activeSegment.number, offset: start + Int64(location.bodyStart),
                                      length: location.length, subject: message.subject, metadataJSON: location.metadataJSON)
            }
        } catch {
            let spoolError: SpoolError
            if let systemError = error as? SystemError, systemError.isOutOfSpace {
                spoolError = .insufficientStorage
            } else {
                spoolError = .unavailable("\(error)")
            }
            logger.error("spool write failed", metadata: ["error": "\(error)", "messages": "\(batch.count)"])
            for (_, completion) in batch { completion(.failure(spoolError)) }
            return
        }
        // Durable: answer first; the index follows. Counted first, so that whoever has an answer and
        // then asks `indexedBarrier` waits for these rows too.
        indexer.acknowledged(rows.count)
        for (row, (_, completion)) in zip(rows, batch) { completion(.success(row.record.id)) }
        indexer.add(rows, segment: activeSegment.number, end: activeSegment.size)
    }

    /// Returns once every message acknowledged before the call is in the index, or after `timeout`
    /// (false); see `SpoolIndexer.barrier`.
    public func indexedBarrier(timeout: Duration) async -> Bool {
        await indexer.barrier(timeout: timeout)
    }

    // MARK: Reading and housekeeping

    /// The stored bytes of a message.
    public func contents(of id: MessageID) throws -> [UInt8]? {
        try Spool.contents(of: id, layout: layout, index: index)
    }

    /// Reads a message's bytes without a running spool (for the CLI).
    public static func contents(of id: MessageID, layout: SpoolLayout, index: QueueIndex) throws -> [UInt8]? {
        guard let details = try index.details(of: id) else { return nil }
        return try contents(of: details, layout: layout)
    }

    /// Reads the bytes of a message whose index row is at hand.
    public static func contents(of details: QueuedMessageDetails, layout: SpoolLayout) throws -> [UInt8] {
        let path = SegmentFile.path(directory: layout.segmentsDirectory, number: details.segment)
        return try SegmentFile.read(path: path, offset: details.offset, length: details.length)
    }

    /// Removes segment files that no longer hold a live message. Only
    /// segments older than the active one and indexed to their end qualify,
    /// so no acknowledged message can hide in a removed segment. The bytes of
    /// the messages still on record are first copied to the archive; a
    /// segment whose copy fails stays (and is logged) for the next round,
    /// without holding back the others.
    public func collectGarbage() throws {
        // Marks first: a segment indexed to its end by then has all its rows in the index when the live
        // segments are read (the other order could see its last rows arrive in between, and remove it).
        let marks = try index.segmentMarks()
        let live = try index.liveSegments()
        let active = activeSegmentNumber.withLockedValue { $0 }
        for number in try Spool.segmentNumbers(in: layout.segmentsDirectory) where number < active && !live.contains(number) {
            let path = SegmentFile.path(directory: layout.segmentsDirectory, number: number)
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                  let size = (attributes[.size] as? NSNumber)?.int64Value,
                  let mark = marks[number], mark >= size else { continue }
            do {
                let onRecord = try index.messages(inSegment: number)
                for start in stride(from: 0, to: onRecord.count, by: 500) {
                    let slice = onRecord[start..<min(start + 500, onRecord.count)]
                    try archive.store(try slice.map { ($0.id, try SegmentFile.read(path: path, offset: $0.offset, length: $0.length)) })
                }
            } catch {
                logger.warning("segment kept: its messages could not be archived", metadata: ["segment": "\(number)", "error": "\(error)"])
                continue
            }
            unlink(path)
            try index.forgetSegment(number)
        }
    }

    static func segmentNumbers(in directory: String) throws -> [Int64] {
        try FileManager.default.contentsOfDirectory(atPath: directory).compactMap { name in
            guard name.hasSuffix(".seg") else { return nil }
            return Int64(name.dropLast(4))
        }.sorted()
    }
}
