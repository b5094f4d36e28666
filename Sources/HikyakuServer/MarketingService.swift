import API
import Foundation
import Logging
import Relay
import ServiceLifecycle
import Store

/// Campaigns and the contacts' activity: runs the campaign runner and the
/// follower of the delivery log until graceful shutdown. At start, imports
/// left running by a stopped process are failed (nothing of them was
/// applied) and their uploads removed.
struct MarketingService: Service {
    let runner: CampaignRunner
    let follower: ContactActivityFollower
    let store: SQLiteStore
    let importsDirectory: String
    let logger: Logger

    func run() async throws {
        if let abandoned = try? store.abandonUnfinishedContactImports(), abandoned > 0 {
            logger.notice("contact imports interrupted by the restart were not applied", metadata: ["imports": "\(abandoned)"])
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: importsDirectory)) ?? [] {
            try? FileManager.default.removeItem(atPath: importsDirectory + "/" + name)
        }
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
