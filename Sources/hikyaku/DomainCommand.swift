import ArgumentParser
import DKIM
import Foundation
import HikyakuServer
import Relay
import Store

/// `hikyaku domain …`: sending domains and their DKIM keys.
struct DomainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domain", abstract: "Sending domains: DKIM keys and the DNS records to publish.",
        subcommands: [Add.self, List.self, Rotate.self, Activate.self, ReturnPathCommand.self, Records.self, Verify.self, Check.self])

    static func printRecords(_ domain: String, _ options: CommonOptions, json: Bool, accountID: Int64? = nil) throws {
        let store = try AccountCommand.store(options)
        let records = try SendingDomain.records(domain: domain, store: store, configuration: try options.load(), accountID: accountID)
        if json { return try printJSON(records) }
        for record in records {
            print("; \(record.purpose)")
            print(record.zoneLine)
        }
    }

    /// The account named by `--account`, or the domain's owner (the account that verified it, else its first claimant).
    static func account(_ name: String?, domain: String, store: any AccountStore & DKIMKeyStore & ReturnPathStore) throws -> Account {
        if let name {
            guard let account = try store.account(named: name) else { throw ValidationError("no account \(name)") }
            return account
        }
        guard let owner = try SendingDomain.owner(of: domain.lowercased(), keys: store.dkimKeys(domain: domain), store: store),
              let account = try store.account(id: owner) else {
            throw ValidationError("\(domain) has no DKIM key yet; use `hikyaku domain add`")
        }
        return account
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a sending domain to an account with a new DKIM key; prints the DNS records.")
        @OptionGroup var options: CommonOptions
        @Argument var domain: String
        @Option(name: .long, help: "The account sending from it.") var account: String
        @Option(name: .long, help: "rsa (2048 bits) or ed25519.") var algorithm = "rsa"
        @Option(name: .customLong("return-path"), help: "The domain's own bounce domain, the domain or under it (e.g. bounce.DOMAIN).")
        var returnPath: String?
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            guard let algorithm = DKIMKey.Algorithm(rawValue: algorithm) else { throw ValidationError("algorithm must be rsa or ed25519") }
            // Checked first, so that a bad return path adds no key.
            if let returnPath { _ = try ReturnPathSetting.check(returnPath, for: domain) }
            let store = try AccountCommand.store(options)
            let key = try MessageSigning.addKey(store: store, accountNamed: account, domain: domain, algorithm: algorithm)
            if let returnPath { try store.setReturnPath(returnPath, domain: key.domain, accountID: key.accountID) }
            try DomainCommand.printRecords(domain.lowercased(), options, json: json, accountID: key.accountID)
        }
    }

    struct ReturnPathCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "return-path",
            abstract: "Give the domain its own bounce domain (the domain or under it), used once `domain verify` finds its MX pointing here.")
        @OptionGroup var options: CommonOptions
        @Argument var domain: String
        @Argument(help: "e.g. bounce.DOMAIN; omit with --remove.") var returnPath: String?
        @Flag(name: .long, help: "Go back to the server's bounce.domain.") var remove = false
        @Option(name: .long, help: "The account, when several have added the domain (default: the one that verified it).") var account: String?
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            guard remove == (returnPath == nil) else { throw ValidationError("give a return-path domain, or --remove") }
            let store = try AccountCommand.store(options)
            let owner = try DomainCommand.account(account, domain: domain, store: store)
            try store.setReturnPath(returnPath, domain: domain, accountID: owner.id)
            try DomainCommand.printRecords(domain.lowercased(), options, json: json, accountID: owner.id)
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new DKIM key (not yet active): publish its record, then `domain activate`.")
        @OptionGroup var options: CommonOptions
        @Argument var domain: String
        @Option(name: .long, help: "rsa (2048 bits) or ed25519.") var algorithm = "rsa"
        @Option(name: .long, help: "The account, when several have added the domain (default: the one that verified it).") var account: String?
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            guard let algorithm = DKIMKey.Algorithm(rawValue: algorithm) else { throw ValidationError("algorithm must be rsa or ed25519") }
            let store = try AccountCommand.store(options)
            let owner = try DomainCommand.account(account, domain: domain, store: store)
            // Not the first key, so it is made inactive: publish first, then activate.
            _ = try MessageSigning.addKey(store: store, accountNamed: owner.name, domain: domain, algorithm: algorithm)
            try DomainCommand.printRecords(domain.lowercased(), options, json: json, accountID: owner.id)
        }
    }

    struct Activate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign new mail with this selector's key (within 5 s).")
        @OptionGroup var options: CommonOptions
        @Argument var domain: String
        @Argument var selector: String
        func run() throws { try AccountCommand.store(options).activateDKIMKey(domain: domain, selector: selector) }
    }

    struct Records: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The DNS records a domain should publish.")
        @OptionGroup var options: CommonOptions
        @Argument var domain: String
        @Option(name: .long, help: "The account, when several have added the domain (default: the one that verified it).") var account: String?
        @Flag(name: .long, help: "Machine-readable output.") var json = false
        func run() throws {
            let accountID = try account.map { try DomainCommand.account($0, domain: domain, store: AccountCommand.store(options)).id }
            try DomainCommand.printRecords(domain.lowercased(), options, json: json, accountID: accountID)
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Look the domain's records up in DNS: each ok, missing or wrong, with what was found (exit 1 unless all ok).")
        @OptionGroup var options: CommonOptions
        @Argument var domain: String
        @Option(name: .long, help: "DNS server host:port (repeatable); default: dns.servers or /etc/resolv.conf.") var server: [String] = []
        @Option(name: .long, help: "Only this account's claim (default: every account that added the domain).") var account: String?
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() async throws {
            let configuration = try options.load()
            let store = try AccountCommand.store(options)
            let resolver = try Compliance.resolver(configuration, servers: server)
            let accountID = try account.map { try DomainCommand.account($0, domain: domain, store: store).id }
            let verification = try await SendingDomain.verifyAndRecord(domain: domain, configuration: configuration, store: store,
                                                                       resolver: resolver, accountID: accountID)
            let checks = verification.records
            if json {
                try printJSON(verification)
            } else {
                for check in checks {
                    print("\(check.status.rawValue.uppercased())\t\(check.name)\t\(check.purpose)\(check.detail.isEmpty ? "" : " — " + check.detail)")
                    if check.status != .ok {
                        print("\texpected: \(check.expected)")
                        for found in check.found { print("\tfound:    \(found)") }
                    }
                }
                print(verification.verified ? "\(verification.domain): verified, the account may send from it"
                                            : "\(verification.domain): not verified (its active DKIM keys' records must be published)")
                if let returnPath = verification.returnPath {
                    print(returnPath.verified ? "return path \(returnPath.domain): in use (its MX points here)"
                                              : "return path \(returnPath.domain): not in use until its MX points here")
                }
            }
            if checks.contains(where: { $0.status != .ok }) { throw ExitCode(1) }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The bulk-sender compliance report: SPF, DKIM, DMARC alignment, reverse DNS, TLS, unsubscribe, complaint rate.")
        @OptionGroup var options: CommonOptions
        @Argument var domain: String
        @Option(name: .long, help: "DNS server host:port (repeatable); default: dns.servers or /etc/resolv.conf.") var server: [String] = []
        @Option(name: .long, help: "The account, when several have added the domain (default: the one that verified it).") var account: String?
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() async throws {
            let configuration = try options.load()
            let (index, _) = try QueueCommand.index(options)
            let store = try AccountCommand.store(options)
            let accountID = try account.map { try DomainCommand.account($0, domain: domain, store: store).id }
            let checks = try await Compliance.check(.init(domain: domain, configuration: configuration, store: store,
                                                          index: index, resolver: try Compliance.resolver(configuration, servers: server),
                                                          accountID: accountID))
            if json {
                try printJSON(checks)
            } else {
                for check in checks {
                    print("\(check.status.rawValue.uppercased())\t\(check.name)\t\(check.detail)")
                    if let fix = check.fix { print("\tfix: \(fix)") }
                }
            }
            if checks.contains(where: { $0.status == .fail }) { throw ExitCode(1) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sending domains with DKIM keys.")
        @OptionGroup var options: CommonOptions
        @Flag(name: .long, help: "Machine-readable output.") var json = false
        func run() throws {
            let store = try AccountCommand.store(options)
            let keys = try store.dkimKeys()
            if json { return try printJSON(keys) }
            let names = Dictionary(uniqueKeysWithValues: try store.accounts().map { ($0.id, $0.name) })
            for key in keys {
                print("\(key.domain)\t\(key.selector)\t\(key.algorithm)\t\(key.active ? "active" : "inactive")\t\(names[key.accountID] ?? "?")")
            }
        }
    }
}
