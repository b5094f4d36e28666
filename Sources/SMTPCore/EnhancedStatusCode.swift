/// An RFC 3463 enhanced mail system status code, `class.subject.detail`.
///
/// Sent in replies when the client asked for ENHANCEDSTATUSCODES (RFC 2034), and
/// parsed from remote replies so failures can be classified.
public struct EnhancedStatusCode: Hashable, Sendable, CustomStringConvertible {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    public var statusClass: Int
    public var subject: Int
    public var detail: Int

    public init(_ statusClass: Int, _ subject: Int, _ detail: Int) {
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    public var description: String { "\(statusClass).\(subject).\(detail)" }

    /// Parses `class.subject.detail` (RFC 3463 §2: class 2/4/5, subject 1-3
    /// digits, detail 1-3 digits). Returns nil for anything else.
    public init?(parsing text: Substring) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              parts[0].count == 1, let c = Int(parts[0]), [2, 4, 5].contains(c),
              (1...3).contains(parts[1].count), parts[1].allSatisfy(\.isASCIIDigit), let s = Int(parts[1]),
              (1...3).contains(parts[2].count), parts[2].allSatisfy(\.isASCIIDigit), let d = Int(parts[2])
        else { return nil }
        self.init(c, s, d)
    }
}

extension Character {
    var isASCIIDigit: Bool { asciiValue.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
}
