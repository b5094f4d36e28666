import Foundation

/// A value read from the store and read again once it is older than
/// `lifetime`, so that hot paths (every message, every recipient) cost no
/// query and a change made elsewhere (the command line, another request)
/// applies within seconds. A failed reload keeps the last value.
public final class RefreshingSnapshot<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private let lifetime: Duration
    private let load: @Sendable () throws -> Value
    private var value: Value
    private var loaded: ContinuousClock.Instant?

    public init(lifetime: Duration, initial: Value, load: @escaping @Sendable () throws -> Value) {
        self.lifetime = lifetime
        self.value = initial
        self.load = load
    }

    /// The value, reloaded first when it is stale.
    public var current: Value {
        let now = ContinuousClock.now
        lock.lock()
        defer { lock.unlock() }
        if loaded.map({ now - $0 > lifetime }) ?? true {
            if let fresh = try? load() { value = fresh }
            loaded = now
        }
        return value
    }
}
