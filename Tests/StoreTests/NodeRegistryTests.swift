import Foundation
import Testing
@testable import Store

struct NodeRegistryTests {
    @Test func heartbeatsReplaceTheNodesRowAndAreListedByName() throws {
        let path = NSTemporaryDirectory() + "hikyaku-nodes-" + UUID().uuidString + ".sqlite"
        let store = try SQLiteStore(path: path, hashParameters: PasswordHash.Parameters(rounds: 1 << 10, blockSize: 8, parallelism: 1))
        #expect(try store.nodes().isEmpty)
        let started = Date(timeIntervalSince1970: 1_800_000_000)
        var b = NodeStatus(name: "node-b", version: "1.0", startedAt: started, heartbeatAt: started, pendingRecipients: 3, pendingMessages: 2)
        try store.recordHeartbeat(b)
        try store.recordHeartbeat(NodeStatus(name: "node-a", version: "1.0", startedAt: started, heartbeatAt: started,
                                             pendingRecipients: 0, pendingMessages: 0))
        b.heartbeatAt = started.addingTimeInterval(10)
        b.pendingRecipients = 7
        b.version = "1.1"
        try store.recordHeartbeat(b)
        let nodes = try store.nodes()
        #expect(nodes.map(\.name) == ["node-a", "node-b"])
        #expect(nodes[1] == b, "the last heartbeat replaces the row")
        #expect(b.isAlive(now: started.addingTimeInterval(40), heartbeatSeconds: 10))
        #expect(!b.isAlive(now: started.addingTimeInterval(41), heartbeatSeconds: 10))
        #expect(try store.forgetNode(named: "node-a"))
        #expect(try !store.forgetNode(named: "node-a"))
        #expect(try store.nodes().map(\.name) == ["node-b"])
    }
}
