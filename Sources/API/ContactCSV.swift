import Foundation
import Hummingbird
import NIOCore
import Store

/// Contacts as CSV, in and out. The header row names the columns: an
/// address column (`email`, `address`, `e-mail`, `メールアドレス`) and the
/// account's contact fields by name; other columns are reported and ignored.
/// Files come from Excel as often as from programs, so UTF-8 (with or
/// without a byte order mark) and Shift_JIS (CP932, Japanese Excel's
/// default) are both read; `auto` picks Shift_JIS when the text is not UTF-8.
enum ContactCSV {
    enum Charset: String, Sendable {
        case auto
        case utf8 = "utf-8"
        case shiftJIS = "shift_jis"

        init?(name: String) {
            switch name.lowercased() {
            case "auto", "": self = .auto
            case "utf-8", "utf8": self = .utf8
            case "shift_jis", "shift-jis", "sjis", "cp932", "windows-31j", "ms932": self = .shiftJIS
            default: return nil
            }
        }
    }

    static let addressHeaders: Set<String> = ["email", "address", "e-mail", "email address", "メールアドレス", "メール"]
    /// Good rows are staged this many at a time.
    static let chunkRows = 5000
    /// The largest file accepted (about ten million short rows).
    static let maximumBytes = 1 << 30
    /// Rows applied in one transaction at most: the store's writer is held while they are.
    static let maximumRows = 2_000_000
    /// Staged rows are written at least this often, by bytes (a row may carry a hundred long fields).
    static let chunkBytes = 8 << 20

    /// Reads the file at `path` into the import `importID`, staging good rows and reporting bad ones
    /// by line, then applies it in one transaction; on any failure nothing is applied.
    static func run(importID: Int64, path: String, charset: Charset, accountID: Int64, store: any ContactBook & ContactImportStore) -> ContactImport? {
        var reader = Reader(fields: (try? store.contactFields(accountID: accountID)) ?? [], charset: charset)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            try? store.failContactImport(importID: importID, reason: "the uploaded file could not be read", line: 0)
            return try? store.contactImport(id: importID)
        }
        defer { try? handle.close() }
        var tokenizer = CSVTokenizer()
        var failure: (String, Int)?
        func flush() throws {
            try store.stageContactRows(importID: importID, slots: reader.slots, rows: reader.staged, errors: reader.errors,
                                       invalid: reader.invalid, rowsRead: reader.rowsRead)
            reader.invalid = 0
            reader.stagedBytes = 0
            reader.staged.removeAll(keepingCapacity: true)
            reader.errors.removeAll(keepingCapacity: true)
        }
        let emit = { (record: CSVTokenizer.Record) -> Bool in
            reader.read(record)
            if reader.rowsRead > maximumRows {
                failure = ("more than \(maximumRows) rows", record.line)
                return false
            }
            if reader.staged.count >= chunkRows || reader.errors.count >= chunkRows || reader.stagedBytes >= chunkBytes {
                do { try flush() } catch {
                    failure = ("the store could not be written: \(error)", record.line)
                    return false
                }
            }
            return failure == nil
        }
        var first = true
        while failure == nil {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 256 * 1024) ?? Data() } catch {
                failure = ("the uploaded file could not be read: \(error)", 0)
                break
            }
            if chunk.isEmpty { break }
            if first, reader.charset == .auto { reader.charset = ContactCSV.detect(chunk) }
            first = false
            if !tokenizer.feed(chunk, emit) { break }
        }
        if failure == nil {
            // A quote left open swallowed the rest of the file into one field: nothing of it is applied.
            if tokenizer.insideQuote {
                failure = ("a quoted field opened here is not closed before the end of the file", tokenizer.recordStartLine)
            } else {
                tokenizer.finish(emit)
            }
        }
        if failure == nil, let missing = reader.fatal { failure = (missing, 1) }
        if let (reason, line) = failure {
            try? store.failContactImport(importID: importID, reason: reason, line: line)
            return try? store.contactImport(id: importID)
        }
        do {
            try flush()
            return try store.finishContactImport(importID: importID, accountID: accountID)
        } catch {
            try? store.failContactImport(importID: importID, reason: "the import could not be applied: \(error)", line: 0)
            return try? store.contactImport(id: importID)
        }
    }

    /// Turns records into staged rows and errors: the header first, then one contact per record.
    struct Reader {
        let fields: [String: ContactField]
        var charset: Charset
        /// The CSV columns that are fields, in the order their values are staged.
        var columns: [(index: Int, field: ContactField)] = []
        var slots: [Int] { columns.map(\.field.slot) }
        var addressColumn: Int?
        var headerRead = false
        var rowsRead = 0
        var lastLine = 1
        var staged: [(address: String, values: [ContactValue?])] = []
        var stagedBytes = 0
        var errors: [ContactImport.RowError] = []
        /// Rows left out since the last chunk (errors about the header are not rows).
        var invalid = 0
        /// Why nothing can be imported (no address column).
        var fatal: String?

        init(fields: [ContactField], charset: Charset) {
            self.fields = Dictionary(fields.map { ($0.name, $0) }) { first, _ in first }
            self.charset = charset
        }

        mutating func read(_ record: CSVTokenizer.Record) {
            lastLine = record.line
            guard headerRead else { return header(record) }
            guard fatal == nil else { return }
            if record.fields.allSatisfy({ $0.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") } }) { return }
            rowsRead += 1
            if record.overflow {
                reject(.init(line: record.line, message: "a field is longer than 64 KiB or the row has more than 256 columns"))
                return
            }
            guard let addressColumn else { return }
            guard addressColumn < record.fields.count, let addressText = decode(record.fields[addressColumn]) else {
                reject(.init(line: record.line, message: "no address"))
                return
            }
            let trimmed = ContactCSV.unneutralised(ContactValue.trimmed(addressText))
            guard !trimmed.isEmpty, let parsed = try? NativeAPI.address(AddressInput(text: trimmed), field: "email") else {
                reject(.init(line: record.line, message: "not an address: \(String(trimmed.prefix(100)))"))
                return
            }
            var values: [ContactValue?] = []
            values.reserveCapacity(columns.count)
            for column in columns {
                let name = column.field.name
                let kind = column.field.kind
                guard column.index < record.fields.count else {
                    values.append(nil)
                    continue
                }
                guard let text = decode(record.fields[column.index]) else {
                    reject(.init(line: record.line, message: "\(name): not valid \(charset == .shiftJIS ? "Shift_JIS" : "UTF-8") text"))
                    return
                }
                let cell = ContactCSV.unneutralised(text)
                if ContactValue.trimmed(cell).isEmpty {
                    values.append(nil)
                    continue
                }
                guard let value = ContactValue.parse(cell, as: kind) else {
                    reject(.init(line: record.line, message: "\(name): not a \(kind.rawValue): \(String(cell.prefix(100)))"))
                    return
                }
                values.append(value)
                stagedBytes += cell.utf8.count + 16
            }
            stagedBytes += parsed.address.utf8.count
            staged.append((parsed.address.lowercased(), values))
        }

        mutating func reject(_ error: ContactImport.RowError) {
            errors.append(error)
            invalid += 1
        }

        mutating func header(_ record: CSVTokenizer.Record) {
            headerRead = true
            for (index, bytes) in record.fields.enumerated() {
                let name = ContactCSV.unneutralised(ContactValue.trimmed(decode(bytes) ?? ""))
                if addressColumn == nil, ContactCSV.addressHeaders.contains(name.lowercased()) {
                    addressColumn = index
                } else if let field = fields[name], !columns.contains(where: { $0.field.name == name }) {
                    columns.append((index, field))
                } else if !name.isEmpty {
                    errors.append(.init(line: record.line, message: "unknown field \(String(name.prefix(100))): the column is ignored"))
                }
            }
            if addressColumn == nil { fatal = "the header row names no address column (email)" }
        }

        /// A field's text in the file's charset; `auto` settles on Shift_JIS at the first non-UTF-8 field.
        mutating func decode(_ bytes: [UInt8]) -> String? {
            if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
            switch charset {
            case .utf8:
                return String(validating: bytes, as: UTF8.self)
            case .shiftJIS:
                return String(data: Data(bytes), encoding: .shiftJIS)
            case .auto:
                if let text = String(validating: bytes, as: UTF8.self) {
                    charset = .utf8
                    return text
                }
                charset = .shiftJIS
                return String(data: Data(bytes), encoding: .shiftJIS)
            }
        }
    }

    /// The charset of a file from its first chunk: UTF-8 with a byte order mark, or when the chunk is valid
    /// UTF-8 (up to a character cut at its end); otherwise Shift_JIS. One field alone could mislead:
    /// two half-width katakana in Shift_JIS can be valid UTF-8.
    static func detect(_ chunk: Data) -> Charset {
        let bytes = Array(chunk)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { return .utf8 }
        guard bytes.contains(where: { $0 >= 0x80 }) else { return .auto }
        // A multi-byte character cut by the chunk's end is not evidence either way.
        var end = bytes.count
        var back = 0
        while end > 0, back < 3, bytes[end - 1] & 0xC0 == 0x80 {
            end -= 1
            back += 1
        }
        if end > 0, bytes[end - 1] >= 0xC0 { end -= 1 }
        return String(validating: bytes[..<end], as: UTF8.self) != nil ? .utf8 : .shiftJIS
    }

    /// The export's guard against spreadsheet formulas taken off again (`'=x` → `=x`), so an export imports unchanged.
    static func unneutralised(_ text: String) -> String {
        guard text.hasPrefix("'"), let second = text.unicodeScalars.dropFirst().first, "=+-@\t\r".unicodeScalars.contains(second) else {
            return text
        }
        return String(text.dropFirst())
    }

    /// The whole export as a response body written page by page as it is read: millions of contacts never sit in memory.
    static func exportBody(store: any ContactBook, accountID: Int64, fields: [ContactField]) -> ResponseBody {
        ResponseBody { writer in
            try await writer.write(ByteBuffer(string: exportHeader(fields)))
            var after: Int64? = 0
            while let start = after {
                let (text, next) = try exportPage(store: store, accountID: accountID, fields: fields, after: start)
                try await writer.write(ByteBuffer(string: text))
                after = next
            }
            try await writer.finish(nil)
        }
    }

    static func exportHeader(_ fields: [ContactField]) -> String {
        (["email"] + fields.map(\.name)).map(EventCSV.quote).joined(separator: ",") + "\r\n"
    }

    /// The lines of the contacts after `after` (a page of 2,000), and where the next page starts (nil: the last).
    static func exportPage(store: any ContactBook, accountID: Int64, fields: [ContactField], after: Int64) throws -> (text: String, next: Int64?) {
        let page = try store.contacts(accountID: accountID, after: after, limit: 2000)
        var text = ""
        for contact in page {
            var cells = [EventCSV.quote(contact.address)]
            for field in fields {
                switch contact.fields[field.name] {
                case .text(let value)?: cells.append(EventCSV.quote(value))
                case .date(let value)?: cells.append(value)
                case .number(let value)?: cells.append(ContactValue.number(value).csv)
                case .boolean(let value)?: cells.append(value ? "true" : "false")
                case nil: cells.append("")
                }
            }
            text += cells.joined(separator: ",") + "\r\n"
        }
        return (text, page.count == 2000 ? page.last?.id : nil)
    }
}

extension ContactValue {
    /// A number as CSV writes it: whole numbers without a decimal point.
    var csv: String {
        guard case .number(let value) = self else { return "" }
        if let whole = Int64(exactly: value) { return String(whole) }
        return String(value)
    }
}
