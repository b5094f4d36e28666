import Crypto
import _CryptoExtras
import Foundation

/// Slow salted password hashes (scrypt, RFC 7914) in a self-describing
/// string: `scrypt$N$r$p$salt$hash`, salt and hash in base64.
///
/// The cost makes a stolen database expensive to attack; comparisons are
/// constant-time so that response timing reveals nothing about the hash.
public enum PasswordHash {
    public struct Parameters: Sendable {
        public var rounds: Int
        public var blockSize: Int
        public var parallelism: Int
        public init(rounds: Int, blockSize: Int, parallelism: Int) {
            self.rounds = rounds
            self.blockSize = blockSize
            self.parallelism = parallelism
        }
        /// N=2^15, r=8, p=1: about 32 MiB and tens of milliseconds per check.
        public static let standard = Parameters(rounds: 1 << 15, blockSize: 8, parallelism: 1)
    }

    public static func make(_ password: String, parameters: Parameters = .standard) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in salt.indices { salt[index] = generator.next() }
        let hash = try derive(password, salt: salt, parameters: parameters)
        return "scrypt$\(parameters.rounds)$\(parameters.blockSize)$\(parameters.parallelism)$"
            + Data(salt).base64EncodedString() + "$" + Data(hash).base64EncodedString()
    }

    /// True when `password` matches `encoded`. Malformed hashes never match.
    public static func verify(_ password: String, against encoded: String) -> Bool {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt",
              let rounds = Int(parts[1]), let blockSize = Int(parts[2]), let parallelism = Int(parts[3]),
              rounds >= 2, rounds <= 1 << 20, blockSize >= 1, blockSize <= 32, parallelism >= 1, parallelism <= 16,
              let salt = Data(base64Encoded: String(parts[4])), let expected = Data(base64Encoded: String(parts[5])),
              !expected.isEmpty,
              let actual = try? derive(password, salt: Array(salt),
                                       parameters: Parameters(rounds: rounds, blockSize: blockSize, parallelism: parallelism),
                                       length: expected.count)
        else { return false }
        return constantTimeEqual(actual, Array(expected))
    }

    static func derive(_ password: String, salt: [UInt8], parameters: Parameters, length: Int = 32) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt, outputByteCount: length,
            rounds: parameters.rounds, blockSize: parameters.blockSize, parallelism: parameters.parallelism,
            maxMemory: 256 << 20)
        return key.withUnsafeBytes { Array($0) }
    }

    /// Compares every byte regardless of where the first difference is.
    public static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}

/// Random credentials shown once to the operator.
public enum CredentialGenerator {
    static let upperAlphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    static let mixedAlphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
    static let lowerAlphabet = Array("abcdefghjkmnpqrstvwxyz0123456789")

    /// An SMTP username such as `HKY3M7Q…` (20 characters).
    public static func username() -> String {
        "HK" + random(18, from: upperAlphabet)
    }

    /// A password with about 190 bits of entropy.
    public static func password() -> String {
        random(33, from: mixedAlphabet)
    }

    static func random(_ count: Int, from alphabet: [Character]) -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<count).compactMap { _ in alphabet.randomElement(using: &generator) })
    }
}
