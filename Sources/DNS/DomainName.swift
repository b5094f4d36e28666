/// A domain name as a list of labels (RFC 1035 §3.1), compared without
/// regard to ASCII case. Non-ASCII names are converted to A-labels
/// (IDNA, RFC 5891 §4.4 via Punycode, RFC 3492) before they go on the wire.
public struct DomainName: Hashable, Sendable, CustomStringConvertible {
    /// Labels as sent, lower-cased ASCII.
    public private(set) var labels: [String]

    public static let root = DomainName(validatedLabels: [])

    init(validatedLabels: [String]) {
        self.labels = validatedLabels
    }

    /// Parses presentation form (`mx.example.com`, a trailing dot allowed),
    /// converting U-labels to A-labels. Throws for empty or oversized labels.
    public init(_ text: String) throws(DNSError) {
        var trimmed = Substring(text)
        if trimmed.hasSuffix(".") { trimmed = trimmed.dropLast() }
        if trimmed.isEmpty {
            self.labels = []
            return
        }
        var labels: [String] = []
        var total = 1
        for part in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw DNSError.invalidName(text) }
            let label: String
            if part.utf8.allSatisfy({ $0 < 0x80 }) {
                label = part.lowercased()
            } else {
                guard let encoded = Punycode.encode(Substring(part.lowercased())) else { throw DNSError.invalidName(text) }
                label = "xn--" + encoded
            }
            guard label.utf8.count <= 63 else { throw DNSError.invalidName(text) }
            total += label.utf8.count + 1
            labels.append(label)
        }
        // RFC 1035 §3.1: 255 octets on the wire.
        guard total <= 255 else { throw DNSError.invalidName(text) }
        self.labels = labels
    }

    public var description: String { labels.isEmpty ? "." : labels.joined(separator: ".") }

    /// Wire form without compression.
    func write(to output: inout [UInt8]) {
        for label in labels {
            output.append(UInt8(label.utf8.count))
            output.append(contentsOf: label.utf8)
        }
        output.append(0)
    }
}

/// Punycode (RFC 3492) encoding, for IDN labels.
enum Punycode {
    static let base = 36, tMin = 1, tMax = 26, skew = 38, damp = 700, initialBias = 72, initialN = 128

    static func encode(_ input: Substring) -> String? {
        let scalars = input.unicodeScalars.map { Int($0.value) }
        var output = scalars.filter { $0 < 0x80 }.map { Character(Unicode.Scalar(UInt8($0))) }
        let basicCount = output.count
        var handled = basicCount
        if basicCount > 0 { output.append("-") }
        var n = initialN, delta = 0, bias = initialBias
        while handled < scalars.count {
            guard let m = scalars.filter({ $0 >= n }).min() else { return nil }
            let (product, overflow) = (m - n).multipliedReportingOverflow(by: handled + 1)
            guard !overflow else { return nil }
            delta += product
            n = m
            for scalar in scalars {
                if scalar < n { delta += 1 }
                if scalar == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                        if q < t { break }
                        output.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digit(q))
                    bias = adapt(delta, handled + 1, handled == basicCount)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return String(output)
    }

    static func digit(_ value: Int) -> Character {
        Character(Unicode.Scalar(UInt8(value < 26 ? value + 97 : value + 22)))
    }

    static func adapt(_ delta: Int, _ points: Int, _ first: Bool) -> Int {
        var delta = first ? delta / damp : delta / 2
        delta += delta / points
        var k = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + (base - tMin + 1) * delta / (delta + skew)
    }
}

/// Why a lookup failed. `isTransient` tells delivery whether to retry.
public enum DNSError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidName(String)
    /// NXDOMAIN: the name does not exist (permanent).
    case nameDoesNotExist(String)
    /// SERVFAIL, REFUSED and the like from every server (transient).
    case serverFailure(String, ResponseCode)
    /// No server answered in time (transient).
    case timeout(String)
    /// A reply that could not be parsed, or a CNAME loop (transient).
    case malformedResponse(String)

    public var isTransient: Bool {
        switch self {
        case .invalidName, .nameDoesNotExist: return false
        case .serverFailure, .timeout, .malformedResponse: return true
        }
    }

    public var description: String {
        switch self {
        case .invalidName(let name): return "invalid domain name \(name)"
        case .nameDoesNotExist(let name): return "\(name): NXDOMAIN"
        case .serverFailure(let name, let code): return "\(name): \(code)"
        case .timeout(let name): return "\(name): DNS timeout"
        case .malformedResponse(let hint): return "malformed DNS response: \(hint)"
        }
    }
}
