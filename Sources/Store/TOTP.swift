import Crypto
import Foundation
import GRDB

/// Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1,
/// 30-second steps, 6 digits, the form every authenticator app reads from an
/// `otpauth://` URI. A code is accepted one step early or late (clock drift)
/// and only once: the last step used is remembered.
public enum TOTP {
    public static let step: TimeInterval = 30
    public static let digits = 6

    /// The code for `secret` at time step `counter` (RFC 4226 §5.3, dynamic truncation).
    static func code(secret: [UInt8], counter: UInt64, digits: Int = digits) -> String {
        var message = [UInt8](repeating: 0, count: 8)
        for index in 0..<8 { message[index] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(truncatingIfNeeded: 7 - index))) }
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
        let offset = Int(truncatingIfNeeded: mac[mac.count - 1] & 0x0F)
        let binary = (UInt32(truncatingIfNeeded: mac[offset] & 0x7F) << 24) | (UInt32(truncatingIfNeeded: mac[offset + 1]) << 16) | (UInt32(truncatingIfNeeded: mac[offset + 2]) << 8) | UInt32(truncatingIfNeeded: mac[offset + 3])
        var modulus: UInt32 = 1
        for _ in 0..<digits { modulus *= 10 }
        let text = String(binary % modulus)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    static func counter(at date: Date) -> UInt64 {
        UInt64(exactly: (date.timeIntervalSince1970 / step).rounded(.down)) ?? 0
    }

    /// The step at which `code` is valid for `secret` around `date`, or nil.
    static func matchingStep(_ text: String, secret: [UInt8], at date: Date) -> UInt64? {
        let presented = text.filter { !$0.isWhitespace }
        guard presented.count == digits, presented.allSatisfy(\.isASCII), presented.allSatisfy(\.isNumber) else { return nil }
        let now = counter(at: date)
        for candidate in [now, now &- 1, now &+ 1] where constantTimeEqual(Array(code(secret: secret, counter: candidate).utf8), Array(presented.utf8)) {
            return candidate
        }
        return nil
    }

    /// RFC 4648 base32 without padding, as authenticator apps take secrets.
    public static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var out = ""
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(truncatingIfNeeded: byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[Int(truncatingIfNeeded: (buffer >> UInt32(truncatingIfNeeded: bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[Int(truncatingIfNeeded: (buffer << UInt32(truncatingIfNeeded: 5 - bits)) & 31)]) }
        return out
    }

    /// `base32`'s text back to bytes (padding ignored); nil for a character outside its alphabet.
    static func base32Decode(_ text: String) -> [UInt8]? {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var buffer: UInt32 = 0
        var bits = 0
        var out: [UInt8] = []
        for character in text.uppercased() where character != "=" {
            guard let value = alphabet.firstIndex(of: character) else { return nil }
            buffer = (buffer << 5) | UInt32(truncatingIfNeeded: value)
            bits += 5
            if bits >= 8 {
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(truncatingIfNeeded: bits - 8)))
                bits -= 8
            }
        }
        return out
    }
}

/// A second factor being set up: the secret to show once, and the URI an app scans.
public struct TOTPEnrollment: Sendable {
    public var secret: String
    public var uri: String

    /// A new random secret (160 bits, as RFC 4226 recommends) for `email`'s app.
    init(email: String, issuer: String) {
        var generator = SystemRandomNumberGenerator()
        secret = TOTP.base32((0..<20).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let label = (issuer + ":" + email).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? email
        uri = "otpauth://totp/\(label)?secret=\(secret)&issuer=\(issuer)&algorithm=SHA1&digits=6&period=30"
    }
}

extension SQLiteStore {
    public func beginTOTP(userID: Int64, issuer: String) throws -> TOTPEnrollment {
        guard let user = try consoleUser(id: userID) else { throw AccountStoreError.notFound("user \(userID)") }
        let enrollment = TOTPEnrollment(email: user.email, issuer: issuer)
        let sealed = try sealer.seal(enrollment.secret)
        try database.write { db in
            try db.execute(sql: "UPDATE console_user SET totp_pending = ? WHERE id = ?", arguments: [sealed, userID])
        }
        return enrollment
    }

    public func confirmTOTP(userID: Int64, code: String, now: Date) throws -> Bool {
        try database.write { db in
            guard let sealed: Data = try Data.fetchOne(db, sql: "SELECT totp_pending FROM console_user WHERE id = ?", arguments: [userID]),
                  let secret = TOTP.base32Decode(try sealer.open(sealed)),
                  let step = TOTP.matchingStep(code, secret: secret, at: now) else { return false }
            // Never over a factor already on: that one is turned off first, with a code from it.
            try db.execute(sql: """
                UPDATE console_user SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?
                WHERE id = ? AND totp_secret IS NULL
                """, arguments: [Int64(truncatingIfNeeded: step), userID])
            return db.changesCount == 1
        }
    }

    public func disableTOTP(userID: Int64) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE console_user SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = ?",
                           arguments: [userID])
        }
    }

    public func hasTOTP(userID: Int64) throws -> Bool {
        try database.read { db in
            try Bool.fetchOne(db, sql: "SELECT totp_secret IS NOT NULL FROM console_user WHERE id = ?", arguments: [userID]) ?? false
        }
    }

    public func checkTOTP(userID: Int64, code: String?, now: Date) throws -> Bool {
        try database.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT totp_secret, totp_last_step FROM console_user WHERE id = ?", arguments: [userID]),
                  let sealed: Data = row["totp_secret"] else { return true }
            guard let code, let secret = TOTP.base32Decode(try sealer.open(sealed)),
                  let step = TOTP.matchingStep(code, secret: secret, at: now) else { return false }
            let last: Int64? = row["totp_last_step"]
            // A code works once: a captured one cannot be replayed within its window.
            if let last, Int64(truncatingIfNeeded: step) <= last { return false }
            try db.execute(sql: "UPDATE console_user SET totp_last_step = ? WHERE id = ?", arguments: [Int64(truncatingIfNeeded: step), userID])
            return true
        }
    }
}
