import Crypto
import Foundation
import Testing
import _CryptoExtras
import MIME
@testable import DKIM

@Suite struct CanonicalizationTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// RFC 6376 §3.4.6's example.
    @Test func rfcExample() throws {
        let message = bytes("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n")
        let fields = try HeaderSection(parsing: message)
        #expect(fields.fields.map { RelaxedCanonicalization.header(message[$0.range]) } == [bytes("a:X\r\n"), bytes("b:Y Z\r\n")])
        #expect(RelaxedCanonicalization.body(message[fields.bodyStart...]) == bytes(" C\r\nD E\r\n"))
    }

    @Test func emptyBodyAndMissingFinalCRLF() {
        #expect(RelaxedCanonicalization.body(bytes("")[...]) == [])
        #expect(RelaxedCanonicalization.body(bytes("\r\n\r\n")[...]) == [])
        #expect(RelaxedCanonicalization.body(bytes("text")[...]) == bytes("text\r\n"))
    }
}

@Suite struct SignerTests {
    let message = Array("From: Shop <shop@acme.example>\r\nTo: taro@example.jp\r\nSubject: Hello\r\nDate: Sun, 29 Nov 2026 06:25:59 +0000\r\nMessage-ID: <1@acme.example>\r\n\r\nBody line\r\n".utf8)

    /// Checks a signature the way a verifier does, with the public key.
    func verify(_ signed: [UInt8], key: DKIMKey) throws -> Bool {
        let fields = try HeaderSection(parsing: signed)
        let signatureField = try #require(fields.fields.first)
        let text = String(decoding: signed[signatureField.range], as: UTF8.self)
        let tags = Dictionary(uniqueKeysWithValues: text.dropFirst("DKIM-Signature:".count)
            .replacingOccurrences(of: "\r\n\t", with: " ").split(separator: ";").map { tag -> (String, String) in
                let parts = tag.split(separator: "=", maxSplits: 1)
                return (parts[0].trimmingCharacters(in: .whitespaces),
                        parts.count > 1 ? String(parts[1]).replacingOccurrences(of: " ", with: "") : "")
            })
        let body = RelaxedCanonicalization.body(signed[fields.bodyStart...])
        guard Data(SHA256.hash(data: body)).base64EncodedString() == tags["bh"] else { return false }
        var remaining: [String: [ArraySlice<UInt8>]] = [:]
        for field in fields.fields.dropFirst() { remaining[field.name.lowercased(), default: []].append(signed[field.range]) }
        var hashed: [UInt8] = []
        for name in tags["h"]!.split(separator: ":").map({ String($0).lowercased() }) {
            if var instances = remaining[name], let field = instances.popLast() {
                remaining[name] = instances
                hashed += RelaxedCanonicalization.header(field)
            }
        }
        // The signature field itself, with b= emptied.
        let withoutB = text.replacingOccurrences(of: #"b=[A-Za-z0-9+/=\r\n\t ]*$"#, with: "b=", options: .regularExpression)
        var canonical = RelaxedCanonicalization.header(Array(withoutB.utf8)[...])
        canonical.removeLast(2)
        let signature = try #require(Data(base64Encoded: tags["b"]!))
        switch key {
        case .rsa(let privateKey):
            return privateKey.publicKey.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature),
                                                          for: SHA256.hash(data: hashed + canonical), padding: .insecurePKCS1v1_5)
        case .ed25519(let privateKey):
            return privateKey.publicKey.isValidSignature(signature, for: Data(SHA256.hash(data: hashed + canonical)))
        }
    }

    @Test(arguments: DKIMKey.Algorithm.allCases)
    func signsAndVerifies(_ algorithm: DKIMKey.Algorithm) throws {
        let key = try DKIMKey.generate(algorithm)
        let signer = DKIMSigner(domain: "acme.example", selector: "hk20261129", key: key)
        let field = try signer.signature(for: message, at: Date(timeIntervalSince1970: 1_795_933_559))
        let text = String(decoding: field, as: UTF8.self)
        #expect(text.hasPrefix("DKIM-Signature: v=1; a=\(algorithm == .rsa ? "rsa" : "ed25519")-sha256; c=relaxed/relaxed; d=acme.example;"))
        #expect(text.contains("h=from:subject:date:to:message-id:from;") || text.contains("\r\n\t"))
        for line in text.split(separator: "\r\n") { #expect(line.count <= 78) }
        #expect(try verify(field + message, key: key))
        // Any change to a signed header or the body breaks it.
        var changed = field + message
        changed[changed.count - 3] = UInt8(ascii: "X")
        #expect(try !verify(changed, key: key))
        let reloaded = try DKIMKey(algorithm: algorithm, privateKeyData: key.privateKeyData)
        #expect(reloaded.publicKeyBase64 == key.publicKeyBase64)
    }

    @Test func dnsRecordsNameTheAlgorithm() throws {
        #expect(try DKIMKey.generate(.ed25519).dnsRecord.hasPrefix("v=DKIM1; k=ed25519; p="))
        let rsa = try DKIMKey.generate(.rsa)
        #expect(rsa.dnsRecord.hasPrefix("v=DKIM1; k=rsa; p=MII"))
    }
}

@Suite struct MalformedHeaderTests {
    // Guards against a header line that is just `From` (no colon), which once trapped the signer.
    @Test func aFieldWithoutAColonIsNotSigned() throws {
        let signer = DKIMSigner(domain: "acme.example", selector: "s", key: try DKIMKey.generate(.ed25519))
        #expect(throws: HeaderSection.Malformed.notAField(line: 1)) { try signer.signature(for: Array("From\r\n\r\nbody".utf8)) }
        #expect(throws: HeaderSection.Malformed.bareCarriageReturn(line: 1)) {
            try signer.signature(for: Array("Subject: a\rFrom: b@c.example\r\n\r\n".utf8))
        }
    }

    @Test func timestampsAreClamped() {
        #expect(DKIMSigner.timestamp(Date(timeIntervalSince1970: 1e16)) == 999_999_999_999)
        #expect(DKIMSigner.timestamp(Date(timeIntervalSince1970: -5)) == 0)
        #expect(DKIMSigner.selector(at: Date(timeIntervalSince1970: 1_800_000_000)) == "hk20270115")
    }
}
