import Foundation
import LicenseBackupBindings

/// The events of one backup or restore as an `AsyncSequence`, in order, ending after the END
/// event (``BackupRestoreEvent/Kind/end(_:result:)``); what
/// ``BackupRestorer/backupEvents(overwrite:)`` and
/// ``BackupRestorer/restoreEvents(individualize:replaceExisting:)`` return. The operation runs
/// from the moment it is returned; ``wait()`` (or ``operation``) gives its outcome.
///
/// ```swift
/// @MainActor final class BackupModel: ObservableObject {
///     @Published var done: UInt64 = 0
///     func backUp(with restorer: BackupRestorer) async throws(LicenseBackupError) -> Summary {
///         let events = try restorer.backupEvents(overwrite: true)
///         for await event in events {                    // on the main actor
///             if case .progress(_, let done, _) = event.kind { self.done = done }
///         }
///         return try await events.wait()
///     }
/// }
/// ```
///
/// * One consumer: iterators made from the same value share the events.
/// * Backpressure: at most 4,096 events wait for the consumer; the operation then waits until
///   the consumer takes them, so iterate the sequence (or drop it) rather than keep it unread.
/// * Cancelling the iterating task cancels the operation: the iteration ends at once (`next()`
///   returns `nil`, the remaining events are dropped) and ``wait()`` throws
///   ``ErrorCode/cancelled`` (or returns the summary if the operation had already ended).
/// * Dropping every copy of the sequence and its iterators stops the buffering; the operation
///   goes on, its delegate still gets events and ``LicenseOperation/wait()`` still works.
public struct OperationEvents: AsyncSequence, Sendable {
    public typealias Element = BackupRestoreEvent

    /// The running operation: ``LicenseOperation/wait()``, ``LicenseOperation/cancel()``.
    public let operation: LicenseOperation
    private let lifetime: EventsLifetime

    init(operation: LicenseOperation, channel: EventChannel) {
        self.operation = operation
        self.lifetime = EventsLifetime(channel)
    }

    /// Waits until the operation has ended and returns its summary (``LicenseOperation/wait()``).
    public func wait() async throws(LicenseBackupError) -> Summary {
        try await operation.wait()
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(lifetime: lifetime)
    }

    /// Takes the buffered events a batch at a time and hands them out one by one. Only an empty
    /// buffer suspends the task; otherwise `next` returns at once, in the caller's isolation.
    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        public typealias Failure = Never

        private let lifetime: EventsLifetime
        private var pending: [BackupRestoreEvent] = []
        private var index = 0
        private var over = false

        init(lifetime: EventsLifetime) {
            self.lifetime = lifetime
        }

        /// The next event; `nil` after END, or once the iterating task is cancelled (which
        /// cancels the operation).
        public mutating func next() async -> BackupRestoreEvent? {
            while true {
                if let event = nextBuffered() { return event }
                if over { return nil }
                await lifetime.channel.waitForEvents()
            }
        }

        /// ``next()`` without leaving the caller's isolation (what `for await` calls in Swift 6).
        @available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *)
        public mutating func next(isolation actor: isolated (any Actor)?) async -> BackupRestoreEvent? {
            while true {
                if let event = nextBuffered() { return event }
                if over { return nil }
                await lifetime.channel.waitForEvents(isolation: actor)
            }
        }

        /// An event already at hand, or taken from the channel without waiting; sets `over` when
        /// the sequence has ended.
        private mutating func nextBuffered() -> BackupRestoreEvent? {
            if over { return nil }
            if Task.isCancelled {
                lifetime.channel.consumerCancelled()
                over = true
                return nil
            }
            if index == pending.count {
                guard let taken = lifetime.channel.poll() else { return nil }
                if taken.isEmpty {
                    over = true
                    pending = []
                    return nil
                }
                pending = taken
                index = 0
            }
            defer { index += 1 }
            return pending[index]
        }
    }
}

/// Stops the channel's buffering when the last copy of a sequence or iterator is gone.
final class EventsLifetime: Sendable {
    let channel: EventChannel

    init(_ channel: EventChannel) {
        self.channel = channel
    }

    deinit {
        channel.consumerGone()
    }
}

/// The buffer between the delivery thread (``push(_:)``, which blocks while it is full) and the
/// consumer (``poll()``, and ``waitForEvents(isolation:)`` while it is empty).
final class EventChannel: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.
    static let capacity = 4096

    private let condition = NSCondition()
    private var buffer: [BackupRestoreEvent] = []
    private var ended = false
    /// The consumer will take nothing more: it was cancelled, or it is gone.
    private var closed = false
    private var cancelRequested = false
    private var waiter: CheckedContinuation<Void, Never>?
    private var cancelOperation: (@Sendable () -> Void)?

    /// Called once the operation exists: how a cancelled consumer cancels it.
    func bind(cancel: @escaping @Sendable () -> Void) {
        condition.lock()
        let cancelNow = cancelRequested
        if !cancelNow { cancelOperation = cancel }
        condition.unlock()
        if cancelNow { cancel() }
    }

    /// Appends events (the delivery thread); waits while `capacity` events are already waiting.
    func push(_ events: [BackupRestoreEvent]) {
        guard !events.isEmpty else { return }
        condition.lock()
        while !closed && buffer.count >= Self.capacity {
            condition.wait()
        }
        if closed {
            condition.unlock()
            return
        }
        buffer.append(contentsOf: events)
        if case .end = events[events.count - 1].kind { ended = true }
        let resume = waiter
        waiter = nil
        condition.unlock()
        resume?.resume()
    }

    /// Returns once there are events to take or the sequence is over (at once if so already).
    /// Cancelling the waiting task cancels the operation.
    func waitForEvents(isolation actor: isolated (any Actor)? = #isolation) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation(isolation: actor) { (continuation: CheckedContinuation<Void, Never>) in
                park(continuation)
            }
        } onCancel: {
            self.consumerCancelled()
        }
    }

    /// Everything buffered; empty once the sequence is over; `nil` when there is nothing yet.
    func poll() -> [BackupRestoreEvent]? {
        condition.lock()
        defer { condition.unlock() }
        if !buffer.isEmpty {
            var taken: [BackupRestoreEvent] = []
            swap(&taken, &buffer)
            condition.broadcast()
            return taken
        }
        return ended || closed ? [] : nil
    }

    /// Keeps `continuation` to resume on the next push (or resumes it now if there is news).
    private func park(_ continuation: CheckedContinuation<Void, Never>) {
        condition.lock()
        if !buffer.isEmpty || ended || closed {
            condition.unlock()
            continuation.resume()
            return
        }
        waiter = continuation
        condition.unlock()
    }

    /// The consuming task was cancelled: cancel the operation and drop what comes.
    func consumerCancelled() {
        condition.lock()
        let cancel = cancelOperation
        cancelRequested = true
        condition.unlock()
        close()
        cancel?()
    }

    /// Nobody can consume any more: drop what comes.
    func consumerGone() {
        close()
    }

    private func close() {
        condition.lock()
        closed = true
        buffer = []
        let resume = waiter
        waiter = nil
        condition.broadcast()
        condition.unlock()
        resume?.resume()
    }
}
