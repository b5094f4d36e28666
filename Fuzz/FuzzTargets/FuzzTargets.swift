import NIOCore
import SMTPCore

/// libFuzzer entry points, one per parser that reads network bytes. Each
/// must never crash, hang or grow without bound on any input; the checks
/// below are the properties a fuzzer can falsify.
public enum FuzzTargets {
    /// Command framing and parsing, and the encode → parse round trip.
    public static func commandParser(_ bytes: [UInt8]) {
        var reader = CommandLineReader()
        var buffer = ByteBuffer(bytes: bytes)
        while true {
            let result = reader.read(&buffer)
            guard result != .incomplete else { break }
            guard case .line(let line) = result, let command = try? CommandParser.parseCommand(line) else { continue }
            var encoded = command.encoded
            let reencoded = encoded.readBytes(length: encoded.readableBytes - 2)!
            let reparsed = try? CommandParser.parseCommand(reencoded)
            precondition(reparsed == command, "round trip changed \(command)")
        }
    }

    /// Client-side reply parsing.
    public static func replyParser(_ bytes: [UInt8]) {
        var parser = ReplyParser()
        var buffer = ByteBuffer(bytes: bytes)
        while let result = try? parser.parse(&buffer), case .reply = result {}
    }

    /// The PROXY protocol header a load balancer sends first: whatever the bytes, a header is read
    /// whole or refused, never longer than the input or than the longest header allowed, and every
    /// prefix of a header found is incomplete, never a different verdict.
    public static func proxyHeader(_ bytes: [UInt8]) {
        switch ProxyHeader.parse(bytes) {
        case .header(_, let length):
            precondition(length <= bytes.count && length <= 16 + ProxyHeader.maximumV2Payload, "a header longer than its input")
            for end in 0..<length {
                precondition(ProxyHeader.parse(bytes[..<end]) == .incomplete, "a prefix of a header is not incomplete")
            }
        case .incomplete:
            precondition(bytes.count < 16 + ProxyHeader.maximumV2Payload, "more than the longest header still incomplete")
        case .invalid:
            break
        }
    }

    /// The DATA reader, fed in two pieces to exercise split states.
    public static func dataReader(_ bytes: [UInt8]) {
        let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
        var reader = DataReader(maximumMessageSize: 4096)
        var first = ByteBuffer(bytes: bytes[..<split])
        var done = reader.read(&first)
        if done == .incomplete {
            var second = ByteBuffer(bytes: bytes[split...])
            done = reader.read(&second)
        }
        precondition(reader.content.count <= 4096)
        if case .complete(nil) = done {
            // Unstuffed content re-stuffed must read back to itself.
            var stuffed = DotStuffing.stuff(reader.content)
            var again = DataReader(maximumMessageSize: 1 << 20)
            precondition(again.read(&stuffed) == .complete(nil) && again.content == reader.content, "dot-stuffing round trip")
        }
    }
}

import DNS

extension FuzzTargets {
    /// DNS reply parsing; whatever parses must encode and parse back the same.
    public static func dnsMessage(_ bytes: [UInt8]) {
        guard let message = try? DNSMessageCodec.decode(bytes), !message.isTruncated else { return }
        let again = try? DNSMessageCodec.decode(DNSMessageCodec.encode(message))
        precondition(again == message, "DNS round trip changed the message")
    }
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif

/// The `main` of every fuzz executable: built with HIKYAKU_FUZZ=1 and
/// `-sanitize=fuzzer` (scripts/fuzz.sh) it hands `target` to libFuzzer;
/// otherwise it replays the files named on the command line.
public enum FuzzDriver {
    nonisolated(unsafe) static var target: ([UInt8]) -> Void = { _ in }

    static let testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, size in
        guard let data else { return 0 }
        FuzzDriver.target(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }

    public static func main(_ target: @escaping ([UInt8]) -> Void) -> Never {
        self.target = target
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
        #else
        for path in CommandLine.arguments.dropFirst() {
            guard let bytes = FileManager.default.contents(atPath: path) else { continue }
            target(Array(bytes))
        }
        exit(0)
        #endif
    }
}

import Foundation
