import Foundation
import Store

/// Suppression lists as CSV, in and out: `address,reason,scope,created_at,source`.
/// An import reads the same columns (a header row names them; without one,
/// the first column is the address), so an export imports unchanged, and a
/// column of addresses pasted from a spreadsheet does too.
enum SuppressionCSV {
    static let header = "address,reason,scope,created_at,source\r\n"
    static let maximumRows = 100_000
    /// The largest import body read (about 100,000 rows of long addresses).
    static let maximumBytes = 8 << 20

    static func export(store: any SuppressionList, accountID: Int64) throws -> String {
        var text = header
        var offset = 0
        while true {
            let page = try store.suppressions(accountID: accountID, offset: offset, limit: 1000)
            for item in page {
                text += [item.address, item.reason.rawValue, item.scope.rawValue, NativeAPI.iso(item.createdAt), item.source ?? ""]
                    .map(EventCSV.quote).joined(separator: ",") + "\r\n"
            }
            guard page.count == 1000 else { return text }
            offset += 1000
        }
    }

    struct Import: Sendable {
        var suppressions: [Suppression] = []
        /// Rows that were not imported: their line number (1 is the first line) and why.
        var errors: [(line: Int, message: String)] = []
    }

    /// The rows of `text` as suppressions with `source`; `reason` and `scope` where a row names none.
    static func parse(_ text: String, reason: Suppression.Reason = .manual, scope: Suppression.Scope = .all, source: String) -> Import {
        var result = Import()
        var columns: [String: Int]?
        CSVReader.forEachRecord(text) { number, fields in
            guard !fields.allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) else { return true }
            let cells = fields.map { $0.trimmingCharacters(in: .whitespaces) }
            if columns == nil {
                let names = cells.map { $0.lowercased() }
                if let address = names.firstIndex(where: { $0 == "address" || $0 == "email" }) {
                    var map = ["address": address]
                    for name in ["reason", "scope"] { map[name] = names.firstIndex(of: name) }
                    columns = map
                    return true
                }
                columns = ["address": 0]
            }
            guard result.suppressions.count + result.errors.count < maximumRows else {
                result.errors.append((number, "at most \(maximumRows) rows are imported at once; the rest was not read"))
                return false
            }
            let cell = { (name: String) -> String? in columns?[name].flatMap { $0 < cells.count ? cells[$0] : nil } }
            guard let text = cell("address"), !text.isEmpty,
                  let parsed = try? NativeAPI.address(AddressInput(text: text), field: "address") else {
                result.errors.append((number, "not an address: \(String((cell("address") ?? "").prefix(100)))"))
                return true
            }
            var rowReason = reason
            if let name = cell("reason"), !name.isEmpty {
                guard let value = Suppression.Reason(rawValue: name.lowercased()) else {
                    result.errors.append((number, "reason must be bounce, complaint, unsubscribe or manual"))
                    return true
                }
                rowReason = value
            }
            var rowScope = scope
            if let name = cell("scope"), !name.isEmpty {
                guard let value = Suppression.Scope(rawValue: name.lowercased()) else {
                    result.errors.append((number, "scope must be all, marketing or transactional"))
                    return true
                }
                rowScope = value
            }
            result.suppressions.append(Suppression(address: parsed.address, reason: rowReason, scope: rowScope, source: source))
            return true
        }
        return result
    }
}

/// RFC 4180 records of a text (`CSVTokenizer` over its UTF-8), each with the line it starts on.
enum CSVReader {
    /// Every record, each with the line it starts on (for tests and small texts).
    static func records(_ text: String) -> [(line: Int, fields: [String])] {
        var records: [(line: Int, fields: [String])] = []
        forEachRecord(text) { line, fields in
            records.append((line, fields))
            return true
        }
        return records
    }

    /// Calls `body` with each record as it is read, until it returns false: a caller that stops
    /// early (an import at its row limit) never holds more than one record.
    static func forEachRecord(_ text: String, _ body: (Int, [String]) -> Bool) {
        var tokenizer = CSVTokenizer()
        let emit = { (record: CSVTokenizer.Record) -> Bool in
            body(record.line, record.fields.map { String(decoding: $0, as: UTF8.self) })
        }
        guard tokenizer.feed(text.utf8, emit) else { return }
        tokenizer.finish(emit)
    }
}
