import FuzzTargets

// A libFuzzer target or a corpus replayer: see FuzzDriver and docs/testing.md.
@main
struct Entry {
    static func main() {
        FuzzDriver.main(FuzzTargets.proxyHeader)
    }
}
