/// The "relaxed" canonicalizations of RFC 6376 §3.4.2 and §3.4.4, on the
/// bytes of a message with CRLF line endings.
public enum RelaxedCanonicalization {
    /// One header field, name and value, as it is hashed: the name lower-cased,
    /// folding removed, runs of white space made one space, white space around
    /// the colon and at the end removed; followed by CRLF.
    public static func header(_ field: ArraySlice<UInt8>) -> [UInt8] {
        guard let colon = field.firstIndex(of: UInt8(ascii: ":")) else { return [] }
        var output: [UInt8] = []
        output.reserveCapacity(field.count)
        for byte in field[field.startIndex..<colon] where byte != 0x20 && byte != 0x09 {
            output.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte)
        }
        output.append(UInt8(ascii: ":"))
        var pendingSpace = false
        var started = false
        for byte in field[(colon + 1)...] {
            switch byte {
            case 0x0D, 0x0A: continue // unfold
            case 0x20, 0x09: pendingSpace = started
            default:
                if pendingSpace { output.append(0x20) }
                pendingSpace = false
                started = true
                output.append(byte)
            }
        }
        output.append(contentsOf: [0x0D, 0x0A])
        return output
    }

    /// The body: white space runs within a line made one space, white space at
    /// line ends removed, empty lines at the end removed; a non-empty body
    /// ends with CRLF.
    public static func body(_ body: ArraySlice<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(body.count)
        var line: [UInt8] = []
        var emptyLines = 0
        var index = body.startIndex
        func flush() {
            while let last = line.last, last == 0x20 { line.removeLast() }
            if line.isEmpty {
                emptyLines += 1
            } else {
                for _ in 0..<emptyLines { output.append(contentsOf: [0x0D, 0x0A]) }
                emptyLines = 0
                output.append(contentsOf: line)
                output.append(contentsOf: [0x0D, 0x0A])
            }
            line.removeAll(keepingCapacity: true)
        }
        while index < body.endIndex {
            let byte = body[index]
            if byte == 0x0D, index + 1 < body.endIndex, body[index + 1] == 0x0A {
                flush()
                index += 2
                continue
            }
            if byte == 0x20 || byte == 0x09 {
                if line.last != 0x20 { line.append(0x20) }
            } else {
                line.append(byte)
            }
            index += 1
        }
        if !line.isEmpty { flush() }
        return output
    }
}
