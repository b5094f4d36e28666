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
