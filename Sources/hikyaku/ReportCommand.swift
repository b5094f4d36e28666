import ArgumentParser
import Foundation
import Spool

/// `hikyaku report …`: analyses of what happened.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Reports over the delivery log.", subcommands: [Bounces.self])

    struct Bounces: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bounces by category and receiving provider, the top replies per category, and the recipients affected.")
        @OptionGroup var options: CommonOptions
        @Option(name: .long) var account: String
        @Option(name: .long, help: "From (ISO 8601 or an age such as 7d).") var since = "7d"
        @Option(name: .long, help: "Until (ISO 8601 or an age).") var until: String?
        @Option(name: .long, help: "At most this many recipients listed.") var limit = 50
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let store = try AccountCommand.store(options)
            guard let found = try store.account(named: account) else { throw ValidationError("no account named \(account)") }
            let analysis = try LogCommand.log(options, store: store).bounceAnalysis(
                accountID: found.id, since: try LogCommand.time(since), until: try until.map(LogCommand.time) ?? Date(),
                topPerCategory: 5, recipientLimit: limit)
            if json { return try printJSON(analysis) }
            print("bounces: \(analysis.total)")
            print("\nby category\tbounces\thard")
            for row in analysis.byCategory { print("  \(row.name)\t\(row.bounces)\t\(row.hard)") }
            print("\nby provider\tbounces\thard")
            for row in analysis.byProvider { print("  \(row.name)\t\(row.bounces)\t\(row.hard)") }
            print("\ntop replies")
            for reply in analysis.topReplies { print("  \(reply.category)\t\(reply.count)\t\(reply.text)") }
            print("\nrecipients")
            for recipient in analysis.recipients { print("  \(recipient.recipient)\t\(recipient.category)\t\(recipient.messageID)") }
        }
    }
}
