import Foundation
import Synchronization
import Testing
@testable import Store
import Spool

struct PostgresLocationTests {
    @Test func aURLNamesTheServerTheUserAndTheDatabase() throws {
        let tcp = try PostgresLocation(url: "postgres://mail:s3cret@db.example:6543/hikyaku?sslmode=verify-full&pool_size=20")
        #expect(tcp.endpoint == .tcp(host: "db.example", port: 6543))
        #expect(tcp.username == "mail" && tcp.password == "s3cret" && tcp.database == "hikyaku")
        #expect(tcp.tls == .verifyFull && tcp.poolSize == 20)
        #expect(!tcp.description.contains("s3cret"), "the password stays out of logs")

        let defaults = try PostgresLocation(url: "postgresql://db.example/mail")
        #expect(defaults.endpoint == .tcp(host: "db.example", port: 5432) && defaults.username == "hikyaku")
        #expect(defaults.tls == .prefer && defaults.poolSize == 8 && defaults.statementTimeoutMilliseconds == 30_000)

        let socket = try PostgresLocation(url: "postgres://hikyaku@/mail?host=/run/pg&port=5499")
        #expect(socket.endpoint == .socket(path: "/run/pg/.s.PGSQL.5499") && socket.tls == .disable && socket.database == "mail")
        #expect(try PostgresLocation(url: "postgres:///mail").endpoint == .socket(path: "/var/run/postgresql/.s.PGSQL.5432"))
    }

    @Test func aWrongURLIsRefusedWithItsReason() {
        #expect(throws: PostgresLocation.ParseError.notPostgres("mysql")) { try PostgresLocation(url: "mysql://db/mail") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?sslmode=maybe") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?pool_size=0") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?pool_size=99999999999999999999") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?colour=blue") }
        #expect(throws: PostgresLocation.ParseError.self) { try PostgresLocation(url: "postgres://db/mail?host") }
    }
}

/// What only the shared engine has to show: several nodes on one database.
@Suite(.enabled(if: StoreEngine.available.contains(.postgres)))
struct PostgresStoreTests {
    @Test func nodesStartingTogetherMigrateOnce() throws {
        let location = try PostgresTestDatabase.make()
        let secrets = StoreEngine.secretsKeyPath()
        // The nodes' shared key, copied to each before it starts (here: made once, before they start).
        _ = try SecretSealer(keyPath: secrets)
        // Four threads of their own (not the concurrency pool, which may have fewer), started together.
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do { _ = try PostgresStore(location: location, secretsKeyPath: secrets, hashParameters: StoreEngine.hashing) }
            catch { failures.withLock { $0.append(String(describing: error)) } }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let store = try PostgresStore(location: location, secretsKeyPath: secrets, hashParameters: StoreEngine.hashing)
        let applied = try store.pool.query("SELECT name FROM hikyaku_migration ORDER BY name").records.map { try $0.decode("name", as: String.self) }
        #expect(applied == PostgresSchema.migrations.map(\.name))
        #expect(try PostgresSchema.migrate(store.pool).isEmpty, "a node started later finds nothing to do")
    }

    @Test func whatOneNodeWritesTheOtherReads() throws {
        let location = try PostgresTestDatabase.make()
        // The nodes of a cluster share one secrets key, so that a key made on one verifies on the other.
        let secrets = StoreEngine.secretsKeyPath()
        let nodeA = try PostgresStore(location: location, secretsKeyPath: secrets, hashParameters: StoreEngine.hashing)
        let nodeB = try PostgresStore(location: location, secretsKeyPath: secrets, hashParameters: StoreEngine.hashing)
        let created = try nodeA.createAccount(name: "acme", domains: ["acme.example"])
        #expect(try nodeB.authenticate(username: created.account.smtpUsername, password: created.smtpPassword)?.id == created.account.id)
        try nodeA.suppress(Suppression(address: "gone@example.com", reason: .bounce), accountID: created.account.id)
        #expect(try nodeB.suppressionsByAccount()[created.account.id]?["gone@example.com"]?.reason == .bounce)
        let key = try nodeA.createAPIKey(accountNamed: "acme", scope: .send)
        #expect(try nodeB.verifyAPIToken(key.token)?.keyID == key.key.keyID)
        #expect(try nodeB.apiKeySecret(accessKeyID: key.key.keyID)?.1 == key.secret)
        try nodeB.revokeAPIKey(key.key.keyID)
        #expect(try nodeA.verifyAPIToken(key.token) == nil, "a key revoked on one node is refused by the other")
        try nodeB.setDisabled(true, name: "acme")
        #expect(try nodeA.authenticate(username: created.account.smtpUsername, password: created.smtpPassword) == nil)
    }

    @Test func theSchemaKeepsAddressesLowerCased() throws {
        let store = try PostgresStore(location: PostgresTestDatabase.make(), secretsKeyPath: StoreEngine.secretsKeyPath(),
                                      hashParameters: StoreEngine.hashing)
        let id = try store.createAccount(name: "acme", domains: []).account.id
        #expect(throws: PostgresStoreError.self) {
            _ = try store.pool.query("""
                INSERT INTO suppression (account_id, address, reason, scope, created_at) VALUES (\(id), 'Mixed@Example.com', 'manual', 'all', now())
                """)
        }
    }

    @Test func aServerThatIsNotThereIsAnErrorNotAHang() throws {
        var location = try PostgresLocation(url: "postgres://hikyaku@127.0.0.1:1/none?connect_timeout=2")
        location.tls = .disable
        #expect(throws: (any Error).self) {
            try PostgresStore(location: location, secretsKeyPath: StoreEngine.secretsKeyPath(), hashParameters: StoreEngine.hashing)
        }
    }

    /// A peer that takes the connection and never says a word (a hung server, a black hole behind a
    /// balancer): opening gives up after the connect timeout, it does not wait for ever.
    @Test func aServerThatNeverAnswersIsAnErrorNotAHang() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        #expect(bound && listen(listener, 8) == 0)
        var location = try PostgresLocation(url: "postgres://hikyaku@127.0.0.1:\(UInt16(bigEndian: address.sin_port))/none?connect_timeout=1")
        location.tls = .disable
        let started = ContinuousClock.now
        #expect(throws: (any Error).self) {
            try PostgresStore(location: location, secretsKeyPath: StoreEngine.secretsKeyPath(), hashParameters: StoreEngine.hashing)
        }
        #expect(ContinuousClock.now - started < .seconds(60), "gave up on its own")
    }

    /// A time from a request can be absurd (`start_time=1e300`); binding it must be a bounded value, never a
    /// trap in the encoder, which would stop every tenant's mail.
    @Test func absurdTimesAreBoundNotATrap() throws {
        let store = try PostgresStore(location: PostgresTestDatabase.make(), secretsKeyPath: StoreEngine.secretsKeyPath(),
                                      hashParameters: StoreEngine.hashing)
        let id = try store.createAccount(name: "acme", domains: []).account.id
        for seconds in [Double.infinity, -Double.infinity, .nan, 1e300, -1e300] {
            let time = Date(timeIntervalSince1970: seconds)
            _ = try store.suppressions(accountID: id, since: time, until: time)
            try store.suppress(Suppression(address: "a@example.com", reason: .manual, createdAt: time), accountID: id)
            try store.markWebhookFailing(id: "wh_none", at: time)
        }
        #expect(try store.suppression(accountID: id, address: "a@example.com") != nil)
        #expect(StoredTime(Date(timeIntervalSince1970: 1e300)).date.timeIntervalSince1970 < 253_402_300_800)
        let now = Date()
        #expect(abs(StoredTime(now).date.timeIntervalSince(now)) < 0.000_001)
    }
}

extension PostgresStoreTests {
    /// Two nodes' campaign runners: a recovering claim takes back only this node's earlier claims. Another
    /// node's batch may be with its intake right now, and only that node can tell which messages it holds.
    @Test func aRecoveringClaimTakesBackOnlyThisNodesRows() throws {
        let location = try PostgresTestDatabase.make()
        let secrets = StoreEngine.secretsKeyPath()
        let nodeA = try PostgresStore(location: location, secretsKeyPath: secrets, nodeName: "node-a", hashParameters: StoreEngine.hashing)
        let nodeB = try PostgresStore(location: location, secretsKeyPath: secrets, nodeName: "node-b", hashParameters: StoreEngine.hashing)
        let acme = try nodeA.createAccount(name: "acme", domains: []).account.id
        for index in 0..<30 { try nodeA.upsertContact(address: "c\(index)@x.jp", fields: [:], accountID: acme) }
        var campaign = try nodeA.createCampaign(name: "c", definition: Campaign.Definition(from: "news@acme.example",
                                                content: Campaign.Content(subject: "s", text: "x")), accountID: acme, schedule: true)
        _ = try nodeA.startCampaignRun(campaign, occurrence: "once", audience: nil, now: Date())
        campaign = try #require(try nodeA.campaign(id: campaign.id, accountID: acme))
        let onA = try #require(try nodeA.claimCampaignBatch(campaign, limit: 10, recovering: true, claim: CampaignClaim(seed: 1, milliseconds: 1)))
        // Node B starts a turn (recovering): A's rows, still with A's intake, are not B's to take.
        let onB = try #require(try nodeB.claimCampaignBatch(campaign, limit: 10, recovering: true, claim: CampaignClaim(seed: 2, milliseconds: 2)))
        #expect(Set(onA.map(\.contactID)).isDisjoint(with: onB.map(\.contactID)) && onB.allSatisfy { !$0.claimedEarlier })
        // Node A's next turn recovers its own, and B's are left to B.
        let again = try #require(try nodeA.claimCampaignBatch(campaign, limit: 30, recovering: true, claim: CampaignClaim(seed: 3, milliseconds: 3)))
        #expect(Array(again.prefix(10)).map(\.contactID) == onA.map(\.contactID) && again.prefix(10).allSatisfy(\.claimedEarlier))
        #expect(Set(again.map(\.contactID)).isDisjoint(with: onB.map(\.contactID)))
    }

    /// A node started with another secrets.key than the cluster's refuses to start, saying what to do,
    /// rather than seal keys and secrets the other nodes cannot open.
    @Test func aNodeWithAnotherSecretsKeyRefusesToStart() throws {
        let location = try PostgresTestDatabase.make()
        _ = try PostgresStore(location: location, secretsKeyPath: StoreEngine.secretsKeyPath(), nodeName: "node-a",
                              hashParameters: StoreEngine.hashing)
        #expect(throws: PostgresStoreError.self) {
            try PostgresStore(location: location, secretsKeyPath: StoreEngine.secretsKeyPath(), nodeName: "node-b",
                              hashParameters: StoreEngine.hashing)
        }
    }
}

/// The cluster's delivery log: each node copies its events in, every node searches all of them.
@Suite(.enabled(if: StoreEngine.available.contains(.postgres)))
struct SharedDeliveryLogTests {
    static func id(_ n: Int) -> MessageID {
        MessageID(String(repeating: "0", count: 20 - String(n).count) + String(n)) ?? MessageID("00000000000000000000")!
    }

    static func shared(_ n: Int64, node: String, account: Int64?, type: DeliveryEvent.Kind = .delivered, recipient: String = "a@x.example",
                       at: Date = Date(), tags: [String] = [], subject: String? = nil) -> SharedEvent {
        var event = DeliveryEvent(at: at, messageID: id(Int(n)), recipient: recipient, type: type, attempt: 1, replyCode: 250,
                                  replyText: "ok \u{0}queued", site: "gmail from 192.0.2.1", durationMilliseconds: 12)
        event.id = n
        return SharedEvent(event: event, accountID: account, sender: "News@Acme.example", subject: subject, tags: tags)
    }

    @Test func everyNodesEventsAreFoundFromEitherOnceEach() throws {
        let (nodeA, nodeB) = try PostgresTestDatabase.twoNodes()
        #expect(try nodeA.sharedLogPosition() == nil)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        try nodeA.share([Self.shared(1, node: "a", account: 7, at: start, tags: ["spring"], subject: "Spring SALE"),
                         Self.shared(2, node: "a", account: 7, type: .bounced, recipient: "B@y.example", at: start + 1)], through: 2)
        // Node B's own numbering starts at 1 too: a node's log ids are its own.
        try nodeB.share([Self.shared(1, node: "b", account: 7, at: start + 2), Self.shared(2, node: "b", account: 8, at: start + 3)],
                        through: 5)
        #expect(try nodeA.sharedLogPosition() == 2 && nodeB.sharedLogPosition() == 5)
        // A batch sent again (its commit unheard of) is not counted twice, and a position never goes back.
        try nodeA.share([Self.shared(2, node: "a", account: 7, type: .bounced, recipient: "B@y.example", at: start + 1)], through: 1)
        #expect(try nodeA.sharedLogPosition() == 2)

        for reader in [nodeA, nodeB] as [any SharedDeliveryLog] {
            let all = try reader.events(DeliveryLogFilter(accountID: 7))
            #expect(all.map(\.at) == [start + 2, start + 1, start], "newest first, each once")
            #expect(all.first?.replyText == "ok queued", "a NUL is dropped, not an error")
            #expect(all.first?.site == "gmail from 192.0.2.1" && all.first?.durationMilliseconds == 12 && all.first?.attempt == 1)
            #expect(try reader.events(DeliveryLogFilter(accountID: 7, recipient: "b@Y.example")).map(\.type) == [.bounced])
            #expect(try reader.events(DeliveryLogFilter(accountID: 7, tag: "spring")).count == 1)
            #expect(try reader.events(DeliveryLogFilter(accountID: 7, subject: "sale")).count == 1)
            #expect(try reader.events(DeliveryLogFilter(accountID: 7, sender: "news@acme.EXAMPLE")).count == 3)
            #expect(try reader.events(DeliveryLogFilter(accountID: 7, provider: "gmail")).count == 3)
            #expect(try reader.events(DeliveryLogFilter(accountID: 7, provider: "gmai")).isEmpty)
            #expect(try reader.events(DeliveryLogFilter(accountID: 7, types: [.bounced, .expired])).count == 1)
            #expect(try reader.events(DeliveryLogFilter(accountID: 7, messageID: Self.id(1))).count == 2)
            #expect(try reader.events(DeliveryLogFilter(accountID: 7, since: start + 1, until: start + 2)).count == 1)
            #expect(try reader.events(DeliveryLogFilter(accountID: 8)).count == 1, "accounts are apart")
            // Pages of two, by cursor, cover the account's events once.
            var filter = DeliveryLogFilter(accountID: 7, limit: 2)
            let first = try reader.eventPage(filter)
            #expect(first.events.count == 2)
            filter.before = try #require(first.next)
            let second = try reader.eventPage(filter)
            #expect(second.events.map(\.at) == [start] && second.next == nil)
        }
    }

    @Test func statisticsCountEveryNodesEvents() throws {
        let (nodeA, nodeB) = try PostgresTestDatabase.twoNodes()
        let hour = Date(timeIntervalSince1970: 1_800_000_000)
        func event(_ n: Int64, _ type: DeliveryEvent.Kind, _ recipient: String, at: Date, category: String? = nil, hard: Bool? = nil,
                   site: String? = nil, reply: String? = nil, machine: Bool? = nil, message: Int? = nil, tags: [String] = []) -> SharedEvent {
            var event = DeliveryEvent(at: at, messageID: Self.id(message ?? Int(n)), recipient: recipient, type: type, replyText: reply,
                                      category: category, hard: hard, site: site, machine: machine)
            event.id = n
            return SharedEvent(event: event, accountID: 7, sender: nil, subject: nil, tags: tags)
        }
        try nodeA.share([
            event(1, .delivered, "a@x.example", at: hour + 10, site: "gmail from 192.0.2.1", tags: ["spring"]),
            event(2, .bounced, "b1@x.example", at: hour + 20, category: "invalid_recipient", hard: true, site: "gmail",
                  reply: "550 5.1.1 <b1@x.example>: no such user"),
            event(3, .opened, "a@x.example", at: hour + 30, machine: false, message: 1),
        ], through: 3)
        try nodeB.share([
            event(1, .delivered, "c@x.example", at: hour + 3610, site: "docomo", message: 11, tags: ["spring", "sale"]),
            event(2, .bounced, "b2@x.example", at: hour + 3620, category: "invalid_recipient", hard: true, site: "docomo",
                  reply: "550 5.1.1 <b2@x.example>: no such user", message: 12),
            event(3, .bounced, "b3@x.example", at: hour + 3630, category: "mailbox_full", hard: false, site: "docomo",
                  reply: "452 4.2.2 mailbox full", message: 13),
            event(4, .opened, "a@x.example", at: hour + 3640, machine: false, message: 1),
            event(5, .clicked, "a@x.example", at: hour + 3650, machine: true, message: 1),
        ], through: 5)
        let reader: any SharedDeliveryLog = nodeB
        let hourly = try reader.stats(accountID: 7, since: hour, until: hour + 7200, interval: 3600, groupBy: .none)
        #expect(hourly == [DeliveryStats(period: hour, group: nil, counts: ["delivered": 1, "bounced": 1, "opened": 1]),
                           DeliveryStats(period: hour + 3600, group: nil, counts: ["delivered": 1, "bounced": 2, "opened": 1, "clicked": 1])])
        let byTag = try reader.stats(accountID: 7, since: hour, until: hour + 7200, interval: 7200, groupBy: .tag)
        #expect(byTag == [DeliveryStats(period: hour, group: "sale", counts: ["delivered": 1]),
                          DeliveryStats(period: hour, group: "spring", counts: ["delivered": 2])])
        let analysis = try reader.bounceAnalysis(accountID: 7, since: hour, until: hour + 7200)
        #expect(analysis.total == 3)
        #expect(analysis.byCategory == [.init(name: "invalid_recipient", bounces: 2, hard: 2), .init(name: "mailbox_full", bounces: 1, hard: 0)])
        #expect(analysis.byProvider == [.init(name: "docomo", bounces: 2, hard: 1), .init(name: "gmail", bounces: 1, hard: 1)])
        #expect(analysis.topReplies.first == .init(category: "invalid_recipient", text: "550 5.1.1 <<recipient>>: no such user", count: 2),
                "the address taken out, the two replies are one")
        #expect(analysis.recipients.map(\.recipient) == ["b3@x.example", "b2@x.example", "b1@x.example"], "newest first")
        let engagement = try reader.engagementCounts(accountID: 7, since: hour, until: hour + 7200)
        #expect(engagement["opened"] == ["human_total": 2, "human_unique": 1])
        #expect(engagement["clicked"] == ["machine_total": 1, "machine_unique": 1])
        #expect(try reader.engagementCounts(accountID: 8, since: hour, until: hour + 7200).isEmpty, "accounts are apart")
    }

    @Test func retentionDropsWholeDaysAndCopyingGoesOn() throws {
        let location = try PostgresTestDatabase.make()
        let node = try PostgresStore(location: location, secretsKeyPath: StoreEngine.secretsKeyPath(), nodeName: "a",
                                     hashParameters: StoreEngine.hashing)
        try node.share([Self.shared(1, node: "a", account: 1)], through: 1)
        #expect(try node.dropSharedLog(before: Date()) == 0, "today's rows stay")
        #expect(try node.events(DeliveryLogFilter(accountID: 1)).count == 1)
        // Three days on, today's and tomorrow's partitions are past the cutoff: dropped whole.
        #expect(try node.dropSharedLog(before: Date().addingTimeInterval(3 * 86400)) == 2)
        #expect(try node.events(DeliveryLogFilter(accountID: 1)).isEmpty)
        // The next copy makes the day's partition again, though this node thought it made.
        try node.share([Self.shared(2, node: "a", account: 1)], through: 2)
        #expect(try node.events(DeliveryLogFilter(accountID: 1)).count == 1)
    }
}

/// A site's connection slots counted across the nodes.
@Suite(.enabled(if: StoreEngine.available.contains(.postgres)))
struct SiteSlotLeaseTests {
    @Test func aSiteLimitedToTwoHasTwoSlotsAcrossTheNodes() throws {
        let (nodeA, nodeB) = try PostgresTestDatabase.twoNodes()
        #expect(try nodeA.takeSiteSlot(site: "docomo", limit: 2, lifetime: 30) == 0)
        #expect(try nodeB.takeSiteSlot(site: "docomo", limit: 2, lifetime: 30) == 1)
        #expect(try nodeA.takeSiteSlot(site: "docomo", limit: 2, lifetime: 30) == nil, "both slots are held")
        #expect(try nodeB.takeSiteSlot(site: "au", limit: 2, lifetime: 30) == 0, "sites are apart")
        #expect(try nodeA.takeSiteSlot(site: "docomo", limit: 0, lifetime: 30) == nil)
        // Only the holder gives a slot back.
        try nodeA.releaseSiteSlot(site: "docomo", slot: 1)
        #expect(try nodeA.takeSiteSlot(site: "docomo", limit: 2, lifetime: 30) == nil)
        try nodeB.releaseSiteSlot(site: "docomo", slot: 1)
        #expect(try nodeA.takeSiteSlot(site: "docomo", limit: 2, lifetime: 30) == 1)
        // A node at start gives back what its previous run held.
        try nodeA.releaseAllSiteSlots()
        #expect(try nodeB.takeSiteSlot(site: "docomo", limit: 2, lifetime: 30) == 0)
    }

    @Test func aSlotNotRenewedLapsesAndARenewedOneStays() throws {
        let (nodeA, nodeB) = try PostgresTestDatabase.twoNodes()
        #expect(try nodeA.takeSiteSlot(site: "gmail", limit: 1, lifetime: 1) == 0)
        try nodeA.renewSiteSlots([SiteSlot(site: "gmail", slot: 0)], lifetime: 30)
        Thread.sleep(forTimeInterval: 1.3)
        #expect(try nodeB.takeSiteSlot(site: "gmail", limit: 1, lifetime: 1) == nil, "renewed: still A's")
        try nodeA.renewSiteSlots([SiteSlot(site: "gmail", slot: 0)], lifetime: 1)
        Thread.sleep(forTimeInterval: 1.3)
        // A's node went silent: its slot lapsed, and B takes it.
        #expect(try nodeB.takeSiteSlot(site: "gmail", limit: 1, lifetime: 30) == 0)
        #expect(try nodeA.takeSiteSlot(site: "gmail", limit: 1, lifetime: 30) == nil)
        // A row the node no longer counts as held (its release failed) is given back by its next renewal.
        #expect(try nodeA.takeSiteSlot(site: "au", limit: 1, lifetime: 30) == 0)
        #expect(try nodeA.takeSiteSlot(site: "docomo", limit: 1, lifetime: 30) == 0)
        try nodeA.renewSiteSlots([SiteSlot(site: "docomo", slot: 0)], lifetime: 30)
        #expect(try nodeB.takeSiteSlot(site: "au", limit: 1, lifetime: 30) == 0)
        #expect(try nodeB.takeSiteSlot(site: "docomo", limit: 1, lifetime: 30) == nil)
    }
}

/// Webhook positions: each node's own, in its own log's numbering.
@Suite(.enabled(if: StoreEngine.available.contains(.postgres)))
struct WebhookPositionTests {
    @Test func eachNodeKeepsItsOwnPositionForAnEndpoint() throws {
        let (nodeA, nodeB) = try PostgresTestDatabase.twoNodes()
        let account = try nodeA.createAccount(name: "acme", domains: []).account.id
        let created = try nodeA.createWebhook(accountID: account, name: nil, url: "https://hooks.example/in", format: .native,
                                              eventTypes: [], cursor: 5)
        let id = created.webhook.id
        #expect(try nodeA.webhookPosition(id: id) == 5)
        #expect(try nodeB.webhookPosition(id: id) == nil, "node B starts at the endpoint's creation in its own log")
        try nodeB.advanceWebhook(id: id, to: 3, succeeded: true)
        try nodeA.advanceWebhook(id: id, to: 9, succeeded: true)
        try nodeB.advanceWebhook(id: id, to: 2, succeeded: true)
        #expect(try nodeA.webhookPosition(id: id) == 9 && nodeB.webhookPosition(id: id) == 3, "forward only, each its own")
        #expect(try nodeA.webhook(id: id, accountID: nil)?.cursor == 9 && nodeB.webhook(id: id, accountID: nil)?.cursor == 3)
        // Gone with the endpoint.
        try nodeA.deleteWebhook(id: id, accountID: account)
        #expect(try nodeB.webhookPosition(id: id) == nil)
    }
}
