import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One append-only spool segment: many messages' bytes, back to back.
///
/// Appending to a shared file and syncing it once per batch is what makes
/// group commit cheap; a file per message would cost an inode allocation and a
/// directory sync each (see docs/performance.md).
final class SegmentFile {
    let number: Int64
    let path: String
    private let descriptor: Int32
    private(set) var size: Int64

    init(directory: String, number: Int64, create: Bool, readOnly: Bool = false) throws {
        self.number = number
        self.path = SegmentFile.path(directory: directory, number: number)
        let flags = create ? (O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC) : ((readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else { throw SystemError.last("open \(path)") }
        descriptor = fd
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else {
            close(fd)
            throw SystemError.last("lseek \(path)")
        }
        size = Int64(end)
        if create {
            // A new directory entry is durable only once the directory is synced.
            try SegmentFile.syncDirectory(directory)
        }
    }

    deinit { close(descriptor) }

    static func path(directory: String, number: Int64) -> String {
        let digits = String(number)
        return directory + "/" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + ".seg"
    }

    /// Writes all of `bytes` at the current end; on failure the segment is cut
    /// back so that no partial batch is left behind.
    func append(_ bytes: [UInt8]) throws -> Int64 {
        let start = size
        var written = 0
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            while written < raw.count {
                let result = pwrite(descriptor, base + written, raw.count - written, off_t(start) + off_t(written))
                if result < 0 {
                    if errno == EINTR { continue }
                    let error = SystemError.last("write \(path)")
                    _ = ftruncate(descriptor, off_t(start))
                    throw error
                }
                written += result
            }
        }
        size = start + Int64(bytes.count)
        return start
    }

    func sync() throws {
        while fdatasync(descriptor) != 0 {
            if errno == EINTR { continue }
            throw SystemError.last("fdatasync \(path)")
        }
    }

    func truncate(to length: Int64) throws {
        guard ftruncate(descriptor, off_t(length)) == 0 else { throw SystemError.last("ftruncate \(path)") }
        size = length
        try sync()
    }

    func read(offset: Int64, length: Int) throws -> [UInt8] {
        try SegmentFile.read(descriptor: descriptor, path: path, offset: offset, length: length)
    }

    /// Reads from a segment without keeping it open (other processes, e.g. the CLI).
    static func read(path: String, offset: Int64, length: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError.last("open \(path)") }
        defer { close(fd) }
        return try read(descriptor: fd, path: path, offset: offset, length: length)
    }

    static func read(descriptor: Int32, path: String, offset: Int64, length: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: max(0, length))
        var done = 0
        try bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            while done < raw.count {
                let result = pread(descriptor, base + done, raw.count - done, off_t(offset) + off_t(done))
                if result < 0 {
                    if errno == EINTR { continue }
                    throw SystemError.last("read \(path)")
                }
                if result == 0 { throw SystemError(code: EIO, message: "short read \(path)") }
                done += result
            }
        }
        return bytes
    }

    /// Free bytes available to this process on the segment's file system.
    func freeBytes() -> Int64? {
        var stats = statvfs()
        guard fstatvfs(descriptor, &stats) == 0 else { return nil }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }

    static func syncDirectory(_ directory: String) throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError.last("open \(directory)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SystemError.last("fsync \(directory)") }
    }
}

/// An errno with the operation that failed.
struct SystemError: Error, CustomStringConvertible {
    var code: Int32
    var message: String

    static func last(_ operation: String) -> SystemError {
        SystemError(code: errno, message: operation)
    }

    var description: String { "\(message): \(String(cString: strerror(code)))" }

    var isOutOfSpace: Bool { code == ENOSPC || code == EDQUOT }
}
