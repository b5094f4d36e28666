import Foundation

/// The API module's resource folder (`Sources/API/Resources`, copied beside
/// the binary as the module's bundle): the OpenAPI document and the console's
/// templates, catalogues and static files, read once at start.
enum APIResources {
    struct Missing: Error, CustomStringConvertible {
        var what: String
        var description: String { "API resource missing: \(what) (the Hikyaku_API.resources folder must sit beside the binary)" }
    }

    /// The folder, wherever the platform's bundle keeps it.
    static func directory() throws -> URL {
        let manager = FileManager.default
        let candidates = [Bundle.module.bundleURL.appendingPathComponent("Resources"),
                          Bundle.module.resourceURL?.appendingPathComponent("Resources"), Bundle.module.resourceURL]
        guard let found = candidates.compactMap({ $0 })
            .first(where: { manager.fileExists(atPath: $0.appendingPathComponent("openapi.json").path) }) else {
            throw Missing(what: "Resources/openapi.json")
        }
        return found
    }

    /// The OpenAPI 3.1 document served at `/openapi.json` (written by scripts/openapi.py).
    static func openAPIDocument() throws -> Data {
        try Data(contentsOf: try directory().appendingPathComponent("openapi.json"))
    }
}
