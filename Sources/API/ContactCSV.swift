import Foundation
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
    static let maximumRows = 10_000_000

    /// Reads the file at `path` into the import `importID`, staging good rows and reporting bad ones
    /// by line, then applies it in one transaction; on any failure nothing is applied.
    static func run(importID: Int64, path: String, charset: Charset, accountID: Int64, store: SQLiteStore) -> ContactImport? {
        var reader = Reader(fields: (try? store.contactFields(accountID: accountID)) ?? [], charset: charset)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            try? store.failContactImport(importID: importID, reason: "the uploaded file could not be read", line: 0)
            return try? store.contactImport(id: importID)
        }
        defer { try? handle.close() }
        var tokenizer = CSVTokenizer()
        var failure: (String, Int)?
        func flush() throws {
            try store.stageContactRows(importID: importID, rows: reader.staged, errors: reader.errors, invalid: reader.invalid,
                                       rowsRead: reader.rowsRead)
            reader.invalid = 0
            reader.staged.removeAll(keepingCapacity: true)
            reader.errors.removeAll(keepingCapacity: true)
        }
        let emit = { (record: CSVTokenizer.Record) -> Bool in
            reader.read(record)
            if reader.rowsRead > maximumRows {
                failure = ("more than \(maximumRows) rows", record.line)
                return false
            }
            if reader.staged.count >= chunkRows || reader.errors.count >= chunkRows {
                do { try flush() } catch {
                    failure = ("the store could not be written: \(error)", record.line)
                    return false
                }
            }
            return failure == nil
        }
        while failure == nil {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 256 * 1024) ?? Data() } catch {
                failure = ("the uploaded file could not be read: \(error)", 0)
                break
            }
            if chunk.isEmpty { break }
            if !tokenizer.feed(chunk, emit) { break }
        }
        if failure == nil {
            if tokenizer.insideQuote { reader.errors.append(.init(line: reader.lastLine, message: "a quoted field is not closed before the end")) }
            tokenizer.finish(emit)
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
        let fields: [String: ContactField.Kind]
        var charset: Charset
        var columns: [(index: Int, field: String?, kind: ContactField.Kind?)] = []
        var addressColumn: Int?
        var headerRead = false
        var rowsRead = 0
        var lastLine = 1
        var staged: [(address: String, data: String)] = []
        var errors: [ContactImport.RowError] = []
        /// Rows left out since the last chunk (errors about the header are not rows).
        var invalid = 0
        /// Why nothing can be imported (no address column).
        var fatal: String?

        init(fields: [ContactField], charset: Charset) {
            self.fields = Dictionary(fields.map { ($0.name, $0.kind) }) { first, _ in first }
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
            let trimmed = addressText.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, let parsed = try? NativeAPI.address(AddressInput(text: trimmed), field: "email") else {
                reject(.init(line: record.line, message: "not an address: \(String(trimmed.prefix(100)))"))
                return
            }
            var values: [String: ContactValue] = [:]
            for column in columns {
                guard let name = column.field, let kind = column.kind, column.index < record.fields.count else { continue }
                guard let text = decode(record.fields[column.index]) else {
                    reject(.init(line: record.line, message: "\(name): not valid \(charset == .shiftJIS ? "Shift_JIS" : "UTF-8") text"))
                    return
                }
                let cell = ContactCSV.unneutralised(text)
                if cell.trimmingCharacters(in: .whitespaces).isEmpty { continue }
                guard let value = ContactValue.parse(cell, as: kind) else {
                    reject(.init(line: record.line, message: "\(name): not a \(kind.rawValue): \(String(cell.prefix(100)))"))
                    return
                }
                values[name] = value
            }
            staged.append((parsed.address.lowercased(), SQLiteStore.dataJSON(values)))
        }

        mutating func reject(_ error: ContactImport.RowError) {
            errors.append(error)
            invalid += 1
        }

        mutating func header(_ record: CSVTokenizer.Record) {
            headerRead = true
            for (index, bytes) in record.fields.enumerated() {
                let name = (decode(bytes) ?? "").trimmingCharacters(in: .whitespaces)
                if addressColumn == nil, ContactCSV.addressHeaders.contains(name.lowercased()) {
                    addressColumn = index
                } else if let kind = fields[name] {
                    columns.append((index, name, kind))
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

    /// The export's guard against spreadsheet formulas taken off again (`'=x` → `=x`), so an export imports unchanged.
    static func unneutralised(_ text: String) -> String {
        guard text.hasPrefix("'"), let second = text.unicodeScalars.dropFirst().first, "=+-@\t\r".unicodeScalars.contains(second) else {
            return text
        }
        return String(text.dropFirst())
    }

    /// The header and one line per contact, in id order, written page by page.
    static func export(store: SQLiteStore, accountID: Int64, write: (String) -> Void) throws {
        let fields = try store.contactFields(accountID: accountID)
        write((["email"] + fields.map(\.name)).map(EventCSV.quote).joined(separator: ",") + "\r\n")
        var after: Int64 = 0
        while true {
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
            write(text)
            guard page.count == 2000, let last = page.last else { return }
            after = last.id
        }
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
