import Foundation
import NIOConcurrencyHelpers

/// The replay memory on disk, so that a restart (a crash included) does not
/// forget which signatures were used while they are still valid. One line per
/// signature accepted (`expires key signature`) and one per signature
/// forgotten again because its request failed (`- signature`), appended
/// without fsync: the kernel keeps what was written when the process dies;
/// a power cut may lose the last lines.
///
/// Two generations bound the file: once the current one is older than the
/// window it becomes `.previous`, and the one before is removed (every entry
/// in it has expired: it was written a window or more before).
final class ReplayJournal: Sendable {
    struct Entry: Equatable {
        var signature: String
        var key: String
        var expires: Date
    }

    let path: String
    let window: TimeInterval
    private let file = NIOLockedValueBox<(handle: FileHandle?, started: Date)>((nil, .distantPast))

    init(path: String, window: TimeInterval) {
        self.path = path
        self.window = window
    }

    var previousPath: String { path + ".previous" }

    /// The live entries of both generations, forgotten ones left out, soonest to expire first.
    func load(now: Date = Date()) -> [Entry] {
        var entries: [String: Entry] = [:]
        for file in [previousPath, path] {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            for line in data.split(separator: UInt8(ascii: "\n")) {
                let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
                if fields.count == 2, fields[0] == "-" {
                    entries[fields[1]] = nil
                } else if fields.count == 3, let expires = Double(fields[0]), expires.isFinite, expires > now.timeIntervalSince1970 {
                    // A torn last line fails these checks or names a signature no request will carry.
                    entries[fields[2]] = Entry(signature: fields[2], key: fields[1], expires: Date(timeIntervalSince1970: expires))
                }
            }
        }
        return entries.values.sorted { ($0.expires, $0.signature) < ($1.expires, $1.signature) }
    }

    /// Records a signature accepted until `expires`.
    func recordUse(_ signature: String, key: String, expires: Date, now: Date = Date()) {
        // Keys and signatures come from checked requests (hexadecimal, the store's key ids); a space or
        // a line end in one would break the line, so such a one is not written (it is still remembered).
        guard ReplayJournal.isWord(signature), ReplayJournal.isWord(key) || key.isEmpty else { return }
        append("\(expires.timeIntervalSince1970) \(key) \(signature)\n", now: now)
    }

    /// Records that a signature may be used again.
    func recordForget(_ signature: String, now: Date = Date()) {
        guard ReplayJournal.isWord(signature) else { return }
        append("- \(signature)\n", now: now)
    }

    static func isWord(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    private func append(_ line: String, now: Date) {
        file.withLockedValue { file in
            if file.handle == nil || now.timeIntervalSince(file.started) > window {
                try? file.handle?.close()
                file.handle = nil
                let manager = FileManager.default
                // Kept after a restart while it is younger than the window; a file without its first line is rotated.
                if let started = ReplayJournal.started(path), now.timeIntervalSince(started) <= window {
                    file.started = started
                } else {
                    if manager.fileExists(atPath: path) {
                        try? manager.removeItem(atPath: previousPath)
                        try? manager.moveItem(atPath: path, toPath: previousPath)
                    }
                    guard manager.createFile(atPath: path, contents: Data("# started \(now.timeIntervalSince1970)\n".utf8),
                                             attributes: [.posixPermissions: 0o600]) else { return }
                    file.started = now
                }
                guard let handle = FileHandle(forWritingAtPath: path) else { return }
                _ = try? handle.seekToEnd()
                file.handle = handle
            }
            try? file.handle?.write(contentsOf: Data(line.utf8))
        }
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
