import _CryptoExtras
import Crypto
import Foundation
import SwiftASN1
import X509

/// Makes the STARTTLS certificate for a zero-configuration start: a P-256
/// key and a self-signed certificate for the configured host name, written
/// once into the data directory (key readable by the owner only).
enum SelfSignedCertificate {
    static func ensure(certificatePath: String, keyPath: String, hostname: String) async throws {
        let manager = FileManager.default
        if manager.fileExists(atPath: certificatePath) && manager.fileExists(atPath: keyPath) { return }
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            CommonName(hostname)
            OrganizationName("Hikyaku self-signed")
        }
        let now = Date()
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames([.dnsName(hostname), .dnsName("localhost"),
                                     .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
        }
        let certificate = try await Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(825 * 86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerAsyncPrivateKey: .init(key))
        let directory = (certificatePath as NSString).deletingLastPathComponent
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard manager.createFile(atPath: keyPath, contents: Data(key.pemRepresentation.utf8), attributes: [.posixPermissions: 0o600]),
              manager.createFile(atPath: certificatePath, contents: Data(try certificate.serializeAsPEM().pemString.utf8),
                                 attributes: [.posixPermissions: 0o644])
        else { throw ConfigurationError("cannot write TLS files in \(directory)") }
    }
}

/// The key and certificate that sign SNS notifications of `ses`-format
/// webhooks (SignatureVersion 2 is RSA with SHA-256), made once in the data
/// directory; the certificate is public (`/sns/certificate.pem`).
enum SNSSigningCertificate {
    static func ensure(directory: String, hostname: String) async throws -> (key: _RSA.Signing.PrivateKey, certificatePEM: String) {
        let keyPath = directory + "/sns-signing.key"
        let certificatePath = directory + "/sns-signing.crt"
        let manager = FileManager.default
        if let keyPEM = manager.contents(atPath: keyPath), let certificate = manager.contents(atPath: certificatePath) {
            return (try _RSA.Signing.PrivateKey(pemRepresentation: String(decoding: keyPEM, as: UTF8.self)),
                    String(decoding: certificate, as: UTF8.self))
        }
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let name = try DistinguishedName {
            CommonName("sns.\(hostname)")
            OrganizationName("Hikyaku SNS signing")
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
            issuer: name, subject: name, signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: try Certificate.Extensions { Critical(KeyUsage(digitalSignature: true)) },
            issuerPrivateKey: .init(key))
        let pem = try certificate.serializeAsPEM().pemString
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard manager.createFile(atPath: keyPath, contents: Data(key.pemRepresentation.utf8), attributes: [.posixPermissions: 0o600]),
              manager.createFile(atPath: certificatePath, contents: Data(pem.utf8), attributes: [.posixPermissions: 0o644])
        else { throw ConfigurationError("cannot write the SNS signing files in \(directory)") }
        return (key, pem)
    }
}
