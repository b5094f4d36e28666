import Foundation
import Logging
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The replay memory on disk, so that a restart (a crash included) does not
/// forget which signatures were used while they are still valid. One line per
/// signature accepted (`expires key signature`) and one per signature
/// forgotten again because its request failed (`- signature`), appended
/// without fsync: the kernel keeps what was written when the process dies;
/// a power cut may lose the last lines.
///
/// Bounded two ways. By time: once the current generation is a window old
/// (or its start is not believable: a clock set back) it is renamed to
/// `.previous`, replacing the one before, every entry of which has expired.
/// By size: a generation that reaches `maximumLines` (failed requests add
/// lines without adding live signatures) is rewritten as the live entries the
/// memory holds, which are at most its capacity.
final class ReplayJournal: Sendable {
    struct Entry: Equatable {
        var signature: String
        var key: String
        var expires: Date
    }

    let path: String
    let window: TimeInterval
    let maximumLines: Int
    /// Read at most this much of each generation on start.
    let maximumBytesRead: Int
    private let logger: Logger?
    private let file = NIOLockedValueBox<(handle: FileHandle?, started: Date, lines: Int)>((nil, .distantPast, 0))

    init(path: String, window: TimeInterval, maximumLines: Int = 400_000, logger: Logger? = nil) {
        self.path = path
        self.window = window
        self.maximumLines = maximumLines
        // A line is at most about 200 bytes (a 64-digit signature, a key id, a time).
        self.maximumBytesRead = maximumLines * 200
        self.logger = logger
    }

    var previousPath: String { path + ".previous" }

    /// The live entries of both generations, forgotten ones left out, soonest to expire first.
    func load(now: Date = Date()) -> [Entry] {
        var entries: [String: Entry] = [:]
        for file in [previousPath, path] {
            guard let handle = FileHandle(forReadingAtPath: file) else { continue }
            let data = (try? handle.read(upToCount: maximumBytesRead)) ?? nil
            try? handle.close()
            for line in (data ?? Data()).split(separator: UInt8(ascii: "\n")) {
                let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
                if fields.count == 2, fields[0] == "-" {
                    entries[fields[1]] = nil
                } else if fields.count == 3, let expires = Double(fields[0]), expires.isFinite, expires > now.timeIntervalSince1970 {
                    // A torn line fails these checks or names a signature no request will carry.
                    entries[fields[2]] = Entry(signature: fields[2], key: fields[1], expires: Date(timeIntervalSince1970: expires))
                }
            }
        }
        return entries.values.sorted { ($0.expires, $0.signature) < ($1.expires, $1.signature) }
    }

    /// Records a signature accepted until `expires`. `live` gives the memory's
    /// live entries, called only when the generation is full and rewritten.
    func recordUse(_ signature: String, key: String, expires: Date, now: Date = Date(), live: () -> [Entry] = { [] }) {
        // Keys and signatures come from checked requests (hexadecimal, the store's key ids); a space or
        // a line end in one would break the line, so such a one is not written (it is still remembered).
        guard ReplayJournal.isWord(signature), ReplayJournal.isWord(key) || key.isEmpty else { return }
        append("\(expires.timeIntervalSince1970) \(key) \(signature)\n", now: now, live: live)
    }

    /// Records that a signature may be used again.
    func recordForget(_ signature: String, now: Date = Date(), live: () -> [Entry] = { [] }) {
        guard ReplayJournal.isWord(signature) else { return }
        append("- \(signature)\n", now: now, live: live)
    }

    static func isWord(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    private func append(_ line: String, now: Date, live: () -> [Entry]) {
        file.withLockedValue { file in
            if file.handle == nil || abs(now.timeIntervalSince(file.started)) > window {
                open(&file, now: now)
            } else if file.lines >= maximumLines {
                compact(&file, live(), now: now)
            }
            guard let handle = file.handle else { return }
            do {
                try handle.write(contentsOf: Data(line.utf8))
                file.lines += 1
            } catch {
                logger?.warning("replay journal: cannot append; signatures used now are remembered until a restart only",
                                metadata: ["file": "\(path)", "error": "\(error)"])
            }
        }
    }

    /// Opens the current generation: the existing file while it is younger than the window, else a new one.
    private func open(_ file: inout (handle: FileHandle?, started: Date, lines: Int), now: Date) {
        try? file.handle?.close()
        file.handle = nil
        let manager = FileManager.default
        if let started = ReplayJournal.started(path), abs(now.timeIntervalSince(started)) <= window,
           let handle = FileHandle(forUpdatingAtPath: path) {
            // Counted, and ended with a line end if the last writer died in the middle of a line.
            let data = (try? handle.read(upToCount: maximumBytesRead)) ?? nil
            file.lines = data.map { $0.reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 } } ?? 0
            _ = try? handle.seekToEnd()
            if let last = data?.last, last != UInt8(ascii: "\n") { try? handle.write(contentsOf: Data("\n".utf8)) }
            file.handle = handle
            file.started = started
            return
        }
        if manager.fileExists(atPath: path) {
            // One rename replaces the previous generation; if it fails, the current file is kept, never emptied.
            guard rename(path, previousPath) == 0 else {
                logger?.warning("replay journal: cannot rotate; appending to the current file",
                                metadata: ["file": "\(path)", "errno": "\(errno)"])
                file.handle = FileHandle(forWritingAtPath: path)
                _ = try? file.handle?.seekToEnd()
                file.started = now
                return
            }
        }
        start(&file, with: [], now: now)
    }

    /// Rewrites the journal as `entries` (the memory's live set, which covers both generations).
    private func compact(_ file: inout (handle: FileHandle?, started: Date, lines: Int), _ entries: [Entry], now: Date) {
        try? file.handle?.close()
        file.handle = nil
        let temporary = path + ".new"
        unlink(temporary)
        start(&file, with: entries, now: now, at: temporary)
        try? file.handle?.close()
        file.handle = nil
        guard rename(temporary, path) == 0 else {
            logger?.warning("replay journal: cannot compact", metadata: ["file": "\(path)", "errno": "\(errno)"])
            unlink(temporary)
            file.handle = FileHandle(forWritingAtPath: path)
            _ = try? file.handle?.seekToEnd()
            // Tried again after as many lines more, not on every request while the disk refuses.
            file.lines = 0
            return
        }
        unlink(previousPath)
        file.handle = FileHandle(forWritingAtPath: path)
        _ = try? file.handle?.seekToEnd()
    }

    /// A new generation at `at` (the current path by default) holding `entries`.
    private func start(_ file: inout (handle: FileHandle?, started: Date, lines: Int), with entries: [Entry], now: Date, at target: String? = nil) {
        var text = "# started \(now.timeIntervalSince1970)\n"
        for entry in entries where entry.expires > now {
            text += "\(entry.expires.timeIntervalSince1970) \(entry.key) \(entry.signature)\n"
        }
        guard FileManager.default.createFile(atPath: target ?? path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            logger?.warning("replay journal: cannot create", metadata: ["file": "\(target ?? path)"])
            return
        }
        file.handle = FileHandle(forWritingAtPath: target ?? path)
        _ = try? file.handle?.seekToEnd()
        file.started = now
        file.lines = entries.count + 1
    }

    /// When a generation was started: its first line, `# started <seconds since 1970>`.
    static func started(_ path: String) -> Date? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 64),
              let line = head.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).first,
              line.starts(with: Array("# started ".utf8)),
              let seconds = Double(String(decoding: line.dropFirst(10), as: UTF8.self)), seconds.isFinite else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }
}
