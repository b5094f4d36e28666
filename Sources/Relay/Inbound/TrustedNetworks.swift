import NIOCore

/// Client networks allowed to relay without AUTH (Postfix's `mynetworks`),
/// as CIDR blocks such as `127.0.0.0/8` or `::1/128`.
public struct TrustedNetworks: Sendable, Equatable {
    struct Block: Sendable, Equatable {
        var address: [UInt8]
        var prefixLength: Int
    }

    private var blocks: [Block]

    public init(_ cidrs: [String]) throws {
        blocks = try cidrs.map { cidr in
            let parts = cidr.split(separator: "/", maxSplits: 1)
            guard let address = TrustedNetworks.bytes(of: String(parts[0])) else { throw TrustedNetworksError(cidr: cidr) }
            let maximum = address.count * 8
            let prefix = parts.count == 2 ? Int(parts[1]) : maximum
            guard let prefix, (0...maximum).contains(prefix) else { throw TrustedNetworksError(cidr: cidr) }
            return Block(address: address, prefixLength: prefix)
        }
    }

    public func contains(_ address: SocketAddress?) -> Bool {
        guard let address, let ip = address.ipAddress, let bytes = TrustedNetworks.bytes(of: ip) else { return false }
        return blocks.contains { block in
            guard block.address.count == bytes.count else { return false }
            var remaining = block.prefixLength
            for index in bytes.indices where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if bytes[index] & mask != block.address[index] & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    static func bytes(of text: String) -> [UInt8]? {
        guard let address = try? SocketAddress(ipAddress: text, port: 0) else { return nil }
        switch address {
        case .v4(let v4):
            return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6):
            var bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 blocks.
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                bytes = Array(bytes[12...])
            }
            return bytes
        default:
            return nil
        }
    }
}

public struct TrustedNetworksError: Error, CustomStringConvertible {
    public var cidr: String
    public var description: String { "invalid network \(cidr): use ADDRESS/PREFIX, e.g. 127.0.0.0/8" }
}
