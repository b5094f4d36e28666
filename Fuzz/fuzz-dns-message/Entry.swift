import Foundation
import FuzzTargets

// Built with HIKYAKU_FUZZ=1 and -sanitize=fuzzer this is a libFuzzer target
// (docs/testing.md); otherwise it replays the files named on its command line.
@main
struct Entry {
    static let testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, size in
        guard let data else { return 0 }
        FuzzTargets.dnsMessage(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }

    static func main() {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
        #else
        for path in CommandLine.arguments.dropFirst() {
            guard let bytes = FileManager.default.contents(atPath: path) else { continue }
            bytes.withUnsafeBytes { _ = testOneInput($0.bindMemory(to: UInt8.self).baseAddress, $0.count) }
        }
        #endif
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
