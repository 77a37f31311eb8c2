import HBONEXDSProto
import SwiftProtobuf

/// istio-cni's ZDS as ztunnel speaks it, without I/O: each request datagram (and the descriptors
/// that came with it) becomes one ACK or NACK and what to do with pods. Descriptors that are not
/// kept are listed to be closed, so a malformed request never leaks one.
public struct ZDSSession: Sendable {
    /// Who a pod is, as the agent says (its identity: namespace + service account).
    public struct PodInfo: Sendable, Equatable {
        public var uid: String
        public var name: String
        public var namespace: String
        public var serviceAccount: String
    }

    public enum Action: Sendable, Equatable {
        /// A pod and its network namespace (the descriptor now belongs to the caller's registry).
        case add(PodInfo, netns: Int32)
        case remove(uid: String)
    }

    public struct Outcome: Sendable {
        /// The serialized `WorkloadResponse` to send back.
        public var reply: [UInt8]
        /// Non-nil: this is a NACK, for this reason.
        public var error: String?
        public var actions: [Action]
        /// Descriptors received and not handed on: the caller closes them.
        public var close: [Int32]
    }

    /// Pods added or kept since this connection started (the snapshot reconciles against them).
    private var seen: Set<String> = []
    public private(set) var snapshotReceived = false

    public init() {}

    /// The first datagram of every connection.
    public static var hello: [UInt8] {
        var h = Istio_Workload_Zds_ZdsHello()
        h.version = .v1
        return (try? h.serializedBytes()) ?? []
    }

    /// One request. `known`: the pods held now; `isNetns`: whether a descriptor is a network namespace.
    public mutating func handle(_ bytes: [UInt8], fds: [Int32], truncated: Bool, known: Set<String>,
                                isNetns: (Int32) -> Bool) -> Outcome {
        func nack(_ reason: String) -> Outcome { Outcome(reply: Self.response(reason), error: reason, actions: [], close: fds) }
        if truncated { return nack("truncated message") }
        let request: Istio_Workload_Zds_WorkloadRequest
        do { request = try Istio_Workload_Zds_WorkloadRequest(serializedBytes: bytes) } catch {
            return nack("cannot parse WorkloadRequest: \(error)")
        }
        switch request.payload {
        case let .add(add)?:
            guard !add.uid.isEmpty else { return nack("add without a uid") }
            guard fds.count == 1 else { return nack("add for \(add.uid) carries \(fds.count) file descriptors, want exactly 1 (the pod's netns)") }
            guard isNetns(fds[0]) else { return nack("add for \(add.uid): the file descriptor is not a network namespace") }
            let info = add.workloadInfo
            seen.insert(add.uid)
            let pod = PodInfo(uid: add.uid, name: info.name, namespace: info.namespace, serviceAccount: info.serviceAccount)
            return Outcome(reply: Self.response(nil), error: nil, actions: [.add(pod, netns: fds[0])], close: [])
        case let .keep(keep)?:
            guard fds.isEmpty else { return nack("keep carries a file descriptor") }
            guard !snapshotReceived else { return nack("keep after the snapshot was sent") }
            guard known.contains(keep.uid) else { return nack("keep for \(keep.uid), which is not held") }
            seen.insert(keep.uid)
            return Outcome(reply: Self.response(nil), error: nil, actions: [], close: [])
        case let .del(del)?:
            guard fds.isEmpty else { return nack("del carries a file descriptor") }
            seen.remove(del.uid)
            return Outcome(reply: Self.response(nil), error: nil, actions: known.contains(del.uid) ? [.remove(uid: del.uid)] : [], close: [])
        case .snapshotSent?:
            guard fds.isEmpty else { return nack("snapshot_sent carries a file descriptor") }
            snapshotReceived = true
            let gone = known.subtracting(seen).sorted().map { Action.remove(uid: $0) }
            return Outcome(reply: Self.response(nil), error: nil, actions: gone, close: [])
        case nil:
            return nack("WorkloadRequest without a payload")
        }
    }

    /// An ACK (nil) or a NACK with `error`.
    public static func response(_ error: String?) -> [UInt8] {
        var ack = Istio_Workload_Zds_Ack()
        ack.error = error ?? ""
        var r = Istio_Workload_Zds_WorkloadResponse()
        r.ack = ack
        return (try? r.serializedBytes()) ?? []
    }
}
