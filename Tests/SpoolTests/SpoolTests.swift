import Foundation
import GRDB
import Logging
import Testing
@testable import Spool

/// The index follows acknowledgements within milliseconds; wait for it
/// (bounded) instead of sleeping a fixed time.
func eventually(_ condition: () throws -> Bool) async throws {
    for _ in 0..<1000 {
        if try condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("condition not met within 10 s")
}

struct SpoolTests {
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "hikyaku-spool-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func message(_ body: String, recipients: [String] = ["r@example.org"]) -> IncomingMessage {
        IncomingMessage(id: MessageID.generate(), sender: "s@example.com", recipients: recipients, accountID: 3,
                        smtpUTF8: false, clientAddress: "127.0.0.1", heloName: "client",
                        prefix: Array("Received: x\r\n".utf8), content: Array(body.utf8))
    }

    @Test func appendedMessagesAreIndexedAndReadable() async throws {
        let directory = try temporaryDirectory()
        let spool = try Spool(layout: SpoolLayout(directory: directory), logger: Logger(label: "test"))
        let ids = try await withThrowingTaskGroup(of: MessageID.self) { group in
            for index in 0..<50 {
                group.addTask { try await spool.append(message("body \(index)\r\n", recipients: ["a@x.example", "b@y.example"])) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(ids).count == 50)
        // The index follows the acknowledgements within milliseconds; closing flushes it.
        spool.close()
        #expect(try spool.index.count() == 50)
        let details = try #require(try spool.index.details(of: ids[0]))
        #expect(details.recipients.map(\.address) == ["a@x.example", "b@y.example"])
        #expect(details.recipients.allSatisfy { $0.state == "queued" })
        let bytes = try #require(try spool.contents(of: ids[0]))
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("Received: x\r\nbody "))
    }

    /// With a backlog smaller than what is handed over (so that `add` waits for the index thread),
    /// nothing handed over is lost, whether indexed while running or by `close`, and the mark follows.
    @Test func theIndexerLosesNothingPastASmallBacklog() throws {
        let directory = try temporaryDirectory()
        let index = try QueueIndex(path: directory + "/queue.sqlite")
        let indexer = SpoolIndexer(index: index, backlogLimit: 8, logger: Logger(label: "test"))
        var offset: Int64 = 0
        for batch in 0..<20 {
            let rows = (0..<5).map { item in
                let record = SegmentRecord(id: MessageID.generate(), receivedAt: Date(), accountID: 1, smtpUTF8: false,
                                           sender: "s@example.com", heloName: "h", clientAddress: "127.0.0.1",
                                           recipients: ["r\(batch)-\(item)@example.org"], metadata: nil)
                defer { offset += 100 }
                return QueueIndex.Row(record, segment: 1, offset: offset, length: 90)
            }
            indexer.acknowledged(rows.count)
            indexer.add(rows, segment: 1, end: offset)
        }
        indexer.close()
        #expect(try index.count() == 100)
        #expect(try index.segmentMarks()[1] == 10_000)
    }

    /// While the index fails, handing rows over never waits for room (the spool keeps answering, as the
    /// records are durable), and closing returns: nothing hangs on a broken index.
    @Test(.timeLimit(.minutes(1))) func aFailingIndexHoldsUpNeitherTheCommitterNorTheClose() throws {
        let directory = try temporaryDirectory()
        let index = try QueueIndex(path: directory + "/queue.sqlite")
        try index.database.write { try $0.execute(sql: "DROP TABLE message_tag") }
        let indexer = SpoolIndexer(index: index, backlogLimit: 2, logger: Logger(label: "test"))
        for batch in 0..<10 {
            let record = SegmentRecord(id: MessageID.generate(), receivedAt: Date(), accountID: 1, smtpUTF8: false,
                                       sender: "s@example.com", heloName: "h", clientAddress: "127.0.0.1",
                                       recipients: ["r@example.org"], metadata: MessageMetadata(tags: ["t"]))
            indexer.add([QueueIndex.Row(record, segment: 1, offset: Int64(batch) * 100, length: 90)], segment: 1,
                        end: Int64(batch + 1) * 100)
        }
        indexer.close()
        // Nothing was written: no mark covers rows that are not in the index.
        #expect(try index.segmentMarks()[1] == nil)
    }

    /// A withdrawal by index (a campaign cancelled) waits at the barrier for messages acknowledged
    /// before it: every one is then in the index, though acknowledgement came first.
    @Test func theIndexBarrierWaitsForEveryAcknowledgedMessage() async throws {
        let directory = try temporaryDirectory()
        let spool = try Spool(layout: SpoolLayout(directory: directory), logger: Logger(label: "test"))
        defer { spool.close() }
        #expect(await spool.indexedBarrier(timeout: .seconds(10)), "nothing acknowledged: nothing to wait for")
        for round in 0..<20 {
            let ids = try await withThrowingTaskGroup(of: MessageID.self) { group in
                for index in 0..<10 { group.addTask { try await spool.append(message("round \(round) body \(index)\r\n")) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(await spool.indexedBarrier(timeout: .seconds(10)))
            for id in ids { #expect(try spool.index.details(of: id) != nil, "round \(round): \(id) acknowledged but not indexed") }
        }
    }

    @Test func recoverySweepsUnacknowledgedBytesAndKeepsEverythingElse() async throws {
        let directory = try temporaryDirectory()
        let layout = SpoolLayout(directory: directory)
        var spool: Spool? = try Spool(layout: layout, logger: Logger(label: "test"))
        let id = try await spool!.append(message("kept\r\n"))
        spool!.close()
        spool = nil
        // A crash mid-batch: bytes written after the last indexed message, and
        // a segment file that never got an index row.
        let segments = try FileManager.default.contentsOfDirectory(atPath: layout.segmentsDirectory).sorted()
        let used = layout.segmentsDirectory + "/" + segments.first!
        let intactSize = try FileManager.default.attributesOfItem(atPath: used)[.size] as! Int
        let handle = try #require(FileHandle(forWritingAtPath: used))
        handle.seekToEndOfFile()
        handle.write(Data("partial message bytes".utf8))
        try handle.close()
        _ = FileManager.default.createFile(atPath: layout.segmentsDirectory + "/000000000099.seg", contents: Data("orphan".utf8))

        let reopened = try Spool(layout: layout, logger: Logger(label: "test"))
        #expect(try reopened.contents(of: id).map { String(decoding: $0, as: UTF8.self) } == "Received: x\r\nkept\r\n")
        let size = try FileManager.default.attributesOfItem(atPath: used)[.size] as! Int
        #expect(size == intactSize, "the partial write is cut away")
        #expect(!FileManager.default.fileExists(atPath: layout.segmentsDirectory + "/000000000099.seg"))
        reopened.close()
    }

    @Test func holdReleaseDeleteAndGarbageCollection() async throws {
        let directory = try temporaryDirectory()
        let layout = SpoolLayout(directory: directory)
        let spool = try Spool(layout: layout, segmentLimit: 10, logger: Logger(label: "test"))
        let first = try await spool.append(message("first\r\n"))
        let second = try await spool.append(message("second\r\n"))
        try await eventually { try spool.index.details(of: second) != nil }
        #expect(try spool.index.setHeld(first, true))
        #expect(try spool.index.details(of: first)?.held == true)
        #expect(try spool.index.setHeld(first, false))
        #expect(try spool.index.cancel(first) == 1)
        #expect(try spool.index.cancel(first) == 0, "nothing left to cancel")
        #expect(try spool.index.cancel(MessageID.generate()) == nil)
        #expect(try spool.index.details(of: first)?.recipients.map(\.state) == ["cancelled"])
        #expect(try spool.index.events(DeliveryLogFilter(messageID: first)).map(\.type) == [.cancelled, .accepted])
        #expect(try spool.index.summaries().map(\.id) == [second], "the queue lists only what is still to deliver")
        let firstSegment = try FileManager.default.contentsOfDirectory(atPath: layout.segmentsDirectory).sorted().first!
        let firstBytes = try #require(try Spool.contents(of: first, layout: layout, index: spool.index))
        try spool.collectGarbage()
        #expect(!FileManager.default.fileExists(atPath: layout.segmentsDirectory + "/" + firstSegment))
        #expect(try spool.contents(of: second) != nil)
        // The reclaimed message's bytes live on in the archive, for resends, until the log's retention ends.
        #expect(try spool.archive.contents(of: first) == firstBytes)
        #expect(try spool.archive.contents(of: second) == nil, "a live segment's messages are not copied")
        #expect(try spool.archive.totals().messages == 1)
        #expect(try spool.archive.purge(before: Date().addingTimeInterval(-60)) == 0)
        #expect(try spool.archive.purge(before: Date().addingTimeInterval(60)) == 1)
        #expect(try spool.archive.contents(of: first) == nil)
        spool.close()
    }

    @Test func theArchiveCompressesAndRefusesDamage() throws {
        let archive = try MessageArchive(path: try temporaryDirectory() + "/archive.sqlite")
        let text = Array(String(repeating: "Subject: 飛脚\r\nお知らせ本文です。\r\n", count: 200).utf8)
        let id = MessageID.generate()
        try archive.store([(id, text), (MessageID.generate(), [])])
        #expect(try archive.contents(of: id) == text)
        let totals = try archive.totals()
        #expect(totals.messages == 2 && totals.originalBytes == Int64(text.count) && totals.storedBytes < Int64(text.count / 10))
        #expect(MessageArchive.decompress([1, 2, 3, 4], size: 100) == nil)
        #expect(MessageArchive.decompress(MessageArchive.compress(text) ?? [], size: text.count - 1) == nil)
        #expect(MessageArchive.decompress([], size: -1) == nil && MessageArchive.decompress([], size: Int.max) == nil)
    }

    @Test func recordsPastTheIndexMarkAreReindexed() async throws {
        // A crash after the sync and the 250 but before the index commit.
        let directory = try temporaryDirectory()
        let layout = SpoolLayout(directory: directory)
        let spool = try Spool(layout: layout, logger: Logger(label: "test"))
        let first = try await spool.append(message("one\r\n", recipients: ["a@x.example", "b@y.example"]))
        let second = try await spool.append(message("two\r\n"))
        spool.close()
        try await spool.index.database.write { db in
            try db.execute(sql: "DELETE FROM message")
            try db.execute(sql: "DELETE FROM segment_mark")
        }
        let reopened = try Spool(layout: layout, logger: Logger(label: "test"))
        #expect(try reopened.index.details(of: first)?.recipients.map(\.address) == ["a@x.example", "b@y.example"])
        #expect(try reopened.contents(of: second).map { String(decoding: $0, as: UTF8.self) } == "Received: x\r\ntwo\r\n")
        reopened.close()
    }

    @Test func anotherProcessCatchesTheIndexUpWithoutTouchingSegments() async throws {
        let layout = SpoolLayout(directory: try temporaryDirectory())
        let spool = try Spool(layout: layout, logger: Logger(label: "test"))
        let id = try await spool.append(message("fresh\r\n"))
        try await eventually { try spool.index.details(of: id) != nil }
        // As if the server had not written its index transaction yet.
        try await spool.index.database.write { db in
            try db.execute(sql: "DELETE FROM message")
            try db.execute(sql: "DELETE FROM segment_mark")
        }
        let sizes = try FileManager.default.contentsOfDirectory(atPath: layout.segmentsDirectory).map {
            try FileManager.default.attributesOfItem(atPath: layout.segmentsDirectory + "/" + $0)[.size] as! Int
        }
        let reader = try QueueIndex(path: layout.indexPath)
        try Spool.catchUpIndex(layout: layout, index: reader)
        #expect(try reader.details(of: id)?.sender == "s@example.com")
        let after = try FileManager.default.contentsOfDirectory(atPath: layout.segmentsDirectory).map {
            try FileManager.default.attributesOfItem(atPath: layout.segmentsDirectory + "/" + $0)[.size] as! Int
        }
        #expect(after == sizes)
        spool.close()
    }

    @Test func deletedMessagesBeforeTheMarkStayDeleted() async throws {
        let directory = try temporaryDirectory()
        let layout = SpoolLayout(directory: directory)
        let spool = try Spool(layout: layout, logger: Logger(label: "test"))
        let gone = try await spool.append(message("gone\r\n"))
        let kept = try await spool.append(message("kept\r\n"))
        try await eventually { try spool.index.details(of: kept) != nil }
        #expect(try spool.index.cancel(gone) == 1)
        spool.close()
        var reopened = try Spool(layout: layout, logger: Logger(label: "test"))
        #expect(try reopened.index.details(of: gone)?.recipients.map(\.state) == ["cancelled"], "a cancelled message is not requeued")
        // Retention forgets it; a restart does not bring it back either.
        let purged = try reopened.index.purge(before: Date().addingTimeInterval(60))
        // Every event before the cutoff: both acceptances and the cancellation.
        #expect(purged.messages == 1 && purged.events == 3)
        reopened.close()
        reopened = try Spool(layout: layout, logger: Logger(label: "test"))
        #expect(try reopened.index.details(of: gone) == nil, "a delivered or deleted message is not resurrected")
        #expect(try reopened.index.details(of: kept) != nil)
        reopened.close()
    }

    @Test func recordRoundTrip() throws {
        let original = message("body\r\n", recipients: ["ü@例え.jp", "b@y.example"])
        var bytes: [UInt8] = []
        let bodyOffset = SegmentRecord.encode(original, receivedAt: Date(timeIntervalSince1970: 12345.5), into: &bytes)
        #expect(Array(bytes[bodyOffset...]) == original.prefix + original.content)
        let header = bytes[SegmentRecord.fixedHeaderSize..<bodyOffset]
        let decoded = try #require(SegmentRecord.decodeHeader(header))
        #expect(decoded.recipients == original.recipients)
        #expect(decoded.accountID == 3 && decoded.receivedAt == Date(timeIntervalSince1970: 12345.5))
        #expect(SegmentRecord.decodeHeader(header.dropLast()) == nil, "a truncated header is rejected")
        #expect(decoded.metadata == nil)
        // API metadata travels in the record, so recovery restores it with the message.
        var tagged = original
        tagged.metadata = MessageMetadata(tags: ["spring"], customArguments: ["user": "42"], marketing: true,
                                          notBefore: Date(timeIntervalSince1970: 1_800_000_000), source: "api")
        var taggedBytes: [UInt8] = []
        let taggedOffset = SegmentRecord.encode(tagged, receivedAt: Date(), into: &taggedBytes)
        let taggedHeader = taggedBytes[SegmentRecord.fixedHeaderSize..<taggedOffset]
        #expect(SegmentRecord.decodeHeader(taggedHeader)?.metadata == tagged.metadata)
        #expect(SegmentRecord.decodeHeader(taggedHeader.dropLast()) == nil, "truncated metadata is rejected")
        var crc = CRC32()
        crc.update(Array("123456789".utf8))
        #expect(crc.value == 0xCBF4_3926, "the standard CRC-32 check value")
        // Slicing-by-8 agrees with the byte-wise definition on odd lengths and split updates.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        var whole = CRC32()
        whole.update(data)
        var split = CRC32()
        split.update(Array(data[..<333]))
        split.update(data[333...])
        var bitwise: UInt32 = 0xFFFF_FFFF
        for byte in data {
            bitwise ^= UInt32(byte)
            for _ in 0..<8 { bitwise = (bitwise & 1) != 0 ? (bitwise >> 1) ^ 0xEDB8_8320 : bitwise >> 1 }
        }
        #expect(whole.value == ~bitwise && split.value == whole.value)
    }

    @Test func closedSpoolRefuses() async throws {
        let spool = try Spool(layout: SpoolLayout(directory: try temporaryDirectory()), logger: Logger(label: "test"))
        spool.close()
        await #expect(throws: SpoolError.self) { try await spool.append(message("late\r\n")) }
    }

    @Test func messageIDsSortByTime() {
        var generator = SystemRandomNumberGenerator()
        let early = MessageID.generate(now: Date(timeIntervalSince1970: 1000), generator: &generator)
        let late = MessageID.generate(now: Date(timeIntervalSince1970: 2000), generator: &generator)
        #expect(early < late)
        #expect(MessageID(early.rawValue) == early)
        #expect(MessageID("not-an-id") == nil)
    }

    /// A batch's ids are made again alike from its seed and time, differ between members and seeds, and
    /// carry the batch's time as every id does.
    @Test func idsMadeFromASeedAreTheSameEachTimeAndDistinct() {
        let milliseconds: Int64 = 1_780_000_000_123
        let batch = (0..<100_000).map { MessageID(milliseconds: milliseconds, seed: 42, member: Int64($0)) }
        #expect(Set(batch).count == batch.count)
        #expect(batch == (0..<100_000).map { MessageID(milliseconds: milliseconds, seed: 42, member: Int64($0)) })
        #expect(MessageID(milliseconds: milliseconds, seed: 43, member: 7) != batch[7])
        #expect(batch.allSatisfy { MessageID($0.rawValue) == $0 && $0.timestamp == Date(timeIntervalSince1970: 1_780_000_000.123) })
        #expect(MessageID(milliseconds: -5, seed: .max, member: .min).timestamp == Date(timeIntervalSince1970: 0))
    }
}

extension SpoolTests {
    @Test func acceptancesAreLoggedOnceAndIdsAreNeverReused() async throws {
        let directory = try temporaryDirectory()
        let layout = SpoolLayout(directory: directory)
        var spool = try Spool(layout: layout, logger: Logger(label: "test"))
        var first = message("one\r\n")
        first.accountID = 7
        first.metadata = MessageMetadata(tags: ["t"], customArguments: ["k": "v"])
        let id = try await spool.append(first)
        try await eventually { try spool.index.details(of: id) != nil }
        let accepted = try spool.index.eventsAfter(0, accountID: 7, limit: 10)
        #expect(accepted.map(\.event.type) == [.accepted])
        #expect(accepted.first?.metadata?.customArguments == ["k": "v"] && accepted.first?.sender == "s@example.com")
        spool.close()
        // Opened again: still one acceptance.
        spool = try Spool(layout: layout, logger: Logger(label: "test"))
        #expect(try spool.index.eventsAfter(0, accountID: 7, limit: 10).count == 1)
        // Retention empties the log; the next id is still past every id handed out.
        let last = try spool.index.lastEventID()
        try spool.index.cancel(id)
        try spool.index.purge(before: Date().addingTimeInterval(60))
        var second = message("two\r\n")
        second.accountID = 7
        let next = try await spool.append(second)
        try await eventually { try spool.index.details(of: next) != nil }
        let after = try spool.index.eventsAfter(last, accountID: 7, limit: 10)
        #expect(after.map(\.event.messageID) == [next] && after[0].id > last + 1)
        #expect(try spool.index.eventsAfter(0, accountID: 8, limit: 10).isEmpty, "another account's events are not read")
        spool.close()
    }

    @Test func theLogIsSearchedBySenderSubjectAndProvider() async throws {
        let spool = try Spool(layout: SpoolLayout(directory: try temporaryDirectory()), logger: Logger(label: "test"))
        var invoice = message("a\r\n")
        invoice.sender = "Billing@Acme.example"
        invoice.subject = "請求書 100% off_"
        var news = message("b\r\n")
        news.accountID = 4
        news.subject = "請求書 for another account"
        let invoiceID = try await spool.append(invoice)
        let newsID = try await spool.append(news)
        try await eventually { try spool.index.details(of: newsID) != nil && spool.index.details(of: invoiceID) != nil }
        try spool.index.append(DeliveryEvent(at: Date(), messageID: invoiceID, recipient: "r@example.org", type: .delivered,
                                             site: "docomo from 192.0.2.1"))
        func found(_ filter: DeliveryLogFilter) throws -> Set<MessageID> { Set(try spool.index.events(filter).map(\.messageID)) }
        #expect(try found(DeliveryLogFilter(accountID: 3, subject: "請求書")) == [invoiceID])
        #expect(try found(DeliveryLogFilter(subject: "請求書")) == [invoiceID, newsID])
        #expect(try found(DeliveryLogFilter(accountID: 3, subject: "100% off_")) == [invoiceID])
        #expect(try found(DeliveryLogFilter(accountID: 3, subject: "1000")).isEmpty, "% is a letter, not a pattern")
        #expect(try found(DeliveryLogFilter(accountID: 3, sender: "billing@acme.example")) == [invoiceID])
        #expect(try found(DeliveryLogFilter(accountID: 3, provider: "docomo")) == [invoiceID])
        #expect(try found(DeliveryLogFilter(accountID: 3, provider: "docom")).isEmpty)
        spool.close()
    }

    @Test func theFirstDelayNoticeIsAnEvent() async throws {
        let spool = try Spool(layout: SpoolLayout(directory: try temporaryDirectory()), logger: Logger(label: "test"))
        var queued = message("x\r\n")
        queued.accountID = 1
        let id = try await spool.append(queued)
        try await eventually { try spool.index.details(of: id) != nil }
        for _ in 0..<2 {
            var record = AttemptRecord(message: id, recipient: "r@example.org", state: .deferred, reply: "451 later")
            record.delayNotified = true
            try spool.index.recordAttempts([record])
        }
        #expect(try spool.index.eventsAfter(0, accountID: 1, limit: 10).map(\.event.type) == [.accepted, .delayed])
        spool.close()
    }
}

@Suite struct MessageMetadataTests {
    @Test func handWrittenJSONDecodes() throws {
        var metadata = MessageMetadata(tags: ["a\"b", "日本"], customArguments: ["k\n": "v\\", "z": "\u{1}"], marketing: true,
                                       notBefore: Date(timeIntervalSince1970: 1_800_000_000.5), source: "api",
                                       resendOf: MessageID.generate())
        metadata.configurationSet = "set-\"1\""
        metadata.tracking = TrackingSettings(opens: true, clicks: false)
        metadata.unsubscribeGroup = 42
        #expect(try JSONDecoder().decode(MessageMetadata.self, from: Data(metadata.json)) == metadata)
        #expect(try JSONDecoder().decode(MessageMetadata.self, from: Data(MessageMetadata().json)) == MessageMetadata())
    }

    @Test func idsCarryTheirTime() {
        let now = Date()
        #expect(abs(MessageID.generate().timestamp.timeIntervalSince(now)) < 1)
    }
}

struct AcceptanceLogTests {
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "hikyaku-acceptance-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func files(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("accepted-") }.sorted()
    }

    @Test func recordsRoundTripAndATornTailIsIgnored() {
        let id = MessageID.generate()
        let one = AcceptanceLog.encode(message: id, recipients: ["a@x.example", "ユーザー@例え.jp"])
        let two = AcceptanceLog.encode(message: id, recipients: ["b@x.example"])
        let decoded = AcceptanceLog.decode(one + two + Array(two.dropLast(3)))
        #expect(decoded.map(\.recipients) == [["a@x.example", "ユーザー@例え.jp"], ["b@x.example"]])
        var damaged = one
        damaged[damaged.count - 1] ^= 0xFF
        #expect(AcceptanceLog.decode(damaged).isEmpty, "a CRC mismatch ends the log")
    }

    @Test func settledFilesAreRemovedAndTheRestReplayed() throws {
        let directory = try temporaryDirectory()
        let log = AcceptanceLog(directory: directory, rotateAt: 50)
        let id = MessageID.generate()
        let first = try #require(log.record(message: id, recipients: ["a@x.example", "b@x.example", "c@x.example"]))
        let second = try #require(log.record(message: id, recipients: ["d@x.example"]))
        #expect(try files(directory) == ["accepted-1.log", "accepted-2.log"], "the first file filled up")
        log.settle([first])
        #expect(try files(directory) == ["accepted-2.log"], "a full file whose records are all settled goes")
        _ = second
        var replayed: [[String]] = []
        try AcceptanceLog.replay(directory: directory, logger: Logger(label: "test")) { entries in replayed = entries.map(\.recipients) }
        #expect(replayed == [["d@x.example"]])
        #expect(try files(directory).isEmpty)
    }

    // Guards against redelivery after a crash between a remote 250 and the delivery log's record of it.
    @Test func aRestartDeliversWhatWasAcceptedBeforeIt() async throws {
        let directory = try temporaryDirectory()
        let layout = SpoolLayout(directory: directory)
        var spool: Spool? = try Spool(layout: layout, logger: Logger(label: "test"))
        let message = IncomingMessage(id: MessageID.generate(), sender: "s@example.com", recipients: ["a@x.example", "b@x.example"],
                                      accountID: nil, smtpUTF8: false, clientAddress: "127.0.0.1", heloName: "c", prefix: [],
                                      content: Array("Subject: x\r\n\r\nx\r\n".utf8))
        let id = try await #require(spool).append(message)
        _ = spool?.acceptances.record(message: id, recipients: ["a@x.example"])
        spool?.close()
        spool = nil
        let restarted = try Spool(layout: layout, logger: Logger(label: "test"))
        let states = try #require(try restarted.index.details(of: id)).recipients.map { "\($0.address)=\($0.state)" }
        #expect(states == ["a@x.example=delivered", "b@x.example=queued"])
        #expect(try files(directory).isEmpty)
        restarted.close()
    }
}

extension SpoolTests {
    @Test func hourlyCountsAnswerAlignedStatisticsAsTheLogDoes() async throws {
        let spool = try Spool(layout: SpoolLayout(directory: try temporaryDirectory()), logger: Logger(label: "test"))
        defer { spool.close() }
        let index = spool.index
        let id = try await spool.append(message("x\r\n"))  // account 3
        try await eventually { try index.details(of: id) != nil }
        let base = Date(timeIntervalSince1970: 1_796_000_400)  // a whole hour, days before the acceptance
        for (offset, type) in [(10.0, DeliveryEvent.Kind.delivered), (3599, .bounced), (3600, .delivered), (86_000, .deferred), (90_000, .delivered)] {
            try index.append(DeliveryEvent(at: base.addingTimeInterval(offset), messageID: id, recipient: "a@example.jp", type: type))
        }
        // Unaligned windows take the exact path, aligned ones the hourly counts: both must agree where both apply.
        for (interval, offset) in [(3600, 0), (86_400, 0), (86_400, 32_400)] {
            let until = base.addingTimeInterval(2 * 86_400)
            let fast = try index.stats(accountID: 3, since: base, until: until, interval: interval, groupBy: .none, offset: offset)
            let exact = try index.stats(accountID: 3, since: base.addingTimeInterval(0.5), until: until, interval: interval, groupBy: .none,
                                        offset: offset)
            #expect(fast == exact, "interval \(interval) offset \(offset)")
            #expect(fast.reduce(0) { $0 + $1.counts.values.reduce(0, +) } == 5)
        }
        #expect(try index.stats(accountID: 8, since: base, until: base.addingTimeInterval(86_400), interval: 3600, groupBy: .none).isEmpty)
    }

    /// Rows written a hundred to a statement: more than two statements' worth of recipients, acceptances
    /// and tags, and what is left over, all land, and the acceptances counted per transaction agree with the log.
    /// Values bound through SQLite's C API come back as GRDB would have stored them: each type, an empty
    /// text (not NULL), a text with a NUL inside (cut there, as GRDB does) and non-ASCII; a wrong count binds nothing and throws.
    @Test func directlyBoundValuesComeBackAsTheyWere() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (a, b, c, d, e, f, g)")
            let insert = try db.makeStatement(sql: "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)")
            let values: [DatabaseValue] = [.null, 42.databaseValue, 2.5.databaseValue, "".databaseValue, "a\u{0}b".databaseValue,
                                           "顧客様 ✉︎".databaseValue, Data([0, 1, 255]).databaseValue]
            try insert.execute(bound: values)
            try insert.execute(bound: values.reversed())
            #expect(throws: DatabaseError.self) { try insert.execute(bound: Array(values.prefix(6))) }
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM t")
            #expect(rows.count == 2)
            // A NUL inside a text ends it, as with GRDB's own binding (so the same text compares alike either way).
            var stored = values
            stored[4] = "a".databaseValue
            #expect(Array(rows[0].databaseValues) == stored)
            #expect(Array(rows[1].databaseValues) == stored.reversed())
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t WHERE e = ?", arguments: ["a\u{0}b"]) == 1)
            #expect(try String.fetchOne(db, sql: "SELECT typeof(d) FROM t LIMIT 1") == "text")
        }
    }

    @Test func bulkIndexedRowsAllLandAndAcceptancesAreCounted() async throws {
        let index = try QueueIndex(path: try temporaryDirectory() + "/queue.sqlite")
        var rows: [QueueIndex.Row] = []
        for number in 0..<130 {
            let record = SegmentRecord(id: MessageID.generate(), receivedAt: Date(), accountID: 3, smtpUTF8: false, sender: "s@example.com",
                                       heloName: "client", clientAddress: "127.0.0.1",
                                       recipients: ["a\(number)@x.example", "b\(number)@y.example"],
                                       metadata: MessageMetadata(tags: ["spring", "sale"]))
            rows.append(QueueIndex.Row(record, segment: 1, offset: Int64(number) * 100, length: 100))
        }
        // One transaction: two full statements of recipients and acceptances (260 rows), and 60 left over.
        try index.insert(rows, marks: [1: 13_000])
        try index.insert(Array(rows.prefix(3)), marks: [1: 13_000])
        let ids = rows.map(\.record.id)
        for id in ids.prefix(5) + ids.suffix(5) {
            let details = try #require(try index.details(of: id))
            #expect(details.recipients.count == 2)
        }
        #expect(try index.tagReport(accountID: 3, tag: "sale").accepted == 260)
        let accepted = try index.events(DeliveryLogFilter(limit: 10_000)).filter { $0.type == .accepted }
        #expect(accepted.count == 260 && Set(accepted.map(\.recipient)).count == 260)
        let hour = (Date().timeIntervalSince1970 / 3600).rounded(.down) * 3600
        let since = Date(timeIntervalSince1970: hour - 3600), until = Date(timeIntervalSince1970: hour + 7200)
        let fast = try index.stats(accountID: 3, since: since, until: until, interval: 3600, groupBy: .none)
        let exact = try index.stats(accountID: 3, since: since.addingTimeInterval(0.5), until: until, interval: 3600, groupBy: .none)
        #expect(fast == exact && fast.reduce(0) { $0 + ($1.counts["accepted"] ?? 0) } == 260)
    }
}
