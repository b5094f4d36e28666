import Foundation
import Hummingbird
import NIOCore
import Spool
import Store

/// JSON in and out, with errors that name the field at fault.
enum APIJSON {
    static func decoder(snakeCase: Bool) -> JSONDecoder {
        let decoder = JSONDecoder()
        if snakeCase { decoder.keyDecodingStrategy = .convertFromSnakeCase }
        return decoder
    }

    static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8], snakeCase: Bool = true) throws(APIError) -> T {
        guard !body.isEmpty else { throw APIError.badRequest("a JSON body is required") }
        do {
            return try decoder(snakeCase: snakeCase).decode(T.self, from: Data(body))
        } catch let error as DecodingError {
            throw APIError.badRequest(describe(error), field: field(of: error))
        } catch {
            throw APIError.badRequest("invalid JSON: \(error)")
        }
    }

    static func field(of error: DecodingError) -> String? {
        let path: [any CodingKey]
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): path = context.codingPath
        case .keyNotFound(let key, let context): path = context.codingPath + [key]
        @unknown default: return nil
        }
        let text = path.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
        return text.isEmpty ? nil : String(text.drop { $0 == "." })
    }

    static func describe(_ error: DecodingError) -> String {
        let field = field(of: error).map { " (\($0))" } ?? ""
        switch error {
        case .keyNotFound(let key, _): return "missing field \(key.stringValue)\(field)"
        case .typeMismatch(let type, _): return "wrong type, expected \(type)\(field)"
        case .valueNotFound(let type, _): return "missing value, expected \(type)\(field)"
        case .dataCorrupted(let context):
            return field.isEmpty ? "invalid JSON: \(context.debugDescription)" : "invalid value\(field): \(context.debugDescription)"
        @unknown default: return "invalid request"
        }
    }

    static let snakeEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok, encoder: JSONEncoder = snakeEncoder) throws -> Response {
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A body built from plain dictionaries (for shapes with optional nulls).
    static func response(object: Any, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: JSONBody.text(object))))
    }

    static func empty(_ status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
    }
}

/// An address given as `"Name <a@b>"` or `{"email": …, "name": …}`.
struct AddressInput: Decodable, Sendable {
    var text: String?
    var email: String?
    var name: String?

    init(text: String) {
        self.text = text
    }

    init(from decoder: any Decoder) throws {
        if let text = try? decoder.singleValueContainer().decode(String.self) {
            self.text = text
            return
        }
        let container = try decoder.container(keyedBy: Keys.self)
        email = try container.decode(String.self, forKey: .email)
        name = try container.decodeIfPresent(String.self, forKey: .name)
    }

    enum Keys: String, CodingKey { case email, name }
}

/// One address or a list of them.
struct AddressList: Decodable, Sendable {
    var items: [AddressInput]

    init(from decoder: any Decoder) throws {
        if let list = try? decoder.singleValueContainer().decode([AddressInput].self) {
            items = list
        } else {
            items = [try AddressInput(from: decoder)]
        }
    }
}

/// A time as ISO 8601 text or Unix seconds.
struct FlexibleDate: Decodable, Sendable {
    var date: Date

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let seconds = try? container.decode(Double.self) {
            guard FlexibleDate.range.contains(seconds) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "time out of range")
            }
            date = Date(timeIntervalSince1970: seconds)
        } else if let parsed = FlexibleDate.parse(try container.decode(String.self)) {
            date = parsed
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected ISO 8601 time or Unix seconds")
        }
    }

    /// Years 1 to 9999: anything outside is a client error, not a time to compute with.
    static let range: ClosedRange<Double> = -62_135_596_800...253_402_300_799

    static func parse(_ text: String) -> Date? {
        var date: Date?
        if let seconds = Double(text) {
            guard range.contains(seconds) else { return nil }
            date = Date(timeIntervalSince1970: seconds)
        } else {
            let formatter = ISO8601DateFormatter()
            date = formatter.date(from: text)
            if date == nil {
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                date = formatter.date(from: text)
            }
            if date == nil {
                formatter.formatOptions = [.withFullDate]
                date = formatter.date(from: text)
            }
        }
        guard let date, range.contains(date.timeIntervalSince1970) else { return nil }
        return date
    }
}

/// Query values, decoded and checked.
extension Request {
    func query(_ name: String) -> String? {
        // Hummingbird has already percent-decoded query values; an empty one is as good as none.
        uri.queryParameters.get(name).flatMap { $0.isEmpty ? nil : $0 }
    }

    func queryAll(_ name: String) -> [String] {
        uri.queryParameters.getAll(name).filter { !$0.isEmpty }
    }

    func queryDate(_ name: String) throws(APIError) -> Date? {
        guard let text = query(name) else { return nil }
        guard let date = FlexibleDate.parse(text) else {
            throw APIError.badRequest("\(name) must be an ISO 8601 time or Unix seconds", field: name)
        }
        return date
    }

    func queryInteger(_ name: String, default value: Int, range: ClosedRange<Int>) throws(APIError) -> Int {
        guard let text = query(name) else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw APIError.badRequest("\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)", field: name)
        }
        return number
    }
}

/// JSON text of the plain values responses are built from: dictionaries
/// (keys sorted by their UTF-8 bytes), arrays, strings, integers, doubles,
/// booleans, `NSNull` and optionals. Written here because Foundation's
/// `JSONSerialization` sorts keys with a locale-aware comparison that made a
/// page of 50 events take 20 ms on Linux, three quarters of it in sorting.
enum JSONBody {
    static func text(_ value: Any) -> String {
        var output = ""
        write(value, to: &output)
        return output
    }

    static func write(_ value: Any, to output: inout String) {
        switch value {
        case let text as String: output += JSONText.quote(text)
        case let flag as Bool: output += flag ? "true" : "false"
        case let number as Int: output += String(number)
        case let number as Int64: output += String(number)
        case let number as Int32: output += String(number)
        case let number as UInt16: output += String(number)
        case let number as Double:
            if !number.isFinite { output += "null" } else if abs(number) < 1e15, let whole = Int64(exactly: number) { output += String(whole) } else {
                output += String(number)
            }
        case is NSNull: output += "null"
        case let object as [String: Any]:
            output += "{"
            for (index, key) in object.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if index > 0 { output += "," }
                output += JSONText.quote(key) + ":"
                write(object[key] ?? NSNull(), to: &output)
            }
            output += "}"
        case let array as [Any]:
            output += "["
            for (index, item) in array.enumerated() {
                if index > 0 { output += "," }
                write(item, to: &output)
            }
            output += "]"
        default:
            // An optional inside `Any`: its value, or null.
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional {
                if let wrapped = mirror.children.first { write(wrapped.value, to: &output) } else { output += "null" }
            } else {
                output += JSONText.quote(String(describing: value))
            }
        }
    }
}
