// swift-tools-version: 6.1
import PackageDescription

// `HIKYAKU_FUZZ=1 swift build …` builds the fuzz executables as libFuzzer
// targets (docs/testing.md); otherwise they replay corpus files.
let fuzzing = Context.environment["HIKYAKU_FUZZ"] != nil
let fuzzSettings: [SwiftSetting] = fuzzing ? [.define("FUZZING")] : []

let package = Package(
    name: "Hikyaku",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "hikyaku", targets: ["hikyaku"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // The HTTP request parts the API's connection guard sees (already in the graph through Hummingbird).
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        // The shared store of a cluster (docs/cluster.md); SQLite through GRDB stays the embedded default.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // Default traits off: swift-configuration support is not used.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // SMTP grammar as values: commands, replies, paths, DATA reading. Pure; no I/O.
        .target(
            name: "SMTPCore",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // Stub resolver: MX, A, AAAA, TXT over UDP/TCP with a TTL cache.
        .target(
            name: "DNS",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // RFC 5322 header sections and address lists (one parser for every reader),
        // and building MIME messages from structured input (the APIs).
        .target(name: "MIME"),
        // DKIM signing (RFC 6376, RFC 8463).
        .target(
            name: "DKIM",
            dependencies: [
                "MIME",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        // zlib, to compress the archive of finished messages (Debian's zlib1g-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // Durable message bytes (append-only segments), the queue index, and the archive of finished messages.
        .target(
            name: "Spool",
            dependencies: [
                "CZlib",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Tenants and everything they keep, by capability, on SQLite (embedded) or PostgreSQL (shared).
        .target(
            name: "Store",
            dependencies: [
                "Spool",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        // The pipeline, folders in flow order: Inbound/ (SMTP sessions, AUTH, relay policy, limits),
        // Intake/ (the one way into the spool), Scheduling/, Delivery/, Events/, Webhooks/ (events out).
        .target(
            name: "Relay",
            dependencies: [
                "SMTPCore", "Spool", "Store", "DNS", "DKIM", "MIME",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            // The shipped classification rules (docs/classification.md).
            resources: [.copy("Resources")]
        ),
        // HTTP: the admin port (metrics, health); the API routes come here too.
        .target(
            name: "API",
            dependencies: [
                "Relay", "Spool", "Store", "MIME", "DKIM",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The OpenAPI document, and the console's page templates, language catalogues and static files.
            resources: [.copy("Resources")]
        ),
        // Composition root: configuration, certificates, wiring, lifecycle.
        .target(
            name: "HikyakuServer",
            dependencies: [
                "Relay", "Spool", "Store", "SMTPCore", "DNS", "API", "MIME", "DKIM",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "hikyaku",
            dependencies: [
                "HikyakuServer", "Store", "Spool", "DNS", "Relay", "SMTPCore", "DKIM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // libFuzzer entry points, one executable per parser (docs/testing.md).
        .target(name: "FuzzTargets", dependencies: ["SMTPCore", "DNS", "MIME", "DKIM", "Relay", "API", "Spool",
                                                   .product(name: "Crypto", package: "swift-crypto"),
                                                   .product(name: "NIOCore", package: "swift-nio")], path: "Fuzz/FuzzTargets",
                swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-dns-message", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-dns-message",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-smtp-command", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-smtp-command",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-smtp-reply", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-smtp-reply",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-smtp-data", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-smtp-data",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-proxy-header", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-proxy-header",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-header", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-header",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-feedback", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-feedback",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-mime", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-mime",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-dkim", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-dkim",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-api-json", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-api-json",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-sigv4", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-sigv4",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-mustache", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-mustache",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-csv", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-csv",
                          swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-tracking", dependencies: ["FuzzTargets"], path: "Fuzz/fuzz-tracking",
                          swiftSettings: fuzzSettings),

        .testTarget(name: "SMTPCoreTests", dependencies: ["SMTPCore", "FuzzTargets"]),
        .testTarget(name: "SpoolTests", dependencies: ["Spool", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "DNSTests", dependencies: ["DNS", "FuzzTargets", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Spool"]),
        .testTarget(name: "MIMETests", dependencies: ["MIME"]),
        .testTarget(name: "DKIMTests", dependencies: ["DKIM"]),
        .testTarget(name: "APITests", dependencies: ["API", "Store", "Spool", "MIME", "Relay", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "RelayTests",
            dependencies: [
                "Relay", "SMTPCore", "Spool", "Store", "DNS",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "HikyakuServerTests", dependencies: [
            "HikyakuServer", "Relay",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
