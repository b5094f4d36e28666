import Crypto
import Foundation
import MIME
import _CryptoExtras

/// A DKIM signing key: RSA (rsa-sha256) or Ed25519 (ed25519-sha256, RFC 8463).
public enum DKIMKey: Sendable {
    case rsa(_RSA.Signing.PrivateKey)
    case ed25519(Curve25519.Signing.PrivateKey)

    public enum Algorithm: String, Sendable, Codable, CaseIterable {
        case rsa, ed25519
    }

    /// A new key: RSA-2048 or Ed25519.
    public static func generate(_ algorithm: Algorithm) throws -> DKIMKey {
        switch algorithm {
        case .rsa: return .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048))
        case .ed25519: return .ed25519(Curve25519.Signing.PrivateKey())
        }
    }

    /// The key from its stored form (`privateKeyData`).
    public init(algorithm: Algorithm, privateKeyData: Data) throws {
        switch algorithm {
        case .rsa: self = .rsa(try _RSA.Signing.PrivateKey(derRepresentation: privateKeyData))
        case .ed25519: self = .ed25519(try Curve25519.Signing.PrivateKey(rawRepresentation: privateKeyData))
        }
    }

    public var algorithm: Algorithm {
        switch self {
        case .rsa: return .rsa
        case .ed25519: return .ed25519
        }
    }

    /// DER (RSA) or the 32 raw bytes (Ed25519): what is stored, sealed.
    public var privateKeyData: Data {
        switch self {
        case .rsa(let key): return key.derRepresentation
        case .ed25519(let key): return key.rawRepresentation
        }
    }

    /// The `p=` value of the DNS record: SubjectPublicKeyInfo (RSA) or the raw key (Ed25519), base64.
    public var publicKeyBase64: String {
        switch self {
        case .rsa(let key): return key.publicKey.derRepresentation.base64EncodedString()
        case .ed25519(let key): return key.publicKey.rawRepresentation.base64EncodedString()
        }
    }

    /// The TXT record to publish at `selector._domainkey.domain`.
    public var dnsRecord: String {
        "v=DKIM1; k=\(algorithm == .rsa ? "rsa" : "ed25519"); p=\(publicKeyBase64)"
    }

    var tag: String { algorithm == .rsa ? "rsa-sha256" : "ed25519-sha256" }

    func sign(_ data: [UInt8]) throws -> Data {
        switch self {
        case .rsa(let key):
            return try key.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation
        case .ed25519(let key):
            // RFC 8463 §3: PureEdDSA over the SHA-256 hash of the data.
            return try key.signature(for: Data(SHA256.hash(data: data)))
        }
    }
}

/// Signs messages with DKIM (RFC 6376): relaxed/relaxed, SHA-256, the
/// configured header fields that are present, `From` signed once more than
/// it occurs so that no From can be added after signing.
public struct DKIMSigner: Sendable {
    public static let defaultHeaders = [
        "from", "reply-to", "subject", "date", "to", "cc", "message-id", "in-reply-to", "references", "mime-version",
        "content-type", "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id",
    ]

    public var domain: String
    public var selector: String
    public var key: DKIMKey
    public var headers: [String]

    public init(domain: String, selector: String, key: DKIMKey, headers: [String] = DKIMSigner.defaultHeaders) {
        self.domain = domain
        self.selector = selector
        self.key = key
        self.headers = headers.map { $0.lowercased() }
    }

    /// The `DKIM-Signature` field (CRLF-terminated) to put at the top of
    /// `message`. A malformed header section (`HeaderSection`) is not signed.
    public func signature(for message: [UInt8], at time: Date = Date()) throws -> [UInt8] {
        let parsed = try HeaderSection(parsing: message, limits: .init(maximumSize: message.count, maximumFields: .max))
        let bodyHash = Data(SHA256.hash(data: RelaxedCanonicalization.body(message[parsed.bodyStart...]))).base64EncodedString()
        // Fields are signed bottom-up per name (RFC 6376 §5.4.2).
        var remaining: [String: [ArraySlice<UInt8>]] = [:]
        for field in parsed.fields { remaining[field.name.lowercased(), default: []].append(message[field.range]) }
        var signedNames: [String] = []
        var hashed: [UInt8] = []
        for name in headers {
            while var instances = remaining[name], let field = instances.popLast() {
                remaining[name] = instances
                signedNames.append(name)
                hashed.append(contentsOf: RelaxedCanonicalization.header(field))
            }
        }
        // Over-sign From: a name listed with no instance left hashes as nothing.
        signedNames.append("from")
        let value = "v=1; a=\(key.tag); c=relaxed/relaxed; d=\(domain); s=\(selector); t=\(DKIMSigner.timestamp(time)); "
            + "h=\(signedNames.joined(separator: ":")); bh=\(bodyHash); b="
        // Folded first, then hashed as folded (relaxed makes each fold one space);
        // the signature itself may then be broken anywhere: b= is hashed empty.
        var field = DKIMSigner.fold("DKIM-Signature: " + value)
        var unsigned = RelaxedCanonicalization.header(Array(field.utf8)[...])
        unsigned.removeLast(2) // the signature field is hashed without its CRLF
        let signature = try key.sign(hashed + unsigned).base64EncodedString()
        var lineLength = field.count - (field.range(of: "\r\n\t", options: .backwards).map { field.distance(from: field.startIndex, to: $0.upperBound) } ?? 0)
        for character in signature {
            if lineLength >= 76 {
                field += "\r\n\t"
                lineLength = 1
            }
            field.append(character)
            lineLength += 1
        }
        return Array((field + "\r\n").utf8)
    }

    /// Folds at the spaces between tags and after the colons of `h=`, where
    /// RFC 6376 allows folding white space; lines stay ≤ 78 where tokens allow.
    static func fold(_ field: String) -> String {
        var tokens: [(text: Substring, spaced: Bool)] = []
        for word in field.split(separator: " ") {
            if word.hasPrefix("h=") {
                var first = true
                for piece in word.split(separator: ":", omittingEmptySubsequences: false).enumerated() {
                    let last = piece.offset == word.split(separator: ":", omittingEmptySubsequences: false).count - 1
                    tokens.append((last ? piece.element : Substring(piece.element + ":"), first))
                    first = false
                }
            } else {
                tokens.append((word, true))
            }
        }
        var output = ""
        var lineLength = 0
        for token in tokens {
            let separator = output.isEmpty ? 0 : (token.spaced ? 1 : 0)
            if !output.isEmpty && lineLength + separator + token.text.count > 76 {
                output += "\r\n\t"
                lineLength = 1
            } else if separator == 1 {
                output += " "
                lineLength += 1
            }
            output += token.text
            lineLength += token.text.count
        }
        return output
    }
}

extension DKIMSigner {
    /// `t=`: whole seconds since 1970, clamped to what the tag can say (RFC 6376 §3.5: 12 digits or fewer).
    static func timestamp(_ time: Date) -> Int64 {
        let seconds = time.timeIntervalSince1970
        guard seconds.isFinite else { return 0 }
        return Int64(min(max(seconds, 0), 999_999_999_999).rounded(.down))
    }
}

extension DKIMSigner {
    /// A selector that names its date (`hk20261129`), so that rotations are
    /// easy to tell apart; `-2`, `-3`… when that one is taken.
    public static func selector(at date: Date = Date(), taken: Set<String> = []) -> String {
        // `2026-11-29T…` → `hk20261129`.
        let base = "hk" + MailDate.iso8601(date).prefix(10).filter { $0 != "-" }
        var selector = base
        var suffix = 1
        while taken.contains(selector) {
            suffix += 1
            selector = "\(base)-\(suffix)"
        }
        return selector
    }
}
