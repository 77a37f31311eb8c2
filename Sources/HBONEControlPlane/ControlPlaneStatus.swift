import Foundation

/// What the control-plane clients report to the admin endpoints: whether xDS is connected, what was
/// ACKed and NACKed per type, each local identity's certificate, and counters for metrics.
/// A value copied out under a lock; written only on the control-plane loop.
public struct ControlPlaneStatus: Sendable {
    public struct TypeState: Sendable, Equatable {
        public var lastACKNonce: String?
        /// `system_version_info` of the last ACKed response.
        public var lastACKVersion: String?
        public var lastNACKNonce: String?
        public var lastNACKReason: String?
        public var acks: UInt64 = 0
        public var nacks: UInt64 = 0
        /// Responses of this type, and the bytes of the resources they carried (ztunnel's
        /// `istio_xds_message_total` and `istio_xds_message_bytes_total`).
        public var messages: UInt64 = 0
        public var resourceBytes: UInt64 = 0
    }

    public struct CertificateState: Sendable, Equatable {
        /// `pending`, `valid`, `retrying`, `in-flight`.
        public var state: String
        public var validUntil: Date?
        public var renewAt: Date?
        public var lastError: String?
        public var failures: Int = 0
    }

    public var xdsAddress: String?
    public var xdsConnected = false
    public var xdsLastError: String?
    /// Every type ACKed once (readiness; never withdrawn).
    public var xdsSynced = false
    public var types: [String: TypeState] = [:]
    /// Stream attempts and how they ended.
    public var xdsConnectAttempts: UInt64 = 0
    public var xdsStreamsEstablished: UInt64 = 0
    public var xdsMessagesReceived: UInt64 = 0
    public var xdsStreamEnds: [String: UInt64] = [:]
    /// The same ends as ztunnel counts them (`istio_xds_connection_terminations_total{reason}`).
    public var xdsTerminations: [String: UInt64] = [:]

    public var caAddress: String?
    public var caEnabled = false
    public var certificates: [String: CertificateState] = [:]
    /// CA requests by outcome (`success`, `refused`, `rejected_answer`, `unavailable`, ...).
    public var caRequests: [String: UInt64] = [:]

    public init() {}
}
