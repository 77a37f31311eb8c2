import Foundation
import HBONECore
import HBONEEventLoop
#if canImport(Glibc)
import Glibc
#endif

/// The node proxy's end of istio-cni's ZDS, on a thread of its own: connects to the agent's
/// SOCK_SEQPACKET socket, says hello, then answers each request with one ACK or NACK, handing pods
/// (with their network namespaces) to `apply` before it ACKs. When the agent goes away it connects
/// again with backoff, keeping the pods it has until a new snapshot says otherwise.
public final class ZDSClient: @unchecked Sendable {
    // `stopped` is atomic-by-lock; everything else is touched only by the client's thread.

    /// A pod handed over, its namespace already owned by a `NetworkNamespace`.
    public enum Change: Sendable {
        case add(ZDSSession.PodInfo, NetworkNamespace)
        case remove(uid: String)
    }

    public struct Status: Sendable {
        public var connected = false
        public var snapshotReceived = false
        public var lastError: String?
        public var acks: UInt64 = 0
        public var nacks: UInt64 = 0
        public var lastNACK: String?
        public var connections: UInt64 = 0
    }

    public let path: String
    private let apply: @Sendable ([Change]) -> String?
    private let known: @Sendable () -> Set<String>
    private let statusLock = Locked(Status())
    private let stopFlag = Locked(false)
    private let finished = DispatchSemaphore(value: 0)

    /// `apply` makes the changes real (listeners bound) and returns why it could not, if it could not;
    /// `known` names the pods held now.
    public init(path: String, apply: @escaping @Sendable ([Change]) -> String?, known: @escaping @Sendable () -> Set<String>) {
        self.path = path
        self.apply = apply
        self.known = known
    }

    public var status: Status { statusLock.withLock { $0 } }

    public func start() {
        let thread = Thread { [self] in
            Socket.setThreadName("hbone-zds")
            run()
            finished.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    public func stop() {
        stopFlag.withLock { $0 = true }
        finished.wait()
    }

    private var stopped: Bool { stopFlag.withLock { $0 } }

    private func run() {
        var backoff = 0.1
        var lastLogged = ""
        while !stopped {
            let socket: SeqPacketSocket
            do {
                socket = try SeqPacketSocket(connectingTo: path)
                try socket.send(ZDSSession.hello)
            } catch {
                let reason = "\(error)"
                if reason != lastLogged { log.warn("cannot reach the CNI agent; retrying", ["uds": path, "error": reason]) }
                lastLogged = reason
                statusLock.withLock { $0.connected = false; $0.lastError = reason }
                sleep(seconds: backoff)
                backoff = min(backoff * 2, 5)
                continue
            }
            backoff = 0.1
            lastLogged = ""
            statusLock.withLock { $0.connected = true; $0.lastError = nil; $0.connections += 1 }
            log.info("connected to the CNI agent", ["uds": path])
            let reason = serve(socket)
            statusLock.withLock { $0.connected = false; $0.lastError = reason }
            if !stopped { log.warn("CNI agent connection ended; reconnecting", ["reason": reason]) }
        }
    }

    /// One connection, until the agent closes it, an I/O error, or stop. Returns why it ended.
    private func serve(_ socket: SeqPacketSocket) -> String {
        var session = ZDSSession()
        while !stopped {
            let datagram: SeqPacketSocket.Datagram?
            do { datagram = try socket.receive(timeoutMillis: 200) } catch { return "\(error)" }
            guard let datagram else { continue }
            if datagram.bytes.isEmpty && datagram.fds.isEmpty && !datagram.truncated { return "the agent closed the connection" }
            let outcome = session.handle(datagram.bytes, fds: datagram.fds, truncated: datagram.truncated, known: known(),
                                         isNetns: { NetworkNamespace.isNetworkNamespace($0) == true })
            for fd in outcome.close { close(fd) }
            var reply = outcome.reply
            var error = outcome.error
            if error == nil && !outcome.actions.isEmpty {
                let changes: [Change] = outcome.actions.map { action in
                    switch action {
                    case let .add(info, fd): .add(info, NetworkNamespace(takingOwnership: fd, owner: info.uid))
                    case let .remove(uid): .remove(uid: uid)
                    }
                }
                if let failure = apply(changes) {
                    error = failure
                    reply = ZDSSession.response(failure)
                }
            }
            let snapshot = session.snapshotReceived
            statusLock.withLock { s in
                if let error {
                    s.nacks += 1
                    s.lastNACK = error
                } else {
                    s.acks += 1
                }
                if snapshot { s.snapshotReceived = true }
            }
            if let error { log.warn("ZDS request refused (NACK)", ["error": error]) }
            do { try socket.send(reply) } catch { return "cannot answer the agent: \(error)" }
        }
        return "stopping"
    }

    private func sleep(seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while !stopped && Date() < deadline { usleep(20_000) }
    }
}
