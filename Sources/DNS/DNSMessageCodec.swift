/// RFC 1035 §4 wire format. Decoding never trusts a length or a pointer:
/// compression pointers must point backwards (no loops), and every read is
/// bounds-checked, so a hostile server's reply can only be rejected.
public enum DNSMessageCodec {
    public static func encode(_ message: DNSMessage) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(512)
        put16(message.id, &output)
        var flags: UInt16 = 0
        if message.isResponse { flags |= 0x8000 }
        flags |= UInt16(message.opcode & 0x0F) << 11
        if message.isAuthoritative { flags |= 0x0400 }
        if message.isTruncated { flags |= 0x0200 }
        if message.recursionDesired { flags |= 0x0100 }
        if message.recursionAvailable { flags |= 0x0080 }
        flags |= UInt16(message.responseCode.rawValue & 0x0F)
        put16(flags, &output)
        put16(UInt16(message.questions.count), &output)
        put16(UInt16(message.answers.count), &output)
        put16(UInt16(message.authorities.count), &output)
        put16(UInt16(message.additionals.count), &output)
        for question in message.questions {
            question.name.write(to: &output)
            put16(question.type.rawValue, &output)
            put16(question.recordClass, &output)
        }
        for record in message.answers + message.authorities + message.additionals {
            record.name.write(to: &output)
            put16(record.type.rawValue, &output)
            put16(record.recordClass, &output)
            put32(record.ttl, &output)
            var data: [UInt8] = []
            switch record.data {
            case .a(let bytes), .aaaa(let bytes), .other(let bytes): data = bytes
            case .mx(let preference, let exchange):
                put16(preference, &data)
                exchange.write(to: &data)
            case .txt(let strings):
                for string in strings {
                    data.append(UInt8(min(string.count, 255)))
                    data.append(contentsOf: string.prefix(255))
                }
            case .cname(let name), .ptr(let name): name.write(to: &data)
            case .soa(let primary, let minimum):
                primary.write(to: &data)
                DomainName.root.write(to: &data)
                for _ in 0..<4 { put32(0, &data) }
                put32(minimum, &data)
            }
            put16(UInt16(data.count), &output)
            output.append(contentsOf: data)
        }
        return output
    }

    public static func decode(_ bytes: [UInt8]) throws(DNSError) -> DNSMessage {
        var reader = Reader(bytes: bytes)
        let id = try reader.read16()
        let flags = try reader.read16()
        let counts = (try reader.read16(), try reader.read16(), try reader.read16(), try reader.read16())
        var message = DNSMessage(
            id: id, isResponse: flags & 0x8000 != 0, opcode: UInt8((flags >> 11) & 0x0F),
            isAuthoritative: flags & 0x0400 != 0, isTruncated: flags & 0x0200 != 0,
            recursionDesired: flags & 0x0100 != 0, recursionAvailable: flags & 0x0080 != 0,
            responseCode: ResponseCode(rawValue: UInt8(flags & 0x0F)))
        for _ in 0..<counts.0 {
            var question = DNSQuestion(name: try reader.readName(), type: RecordType(rawValue: try reader.read16()))
            question.recordClass = try reader.read16()
            message.questions.append(question)
        }
        // A truncated reply may end inside a section; keep what is complete.
        do {
            for _ in 0..<counts.1 { message.answers.append(try reader.readRecord()) }
            for _ in 0..<counts.2 { message.authorities.append(try reader.readRecord()) }
            for _ in 0..<counts.3 { message.additionals.append(try reader.readRecord()) }
        } catch {
            if !message.isTruncated { throw error }
        }
        return message
    }

    static func put16(_ value: UInt16, _ output: inout [UInt8]) {
        output.append(UInt8(value >> 8))
        output.append(UInt8(value & 0xFF))
    }

    static func put32(_ value: UInt32, _ output: inout [UInt8]) {
        put16(UInt16(value >> 16), &output)
        put16(UInt16(value & 0xFFFF), &output)
    }

    struct Reader {
        let bytes: [UInt8]
        var index = 0

        mutating func read8() throws(DNSError) -> UInt8 {
            guard index < bytes.count else { throw DNSError.malformedResponse("message ends early") }
            defer { index += 1 }
            return bytes[index]
        }

        mutating func read16() throws(DNSError) -> UInt16 {
            UInt16(try read8()) << 8 | UInt16(try read8())
        }

        mutating func read32() throws(DNSError) -> UInt32 {
            UInt32(try read16()) << 16 | UInt32(try read16())
        }

        mutating func readBytes(_ count: Int) throws(DNSError) -> [UInt8] {
            guard count >= 0, bytes.count - index >= count else { throw DNSError.malformedResponse("message ends early") }
            defer { index += count }
            return Array(bytes[index..<(index + count)])
        }

        /// A possibly compressed name (RFC 1035 §4.1.4).
        mutating func readName() throws(DNSError) -> DomainName {
            var labels: [String] = []
            var position = index
            var jumped = false
            var total = 1
            while true {
                guard position < bytes.count else { throw DNSError.malformedResponse("name runs past the end") }
                let length = Int(bytes[position])
                if length == 0 {
                    position += 1
                    break
                }
                if length & 0xC0 == 0xC0 {
                    guard position + 1 < bytes.count else { throw DNSError.malformedResponse("truncated pointer") }
                    let target = (length & 0x3F) << 8 | Int(bytes[position + 1])
                    // Only backwards: this rules out loops.
                    guard target < position else { throw DNSError.malformedResponse("forward compression pointer") }
                    if !jumped { index = position + 2 }
                    jumped = true
                    position = target
                    continue
                }
                guard length <= 63, position + 1 + length <= bytes.count else {
                    throw DNSError.malformedResponse("bad label length")
                }
                let label = bytes[(position + 1)...(position + length)]
                total += length + 1
                guard total <= 255 else { throw DNSError.malformedResponse("name longer than 255 octets") }
                // Host names are printable ASCII (A-labels for IDNs); anything else
                // in a reply is refused rather than guessed at.
                guard label.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ".") }) else {
                    throw DNSError.malformedResponse("label with a byte that is not printable ASCII")
                }
                labels.append(String(decoding: label.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self))
                position += 1 + length
            }
            if !jumped { index = position }
            return DomainName(validatedLabels: labels)
        }

        mutating func readRecord() throws(DNSError) -> ResourceRecord {
            let name = try readName()
            let type = RecordType(rawValue: try read16())
            let recordClass = try read16()
            let ttl = try read32()
            let length = Int(try read16())
            guard bytes.count - index >= length else { throw DNSError.malformedResponse("record data runs past the end") }
            let end = index + length
            let data: RecordData
            switch type {
            case .a:
                guard length == 4 else { throw DNSError.malformedResponse("A record of \(length) octets") }
                data = .a(try readBytes(4))
            case .aaaa:
                guard length == 16 else { throw DNSError.malformedResponse("AAAA record of \(length) octets") }
                data = .aaaa(try readBytes(16))
            case .mx:
                data = .mx(preference: try read16(), exchange: try readName())
            case .cname:
                data = .cname(try readName())
            case .ptr:
                data = .ptr(try readName())
            case .txt:
                var strings: [[UInt8]] = []
                while index < end {
                    let count = Int(try read8())
                    guard index + count <= end else { throw DNSError.malformedResponse("TXT string runs past its record") }
                    strings.append(try readBytes(count))
                }
                data = .txt(strings)
            case .soa:
                let primary = try readName()
                _ = try readName()
                for _ in 0..<4 { _ = try read32() }
                data = .soa(primary: primary, minimum: try read32())
            default:
                data = .other(try readBytes(length))
            }
            guard index == end else { throw DNSError.malformedResponse("record data length mismatch") }
            return ResourceRecord(name: name, type: type, recordClass: recordClass, ttl: ttl, data: data)
        }
    }
}
