import Foundation
import Store

/// The store a node (or a command) works with, as the configuration names it:
/// the embedded SQLite file in the data directory, or the shared PostgreSQL
/// store of `storage.url` (docs/storage.md). Either way the secrets key is the
/// data directory's `secrets.key`: on a cluster, the same file on every node.
public enum ConfiguredStore {
    public static func open(_ configuration: Configuration, layout: DataLayout) throws -> any HikyakuStore {
        guard !configuration.storageURL.isEmpty else { return try SQLiteStore(path: layout.storePath) }
        let location = try PostgresLocation(url: configuration.storageURL)
        return try PostgresStore(location: location, secretsKeyPath: layout.secretsKeyPath,
                                 nodeName: configuration.clusterNodeName)
    }
}
