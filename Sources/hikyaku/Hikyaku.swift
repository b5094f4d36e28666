import ArgumentParser
import DNS
import Relay
import SMTPCore
import Foundation
import NIOCore
import NIOPosix
import HikyakuServer
import Logging
import Spool
import Store

@main
struct Hikyaku: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hikyaku",
        abstract: "A self-hosted mail relay: SMTP intake, durable spool, delivery, logs.",
        version: HikyakuVersion.string,
        subcommands: [Serve.self, AccountCommand.self, DomainCommand.self, APIKeyCommand.self, SuppressionCommand.self, UsageCommand.self, QueueCommand.self,
                      LogCommand.self, ReportCommand.self, DNSCommand.self, Classify.self, ShapingCommand.self, WebhookCommand.self,
                      UserCommand.self, CredentialCommand.self, ClusterCommand.self])
}

/// Options every command shares: where the configuration and data live.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "JSON configuration file (see docs/configuration.md).")
    var config: String?

    @Option(name: .long, help: "Data directory (overrides dataDirectory and HIKYAKU_DATA_DIRECTORY).")
    var dataDir: String?

    func load() throws -> Configuration {
        var configuration = try Configuration.load(file: config, environment: ProcessInfo.processInfo.environment)
        if let dataDir { configuration.dataDirectory = dataDir }
        return configuration
    }

    func layout() throws -> DataLayout {
        // Whatever a command creates in the data directory is the service user's alone.
        DataLayout.restrictNewFiles()
        return DataLayout(root: try load().dataDirectory)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the relay.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let configuration = try options.load()
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "hikyaku")
        do {
            try await Server.run(configuration: configuration, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

// MARK: Accounts

struct AccountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account", abstract: "Manage accounts (tenants) and their SMTP credentials.",
        subcommands: [Create.self, List.self, Disable.self, Enable.self, AddDomain.self, SetPool.self, SetQuota.self,
                      SetSuppression.self])

    /// The configured store (`storage.url`): the commands act on what the running nodes see.
    static func store(_ options: CommonOptions) throws -> any HikyakuStore {
        let layout = try options.layout()
        try layout.create()
        return try ConfiguredStore.open(try options.load(), layout: layout)
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an account; prints its SMTP password once.")
        @OptionGroup var options: CommonOptions
        @Argument(help: "Account name (letters, digits, . _ -).") var name: String
        @Option(name: .long, help: "A domain the account may send from (repeatable).") var domain: [String] = []
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let credentials = try AccountCommand.store(options).createAccount(name: name, domains: domain)
            if json {
                try printJSON(credentials)
            } else {
                print("account:  \(credentials.account.name)")
                print("domains:  \(credentials.account.domains.joined(separator: ", "))")
                print("username: \(credentials.account.smtpUsername)")
                print("password: \(credentials.smtpPassword)")
                print("The password is shown only now; only a salted hash is stored.")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var options: CommonOptions
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let accounts = try AccountCommand.store(options).accounts()
            if json { return try printJSON(accounts) }
            for account in accounts {
                let status = account.disabled ? "disabled" : "enabled"
                print("\(account.name)\t\(status)\t\(account.smtpUsername)\t\(account.domains.joined(separator: ","))")
            }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an account: its credentials stop working.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String
        func run() throws { try AccountCommand.store(options).setDisabled(true, name: name) }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled account.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String
        func run() throws { try AccountCommand.store(options).setDisabled(false, name: name) }
    }

    struct AddDomain: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-domain", abstract: "Let an account send from another domain.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String
        @Argument var domain: String
        func run() throws { try AccountCommand.store(options).addDomain(domain, toAccountNamed: name) }
    }

    struct SetPool: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-pool",
            abstract: "Send an account's mail from an egress pool (delivery.egressPools); without a pool: the default one.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String
        @Argument var pool: String?
        func run() throws { try AccountCommand.store(options).setEgressPool(pool, name: name) }
    }
}

// MARK: Queue

struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "Inspect and control the queue (safe while the server runs).",
        subcommands: [List.self, Show.self, Delete.self, Hold.self, Release.self, Deliver.self, Retry.self])

    static func index(_ options: CommonOptions) throws -> (QueueIndex, SpoolLayout) {
        let layout = try options.layout().spool
        guard FileManager.default.fileExists(atPath: layout.indexPath) else {
            throw ValidationError("no queue at \(layout.directory); has the server run with this data directory?")
        }
        let index = try QueueIndex(path: layout.indexPath)
        // Messages acknowledged in the last milliseconds may not be indexed yet.
        try Spool.catchUpIndex(layout: layout, index: index)
        return (index, layout)
    }

    static func messageID(_ text: String) throws -> MessageID {
        guard let id = MessageID(text) else { throw ValidationError("not a queue id: \(text)") }
        return id
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List queued messages: those with a recipient not yet delivered, bounced, expired or cancelled.")
        @OptionGroup var options: CommonOptions
        @Option(name: .long, help: "At most this many.") var limit = 1000
        @Flag(name: .long, help: "Include finished messages still on record (see log.retentionDays).") var all = false
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let (index, _) = try QueueCommand.index(options)
            let messages = try index.summaries(limit: limit, includeFinished: all)
            if json { return try printJSON(messages) }
            let formatter = ISO8601DateFormatter()
            for message in messages {
                let held = message.held ? "held" : "-"
                print("\(message.id)\t\(formatter.string(from: message.receivedAt))\t\(message.size)\t\(held)\t<\(message.sender)>\t\(message.pendingCount)/\(message.recipientCount)")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one message: envelope, size, recipients and their state.")
        @OptionGroup var options: CommonOptions
        @Argument var id: String
        @Flag(name: .long, help: "Print the stored message bytes instead.") var raw = false
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() throws {
            let (index, layout) = try QueueCommand.index(options)
            let messageID = try QueueCommand.messageID(id)
            if raw {
                guard let bytes = try Spool.contents(of: messageID, layout: layout, index: index) else {
                    throw ValidationError("no message \(id)")
                }
                FileHandle.standardOutput.write(Data(bytes))
                return
            }
            guard let details = try index.details(of: messageID) else { throw ValidationError("no message \(id)") }
            if json { return try printJSON(details) }
            print("id:        \(details.id)")
            print("received:  \(ISO8601DateFormatter().string(from: details.receivedAt))")
            print("from:      <\(details.sender)>")
            print("size:      \(details.size)")
            print("client:    \(details.clientAddress) (\(details.heloName))")
            print("held:      \(details.held)")
            for recipient in details.recipients { print("to:        <\(recipient.address)> \(recipient.state)") }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a message (or, with --all, every message) from the queue.")
        @OptionGroup var options: CommonOptions
        @Argument var id: String?
        @Flag(name: .long, help: "Delete every queued message.") var all = false

        func validate() throws {
            if all == (id != nil) { throw ValidationError("give either a queue id or --all") }
        }

        func run() throws {
            let index = try QueueCommand.index(options).0
            if all {
                print("deleted \(try index.cancelAll())")
                return
            }
            // The recipients are cancelled (and logged so); the bytes go with the next housekeeping.
            guard let id, try index.cancel(try QueueCommand.messageID(id)) != nil else { throw ValidationError("no message \(id ?? "")") }
        }
    }

    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hold a message: it is not delivered until released.")
        @OptionGroup var options: CommonOptions
        @Argument var id: String
        func run() throws {
            guard try QueueCommand.index(options).0.setHeld(try QueueCommand.messageID(id), true) else { throw ValidationError("no message \(id)") }
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release a held message.")
        @OptionGroup var options: CommonOptions
        @Argument var id: String
        func run() throws {
            guard try QueueCommand.index(options).0.setHeld(try QueueCommand.messageID(id), false) else { throw ValidationError("no message \(id)") }
        }
    }
}

extension QueueCommand {
    struct Deliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attempt delivery of one queued message now, to every recipient not yet delivered or bounced.")
        @OptionGroup var options: CommonOptions
        @Argument var id: String
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() async throws {
            let configuration = try options.load()
            let (index, layout) = try QueueCommand.index(options)
            let messageID = try QueueCommand.messageID(id)
            guard try index.details(of: messageID) != nil else { throw ValidationError("no message \(id)") }
            let courier = try DeliveryComposition.courier(
                configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "hikyaku"))
            // The same attempt the server's scheduler makes, outcomes recorded the same way.
            let scheduler = try DeliveryComposition.scheduler(
                configuration: configuration, index: index, layout: layout, courier: courier,
                accounts: AccountPools(store: try AccountCommand.store(options)), logger: Logger(label: "hikyaku"))
            let results = await scheduler.attempt(messageID).map {
                DeliveryOutput(recipient: $0.outcome.recipient, state: $0.state.rawValue, reply: $0.outcome.reply.description)
            }
            if json { return try printJSON(results) }
            for result in results { print("<\(result.recipient)>\t\(result.state)\t\(result.reply)") }
        }
    }
}

extension QueueCommand {
    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make every deferred recipient due now; the server retries it at once.")
        @OptionGroup var options: CommonOptions
        func run() throws {
            print("re-armed \(try QueueCommand.index(options).0.retryDeferredNow())")
        }
    }
}

struct DeliveryOutput: Encodable {
    var recipient: String
    var state: String
    var reply: String
}

// MARK: DNS

struct DNSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns", abstract: "Look names up with Hikyaku's own resolver (as delivery will).",
        subcommands: [Query.self])

    struct Query: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Query a name: MX, A, AAAA, TXT, CNAME, PTR or SOA.")
        @OptionGroup var options: CommonOptions
        @Argument(help: "The name (IDNs are converted to A-labels).") var name: String
        @Argument(help: "Record type.") var type = "MX"
        @Option(name: .long, help: "DNS server host:port (repeatable); default: dns.servers or /etc/resolv.conf.")
        var server: [String] = []
        @Flag(name: .long, help: "Machine-readable output.") var json = false

        func run() async throws {
            let configuration = try options.load()
            guard let recordType = RecordType(name: type) else { throw ValidationError("unknown record type \(type)") }
            let domain: DomainName
            do { domain = try DomainName(name) } catch { throw ValidationError("\(error)") }
            let servers = try DeliveryComposition.dnsServers(server.isEmpty ? configuration.dnsServers : server)
            let resolver = StubResolver(
                options: .init(servers: servers, timeout: .milliseconds(Int64(configuration.dnsTimeoutMilliseconds))),
                transport: NIODNSTransport(group: MultiThreadedEventLoopGroup.singleton))
            let result: Result<DNSAnswer, DNSError>
            do {
                result = .success(try await resolver.lookup(domain, recordType))
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success(let answer):
                let records = answer.records.map(DNSRecordOutput.init)
                if json {
                    try printJSON(DNSQueryOutput(canonicalName: answer.canonicalName.description, records: records))
                } else {
                    if records.isEmpty { print("\(answer.canonicalName): no \(recordType) records") }
                    for record in records { print("\(record.name)\t\(record.ttl)\t\(record.type)\t\(record.data)") }
                }
            case .failure(let error):
                if json {
                    try printJSON(["error": DNSErrorOutput(error)])
                } else {
                    FileHandle.standardError.write(Data("\(error)\n".utf8))
                }
                throw ExitCode(error.isTransient ? 75 : 1) // EX_TEMPFAIL for transient failures
            }
        }
    }
}

struct DNSQueryOutput: Encodable {
    var canonicalName: String
    var records: [DNSRecordOutput]
}

struct DNSRecordOutput: Encodable {
    var name: String
    var type: String
    var ttl: UInt32
    var data: String

    init(_ record: ResourceRecord) {
        name = record.name.description
        type = record.type.description
        ttl = record.ttl
        switch record.data {
        case .a(let bytes): data = bytes.map(String.init).joined(separator: ".")
        case .aaaa(let bytes):
            data = (try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 0).ipAddress) ?? "?"
        case .mx(let preference, let exchange): data = "\(preference) \(exchange)"
        case .txt(let strings): data = strings.map { String(decoding: $0, as: UTF8.self) }.joined()
        case .cname(let target), .ptr(let target): data = target.description
        case .soa(let primary, let minimum): data = "\(primary) minimum \(minimum)"
        case .other(let bytes): data = bytes.map { String(format: "%02x", $0) }.joined()
        }
    }
}

struct DNSErrorOutput: Encodable {
    var code: String
    var transient: Bool
    var message: String

    init(_ error: DNSError) {
        switch error {
        case .invalidName: code = "invalid_name"
        case .nameDoesNotExist: code = "nxdomain"
        case .serverFailure: code = "servfail"
        case .timeout: code = "timeout"
        case .malformedResponse: code = "malformed"
        }
        transient = error.isTransient
        message = error.description
    }
}

// MARK: Classification

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify a remote server's reply with the shipped rules and classification.rulesFile.")
    @OptionGroup var options: CommonOptions
    @Option(name: .long, help: "Reply code, e.g. 550.") var code: Int?
    @Option(name: .long, help: "Enhanced status code, e.g. 5.1.1.") var enhanced: String?
    @Option(name: .long, help: "Reply text.") var text: String = ""
    @Option(name: .long, help: "The MX host that replied, e.g. mfsmax.docomo.ne.jp.") var mx: String?
    @Option(name: .long, help: "The recipient's domain, e.g. docomo.ne.jp.") var domain: String?
    @Option(name: .long, help: "Same as --mx (kept for scripts written before --mx and --domain).") var host: String?

    func validate() throws {
        if corpus != nil, code != nil || explain || mx != nil || domain != nil || host != nil || command != nil || enhanced != nil || !text.isEmpty {
            throw ValidationError("--corpus classifies the corpus's replies: give no reply of your own with it")
        }
        if misses, corpus == nil { throw ValidationError("--misses goes with --corpus") }
        if mx != nil, host != nil { throw ValidationError("--host is the same as --mx: give one") }
    }
    @Option(name: .long, help: "The command replied to: CONNECT (the greeting), EHLO, MAIL, RCPT or DATA; none for a report that names none.") var command: String?
    @Flag(name: .long, help: "Say which rule matched, and why each rule before it did not.") var explain = false
    @Option(name: .long, help: "Instead: classify each reply of a labelled corpus (JSON lines: text, code, enhanced, command, mx, domain, category) and print the score and the time per reply.")
    var corpus: String?
    @Flag(name: .long, help: "With --corpus: list the replies classified otherwise than labelled.") var misses = false
    @Flag(name: .long, help: "Machine-readable output.") var json = false

    func run() throws {
        let configuration = try options.load()
        let classifier = try DeliveryComposition.classifier(configuration)
        if let corpus { return try ClassificationScore(classifier: classifier, path: corpus).report(misses: misses, json: json) }
        guard let code, (200...599).contains(code) else { throw ValidationError("--code must be a reply code 200-599 (or give --corpus)") }
        var enhancedCode: EnhancedStatusCode?
        if let enhanced {
            guard let parsed = EnhancedStatusCode(parsing: Substring(enhanced)) else { throw ValidationError("--enhanced must look like 5.1.1") }
            enhancedCode = parsed
        }
        let observation = FailureObservation(kind: .reply(code: code, enhanced: enhancedCode, text: text), remoteHost: mx ?? host,
                                             recipientDomain: domain, command: command?.uppercased())
        let (result, tried) = classifier.explain(observation)
        if json {
            struct Output: Encodable {
                var category: String
                var hard: Bool
                var rule: String
                var stage: String?
                var suppresses: Bool
                var tried: [[String: String]]?
            }
            try printJSON(Output(category: result.category.rawValue, hard: result.isHard, rule: result.rule, stage: result.stage?.rawValue,
                                 suppresses: code >= 500 && result.isEvidenceAgainstTheAddress,
                                 tried: explain ? tried.map { ["rule": $0.rule, "stage": $0.stage.rawValue, "mismatch": $0.mismatch?.rawValue ?? "matched"] } : nil))
            return
        }
        print("\(result.category.rawValue)\t\(result.isHard ? "hard" : "soft")\t\(result.rule)")
        guard explain else { return }
        for item in tried {
            print("  \(item.stage.rawValue)\t\(item.rule)\t\(item.mismatch.map { "no: " + Classify.reason($0) } ?? "matched")")
        }
        if let ranking = classifier.learnedRanking(observation) {
            print((result.stage == .learned ? "  learned reading: " : "  learned reading (it did not decide): ") + ranking.prefix(3).map { $0.category.rawValue + String(format: " %.2f", $0.probability) }.joined(separator: ", "))
        }
        if result.stage == nil { print("  no rule matched: \(result.category.rawValue) by the reply's class") }
        // Delivery bounces (and may suppress) only on a 5yz reply; a 4yz is retried whatever the rule says.
        let suppresses = code >= 500 && result.isEvidenceAgainstTheAddress
        print(suppresses ? "suppresses the recipient (with automatic suppression on)"
              : "does not suppress the recipient" + (AutomaticSuppression.hardCategories.contains(result.category.rawValue) && result.isHard
                ? " (a code alone, or a command that names no recipient, is not evidence enough)" : ""))
    }

    static func reason(_ mismatch: BounceClassifier.Mismatch) -> String {
        switch mismatch {
        case .kind: return "not a rule for replies"
        case .code: return "the reply code differs"
        case .enhanced: return "the enhanced code differs"
        case .command: return "a reply to another command"
        case .host: return "neither the MX host nor the domain is the rule's"
        case .text: return "the text does not match"
        case .addressAtCommand: return "a refusal of the greeting, EHLO or MAIL FROM names no recipient (a domain there is the sender's, and no recipient's filter spoke)"
        case .acceptedRecipient: return "not at RCPT (after DATA the recipient had been accepted; a report names no command): without an X.1.y code this is its filter"
        case .contentBeforeData: return "content is judged only after DATA; an earlier refusal is about the sender"
        case .senderCode: return "the enhanced code says the sender's address is at fault"
        case .authenticationCode: return "a reply about authentication (530, 534, 535, 538) is about the sender's credentials"
        case .unknownWords: return "none of the reply's words was seen in training"
        case .unsure: return "no reading is likely enough; the codes decide"
        case .verdictOnRecipient: return "its likeliest reading is about the recipient, which only a rule may say"
        }
    }
}

// MARK: Traffic shaping

struct ShapingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shaping",
        abstract: "Print the traffic-shaping rules in effect (presets and delivery.shapingFile) as JSON, or the site of a destination.")
    @OptionGroup var options: CommonOptions
    @Option(name: .long, help: "Show the site and limits for this recipient domain.") var domain: String?
    @Option(name: .long, help: "MX host names of --domain (repeatable).") var mx: [String] = []

    func run() throws {
        let shaping = try TrafficShaping.load(operatorFile: try options.load().deliveryShapingFile)
        if let domain {
            let site = shaping.site(domain: domain, mxHosts: mx)
            struct Output: Encodable { var site: String; var limits: ShapingLimits }
            return try printJSON(Output(site: site.name, limits: site.limits))
        }
        struct File: Encodable { var `default`: ShapingLimits; var sites: [ShapingRule] }
        try printJSON(File(default: shaping.defaults, sites: shaping.rules))
    }
}
