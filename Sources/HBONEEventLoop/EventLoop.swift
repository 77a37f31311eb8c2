import CHBONEPosix
import HBONECore
import Synchronization
import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// Something registered with a loop for readiness events.
public protocol Selectable: AnyObject {
    /// Error and hang-up are folded into readable+writable so they reach the normal read/write paths.
    func handleEvent(readable: Bool, writable: Bool, read: ReadHint)
    /// From `EventLoop.sweep`, about once a second: give back buffers that were not used since the
    /// last call, and finish set-up that was left for connections that outlive a sweep.
    func sweep()
}

extension Selectable {
    public func sweep() {}
}

/// What an event says about the bytes behind it, so a reader can skip the syscall that would only
/// confirm what the kernel already reported.
public enum ReadHint: Sendable {
    /// No FIN, no error: a short read has drained the socket (later data raises a new edge).
    case shortReadDrains
    /// The peer's FIN has arrived (EPOLLRDHUP alone). TCP takes a FIN only in sequence, so every
    /// byte before it is already queued: a short read has taken them all and the rest is EOF.
    case shortReadThenEOF
    /// An error or hang-up (EPOLLERR, EPOLLHUP), or a stream that is not a socket: read until the
    /// read itself says what happened.
    case readToEnd
}

/// One epoll reactor owned by one thread. Everything on it is confined to that thread except
/// `post(_:)` and `stop()`, the only ways in from elsewhere (a queued task plus an eventfd wake-up).
public final class EventLoop: @unchecked Sendable {
    public let index: Int
    private let epfd: Int32
    private let wakeFD: Int32
    private var slots: [Slot] = []
    private var nextGeneration: UInt32 = 1
    private let posted = Locked<[@Sendable () -> Void]>([])
    /// Set by `post` after it queued a task (it signals the eventfd only when this was clear);
    /// cleared by the loop before it takes the queue. An atomic, not a lock: the loop reads it
    /// on every pass, and a pass without posted tasks (nearly all of them) then takes no lock.
    private let wakePending = ManagedAtomic<Bool>(false)
    private var deferred: [Deferred] = []
    /// The batch `runDeferred` is running; swapped with `deferred` so neither array is reallocated per pass.
    private var running: [Deferred] = []
    private var timers = TimerHeap()
    private var stopping = false
    private let stopFlag = ManagedAtomic<Bool>(false)
    /// Monotonic nanoseconds, read once per pass.
    public private(set) var now: UInt64
    /// A reusable read buffer: bytes read are handed to their consumer before the next read.
    public let scratch: UnsafeMutableRawBufferPointer
    public static let scratchSize = 256 * 1024
    /// Keepalive for the sockets this loop's listeners accept and its streams connect: a
    /// listener's accepted sockets inherit what it had when bound; a connected stream takes it at
    /// its first sweep. Confined to the loop, like the rest.
    public var tcpKeepalive = TCPKeepalive()

    private struct Slot {
        var generation: UInt32 = 0
        var handler: Selectable?
    }

    /// One fd held in reserve (on /dev/null). When accept fails for want of fds, a listener closes
    /// it to accept-and-close the pending connection, so the backlog stops reporting readable.
    private var spareFD: Int32 = -1

    public init(index: Int = 0) throws(SystemError) {
        self.index = index
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        epfd = chbone_epoll_create()
        if epfd < 0 { throw SystemError("epoll_create1") }
        wakeFD = chbone_eventfd()
        if wakeFD < 0 { throw SystemError("eventfd") }
        now = chbone_monotonic_ns()
        scratch = .allocate(byteCount: EventLoop.scratchSize, alignment: 16)
        // The wake fd uses generation 0 at its own fd slot; handlers never get generation 0.
        if chbone_epoll_add(epfd, wakeFD, Epoll.in, UInt64(UInt32(bitPattern: wakeFD))) != 0 {
            throw SystemError("epoll_ctl(eventfd)")
        }
    }

    deinit {
        if spareFD >= 0 { close(spareFD) }
        close(epfd)
        close(wakeFD)
        scratch.deallocate()
    }

    // MARK: Registration

    /// A registration: the fd plus a generation so a stale event for a reused fd is ignored.
    public struct Registration: Hashable, Sendable {
        public let fd: Int32
        let generation: UInt32
        var token: UInt64 { UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd)) }
    }

    /// Registers `fd` once for both directions, edge-triggered.
    public func register(fd: Int32, handler: Selectable) throws(SystemError) -> Registration {
        assertInLoop()
        let index = Int(fd)
        if index >= slots.count { slots.append(contentsOf: repeatElement(Slot(), count: max(index + 1 - slots.count, slots.count))) }
        nextGeneration = nextGeneration == UInt32.max ? 1 : nextGeneration + 1
        let registration = Registration(fd: fd, generation: nextGeneration)
        let events = Epoll.in | Epoll.out | Epoll.rdhup | Epoll.edge
        if chbone_epoll_add(epfd, fd, events, registration.token) != 0 { throw SystemError("epoll_ctl(ADD)") }
        slots[index] = Slot(generation: registration.generation, handler: handler)
        return registration
    }

    /// Registers a listening socket for readable events only (level-triggered: accept loops are bounded).
    public func registerListener(fd: Int32, handler: Selectable) throws(SystemError) -> Registration {
        let index = Int(fd)
        if index >= slots.count { slots.append(contentsOf: repeatElement(Slot(), count: max(index + 1 - slots.count, slots.count))) }
        nextGeneration = nextGeneration == UInt32.max ? 1 : nextGeneration + 1
        let registration = Registration(fd: fd, generation: nextGeneration)
        if chbone_epoll_add(epfd, fd, Epoll.in, registration.token) != 0 { throw SystemError("epoll_ctl(ADD)") }
        slots[index] = Slot(generation: registration.generation, handler: handler)
        return registration
    }

    /// Removes the registration; call before closing the fd. `closing`: the caller closes the fd
    /// next, which takes it out of the epoll set by itself (no fd is ever duplicated or inherited),
    /// so the EPOLL_CTL_DEL syscall is skipped — one per connection.
    public func deregister(_ registration: Registration, closing: Bool = false) {
        assertInLoop()
        let index = Int(registration.fd)
        guard index < slots.count, slots[index].generation == registration.generation else { return }
        if !closing { _ = chbone_epoll_del(epfd, registration.fd) }
        slots[index] = Slot()
    }

    /// Every registered handler gives back the buffers it did not use since the last call and
    /// finishes deferred set-up (`Selectable.sweep`), and the timers their burst's memory;
    /// `run()` does this once a second.
    public func sweep() {
        assertInLoop()
        for i in slots.indices { slots[i].handler?.sweep() }
        timers.shrinkIfSparse()
    }

    private func armIdleSweep() {
        _ = schedule(after: 1_000_000_000) { [unowned self] in
            sweep()
            armIdleSweep()
        }
    }

    /// Runs `body` with the reserved fd released (one fd slot free), then takes the reserve back.
    /// Returns false when there was no reserve to release.
    @discardableResult
    public func withSpareFDReleased(_ body: () -> Void) -> Bool {
        guard spareFD >= 0 else {
            spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
            return false
        }
        close(spareFD)
        spareFD = -1
        body()
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        return true
    }

    // MARK: Work from elsewhere

    /// Queues `task` to run on this loop's thread. Safe from any thread.
    public func post(_ task: @escaping @Sendable () -> Void) {
        posted.withLock { $0.append(task) }
        // Only the post that finds it clear wakes the loop; until the loop clears it, later
        // posts know their task will be taken with that one.
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) { _ = chbone_eventfd_signal(wakeFD) }
    }

    /// Asks the loop to return from `run()` after the current pass. Safe from any thread.
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        post {}
    }

    /// Runs `body` after every event of the current pass has been handled (closes and frees go here,
    /// so nothing is freed under a callback that still uses it).
    public func deferUntilEndOfPass(_ body: @escaping () -> Void) {
        assertInLoop()
        deferred.append(.closure(body))
    }

    /// Runs `work.runAtEndOfPass()` after the current pass, like the closure form but without a
    /// closure to allocate: for work an object queues on every pass (a stream's flush, a session's pump).
    /// The loop holds `work` until it has run.
    public func deferUntilEndOfPass(_ work: EndOfPassWork) {
        assertInLoop()
        deferred.append(.work(work))
    }

    // MARK: Thread confinement

    /// The thread that runs this loop (the first to call `run` or `runOnce`). Before that, a loop
    /// may be set up from anywhere; after, only its own thread may touch its private state.
    private var owner: pthread_t?

    private func claimThread() {
        if owner == nil { owner = pthread_self() }
        assertInLoop()
    }

    /// Debug builds: traps when called off this loop's thread (every loop-confined entry point
    /// calls it: registration, timers, deferred work, stream writes). Free in release builds.
    @inline(__always)
    public func assertInLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(owner.map { pthread_equal($0, pthread_self()) != 0 } ?? true, "called off its event loop's thread", file: file, line: line)
    }

    // MARK: Timers

    public struct TimerID: Hashable, Sendable { let raw: UInt64 }

    /// Runs `body` once, `nanoseconds` from the start of this pass.
    @discardableResult
    public func schedule(after nanoseconds: UInt64, _ body: @escaping () -> Void) -> TimerID {
        assertInLoop()
        return TimerID(raw: timers.insert(deadline: now &+ nanoseconds, body))
    }

    public func cancel(_ timer: TimerID?) {
        assertInLoop()
        if let timer { timers.cancel(timer.raw) }
    }

    public func refreshClock() {
        if !virtualClock { now = chbone_monotonic_ns() }
    }

    // MARK: Virtual time (tests)

    /// Set by `useVirtualClock`: `now` moves only through `advanceClock(by:)`, and the loop is driven
    /// by `runUntilIdle` instead of epoll, so in-memory streams and timers run deterministically.
    public private(set) var virtualClock = false

    /// Stops the clock at `start`; from now on this loop is driven by `runUntilIdle`/`advanceClock`.
    public func useVirtualClock(startingAt start: UInt64 = 1_000_000_000) {
        claimThread()
        virtualClock = true
        now = start
    }

    /// Runs posted tasks, due timers and deferred work until none is left at the current time.
    /// Returns false if work kept coming (a livelock), after `maxRounds`.
    @discardableResult
    public func runUntilIdle(maxRounds: Int = 100_000) -> Bool {
        claimThread()
        precondition(virtualClock, "runUntilIdle drives a loop on a virtual clock")
        for _ in 0..<maxRounds {
            let idle = deferred.isEmpty && posted.withLock { $0.isEmpty } && !(timers.nextDeadline.map { $0 <= now } ?? false)
            if idle { return true }
            runPosted()
            runTimers()
            runDeferred()
        }
        return false
    }

    /// Moves the virtual clock forward by `nanoseconds`, stopping at each timer deadline on the way
    /// so every timer fires at its own time, and runs the loop idle after each step.
    public func advanceClock(by nanoseconds: UInt64) {
        precondition(virtualClock, "advanceClock moves a virtual clock")
        let target = now &+ nanoseconds
        runUntilIdle()
        while let next = timers.nextDeadline, next <= target {
            now = max(now, next)
            runUntilIdle()
        }
        now = target
        runUntilIdle()
    }

    // MARK: Running

    /// Runs until `stop()`. Each pass: wait, dispatch events, run posted tasks, fire timers, run deferred work.
    public func run() {
        claimThread()
        armIdleSweep()
        var events = [chbone_event](repeating: chbone_event(), count: 256)
        while !stopFlag.load(ordering: .acquiring) {
            pass(&events, maxTimeoutMillis: -1)
        }
        runDeferred()
    }

    /// Runs one pass, blocking at most `timeoutMillis` (tests drive loops this way).
    public func runOnce(timeoutMillis: Int32) {
        claimThread()
        var events = [chbone_event](repeating: chbone_event(), count: 64)
        pass(&events, maxTimeoutMillis: timeoutMillis)
    }

    private func pass(_ events: inout [chbone_event], maxTimeoutMillis: Int32) {
        var timeout = nextTimeoutMillis()
        if maxTimeoutMillis >= 0 && (timeout < 0 || timeout > maxTimeoutMillis) { timeout = maxTimeoutMillis }
        let n = events.withUnsafeMutableBufferPointer { chbone_epoll_wait(epfd, $0.baseAddress, Int32($0.count), timeout) }
        refreshClock()
        if n < 0 && errno != EINTR { Bug.report("epoll_wait failed: errno \(errno)") }
        for i in 0..<max(0, Int(n)) {
            let event = events[i]
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: event.data))
            let generation = UInt32(truncatingIfNeeded: event.data >> 32)
            if fd == wakeFD && generation == 0 {
                _ = chbone_eventfd_drain(wakeFD)
                continue
            }
            let index = Int(fd)
            guard index < slots.count, slots[index].generation == generation, let handler = slots[index].handler else { continue }
            let bad = event.events & (Epoll.err | Epoll.hup) != 0
            let readable = bad || event.events & (Epoll.in | Epoll.rdhup) != 0
            let writable = bad || event.events & Epoll.out != 0
            let hint: ReadHint = bad ? .readToEnd : event.events & Epoll.rdhup != 0 ? .shortReadThenEOF : .shortReadDrains
            handler.handleEvent(readable: readable, writable: writable, read: hint)
        }
        runPosted()
        runTimers()
        runDeferred()
    }

    private func nextTimeoutMillis() -> Int32 {
        if !deferred.isEmpty { return 0 }
        guard let deadline = timers.nextDeadline else { return -1 }
        let current = chbone_monotonic_ns()
        if deadline <= current { return 0 }
        return Int32(min((deadline - current + 999_999) / 1_000_000, 60_000))
    }

    private func runPosted() {
        // Clear before taking the queue: a task queued after the take sets it again and wakes
        // the next pass. A task queued before its post sets the flag is taken then too.
        guard wakePending.load(ordering: .acquiring), wakePending.exchange(false, ordering: .acquiringAndReleasing) else { return }
        let tasks = posted.withLock { queue -> [@Sendable () -> Void] in
            let taken = queue
            queue.removeAll()
            return taken
        }
        for task in tasks { task() }
    }

    private func runTimers() {
        while let body = timers.popExpired(now: now) { body() }
    }

    private func runDeferred() {
        // Deferred work may defer more; bounded so a loop of deferrals cannot starve I/O.
        var rounds = 0
        while !deferred.isEmpty && rounds < 16 {
            swap(&deferred, &running)
            for i in running.indices {
                switch running[i] {
                case let .closure(body): body()
                case let .work(work): work.runAtEndOfPass()
                }
            }
            running.removeAll(keepingCapacity: true)
            rounds += 1
        }
    }
}

/// An object that queues itself for the end of a loop pass (`EventLoop.deferUntilEndOfPass(_:)`)
/// and decides from its own state, when it runs, what is left to do.
public protocol EndOfPassWork: AnyObject {
    func runAtEndOfPass()
}

/// One piece of deferred work.
private enum Deferred {
    case closure(() -> Void)
    case work(EndOfPassWork)
}

/// An errno-carrying failure of a system call.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String { errno == 0 ? call : "\(call): \(String(cString: strerror(errno)))" }
}

/// epoll event bits as UInt32 (the C enum imports as Int).
enum Epoll {
    static let `in` = UInt32(truncatingIfNeeded: CHBONE_EV_IN)
    static let out = UInt32(truncatingIfNeeded: CHBONE_EV_OUT)
    static let err = UInt32(truncatingIfNeeded: CHBONE_EV_ERR)
    static let hup = UInt32(truncatingIfNeeded: CHBONE_EV_HUP)
    static let rdhup = UInt32(truncatingIfNeeded: CHBONE_EV_RDHUP)
    static let edge = UInt32(truncatingIfNeeded: CHBONE_EV_ET)
}
