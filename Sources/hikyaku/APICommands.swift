import ArgumentParser
import Foundation
import Store

/// `hikyaku apikey …`: keys for the HTTP API (native, SendGrid bearer, SES Signature V4).
struct APIKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apikey", abstract: "Manage API keys (printed once, stored hashed).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key for an account; prints it once.")
        @OptionGroup var options: CommonOptions
        @Option(name: .long, help: "The account the key acts for.") var account: String
        @Option(name: .long, help: ArgumentHelp(
            "send, read, admin or operator.",
            discussion: """
                send: send mail (from the account's verified domains only) and read its own templates and message status.
                read: also read messages, events, statistics, suppressions and usage.
                admin: also change templates, suppressions and suppression settings, add sending domains and DKIM keys,
                and ask for a domain to be verified. A domain an admin key adds counts for nothing (no sending, no
                sandbox recipients) until its DKIM record is found in DNS, and another account's unverified claim
                does not stop the real owner from adding and verifying it. Also manage the account's keys, SMTP
                credentials, console users and queue.
                operator: also every account (`?account=NAME` on the native API acts for another, `*` lists across all),
                creating, disabling and limiting accounts.
                """))
        var scope: String = "send"
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            guard let scope = APIKeyScope(rawValue: scope) else { throw ValidationError("scope must be send, read, admin or operator") }
            let created = try AccountCommand.store(options).createAPIKey(accountNamed: account, scope: scope)
            if json { return try printJSON(created) }
            print("key:                   \(created.token)")
            print("scope:                 \(created.key.scope.rawValue)")
            print("AWS access key id:     \(created.key.keyID)")
            print("AWS secret access key: \(created.secret)")
            print("Shown only now. Use the key as 'Authorization: Bearer …' (native and SendGrid APIs),")
            print("or the access key id and secret with an AWS SDK (SES v2 API).")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")
        @OptionGroup var options: CommonOptions
        @Option(name: .long, help: "Only this account's keys.") var account: String?
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let store = try AccountCommand.store(options)
            let accounts = Dictionary(uniqueKeysWithValues: try store.accounts().map { ($0.id, $0.name) })
            var id: Int64?
            if let account {
                guard let found = try store.account(named: account) else { throw ValidationError("no account named \(account)") }
                id = found.id
            }
            let keys = try store.apiKeys(accountID: id)
            if json { return try printJSON(keys) }
            for key in keys {
                print("\(key.keyID)\t\(accounts[key.accountID] ?? "?")\t\(key.scope.rawValue)\t\(key.revoked ? "revoked" : "active")")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key (it stops working within 10 seconds).")
        @OptionGroup var options: CommonOptions
        @Argument(help: "The key id (the access key id, HK…).") var keyID: String
        func run() throws { try AccountCommand.store(options).revokeAPIKey(keyID) }
    }
}

extension AccountCommand {
    struct SetQuota: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-quota", abstract: "Set an account's sending limits (SMTP and API alike).")
        @OptionGroup var options: CommonOptions
        @Argument var name: String
        @Option(name: .long, help: "Recipients per second; -1: unlimited.") var rate: Double = -1
        @Option(name: .long, help: "Recipients per rolling 24 hours; -1: unlimited.") var daily: Int = -1
        @Flag(name: .long, inversion: .prefixedNo, help: "Only recipients in the account's own domains.") var sandbox = false

        func run() throws {
            try AccountCommand.store(options).setQuota(SendQuota(maxSendRate: rate, max24HourSend: daily, sandbox: sandbox), name: name)
        }
    }
}

extension AccountCommand {
    struct SetSuppression: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-suppression",
            abstract: "Which reports suppress an address automatically: bounce, complaint (none given: neither). Unsubscribes always do.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String
        @Option(name: .long, help: "bounce or complaint (repeatable).") var reason: [String] = []

        func run() throws {
            let reasons = try reason.map { text -> Suppression.Reason in
                guard let reason = Suppression.Reason(rawValue: text), reason == .bounce || reason == .complaint else {
                    throw ValidationError("reasons are bounce and complaint")
                }
                return reason
            }
            let store = try AccountCommand.store(options)
            guard let account = try store.account(named: name) else { throw ValidationError("no account named \(name)") }
            try store.setSuppressedReasons(Set(reasons), accountID: account.id)
        }
    }
}

/// `hikyaku usage`: what an account sent per day (the basis for billing).
struct UsageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "usage", abstract: "Messages, recipients and bytes accepted per day.")
    @OptionGroup var options: CommonOptions
    @Option(name: .long, help: "The account.") var account: String
    @Option(name: .long, help: "Days back from today (UTC).") var days = 30
    @Flag(name: .long, help: "Machine-readable output.") var json = false

    func run() throws {
        let store = try AccountCommand.store(options)
        guard let found = try store.account(named: account) else { throw ValidationError("no account named \(account)") }
        let now = Date()
        let usage = try store.dailyUsage(accountID: found.id, since: now.addingTimeInterval(-Double(days) * 86400),
                                         until: now.addingTimeInterval(3600))
        if json { return try printJSON(usage) }
        print("day\tmessages\trecipients\tbytes")
        for day in usage { print("\(day.day)\t\(day.messages)\t\(day.recipients)\t\(day.bytes)") }
    }
}

/// `hikyaku suppression …`: an account's suppression list.
struct SuppressionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suppression", abstract: "List, add and release suppressed addresses.",
        subcommands: [List.self, Add.self, Remove.self])

    static func account(_ store: any AccountStore, _ name: String) throws -> Account {
        guard let account = try store.account(named: name) else { throw ValidationError("no account named \(name)") }
        return account
    }

    struct List: ParsableCommand {
        @OptionGroup var options: CommonOptions
        @Option(name: .long) var account: String
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let store = try AccountCommand.store(options)
            let list = try store.suppressions(accountID: try SuppressionCommand.account(store, account).id, limit: 100_000)
            if json { return try printJSON(list) }
            for item in list { print("\(item.address)\t\(item.reason.rawValue)\t\(item.scope.rawValue)\t\(item.source ?? "")") }
        }
    }

    struct Add: ParsableCommand {
        @OptionGroup var options: CommonOptions
        @Option(name: .long) var account: String
        @Argument var address: String
        @Option(name: .long, help: "bounce, complaint, unsubscribe or manual.") var reason = "manual"
        @Option(name: .long, help: "transactional, marketing or all.") var scope = "all"

        func run() throws {
            guard let reason = Suppression.Reason(rawValue: reason) else { throw ValidationError("unknown reason \(reason)") }
            guard let scope = Suppression.Scope(rawValue: scope) else { throw ValidationError("unknown scope \(scope)") }
            let store = try AccountCommand.store(options)
            try store.suppress(Suppression(address: address, reason: reason, scope: scope, source: "cli"),
                               accountID: try SuppressionCommand.account(store, account).id)
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release an address (mail to it is sent again).")
        @OptionGroup var options: CommonOptions
        @Option(name: .long) var account: String
        @Argument var address: String

        func run() throws {
            let store = try AccountCommand.store(options)
            try store.unsuppress(accountID: try SuppressionCommand.account(store, account).id, address: address.lowercased())
        }
    }
}
