import ArgumentParser
import Foundation
import Spool
import Store

/// `hikyaku webhook …`: an account's webhook endpoints (docs/webhooks.md).
struct WebhookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook", abstract: "Manage webhook endpoints (events sent to an account's URLs).",
        subcommands: [Create.self, List.self, Delete.self, Enable.self, Disable.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an endpoint; prints its secret (native) once.")
        @OptionGroup var options: CommonOptions
        @Option(name: .long, help: "The account whose events it receives.") var account: String
        @Option(name: .long, help: "The URL events are POSTed to (https unless webhooks.allowPlainHttp).") var url: String
        @Option(name: .long, help: "native (Standard Webhooks), sendgrid (Event Webhook) or ses (SNS notifications).") var format = "native"
        @Option(name: .long, help: "A name, unique per account (for ses: the topic name in its ARN).") var name: String?
        @Option(name: .long, parsing: .upToNextOption, help: "Event types wanted (default: all).") var event: [String] = []
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            guard let format = WebhookFormat(rawValue: format) else { throw ValidationError("format must be native, sendgrid or ses") }
            guard WebhookURLCheck.valid(url) else { throw ValidationError("url must be an http(s) URL without credentials") }
            for type in event where DeliveryEvent.Kind(rawValue: type) == nil {
                throw ValidationError("unknown event type \(type); types: \(DeliveryEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let store = try AccountCommand.store(options)
            guard let owner = try store.account(named: account) else { throw ValidationError("no account named \(account)") }
            let index = try QueueIndex(path: try options.layout().spool.indexPath)
            let created = try store.createWebhook(accountID: owner.id, name: name, url: url, format: format, eventTypes: event,
                                                  cursor: try index.lastEventID())
            if json { return try printJSON(created) }
            print("id:      \(created.webhook.id)")
            print("format:  \(format.rawValue)")
            if let secret = created.secret { print("secret:  \(secret)   (shown only now; verify webhook-signature with it)") }
            if let key = created.webhook.publicKey { print("public key (verification key): \(key)") }
            if format == .ses {
                print("topic ARN: \(created.webhook.topicARN)")
                print("Name it as the SnsDestination TopicArn of a configuration set's event destination;")
                print("the endpoint first gets a SubscriptionConfirmation and must visit its SubscribeURL.")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List endpoints and their state.")
        @OptionGroup var options: CommonOptions
        @Option(name: .long, help: "Only this account's endpoints.") var account: String?
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let store = try AccountCommand.store(options)
            var id: Int64?
            if let account {
                guard let found = try store.account(named: account) else { throw ValidationError("no account named \(account)") }
                id = found.id
            }
            let webhooks = try store.webhooks(accountID: id)
            if json { return try printJSON(webhooks) }
            for webhook in webhooks {
                let state = webhook.enabled ? (webhook.failingSince.map { "failing since \($0)" } ?? "enabled")
                    : (webhook.disabledReason ?? "disabled")
                print("\(webhook.id)\t\(webhook.format.rawValue)\t\(webhook.url)\tposition \(webhook.cursor)\t\(state)")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an endpoint.")
        @OptionGroup var options: CommonOptions
        @Argument var id: String
        func run() throws { try AccountCommand.store(options).deleteWebhook(id: id, accountID: nil) }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable an endpoint; it resumes where it stopped.")
        @OptionGroup var options: CommonOptions
        @Argument var id: String
        func run() throws { _ = try AccountCommand.store(options).updateWebhook(id: id, accountID: nil, enabled: true) }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an endpoint; its events wait in the log.")
        @OptionGroup var options: CommonOptions
        @Argument var id: String
        func run() throws { _ = try AccountCommand.store(options).updateWebhook(id: id, accountID: nil, enabled: false) }
    }
}

enum WebhookURLCheck {
    static func valid(_ text: String) -> Bool {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else { return false }
        return (scheme == "http" || scheme == "https") && components.host?.isEmpty == false && components.user == nil
    }
}
