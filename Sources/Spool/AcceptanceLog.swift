import Foundation
import Logging
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which recipients a remote server has accepted (its 250), written the
/// moment the reply arrives, before anything else happens: an append of a
/// few dozen bytes to a file, no sync. The delivery log records the same
/// outcome a little later, in a database transaction shared with other
/// deliveries; a crash in between would otherwise send those recipients the
/// message again after the restart (DESIGN.md invariant 2: keep that window
/// short). After a crash of the process the written bytes are in the page
/// cache and survive; after a crash of the machine some may be lost, which
/// costs duplicates, never mail.
///
/// On start the spool replays what the log holds (`replay`), marking those
/// recipients delivered unless the index already says so, then starts
/// empty. While the server runs, a record is `settle`d once the delivery log
/// has it; a file whose every record is settled is removed, so the log stays
/// small. Records carry a CRC: a torn last write is ignored.
public final class AcceptanceLog: Sendable {
    /// Names a record for `settle`: its file's generation.
    public struct Token: Sendable, Hashable {
        let generation: Int
    }

    private struct State {
        var descriptor: Int32 = -1
        var generation = 0
        var size = 0
        /// Records written but not yet settled, per generation still on disk.
        var unsettled: [Int: Int] = [:]
    }

    private let directory: String
    private let rotateAt: Int
    private let state = NIOLockedValueBox(State())

    static let prefix = "accepted-"
    static let magic: [UInt8] = [0x48, 0x41] // "HA"

    /// Opens an empty log in `directory` (call `replay` first to read an old one).
    public init(directory: String, rotateAt: Int = 4 << 20) {
        self.directory = directory
        self.rotateAt = rotateAt
    }

    deinit {
        state.withLockedValue { if $0.descriptor >= 0 { close($0.descriptor) } }
    }

    /// Records that `recipients` of `message` were accepted by the remote
    /// server; nil when it could not be written (then only the delivery log
    /// records it, as before). Safe from any thread; a write of its own.
    public func record(message: MessageID, recipients: [String]) -> Token? {
        guard !recipients.isEmpty else { return nil }
        let bytes = AcceptanceLog.encode(message: message, recipients: recipients)
        return state.withLockedValue { state -> Token? in
            if state.descriptor < 0 || state.size >= rotateAt {
                // A full file is left to drain; a new generation takes the appends.
                if state.descriptor >= 0 {
                    close(state.descriptor)
                    state.descriptor = -1
                    if state.unsettled[state.generation, default: 0] == 0 { removeFile(state.generation, &state) }
                }
                state.generation += 1
                let fd = open(path(state.generation), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
                guard fd >= 0 else { return nil }
                state.descriptor = fd
                state.size = 0
                state.unsettled[state.generation] = 0
            }
            let written = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return write(state.descriptor, base, raw.count)
            }
            guard written == bytes.count else {
                // A partial record (a full disk) would hide every record after it from `decode`: cut it off.
                _ = ftruncate(state.descriptor, off_t(state.size))
                return nil
            }
            state.size += bytes.count
            state.unsettled[state.generation, default: 0] += 1
            return Token(generation: state.generation)
        }
    }

    /// The delivery log now holds what these records said.
    public func settle(_ tokens: [Token]) {
        guard !tokens.isEmpty else { return }
        state.withLockedValue { state in
            for token in tokens {
                guard let count = state.unsettled[token.generation] else { continue }
                state.unsettled[token.generation] = count - 1
                // A file no longer appended to, every record settled: nothing in it is needed.
                if count - 1 == 0 && token.generation != state.generation { removeFile(token.generation, &state) }
            }
        }
    }

    private func removeFile(_ generation: Int, _ state: inout State) {
        unlink(path(generation))
        state.unsettled.removeValue(forKey: generation)
    }

    private func path(_ generation: Int) -> String { "\(directory)/\(AcceptanceLog.prefix)\(generation).log" }

    // MARK: Replay

    /// The accepted recipients recorded in `directory` by a previous run, in
    /// order; the files are removed once `apply` has taken them in.
    public static func replay(directory: String, logger: Logger,
                              apply: ([(message: MessageID, recipients: [String])]) throws -> Void) throws {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(prefix) && $0.hasSuffix(".log") }
            .sorted { (Int($0.dropFirst(prefix.count).dropLast(4)) ?? 0) < (Int($1.dropFirst(prefix.count).dropLast(4)) ?? 0) }
        guard !names.isEmpty else { return }
        var entries: [(message: MessageID, recipients: [String])] = []
        var read: [String] = []
        for name in names {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else {
                logger.warning("spool recovery: an acceptance log cannot be read; kept", metadata: ["file": "\(name)"])
                continue
            }
            entries += decode(Array(data))
            read.append(name)
        }
        if !entries.isEmpty {
            logger.info("spool recovery: recipients accepted before the restart", metadata: ["records": "\(entries.count)"])
            try apply(entries)
        }
        for name in read { unlink(directory + "/" + name) }
    }

    // MARK: Format

    /// magic (2) | length of what follows the CRC (4) | CRC-32 of it (4) | id (20) | count (2) | (length (2), address)…
    static func encode(message: MessageID, recipients: [String]) -> [UInt8] {
        var payload = Array(message.rawValue.utf8)
        let listed = recipients.prefix(Int(UInt16.max))
        SegmentRecord.append(UInt16(truncatingIfNeeded: listed.count), to: &payload)
        for recipient in listed { SegmentRecord.append(string: recipient, to: &payload) }
        var crc = CRC32()
        crc.update(payload)
        var record = magic
        SegmentRecord.append(UInt32(truncatingIfNeeded: payload.count), to: &record)
        SegmentRecord.append(crc.value, to: &record)
        return record + payload
    }

    /// Every intact record, up to the first torn or damaged one.
    static func decode(_ bytes: [UInt8]) -> [(message: MessageID, recipients: [String])] {
        var entries: [(message: MessageID, recipients: [String])] = []
        var offset = 0
        while bytes.count - offset >= 10, bytes[offset] == magic[0], bytes[offset + 1] == magic[1] {
            let length = Int(SegmentRecord.readInteger(bytes, at: offset + 2, as: UInt32.self))
            let storedCRC = SegmentRecord.readInteger(bytes, at: offset + 6, as: UInt32.self)
            guard length >= 22, length <= bytes.count - offset - 10 else { break }
            let payload = bytes[(offset + 10)..<(offset + 10 + length)]
            var crc = CRC32()
            crc.update(payload)
            guard crc.value == storedCRC, let message = MessageID(String(decoding: payload.prefix(20), as: UTF8.self)) else { break }
            var index = payload.startIndex + 20
            func integer16() -> Int? {
                guard payload.endIndex - index >= 2 else { return nil }
                defer { index += 2 }
                return Int(payload[index]) | Int(payload[index + 1]) << 8
            }
            var recipients: [String] = []
            if let count = integer16() {
                for _ in 0..<count {
                    guard let size = integer16(), payload.endIndex - index >= size,
                          let recipient = String(validating: payload[index..<(index + size)], as: UTF8.self) else { break }
                    recipients.append(recipient)
                    index += size
                }
            }
            entries.append((message, recipients))
            offset += 10 + length
        }
        return entries
    }
}
