import Foundation
import Logging
import NIOPosix
import Testing
@testable import HikyakuServer
@testable import Relay

struct ConfigurationTests {
    @Test func defaultsNeedNoFile() throws {
        let configuration = try Configuration.load(file: nil, environment: [:])
        #expect(configuration.smtpListen == ["127.0.0.1:2525"])
        #expect(configuration.smtpTLSListen == ["127.0.0.1:2465"])
        #expect(configuration.dataDirectory == "./hikyaku-data")
        #expect(configuration.trustedNetworks.isEmpty)
    }

    @Test func fileThenEnvironment() throws {
        let path = NSTemporaryDirectory() + UUID().uuidString + ".json"
        try Data("""
            {"hostname": "mx.example", "eventLoopThreads": 0, "smtp": {"listen": ["127.0.0.1:0"], "maxMessageSize": 2048, "maxErrors": 1, "trustedNetworks": ["10.0.0.0/8"]}}
            """.utf8).write(to: URL(fileURLWithPath: path))
        let configuration = try Configuration.load(file: path, environment: [
            "HIKYAKU_SMTP_MAX_MESSAGE_SIZE": "4096", "HIKYAKU_SMTP_TLS_LISTEN": "", "HIKYAKU_DATA_DIRECTORY": "/tmp/x"])
        #expect(configuration.hostname == "mx.example")
        #expect(configuration.smtpListen == ["127.0.0.1:0"])
        #expect(configuration.maxMessageSize == 4096)
        #expect(configuration.smtpTLSListen == [])
        #expect(configuration.trustedNetworks == ["10.0.0.0/8"])
        #expect(configuration.dataDirectory == "/tmp/x")
        #expect(configuration.eventLoopThreads == 0)
        #expect(configuration.maxErrors == 1)
    }

    @Test func mistakesAreReported() throws {
        let path = NSTemporaryDirectory() + UUID().uuidString + ".json"
        try Data(#"{"smtp": {"maxMesageSize": 1}}"#.utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ConfigurationError.self) { try Configuration.load(file: path, environment: [:]) }
        #expect(throws: ConfigurationError.self) { try Configuration.load(file: nil, environment: ["HIKYAKU_SMTP_MAX_RECIPIENTS": "zero"]) }
        try Data(#"{"smtp": {"maxErrors": true}}"#.utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ConfigurationError.self) { try Configuration.load(file: path, environment: [:]) }
        #expect(throws: ConfigurationError.self) { try ListenAddress(parsing: "nohost") }
        #expect(try ListenAddress(parsing: "[::1]:25") == ListenAddress(parsing: "[::1]:25"))
        #expect(try ListenAddress(parsing: "[::1]:25").host == "::1")
    }

    @Test func environmentNamesAreDerivedFromKeys() {
        let names = Configuration.keys.map(\.environmentName)
        #expect(names.contains("HIKYAKU_SMTP_MAX_CONNECTIONS_PER_CLIENT"))
        #expect(names.contains("HIKYAKU_DATA_DIRECTORY"))
        #expect(Set(names).count == names.count)
    }
}

@Suite struct ComplianceTests {
    @Test func reverseNames() {
        #expect(Compliance.reverseName("192.0.2.10") == "10.2.0.192.in-addr.arpa")
        #expect(Compliance.reverseName("2001:db8::1")
            == "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa")
        #expect(Compliance.reverseName("not an address") == nil)
    }
}

struct HardeningConfigurationTests {
    // An MX that resolves to an address this server takes mail on is a loop, whatever its name.
    @Test func localAddressesAreThePort25Listeners() throws {
        var configuration = Configuration()
        configuration.smtpListen = ["127.0.0.1:2525", "127.0.0.9:25"]
        configuration.smtpTLSListen = []
        #expect(DeliveryComposition.localAddresses(configuration) == ["127.0.0.9"])
        configuration.smtpListen = ["0.0.0.0:25"]
        #expect(DeliveryComposition.localAddresses(configuration).contains("127.0.0.1"), "a wildcard listener stands for every interface")
    }

    // Smarthost credentials go only to a server whose certificate verifies, unless the operator says otherwise.
    @Test func smarthostCredentialsImplyAVerifiedCertificate() throws {
        let secret = NSTemporaryDirectory() + UUID().uuidString
        try Data("s3cret\n".utf8).write(to: URL(fileURLWithPath: secret))
        var configuration = Configuration()
        configuration.deliverySmarthost = "smart.example:587"
        configuration.deliverySmarthostUsername = "relay"
        configuration.deliverySmarthostPasswordFile = secret
        configuration.dnsServers = ["127.0.0.1:53"]
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        func smarthostPolicy() throws -> TLSPolicy? {
            try DeliveryComposition.courier(configuration: configuration, group: group, logger: Logger(label: "test")).router.policy.smarthost?.tlsPolicy
        }
        #expect(try smarthostPolicy() == .requiredVerified)
        configuration.deliverySmarthostTLSPolicy = "required"
        #expect(try smarthostPolicy() == .required)
    }

    // A typo in a number of seconds cannot overflow a TimeAmount later.
    @Test func integersAreRangeChecked() {
        #expect(throws: ConfigurationError.self) {
            try Configuration.load(file: nil, environment: ["HIKYAKU_SMTP_COMMAND_TIMEOUT_SECONDS": "99999999999999"])
        }
        #expect(throws: ConfigurationError.self) {
            var configuration = Configuration()
            try configuration.apply(environment: ["HIKYAKU_SMTP_TLS_MINIMUM_VERSION": "1.2"])
            try Configuration.load(file: nil, environment: ["HIKYAKU_API_MAX_EXPANDED_SIZE": "-1"])
        }
    }
}
