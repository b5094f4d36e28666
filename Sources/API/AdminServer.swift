import Hummingbird
import Logging
import NIOCore
import Foundation
import Prometheus
import Spool
import Store

/// The admin HTTP port: Prometheus metrics, a health check and the nodes
/// serving from the store (`/cluster`), for the operator's monitoring. Bound to loopback by default; it has no
/// authentication, so it must not face the Internet.
public struct AdminServer: Sendable {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    let options: Options
    let registry: PrometheusCollectorRegistry
    let index: QueueIndex
    let healthy: @Sendable () -> Bool
    let nodes: any NodeRegistry
    /// A node is alive while its last heartbeat is at most three of these old.
    let heartbeatSeconds: Int
    let logger: Logger

    public init(options: Options, registry: PrometheusCollectorRegistry, index: QueueIndex,
                healthy: @escaping @Sendable () -> Bool, nodes: any NodeRegistry, heartbeatSeconds: Int, logger: Logger) {
        self.options = options
        self.registry = registry
        self.index = index
        self.healthy = healthy
        self.nodes = nodes
        self.heartbeatSeconds = heartbeatSeconds
        self.logger = logger
    }

    /// One node as `/cluster` lists it.
    struct ListedNode: Encodable {
        var name: String
        var version: String
        var startedAt: Date
        var heartbeatAt: Date
        var alive: Bool
        var pendingRecipients: Int
        var pendingMessages: Int
    }

    /// The application, ready to run in a ServiceGroup; `onListening` gets the bound address.
    public func application(onListening: @escaping @Sendable (SocketAddress?) -> Void) -> some ApplicationProtocol {
        let router = Router()
        let queue = QueueGauges(registry: registry)
        router.get("/metrics") { _, _ -> Response in
            // Queue sizes are read when scraped, not kept up to date per message.
            if let counts = try? index.pendingCounts() { queue.update(counts) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/cluster") { [nodes, heartbeatSeconds] _, _ -> Response in
            let now = Date()
            let listed = try nodes.nodes().map { node in
                ListedNode(name: node.name, version: node.version, startedAt: node.startedAt, heartbeatAt: node.heartbeatAt,
                           alive: node.isAlive(now: now, heartbeatSeconds: heartbeatSeconds),
                           pendingRecipients: node.pendingRecipients, pendingMessages: node.pendingMessages)
            }
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys]
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(["nodes": listed]))))
        }
        router.get("/healthz") { _, _ -> Response in
            let ok = healthy()
            return Response(status: ok ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain"],
                            body: .init(byteBuffer: ByteBuffer(string: ok ? "ok\n" : "spool unavailable\n")))
        }
        return Application(router: router, configuration: .init(address: .hostname(options.host, port: options.port),
                                                                 serverName: "hikyaku"),
                           onServerRunning: { channel in onListening(channel.localAddress) }, logger: logger)
    }
}

/// Gauges for what is waiting in the queue.
struct QueueGauges: Sendable {
    let queued: Gauge
    let deferred: Gauge
    let held: Gauge
    let messages: Gauge

    init(registry: PrometheusCollectorRegistry) {
        let recipients = MetricNameDescriptor(namespace: "hikyaku", subsystem: "queue", metricName: "recipients", unitName: "",
                                              helpText: "Recipients not yet delivered, bounced, expired or cancelled")
        queued = registry.makeGauge(descriptor: recipients, labels: [("state", "queued")])
        deferred = registry.makeGauge(descriptor: recipients, labels: [("state", "deferred")])
        held = registry.makeGauge(descriptor: recipients, labels: [("state", "held")])
        messages = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "hikyaku", subsystem: "queue", metricName: "messages", unitName: "",
            helpText: "Messages with a recipient not yet final"))
    }

    func update(_ counts: PendingCounts) {
        queued.set(Double(counts.queued))
        deferred.set(Double(counts.deferred))
        held.set(Double(counts.held))
        messages.set(Double(counts.messages))
    }
}
