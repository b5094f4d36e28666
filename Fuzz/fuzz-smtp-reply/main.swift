import FuzzTargets
import Foundation

// Built with -sanitize=fuzzer -DFUZZING this is a libFuzzer target (docs/testing.md);
// otherwise it replays the files named on the command line (a corpus).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzTargets.replyParser(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

#if !FUZZING
for path in CommandLine.arguments.dropFirst() {
    guard let bytes = FileManager.default.contents(atPath: path) else { continue }
    FuzzTargets.replyParser(Array(bytes))
}
#endif
