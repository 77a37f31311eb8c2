import Foundation
import HBONECore
import HBONEConfig
import HBONEEventLoop
import HBONEGRPC
import HBONEH2
import HBONETLS
import HBONEXDS
import HBONEXDSProto
import SwiftProtobuf

/// ztunnel's Delta xDS client on the control-plane loop: one `DeltaAggregatedResources` stream to
/// istiod, subscribed wildcard to workloads/services (`Address`) and policies (`Authorization`),
/// every response answered with an ACK or a NACK, a new stream after any end (at once after a
/// recycle, else with backoff). While istiod is away the last state stays in force.
final class XDSClient {
    static let path = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

    let loop: EventLoop
    let settings: ControlPlaneSettings
    let endpoint: ControlPlaneSettings.Endpoint
    let tls: ControlPlaneTLSContext
    let network: StreamNetwork
    private(set) var store: XDSStore
    /// Called on the loop after a response changed what is held.
    /// The store after a response that changed it, and the workloads and services (by name) it changed.
    var onUpdate: (XDSStore, Set<String>) -> Void = { _, _ in }
    /// Publishes status changes (the owner copies them out under its lock).
    var report: ((inout ControlPlaneStatus) -> Void) -> Void = { _ in }

    private var channel: GRPCChannel?
    private var call: GRPCCall?
    private var backoff = ReconnectBackoff()
    private var rng = SystemRandomNumberGenerator()
    private var reconnectTimer: EventLoop.TimerID?
    private var silenceTimer: EventLoop.TimerID?
    private var stopped = false
    private var receivedOnStream = false

    init(loop: EventLoop, settings: ControlPlaneSettings, endpoint: ControlPlaneSettings.Endpoint, tls: ControlPlaneTLSContext,
         network: StreamNetwork, node: String) {
        self.loop = loop
        self.settings = settings
        self.endpoint = endpoint
        self.tls = tls
        self.network = network
        self.store = XDSStore(nodeID: settings.nodeID, metadata: settings.nodeMetadata(node: node), jsonMetadata: settings.proxyMetadataJSON)
    }

    func start() { connect() }

    func stop() {
        stopped = true
        loop.cancel(reconnectTimer)
        loop.cancel(silenceTimer)
        call?.cancel("shutting down")
        channel?.close("shutting down")
    }

    private func connect() {
        guard !stopped else { return }
        report { $0.xdsConnectAttempts += 1 }
        let token: String
        switch ServiceAccountToken.read(settings.authToken) {
        case let .success(t): token = t
        case let .failure(error):
            streamEnded(.connectionFailed(error.description))
            return
        }
        let channel = GRPCChannel(loop: loop, target: .init(endpoint: endpoint, tls: tls, alternativeName: settings.altXDSHostname),
                                  network: network)
        channel.connectTimeout = settings.connectTimeout
        channel.keepaliveInterval = settings.keepaliveInterval
        self.channel = channel
        channel.onReady = { [weak self] in
            guard let self else { return }
            self.report {
                $0.xdsConnected = true
                $0.xdsLastError = nil
                $0.xdsStreamsEstablished += 1
            }
            log.info("xDS stream open", ["address": "\(self.endpoint)", "peer": channel.peer.map(\.description) ?? "-"])
            self.armSilenceTimer()
        }
        let head = GRPCRequestHead(path: XDSClient.path, authority: "\(endpoint.host):\(endpoint.port)", token: token,
                                   clusterID: settings.clusterID, extra: settings.xdsHeaders.map { ($0.name, $0.value) })
        receivedOnStream = false
        let call = channel.call(headers: head.headers.map { H2Header($0.name, $0.value) }, maxMessageBytes: settings.maxMessageBytes,
                                onMessage: { [weak self] in self?.received($0) },
                                onEnd: { [weak self] in self?.streamEnded($0) })
        self.call = call
        for request in store.initialRequests() {
            do { call.send(try request.serializedBytes() as [UInt8]) } catch {
                Bug.report("cannot encode a DeltaDiscoveryRequest: \(error)")
            }
        }
        channel.start()
    }

    /// A stream that says nothing for `firstResponseTimeout` after the connection came up is given up
    /// (istiod answers a wildcard subscription at once, even when it has nothing).
    private func armSilenceTimer() {
        loop.cancel(silenceTimer)
        let limit = settings.firstResponseTimeout
        silenceTimer = loop.schedule(after: limit.nanoseconds) { [weak self] in
            guard let self, !self.receivedOnStream, let call = self.call else { return }
            log.warn("xDS stream sent nothing; starting a new one", ["timeout": "\(limit)"])
            call.cancel("no response within \(limit)")
        }
    }

    private func received(_ bytes: [UInt8]) {
        receivedOnStream = true
        report { $0.xdsMessagesReceived += 1 }
        let response: Envoy_Service_Discovery_V3_DeltaDiscoveryResponse
        do {
            response = try Envoy_Service_Discovery_V3_DeltaDiscoveryResponse(serializedBytes: bytes)
        } catch {
            // Not even the nonce can be read: nothing to NACK. End the stream; the next asks again.
            log.warn("xDS response does not decode; ending the stream", ["error": "\(error)", "bytes": "\(bytes.count)"])
            call?.cancel("undecodable DeltaDiscoveryResponse")
            return
        }
        let applied = store.apply(response)
        let type = response.typeURL
        let version = response.systemVersionInfo
        let synced = store.synced
        let resourceBytes = response.resources.reduce(UInt64(0)) { $0 + UInt64($1.resource.value.count) }
        report { s in
            var t = s.types[type] ?? ControlPlaneStatus.TypeState()
            t.messages += 1
            t.resourceBytes += resourceBytes
            if applied.isACK {
                t.lastACKNonce = response.nonce
                t.lastACKVersion = version
                t.acks += 1
            } else {
                t.lastNACKNonce = response.nonce
                t.lastNACKReason = applied.reply.errorDetail.message
                t.nacks += 1
            }
            s.types[type] = t
            if synced { s.xdsSynced = true }
        }
        if applied.isACK {
            log.debug("xDS ACK", ["type": type, "nonce": response.nonce, "resources": "\(response.resources.count)",
                                   "removed": "\(response.removedResources.count)"])
        } else {
            log.warn("xDS NACK", ["type": type, "nonce": response.nonce, "reason": applied.reply.errorDetail.message])
        }
        do { call?.send(try applied.reply.serializedBytes() as [UInt8]) } catch {
            Bug.report("cannot encode an xDS ACK: \(error)")
        }
        if applied.changed { onUpdate(store, applied.changedAddresses) }
    }

    private func streamEnded(_ outcome: GRPCCall.Outcome) {
        loop.cancel(silenceTimer)
        call = nil
        channel?.close("xDS stream ended")
        channel = nil
        let reason = outcome.description
        report {
            $0.xdsConnected = false
            $0.xdsLastError = reason
            $0.xdsStreamEnds[Self.endLabel(outcome), default: 0] += 1
            $0.xdsTerminations[Self.terminationReason(outcome), default: 0] += 1
        }
        guard !stopped else { return }
        let delay = backoff.jitteredDelay(after: outcome.ending, using: &rng)
        log.warn("xDS stream ended", ["reason": reason, "retry_in": "\(delay)"])
        reconnectTimer = loop.schedule(after: delay.nanoseconds) { [weak self] in self?.connect() }
    }

    /// ztunnel's reason for a stream's end: the connection failed; it ended cleanly; istiod moved
    /// it (its max connection age, a restart: UNKNOWN, CANCELLED, DEADLINE_EXCEEDED, or UNAVAILABLE
    /// on a closing transport or GOAWAY); any other status.
    static func terminationReason(_ outcome: GRPCCall.Outcome) -> String {
        switch outcome {
        case .connectionFailed: return "ConnectionError"
        case let .status(s):
            switch s.code {
            case .ok: return "Complete"
            case .unknown, .cancelled, .deadlineExceeded: return "Reconnect"
            case .unavailable where s.message.contains("transport is closing") || s.message.contains("received prior goaway"): return "Reconnect"
            default: return "Error"
            }
        }
    }

    static func endLabel(_ outcome: GRPCCall.Outcome) -> String {
        switch outcome {
        case .connectionFailed: "connection_failed"
        case let .status(s): s.code.name.lowercased()
        }
    }
}
