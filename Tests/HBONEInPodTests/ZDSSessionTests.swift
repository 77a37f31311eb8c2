import Testing
import SwiftProtobuf
import HBONEXDSProto
@testable import HBONEInPod

/// istio-cni's requests, built with the generated messages as the agent sends them: each gets one
/// ACK or NACK, and every descriptor not handed on is listed to be closed.
@Suite struct ZDSSessionTests {
    static func request(_ build: (inout Istio_Workload_Zds_WorkloadRequest) -> Void) -> [UInt8] {
        var r = Istio_Workload_Zds_WorkloadRequest()
        build(&r)
        return (try? r.serializedBytes()) ?? []
    }

    static func add(_ uid: String) -> [UInt8] {
        request { r in
            var a = Istio_Workload_Zds_AddWorkload()
            a.uid = uid
            a.workloadInfo.name = "ledger-0"
            a.workloadInfo.namespace = "payments"
            a.workloadInfo.serviceAccount = "ledger"
            r.add = a
        }
    }

    static func ackError(_ reply: [UInt8]) -> String? {
        guard let r = try? Istio_Workload_Zds_WorkloadResponse(serializedBytes: reply), case let .ack(ack)? = r.payload else { return "no ack" }
        return ack.error.isEmpty ? nil : ack.error
    }

    @Test func helloSaysV1() throws {
        let h = try Istio_Workload_Zds_ZdsHello(serializedBytes: ZDSSession.hello)
        #expect(h.version == .v1)
    }

    @Test func anAddWithOneNetnsIsTakenAndACKed() {
        var s = ZDSSession()
        let o = s.handle(Self.add("uid-1"), fds: [42], truncated: false, known: [], isNetns: { $0 == 42 })
        #expect(o.error == nil && Self.ackError(o.reply) == nil)
        #expect(o.actions == [.add(.init(uid: "uid-1", name: "ledger-0", namespace: "payments", serviceAccount: "ledger"), netns: 42)])
        #expect(o.close.isEmpty)
    }

    @Test(arguments: [
        ([] as [Int32], "carries 0 file descriptors"),
        ([7, 8], "carries 2 file descriptors"),
        ([9], "not a network namespace"),
    ])
    func aBadAddIsNACKedAndItsDescriptorsClosed(fds: [Int32], reason: String) {
        var s = ZDSSession()
        let o = s.handle(Self.add("uid-1"), fds: fds, truncated: false, known: [], isNetns: { $0 == 42 })
        #expect(o.error?.contains(reason) == true, "\(String(describing: o.error))")
        #expect(Self.ackError(o.reply)?.contains(reason) == true)
        #expect(o.actions.isEmpty && o.close == fds)
    }

    @Test func garbageTruncationAndDescriptorsOnOtherMessagesAreNACKed() {
        var s = ZDSSession()
        let garbage = s.handle([0xff, 0xff, 0xff, 0x01], fds: [5], truncated: false, known: [], isNetns: { _ in true })
        #expect(garbage.error?.contains("cannot parse") == true && garbage.close == [5])
        let truncated = s.handle(Self.add("uid-1"), fds: [6], truncated: true, known: [], isNetns: { _ in true })
        #expect(truncated.error == "truncated message" && truncated.close == [6])
        let del = Self.request { $0.del = Istio_Workload_Zds_DelWorkload.with { $0.uid = "uid-1" } }
        let withFD = s.handle(del, fds: [11], truncated: false, known: ["uid-1"], isNetns: { _ in true })
        #expect(withFD.error?.contains("del carries a file descriptor") == true && withFD.close == [11] && withFD.actions.isEmpty)
        let empty = s.handle(Self.request { _ in }, fds: [], truncated: false, known: [], isNetns: { _ in true })
        #expect(empty.error?.contains("without a payload") == true)
    }

    @Test func theSnapshotRemovesPodsNeitherAddedNorKept() {
        var s = ZDSSession()
        let held: Set<String> = ["a", "b", "c"]
        _ = s.handle(Self.add("a"), fds: [3], truncated: false, known: held, isNetns: { _ in true })
        let keep = s.handle(Self.request { $0.keep = Istio_Workload_Zds_KeepWorkload.with { $0.uid = "b" } }, fds: [], truncated: false,
                            known: held, isNetns: { _ in true })
        #expect(keep.error == nil)
        let snap = s.handle(Self.request { $0.snapshotSent = Istio_Workload_Zds_SnapshotSent() }, fds: [], truncated: false,
                            known: held, isNetns: { _ in true })
        #expect(snap.error == nil && snap.actions == [.remove(uid: "c")])
        #expect(s.snapshotReceived)
        // After the snapshot, keep is a protocol error; del removes.
        let late = s.handle(Self.request { $0.keep = Istio_Workload_Zds_KeepWorkload.with { $0.uid = "b" } }, fds: [], truncated: false,
                            known: held, isNetns: { _ in true })
        #expect(late.error?.contains("after the snapshot") == true)
        let del = s.handle(Self.request { $0.del = Istio_Workload_Zds_DelWorkload.with { $0.uid = "a" } }, fds: [], truncated: false,
                           known: ["a", "b"], isNetns: { _ in true })
        #expect(del.actions == [.remove(uid: "a")])
    }
}
