import ArgumentParser
import Foundation
import Spool
import Store

/// `hikyaku log`: did mail X reach Y, and if not, why?
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Search the delivery log: acceptances, attempts and state changes, newest first.",
        discussion: """
            Times are ISO 8601 (2026-11-29T10:00:00Z) or an age before now (90s, 30m, 2h, 7d).
            Types: \(DeliveryEvent.Kind.allCases.map(\.rawValue).joined(separator: ", ")).
            """)
    @OptionGroup var options: CommonOptions
    @Option(name: .long, help: "Recipient address (case-insensitive).") var recipient: String?
    @Option(name: .long, help: "Queue id of the message.") var message: String?
    @Option(name: .long, help: "Event type; repeat for several.") var status: [String] = []
    @Option(name: .long, help: "Failure category (invalid_recipient, mailbox_full, policy_block, …).") var category: String?
    @Option(name: .long, help: "Only events at or after this time.") var since: String?
    @Option(name: .long, help: "Only events before this time.") var until: String?
    @Option(name: .long, help: "At most this many events.") var limit = 100
    @Flag(name: .long, help: "Machine-readable output.") var json = false

    func run() throws {
        let log = try LogCommand.log(options)
        let types = try status.map { name -> DeliveryEvent.Kind in
            guard let kind = DeliveryEvent.Kind(rawValue: name) else { throw ValidationError("unknown status \(name)") }
            return kind
        }
        let filter = DeliveryLogFilter(
            recipient: recipient, messageID: try message.map(QueueCommand.messageID), types: types, category: category,
            since: try since.map { try LogCommand.time($0) }, until: try until.map { try LogCommand.time($0) }, limit: limit)
        let events = try log.events(filter)
        if json { return try printJSON(events) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for event in events {
            var fields = [formatter.string(from: event.at), event.messageID.rawValue, "<\(event.recipient)>", event.type.rawValue]
            if let attempt = event.attempt { fields.append("attempt=\(attempt)") }
            if let category = event.category { fields.append("category=\(category)\(event.hard == true ? "/hard" : "")") }
            if let host = event.mxHost { fields.append("mx=\(host)[\(event.remoteIP ?? "")]") }
            if let tls = event.tlsVersion { fields.append("tls=\(tls)") }
            if let duration = event.durationMilliseconds { fields.append("\(duration)ms") }
            if let code = event.replyCode {
                fields.append("\(code)\(event.enhancedCode.map { " " + $0 } ?? "") \(event.replyText ?? "")")
            } else if let text = event.replyText {
                fields.append(text)
            }
            print(fields.joined(separator: "\t"))
        }
    }

    /// Where the log is read: in a cluster the shared log with every node's events; alone, the node's own index.
    static func log(_ options: CommonOptions, store: (any HikyakuStore)? = nil) throws -> any DeliveryLogReader {
        guard !(try options.load().storageURL.isEmpty),
              let shared = try (store ?? AccountCommand.store(options)) as? any SharedDeliveryLog else {
            return try QueueCommand.index(options).0
        }
        return shared
    }

    static func time(_ text: String) throws -> Date {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let unit = text.last.flatMap({ units[$0] }), let amount = Double(text.dropLast()), amount >= 0 {
            return Date().addingTimeInterval(-amount * unit)
        }
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        throw ValidationError("not a time: \(text) (use ISO 8601 or an age such as 30m)")
    }
}
