import Foundation
import Testing
@testable import HikyakuServer

struct DocumentationTests {
    /// docs/configuration.md lists every key with its environment variable.
    @Test func everyConfigurationKeyIsDocumented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        for key in Configuration.keys {
            #expect(text.contains("| `\(key.path)` | `\(key.environmentName)` |"), "\(key.path) is missing from docs/configuration.md")
        }
    }
}
