import API
import DKIM
import Foundation
import MIME
import Relay

/// Targets for the parsers of message content and of the HTTP API.
extension FuzzTargets {
    /// The header section, address lists, encoded words and the author policy.
    public static func headerSection(_ bytes: [UInt8]) {
        RelayFuzzing.headerSection(bytes)
    }

    /// The report parser (DSN, ARF, plain-text bounces) and the MIME structure under it.
    public static func feedbackReport(_ bytes: [UInt8]) {
        RelayFuzzing.report(bytes)
    }

    /// MIME building from hostile structured input: whatever the builder
    /// accepts must come out with a header section the intake can read,
    /// CRLF line ends and no line over 998 octets (RFC 5322 §2.1.1).
    public static func mimeBuilder(_ bytes: [UInt8]) {
        let fields = bytes.split(separator: 0, maxSplits: 7, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        func field(_ index: Int) -> String { index < fields.count ? fields[index] : "" }
        guard let from = try? NameAddress(parsing: field(0)), let to = try? NameAddress(parsing: field(1)) else { return }
        var composition = Composition(from: from, subject: field(2))
        composition.to = [to]
        composition.text = field(3).isEmpty ? nil : field(3)
        composition.html = field(4).isEmpty ? nil : field(4)
        composition.charset = bytes.first.map { $0 & 1 == 0 } == true ? .utf8 : .iso2022JP
        if !field(5).isEmpty { composition.headers = [(name: field(5), value: field(6))] }
        if !field(7).isEmpty { composition.attachments = [Attachment(filename: field(6), contentType: nil, data: Array(field(7).utf8))] }
        guard let built = try? MessageBuilder(hostname: "fuzz.example").build(composition, date: Date(timeIntervalSince1970: 0)) else { return }
        precondition((try? HeaderSection(parsing: built.bytes)) != nil, "built message has a malformed header section")
        var lineLength = 0
        var previous: UInt8 = 0
        for byte in built.bytes {
            if byte == 0x0A {
                precondition(previous == 0x0D, "bare LF in a built message")
                lineLength = 0
            } else if byte != 0x0D {
                precondition(previous != 0x0D, "bare CR in a built message")
                lineLength += 1
                precondition(lineLength <= 998, "line over 998 octets in a built message")
            }
            previous = byte
        }
    }

    /// Relaxed canonicalization (RFC 6376 §3.4) and signing of any message
    /// the header parser accepts; canonicalizing a canonical body changes nothing.
    public static func dkim(_ bytes: [UInt8]) {
        let body = RelaxedCanonicalization.body(bytes[...])
        precondition(RelaxedCanonicalization.body(body[...]) == body, "relaxed body canonicalization is not idempotent")
        _ = RelaxedCanonicalization.header(bytes[...])
        _ = try? DKIMFuzzKey.signer?.signature(for: bytes, at: Date(timeIntervalSince1970: 1_800_000_000))
    }

    /// The JSON bodies of the sending endpoints, through to built messages.
    public static func apiRequest(_ bytes: [UInt8]) {
        APIFuzzing.sendRequest(bytes)
    }

    /// AWS Signature V4: canonical request building, Authorization parsing, verification.
    public static func signatureV4(_ bytes: [UInt8]) {
        APIFuzzing.signatureV4(bytes)
    }

    /// Mustache templates and data from tenants, rendered within a budget.
    public static func mustache(_ bytes: [UInt8]) {
        APIFuzzing.mustache(bytes)
    }

    /// Suppression imports (CSV from tenants) and SendGrid's Handlebars templates translated to Mustache.
    public static func csv(_ bytes: [UInt8]) {
        APIFuzzing.csvAndHandlebars(bytes)
    }
}

enum DKIMFuzzKey {
    static let signer: DKIMSigner? = (try? DKIMKey(algorithm: .ed25519, privateKeyData: Data(repeating: 7, count: 32)))
        .map { DKIMSigner(domain: "fuzz.example", selector: "fuzz", key: $0) }
}
