import Foundation

/// A value read from the store and read again once it is older than
/// `lifetime`, so that hot paths (every message, every recipient) cost no
/// query and a change made elsewhere (the command line, another request)
/// applies within seconds. A failed reload keeps the last value.
///
/// A reload runs on a thread of its own. The caller that starts it waits at
/// most `patience`; callers meanwhile get the last value at once. So a store
/// that hangs (a database across a broken network) costs one caller every
/// `lifetime` that long, not every caller the store's deadline. Only the
/// first load is waited for to the end, having nothing older to serve.
public final class RefreshingSnapshot<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private let lifetime: Duration
    private let patience: DispatchTimeInterval
    private let load: @Sendable () throws -> Value
    private var value: Value
    private var loaded: ContinuousClock.Instant?
    /// Set while a reload runs; left when it ends (every waiter, early or late, then goes on).
    private var reloading: DispatchGroup?

    public init(lifetime: Duration, initial: Value, patience: DispatchTimeInterval = .milliseconds(250),
                load: @escaping @Sendable () throws -> Value) {
        self.lifetime = lifetime
        self.patience = patience
        self.value = initial
        self.load = load
    }

    /// The value, reloaded first when it is stale.
    public var current: Value {
        let now = ContinuousClock.now
        lock.lock()
        guard loaded.map({ now - $0 > lifetime }) ?? true else {
            defer { lock.unlock() }
            return value
        }
        let first = loaded == nil
        let done: DispatchGroup
        if let running = reloading {
            // Another caller waits for this reload: the others go on with the last value at once.
            guard first else {
                defer { lock.unlock() }
                return value
            }
            done = running
        } else {
            done = DispatchGroup()
            done.enter()
            reloading = done
            // A thread of its own: the shared queues' threads may all be busy (or blocked) when it is needed.
            Thread.detachNewThread { [self] in
                let fresh = try? load()
                lock.lock()
                if let fresh { value = fresh }
                loaded = ContinuousClock.now
                reloading = nil
                lock.unlock()
                done.leave()
            }
        }
        lock.unlock()
        if first {
            _ = done.wait(timeout: .distantFuture)
        } else {
            _ = done.wait(timeout: .now() + patience)
        }
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
