import API
import Foundation
import Relay
import Spool

/// The release this binary is (shown on the console's operator page and by `hikyaku --version`).
public enum HikyakuVersion {
    public static let string = "0.13.0"
}

/// The console's settings from the configuration, and the health figures its operator page shows.
enum ConsoleComposition {
    static func options(configuration: Configuration, layout: SpoolLayout, index: QueueIndex, courier: SMTPCourier?,
                        startedAt: Date = Date()) -> ConsoleOptions? {
        guard configuration.consoleEnabled else { return nil }
        let listeners = (configuration.smtpListen.map { "smtp \($0)" } + configuration.smtpTLSListen.map { "smtps \($0)" }
            + [configuration.apiListen].filter { !$0.isEmpty }.map { "api \($0)" }
            + [configuration.consoleListen].filter { !$0.isEmpty }.map { "console \($0)" }
            + [configuration.adminListen].filter { !$0.isEmpty }.map { "admin \($0)" }).joined(separator: ", ")
        return ConsoleOptions(idleTimeout: TimeInterval(configuration.consoleIdleTimeoutMinutes * 60),
                              absoluteTimeout: TimeInterval(configuration.consoleAbsoluteTimeoutHours * 3600),
                              secureCookie: configuration.consoleSecureCookie,
                              maximumLoginFailures: configuration.consoleMaxLoginFailures,
                              health: {
            let manager = FileManager.default
            let segments = (try? manager.contentsOfDirectory(atPath: layout.segmentsDirectory)) ?? []
            let spoolBytes = segments.reduce(0 as Int64) { total, name in
                let size = (try? manager.attributesOfItem(atPath: layout.segmentsDirectory + "/" + name))?[.size] as? NSNumber
                return total + (size?.int64Value ?? 0)
            }
            let free = (try? manager.attributesOfFileSystem(forPath: layout.directory))?[.systemFreeSize] as? NSNumber
            let uptime = Int(exactly: Date().timeIntervalSince(startedAt).rounded(.down)) ?? 0
            let pending = (try? index.pendingCounts()).map { "\($0.queued + $0.deferred + $0.held)" } ?? "?"
            return [("version", HikyakuVersion.string),
                    ("uptime", "\(uptime / 86400)d \(uptime % 86400 / 3600)h \(uptime % 3600 / 60)m"),
                    ("listeners", listeners),
                    ("spool", ByteCountFormatter.string(fromByteCount: spoolBytes, countStyle: .binary) + " (\(segments.count) segments)"),
                    ("disk_free", free.map { ByteCountFormatter.string(fromByteCount: $0.int64Value, countStyle: .binary) } ?? "?"),
                    ("queue", pending)]
        }, courier: courier)
    }
}
