import HBONEConfig

/// Where a CONNECT that names a service (`hostname:port`) goes on one workload, or why it cannot
/// (`ProxyState.serviceTarget`).
enum ServiceTarget: Equatable {
    case target(Service, port: UInt16)
    case refused(status: Int, reason: String)
}
