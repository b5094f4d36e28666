/// DNS messages as values (RFC 1035 §4): what the stub resolver sends and
/// reads. Only the record types a mail relay needs are decoded; others are
/// kept as opaque bytes.
public struct DNSMessage: Equatable, Sendable {
    public var id: UInt16
    public var isResponse: Bool
    public var opcode: UInt8
    public var isAuthoritative: Bool
    public var isTruncated: Bool
    public var recursionDesired: Bool
    public var recursionAvailable: Bool
    public var responseCode: ResponseCode
    public var questions: [DNSQuestion]
    public var answers: [ResourceRecord]
    public var authorities: [ResourceRecord]
    public var additionals: [ResourceRecord]

    public init(id: UInt16, isResponse: Bool = false, opcode: UInt8 = 0, isAuthoritative: Bool = false,
                isTruncated: Bool = false, recursionDesired: Bool = true, recursionAvailable: Bool = false,
                responseCode: ResponseCode = .noError, questions: [DNSQuestion] = [], answers: [ResourceRecord] = [],
                authorities: [ResourceRecord] = [], additionals: [ResourceRecord] = []) {
        self.id = id
        self.isResponse = isResponse
        self.opcode = opcode
        self.isAuthoritative = isAuthoritative
        self.isTruncated = isTruncated
        self.recursionDesired = recursionDesired
        self.recursionAvailable = recursionAvailable
        self.responseCode = responseCode
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    /// A recursive query for one name and type.
    public static func query(id: UInt16, name: DomainName, type: RecordType) -> DNSMessage {
        DNSMessage(id: id, questions: [DNSQuestion(name: name, type: type)])
    }
}

/// RCODE (RFC 1035 §4.1.1).
public struct ResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let noError = ResponseCode(rawValue: 0)
    public static let formatError = ResponseCode(rawValue: 1)
    public static let serverFailure = ResponseCode(rawValue: 2)
    public static let nameError = ResponseCode(rawValue: 3) // NXDOMAIN
    public static let notImplemented = ResponseCode(rawValue: 4)
    public static let refused = ResponseCode(rawValue: 5)

    public var description: String {
        switch rawValue {
        case 0: return "NOERROR"
        case 1: return "FORMERR"
        case 2: return "SERVFAIL"
        case 3: return "NXDOMAIN"
        case 4: return "NOTIMP"
        case 5: return "REFUSED"
        default: return "RCODE\(rawValue)"
        }
    }
}

/// TYPE values (RFC 1035 §3.2.2, RFC 3596).
public struct RecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = RecordType(rawValue: 1)
    public static let cname = RecordType(rawValue: 5)
    public static let soa = RecordType(rawValue: 6)
    public static let ptr = RecordType(rawValue: 12)
    public static let mx = RecordType(rawValue: 15)
    public static let txt = RecordType(rawValue: 16)
    public static let aaaa = RecordType(rawValue: 28)

    public init?(name: String) {
        switch name.uppercased() {
        case "A": self = .a
        case "CNAME": self = .cname
        case "SOA": self = .soa
        case "PTR": self = .ptr
        case "MX": self = .mx
        case "TXT": self = .txt
        case "AAAA": self = .aaaa
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .a: return "A"
        case .cname: return "CNAME"
        case .soa: return "SOA"
        case .ptr: return "PTR"
        case .mx: return "MX"
        case .txt: return "TXT"
        case .aaaa: return "AAAA"
        default: return "TYPE\(rawValue)"
        }
    }
}

public struct DNSQuestion: Equatable, Sendable {
    public var name: DomainName
    public var type: RecordType
    /// Always IN (1) here.
    public var recordClass: UInt16 = 1

    public init(name: DomainName, type: RecordType) {
        self.name = name
        self.type = type
    }
}

public struct ResourceRecord: Equatable, Sendable {
    public var name: DomainName
    public var type: RecordType
    public var recordClass: UInt16
    public var ttl: UInt32
    public var data: RecordData

    public init(name: DomainName, type: RecordType, recordClass: UInt16 = 1, ttl: UInt32, data: RecordData) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
        self.ttl = ttl
        self.data = data
    }
}

/// RDATA of the types the relay uses.
public enum RecordData: Equatable, Sendable {
    case a([UInt8])
    case aaaa([UInt8])
    case mx(preference: UInt16, exchange: DomainName)
    /// Each character-string of the record (RFC 1035 §3.3.14), as bytes.
    case txt([[UInt8]])
    case cname(DomainName)
    case ptr(DomainName)
    /// Only what negative caching needs (RFC 2308 §5).
    case soa(primary: DomainName, minimum: UInt32)
    case other([UInt8])
}
