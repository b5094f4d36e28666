/// Malformed input: the parser saw bytes that can never become valid.
///
/// Incomplete input is not an error; parsers return an `.incomplete` result
/// for it. The hint is for logs and tests; replies to clients are chosen by
/// the session from `kind`, not copied from the hint.
public struct ParserError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// Bytes that break the grammar (RFC 5321 501 territory).
        case malformed
        /// A command verb this server does not know (500).
        case unrecognizedCommand
        /// An ESMTP parameter keyword that is not supported (555).
        case unsupportedParameter
    }

    public var kind: Kind
    public var hint: String

    public init(_ hint: String, kind: Kind = .malformed) {
        self.kind = kind
        self.hint = hint
    }

    public var description: String { hint }
}
