import Foundation

/// The on-disk form of one message in a segment: a binary, length-prefixed
/// header carrying the envelope, then the message bytes, protected by a CRC.
///
/// The segment is the spool's write-ahead log: a message is durable once its
/// record is synced, and the SQLite queue index is rebuilt from records on
/// recovery. The envelope is typed binary, never text lines, so nothing a
/// client sends can forge or split a record.
///
///     magic "HKY1" | u32 header length | u64 body length | u32 CRC-32 of header+body
///     header: id (20 bytes) | f64 received-at | i64 account (-1: none) | u8 flags
///             | str sender | str helo | str client | u32 count | count × str recipient
///             [| u32 length | metadata as JSON]   (absent in records without metadata)
///     body:   prefix + content
///     (str = u16 length + UTF-8 bytes; integers little-endian)
struct SegmentRecord: Equatable {
    static let magic: [UInt8] = Array("HKY1".utf8)
    static let fixedHeaderSize = 4 + 4 + 8 + 4

    var id: MessageID
    var receivedAt: Date
    var accountID: Int64?
    var smtpUTF8: Bool
    var sender: String
    var heloName: String
    var clientAddress: String
    var recipients: [String]
    var metadata: MessageMetadata? = nil

    /// Appends the record for `message` to `output`; returns the offset of
    /// the body (message bytes) relative to the record start.
    static func encode(_ message: IncomingMessage, receivedAt: Date, into output: inout [UInt8]) -> Int {
        encode(message, metadataJSON: message.metadata?.json, receivedAt: receivedAt, into: &output)
    }

    /// The same, with the metadata's JSON made by the caller (who keeps it for the index).
    static func encode(_ message: IncomingMessage, metadataJSON: [UInt8]?, receivedAt: Date, into output: inout [UInt8]) -> Int {
        var header: [UInt8] = []
        header.reserveCapacity(96 + message.recipients.reduce(0) { $0 + $1.utf8.count + 2 })
        header.append(contentsOf: message.id.rawValue.utf8)
        append(receivedAt.timeIntervalSince1970.bitPattern, to: &header)
        append(UInt64(bitPattern: message.accountID ?? -1), to: &header)
        header.append(message.smtpUTF8 ? 1 : 0)
        append(string: message.sender, to: &header)
        append(string: message.heloName, to: &header)
        append(string: message.clientAddress, to: &header)
        append(UInt32(message.recipients.count), to: &header)
        for recipient in message.recipients { append(string: recipient, to: &header) }
        if let json = metadataJSON {
            append(UInt32(json.count), to: &header)
            header.append(contentsOf: json)
        }

        var crc = CRC32()
        crc.update(header)
        crc.update(message.prefix)
        crc.update(message.content)

        output.append(contentsOf: magic)
        append(UInt32(header.count), to: &output)
        append(UInt64(message.prefix.count + message.content.count), to: &output)
        append(crc.value, to: &output)
        output.append(contentsOf: header)
        output.append(contentsOf: message.prefix)
        output.append(contentsOf: message.content)
        return fixedHeaderSize + header.count
    }

    /// A record found by the recovery scan.
    struct Scanned {
        var record: SegmentRecord
        var bodyOffset: Int64
        var bodyLength: Int
        var end: Int64
    }

    /// Reads the record at `offset`, or nil when there is none (end of the
    /// written part, a torn write, or zero-filled space).
    static func read(from file: SegmentFile, at offset: Int64) -> Scanned? {
        guard offset + Int64(fixedHeaderSize) <= file.size,
              let fixed = try? file.read(offset: offset, length: fixedHeaderSize),
              Array(fixed[0..<4]) == magic else { return nil }
        let headerLength = Int(readInteger(fixed, at: 4, as: UInt32.self))
        let bodyLength = readInteger(fixed, at: 8, as: UInt64.self)
        let storedCRC = readInteger(fixed, at: 16, as: UInt32.self)
        guard headerLength >= 20 + 8 + 8 + 1 + 6 + 4, headerLength <= 1 << 24, bodyLength <= 1 << 40 else { return nil }
        let end = offset + Int64(fixedHeaderSize) + Int64(headerLength) + Int64(bodyLength)
        guard end <= file.size,
              let rest = try? file.read(offset: offset + Int64(fixedHeaderSize), length: headerLength + Int(bodyLength))
        else { return nil }
        var crc = CRC32()
        crc.update(rest)
        guard crc.value == storedCRC, let record = decodeHeader(rest[0..<headerLength]) else { return nil }
        return Scanned(record: record, bodyOffset: offset + Int64(fixedHeaderSize + headerLength),
                       bodyLength: Int(bodyLength), end: end)
    }

    static func decodeHeader(_ bytes: ArraySlice<UInt8>) -> SegmentRecord? {
        var index = bytes.startIndex
        func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard bytes.endIndex - index >= count else { return nil }
            defer { index += count }
            return bytes[index..<(index + count)]
        }
        func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard let slice = take(MemoryLayout<T>.size) else { return nil }
            return slice.reversed().reduce(T(0)) { ($0 << 8) | T($1) }
        }
        func string() -> String? {
            guard let length = integer(UInt16.self), let slice = take(Int(length)) else { return nil }
            return String(validating: slice, as: UTF8.self)
        }
        guard let idBytes = take(20), let id = MessageID(String(decoding: idBytes, as: UTF8.self)),
              let time = integer(UInt64.self), let account = integer(UInt64.self), let flags = take(1),
              let sender = string(), let helo = string(), let client = string(),
              let count = integer(UInt32.self), count <= 100_000 else { return nil }
        var recipients: [String] = []
        for _ in 0..<count {
            guard let recipient = string() else { return nil }
            recipients.append(recipient)
        }
        var metadata: MessageMetadata?
        if let length = integer(UInt32.self) {
            guard let json = take(Int(length)),
                  let decoded = try? JSONDecoder().decode(MessageMetadata.self, from: Data(json)) else { return nil }
            metadata = decoded
        }
        let accountID = Int64(bitPattern: account)
        return SegmentRecord(id: id, receivedAt: Date(timeIntervalSince1970: Double(bitPattern: time)),
                             accountID: accountID < 0 ? nil : accountID, smtpUTF8: flags.first == 1,
                             sender: sender, heloName: helo, clientAddress: client, recipients: recipients,
                             metadata: metadata)
    }

    static func append<T: FixedWidthInteger>(_ value: T, to output: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { output.append(contentsOf: $0) }
    }

    static func append(string: String, to output: inout [UInt8]) {
        // Paths are at most 256 octets and HELO names short; clip defensively.
        let bytes = Array(string.utf8.prefix(Int(UInt16.max)))
        append(UInt16(bytes.count), to: &output)
        output.append(contentsOf: bytes)
    }

    static func readInteger<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as: T.Type) -> T {
        bytes[offset..<(offset + MemoryLayout<T>.size)].reversed().reduce(T(0)) { ($0 << 8) | T($1) }
    }
}

/// CRC-32 (IEEE 802.3) for detecting torn record writes; slicing-by-8, so
/// that checksumming a message costs little next to writing it.
struct CRC32 {
    private(set) var value: UInt32 = 0

    /// tables[k][b]: the CRC of byte b followed by k zero bytes.
    static let tables: [[UInt32]] = {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            tables[0][index] = crc
        }
        for index in 0..<256 {
            for k in 1..<8 {
                let previous = tables[k - 1][index]
                tables[k][index] = (previous >> 8) ^ tables[0][Int(previous & 0xFF)]
            }
        }
        return tables
    }()
    static let flat: [UInt32] = tables.flatMap { $0 }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { update($0) }
    }

    mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBufferPointer { update($0) }
    }

    mutating func update(_ bytes: UnsafeBufferPointer<UInt8>) {
        var crc = ~value
        CRC32.flat.withUnsafeBufferPointer { t in
            var index = 0
            let count = bytes.count
            while count - index >= 8 {
                let low = crc ^ (UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8
                    | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24)
                let high = UInt32(bytes[index + 4]) | UInt32(bytes[index + 5]) << 8
                    | UInt32(bytes[index + 6]) << 16 | UInt32(bytes[index + 7]) << 24
                crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                index += 8
            }
            while index < count {
                crc = t[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
        }
        value = ~crc
    }
}
