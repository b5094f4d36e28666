import API
import Foundation
import Logging
import Relay
import ServiceLifecycle
import Store

/// Campaigns and the contacts' activity: runs the campaign runner and the
/// follower of the delivery log until graceful shutdown.
struct MarketingService: Service {
    let runner: CampaignRunner
    let follower: ContactActivityFollower
    let logger: Logger

    /// Imports left running by a stopped process are failed (nothing of them was applied) and their
    /// uploads removed: at start, before the API can begin new ones.
    static func abandonImports(store: any ContactImportStore, directory: String, logger: Logger) {
        if let abandoned = try? store.abandonUnfinishedContactImports(), abandoned > 0 {
            logger.notice("contact imports interrupted by the restart were not applied", metadata: ["imports": "\(abandoned)"])
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await cancelWhenGracefulShutdown { await runner.run() }
            }
            group.addTask {
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    do {
                        while try follower.catchUp() > 0 {}
                    } catch {
                        logger.warning("contact activity not recorded", metadata: ["error": "\(error)"])
                    }
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(2)) }
                }
            }
        }
    }
}
