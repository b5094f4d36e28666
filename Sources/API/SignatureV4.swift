import Crypto
import Foundation
import Store

/// AWS Signature Version 4 (the `AWS4-HMAC-SHA256` Authorization header), as
/// botocore signs SES v2 requests: service `ses`, any region, the payload
/// hash computed over the body even though no `x-amz-content-sha256` is sent.
struct SignatureV4 {
    /// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
    struct Authorization: Equatable {
        var accessKeyID: String
        var date: String
        var region: String
        var service: String
        var signedHeaders: [String]
        var signature: String

        init?(_ header: String) {
            guard header.hasPrefix("AWS4-HMAC-SHA256 ") else { return nil }
            var fields: [String: String] = [:]
            for part in header.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
                let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
            }
            guard let credential = fields["Credential"]?.split(separator: "/"), credential.count == 5,
                  credential[4] == "aws4_request", let signed = fields["SignedHeaders"], let signature = fields["Signature"]
            else { return nil }
            accessKeyID = String(credential[0])
            date = String(credential[1])
            region = String(credential[2])
            service = String(credential[3])
            signedHeaders = signed.split(separator: ";").map { String($0) }
            self.signature = signature
        }
    }

    /// How far a request's X-Amz-Date may be from our clock (AWS allows 15 minutes).
    static let allowedSkew: TimeInterval = 15 * 60

    var method: String
    /// The path and query exactly as sent (still percent-encoded).
    var rawPath: String
    var rawQuery: String
    /// Header names lower-cased; values as received.
    var headers: [String: String]
    var body: [UInt8]

    /// The parsed Authorization header when everything but the signature
    /// holds (AWS4-HMAC-SHA256, service `ses`, `host` signed, X-Amz-Date
    /// within the allowed skew and matching the credential scope); nil
    /// otherwise. Checked before the body is read.
    func precheck(now: Date = Date()) -> Authorization? {
        guard let authorization = headers["authorization"].flatMap(Authorization.init), authorization.service == "ses",
              authorization.signedHeaders.contains("host"),
              let amzDate = headers["x-amz-date"], let requestTime = SignatureV4.parse(amzDate),
              abs(requestTime.timeIntervalSince(now)) <= SignatureV4.allowedSkew,
              amzDate.hasPrefix(authorization.date) else { return nil }
        return authorization
    }

    /// Whether the signature is valid for `secret`. The payload hash in the
    /// canonical request is computed here over `body`: a client's
    /// `x-amz-content-sha256` must agree with it, never stand in for it, so
    /// that a captured signature cannot carry another body.
    func verify(_ authorization: Authorization, secret: String) -> Bool {
        let computed = SignatureV4.hex(SHA256.hash(data: body))
        if let declared = headers["x-amz-content-sha256"], declared.lowercased() != computed { return false }
        guard let amzDate = headers["x-amz-date"] else { return false }
        let expected = signature(secret: secret, authorization: authorization, amzDate: amzDate)
        return constantTimeEqual(Array(expected.utf8), Array(authorization.signature.lowercased().utf8))
    }

    /// The access key id when the signature is valid; nil otherwise.
    func verify(now: Date = Date(), secret: (String) -> String?) -> String? {
        guard let authorization = precheck(now: now), let key = secret(authorization.accessKeyID),
              verify(authorization, secret: key) else { return nil }
        return authorization.accessKeyID
    }

    func signature(secret: String, authorization: Authorization, amzDate: String) -> String {
        let scope = "\(authorization.date)/\(authorization.region)/\(authorization.service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, SignatureV4.hex(SHA256.hash(data: Data(canonicalRequest(authorization).utf8)))]
            .joined(separator: "\n")
        var key = SymmetricKey(data: Data(("AWS4" + secret).utf8))
        for part in [authorization.date, authorization.region, authorization.service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return SignatureV4.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
    }

    func canonicalRequest(_ authorization: Authorization) -> String {
        // botocore quotes the already-encoded path once more (safe "/~").
        let path = SignatureV4.uriEncode(rawPath.isEmpty ? "/" : rawPath, keepSlash: true)
        // Query parameters are taken as sent, sorted by name then value.
        let query = rawQuery.split(separator: "&").map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(parts.first ?? ""), parts.count > 1 ? String(parts[1]) : "")
        }.sorted { $0 < $1 }.map { pair -> String in pair.0 + "=" + pair.1 }.joined(separator: "&")
        let canonicalHeaders = authorization.signedHeaders.map { name -> String in
            let value = (headers[name] ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            return name + ":" + value + "\n"
        }.joined()
        let payload = SignatureV4.hex(SHA256.hash(data: body))
        let lines: [String] = [method, path, query, canonicalHeaders, authorization.signedHeaders.joined(separator: ";"), payload]
        return lines.joined(separator: "\n")
    }

    static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        var result = ""
        for byte in text.utf8 {
            let scalar = Unicode.Scalar(byte)
            if (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || "-_.~".unicodeScalars.contains(scalar) || (keepSlash && byte == 0x2F) {
                result.unicodeScalars.append(scalar)
            } else {
                result += String(format: "%%%02X", byte)
            }
        }
        return result
    }

    static func parse(_ amzDate: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.date(from: amzDate)
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
