import HBONECore

/// The W3C `baggage` header of an HBONE CONNECT and of its 200, as ztunnel writes and reads it:
/// who the workload at the other end is (`k8s.cluster.name`, `k8s.namespace.name`,
/// `k8s.<type>.name`, `service.name`, `service.version`, `cloud.region`,
/// `cloud.availability_zone`), for the metrics of a peer the proxy cannot look up (one behind
/// another network's gateway). A claim of the peer's, so it names labels, never decides anything.
public struct Baggage: Sendable, Equatable {
    public var clusterId: String?
    public var namespace: String?
    public var workloadName: String?
    public var serviceName: String?
    public var revision: String?
    public var region: String?
    public var zone: String?

    public init(clusterId: String? = nil, namespace: String? = nil, workloadName: String? = nil, serviceName: String? = nil,
                revision: String? = nil, region: String? = nil, zone: String? = nil) {
        self.clusterId = clusterId
        self.namespace = namespace
        self.workloadName = workloadName
        self.serviceName = serviceName
        self.revision = revision
        self.region = region
        self.zone = zone
    }

    /// What a workload says of itself; empty fields are left out.
    public init(_ w: Workload) {
        func some(_ s: String) -> String? { s.isEmpty ? nil : s }
        self.init(clusterId: some(w.clusterId), namespace: some(w.namespace), workloadName: some(w.workloadName),
                  serviceName: some(w.canonicalName), revision: some(w.canonicalRevision),
                  region: some(w.locality.region), zone: some(w.locality.zone))
    }

    public var isEmpty: Bool { self == Baggage() }

    /// The header's value; the workload name's key names its type (`k8s.deployment.name`).
    public func headerValue(workloadType: String) -> String {
        let entries: [(String, String?)] = [
            ("k8s.cluster.name", clusterId), ("k8s.namespace.name", namespace), ("k8s.\(workloadType).name", workloadName),
            ("service.name", serviceName), ("service.version", revision), ("cloud.region", region), ("cloud.availability_zone", zone),
        ]
        return entries.compactMap { key, value in value.map { "\(key)=\($0)" } }.joined(separator: ",")
    }

    /// The longest value kept: a label, not a place to park bytes.
    public static let maxValueBytes = 253

    /// The fields of one or more `baggage` values. Unknown keys are skipped; an empty value, a value
    /// longer than `maxValueBytes` or one with a control character counts as absent; a later entry
    /// wins. Never fails: baggage is metadata.
    public init(parsing values: [String]) {
        self.init()
        for value in values {
            for entry in value.utf8.split(separator: UInt8(ascii: ",")) {
                let parts = entry.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { continue }
                let key = parts[0].trimmingOWS()
                // W3C baggage may add `;properties` after a value: not part of it.
                let bytes = (parts[1].split(separator: UInt8(ascii: ";"), maxSplits: 1, omittingEmptySubsequences: false).first ?? parts[1]).trimmingOWS()
                let v: String? = bytes.isEmpty || bytes.count > Self.maxValueBytes || bytes.contains(where: { $0 < 0x20 || $0 == 0x7f })
                    ? nil : String(decoding: bytes, as: UTF8.self)
                switch String(decoding: key, as: UTF8.self) {
                case "k8s.cluster.name": clusterId = v
                case "k8s.namespace.name": namespace = v
                case "k8s.deployment.name", "k8s.cronjob.name", "k8s.pod.name", "k8s.job.name": workloadName = v
                case "service.name": serviceName = v
                case "service.version": revision = v
                case "cloud.region": region = v
                case "cloud.availability_zone": zone = v
                default: continue
                }
            }
        }
    }
}
