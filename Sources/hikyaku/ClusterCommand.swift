import ArgumentParser
import Foundation
import Store

/// `hikyaku cluster …`: the nodes serving from this store.
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cluster", abstract: "The nodes serving from this store.",
                                                    subcommands: [Status.self, Forget.self])

    /// What a node's status shows: the registry's row, and whether it is heard from.
    struct Listed: Encodable {
        var node: NodeStatus
        var alive: Bool
        var secondsSinceHeartbeat: Int
    }

    /// A node is alive while its last heartbeat is at most three intervals old.
    static func listed(_ nodes: [NodeStatus], heartbeatSeconds: Int, now: Date = Date()) -> [Listed] {
        nodes.map { node in
            let age = max(0, now.timeIntervalSince(node.heartbeatAt))
            return Listed(node: node, alive: node.isAlive(now: now, heartbeatSeconds: heartbeatSeconds),
                          secondsSinceHeartbeat: Int(exactly: age.rounded(.down)) ?? Int.max)
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every node, its version, when it last wrote its status, and the mail in its spool.")
        @OptionGroup var options: CommonOptions
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let configuration = try options.load()
            let listed = ClusterCommand.listed(try AccountCommand.store(options).nodes(), heartbeatSeconds: configuration.heartbeatSeconds)
            if json { return try printJSON(listed) }
            print("node\tversion\tstate\tlast heartbeat\tpending recipients\tpending messages")
            for item in listed {
                print("\(item.node.name)\t\(item.node.version)\t\(item.alive ? "alive" : "silent")\t\(item.secondsSinceHeartbeat) s ago\t"
                      + "\(item.node.pendingRecipients)\t\(item.node.pendingMessages)")
            }
        }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a retired node from the list (it reappears if it runs again).")
        @OptionGroup var options: CommonOptions
        @Argument(help: "The node's name.") var name: String

        func run() throws {
            guard try AccountCommand.store(options).forgetNode(named: name) else { throw ValidationError("no node named \(name)") }
        }
    }
}
