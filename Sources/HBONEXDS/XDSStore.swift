import HBONEConfig
import HBONECore
import HBONEAuthz
import HBONEXDSProto
import SwiftProtobuf

/// The Delta xDS client's state without I/O (ztunnel's behaviour): what the proxy holds of each
/// type, the requests that open a stream, and the ACK or NACK answering each response.
///
/// A response is applied resource by resource: the good ones are used, the removed ones dropped,
/// and the bad ones rejected with their reasons in the NACK. A rejected resource is not counted as
/// held, so the next stream asks for it again; a version held from before stays in use. A name
/// that appears more than once in one response (twice among the resources, or both added and
/// removed) is rejected as a whole: which entry istiod meant cannot be known, and taking the last
/// would make the outcome depend on the order (Envoy rejects such a response too).
public struct XDSStore: Sendable {
    public static let types = [XDSConversion.addressType, XDSConversion.authorizationType]

    public private(set) var workloads: [String: Workload] = [:]
    public private(set) var services: [String: Service] = [:]
    public private(set) var policies: [String: Policy] = [:]
    /// Resource names held per type (what `initial_resource_versions` lists on a new stream).
    private var held: [String: Set<String>] = [:]
    /// Per type: the nonce last ACKed, and the last NACK's nonce and reason.
    public private(set) var lastACK: [String: String] = [:]
    public private(set) var lastNACK: [String: (nonce: String, reason: String)] = [:]
    let node: Envoy_Service_Discovery_V3_Node

    /// `jsonMetadata`: values as JSON text (`ISTIO_METAJSON_*`, checked when the config was
    /// read), sent as the values they are and over `metadata`'s of the same name, as ztunnel does.
    public init(nodeID: String, metadata: [String: String], jsonMetadata: [String: String] = [:]) {
        var node = Envoy_Service_Discovery_V3_Node()
        node.id = nodeID
        var fields: [String: Google_Protobuf_Value] = [:]
        for (k, v) in metadata { fields[k] = Google_Protobuf_Value(stringValue: v) }
        for (k, text) in jsonMetadata {
            guard let v = try? Google_Protobuf_Value(jsonString: text) else {
                Bug.report("node metadata \(k): JSON checked at start-up no longer parses")
                continue
            }
            fields[k] = v
        }
        node.metadata = Google_Protobuf_Struct(fields: fields)
        self.node = node
    }

    /// Every type ACKed at least once (readiness waits for this, then never withdraws it).
    public var synced: Bool { XDSStore.types.allSatisfy { lastACK[$0] != nil } }

    /// The first message per type on a new stream: wildcard (no names), the node on the first only
    /// (ztunnel sends it on each; istiod reads the first), and every resource already held.
    public func initialRequests() -> [Envoy_Service_Discovery_V3_DeltaDiscoveryRequest] {
        XDSStore.types.map { type in
            var r = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            r.typeURL = type
            r.node = node
            for name in held[type] ?? [] { r.initialResourceVersions[name] = "" }
            return r
        }
    }

    /// The outcome of one response.
    public struct Applied: Sendable {
        /// The ACK (no error) or NACK to send back.
        public var reply: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest
        public var rejected: [XDSRejection]
        /// Whether the proxy's snapshot must be rebuilt.
        public var changed: Bool
        /// The workloads and services (by resource name) this response added, replaced or removed:
        /// all the proxy's routing tables need to look at again.
        public var changedAddresses: Set<String>
        public var isACK: Bool { rejected.isEmpty }
    }

    public mutating func apply(_ response: Envoy_Service_Discovery_V3_DeltaDiscoveryResponse) -> Applied {
        var rejected: [XDSRejection] = []
        var changed = false
        var changedAddresses: Set<String> = []
        let type = response.typeURL
        let duplicates = XDSStore.duplicateNames(response)
        switch type {
        case XDSConversion.addressType:
            for name in response.removedResources where !duplicates.contains(name) {
                let workload = workloads.removeValue(forKey: name), service = services.removeValue(forKey: name)
                if workload != nil || service != nil { changedAddresses.insert(name) }
                held[type]?.remove(name)
            }
            for r in response.resources where !duplicates.contains(r.name) {
                do throws(XDSRejection) {
                    switch try XDSConversion.address(name: r.name, resource: r.hasResource ? r.resource : nil) {
                    case let .workload(w):
                        if workloads[r.name] != w || services[r.name] != nil { changedAddresses.insert(r.name) }
                        workloads[r.name] = w
                        services[r.name] = nil
                    case let .service(s):
                        if services[r.name] != s || workloads[r.name] != nil { changedAddresses.insert(r.name) }
                        services[r.name] = s
                        workloads[r.name] = nil
                    }
                    held[type, default: []].insert(r.name)
                } catch {
                    rejected.append(error)
                    held[type]?.remove(r.name)
                }
            }
            changed = !changedAddresses.isEmpty
        case XDSConversion.authorizationType:
            for name in response.removedResources where !duplicates.contains(name) {
                changed = policies.removeValue(forKey: name) != nil || changed
                held[type]?.remove(name)
            }
            for r in response.resources where !duplicates.contains(r.name) {
                do throws(XDSRejection) {
                    let p = try XDSConversion.authorization(name: r.name, resource: r.hasResource ? r.resource : nil)
                    if policies[r.name] != p { changed = true }
                    policies[r.name] = p
                    held[type, default: []].insert(r.name)
                } catch {
                    rejected.append(error)
                    held[type]?.remove(r.name)
                }
            }
        default:
            rejected.append(XDSRejection(type, "type not subscribed"))
        }
        if !duplicates.isEmpty, XDSStore.types.contains(type) {
            for name in duplicates.sorted() {
                rejected.append(XDSRejection(name, "named more than once in one response (resources and removed resources together)"))
                held[type]?.remove(name)
            }
        }
        var reply = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
        reply.typeURL = type
        reply.responseNonce = response.nonce
        if rejected.isEmpty {
            lastACK[type] = response.nonce
        } else {
            let reason = rejected.map(\.description).joined(separator: "; ")
            var status = Envoy_Service_Discovery_V3_Status()
            status.message = reason
            reply.errorDetail = status
            lastNACK[type] = (response.nonce, reason)
        }
        return Applied(reply: reply, rejected: rejected, changed: changed, changedAddresses: changedAddresses)
    }

    /// Names given more than once among a response's resources and removed resources.
    static func duplicateNames(_ response: Envoy_Service_Discovery_V3_DeltaDiscoveryResponse) -> Set<String> {
        var seen = Set<String>(minimumCapacity: response.resources.count + response.removedResources.count)
        var duplicates = Set<String>()
        for r in response.resources where !seen.insert(r.name).inserted { duplicates.insert(r.name) }
        for name in response.removedResources where !seen.insert(name).inserted { duplicates.insert(name) }
        return duplicates
    }
}
