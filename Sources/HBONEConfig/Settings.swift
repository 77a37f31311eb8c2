import Foundation
import HBONECore

/// The proxy's own settings (`hbone:` in the config file). Defaults are named next to each field.
public struct Settings: Sendable, Equatable {
    /// Workloads whose `node` equals this are local: we hold their SVIDs and serve their inbound.
    public var node: String
    /// The network this node's pods are on (`hbone.network`, ztunnel's `NETWORK`; empty: the
    /// default network). Addresses are looked up on it only: another network may reuse its IPs.
    public var network: String = ""
    public var trustDomain: String
    /// Other trust domains whose peers we accept inbound (the reference proxy has none).
    public var trustDomainAliases: [String] = []
    /// PEM file with one or more roots (several during a root rotation). Empty with `istioCA`: the
    /// roots the Istio CA returns with each certificate.
    public var rootCertificates: String
    public var certificates: CertificateSource
    /// Certificate revocation lists (PEM or DER; `hbone.crlPath`, ztunnel's `CRL_PATH`): peers'
    /// chains are checked against them at the handshake and again, for open connections, whenever
    /// the file changes. nil: revocation is not checked.
    public var crlPath: String? = nil
    public var listen = Listen()
    /// Event loops (threads). nil: one per core.
    public var workers: Int? = nil
    public var rootNamespace: String = "istio-system"
    public var authorizationPolicies: [String] = []
    public var timeouts = Timeouts()
    public var pool = Pool()
    public var h2 = H2Limits()
    /// IPv6 in use (ztunnel's `IPV6_ENABLED`): off, pods get IPv4 listeners only and the DNS
    /// proxy answers mesh names' AAAA questions with no address.
    public var ipv6Enabled = true
    /// ztunnel's enhanced baggage (`ENABLE_RESPONSE_BAGGAGE`, on by default): a 200 carries the
    /// destination workload's `baggage`, and a peer this proxy cannot look up (behind another
    /// network's gateway) is named in the metrics by the baggage it sent.
    public var responseBaggage = true
    /// Istio TCP metric series whose labels a peer's `baggage` named, at most, for the whole proxy
    /// (`hbone.maxBaggageSeries`; ztunnel has no bound). A connection that would make one more is
    /// counted on the series of what the proxy knows itself. 0: baggage never names a series.
    public var maxBaggageSeries = 4096
    /// TCP keepalive on every socket (`hbone.tcpKeepalive`, ztunnel's `KEEPALIVE_*` and
    /// `USER_TIMEOUT_ENABLED`).
    public var tcpKeepalive = TCPKeepalive()
    /// Socket mark on upstream connections, so capture rules can exclude the proxy's own traffic.
    public var outboundMark: Int32? = nil
    /// istiod (xDS) and the Istio CA: `hbone.xds`, `hbone.ca` and ztunnel's environment variables.
    public var controlPlane = ControlPlaneSettings()
    /// In-pod mode (pods handed over by istio-cni over ZDS); nil: capture in the node's namespace.
    public var inPod: InPod? = nil
    /// The DNS proxy (`hbone.dns`, ztunnel's `ISTIO_META_DNS_CAPTURE` and `ISTIO_META_DNS_PROXY_ADDR`).
    public var dns = DNS()

    public struct DNS: Sendable, Equatable {
        /// nil: on in in-pod mode (ztunnel's default, which istio-cni's DNS capture relies on), and
        /// in the node's namespace only when `address` is set.
        public var enabled: Bool? = nil
        /// Where to answer (UDP and TCP). In in-pod mode, the port inside each pod, on 127.0.0.1
        /// (and ::1 for a pod with IPv6), 15053 by default; otherwise an address in this namespace.
        public var address: SocketAddress? = nil
        /// Kubernetes' cluster domain (ztunnel's `CLUSTER_DOMAIN`).
        public var clusterDomain = "cluster.local"
        /// Where names the mesh does not hold are forwarded; empty: /etc/resolv.conf's nameservers.
        public var upstreams: [SocketAddress] = []
        /// How long one upstream gets to answer before the next is asked (two tries in all).
        public var upstreamTimeout: Duration = .milliseconds(2500)
        /// The resolv.conf whose nameservers stand in for `upstreams`, and whose search list and
        /// `ndots` apply to the hostnames of workloads looked up on demand (ztunnel reads the
        /// system's, /etc/resolv.conf).
        public var resolvConf = "/etc/resolv.conf"
        /// ztunnel's `PREFERED_SERVICE_NAMESPACE` (its spelling): when a name is served in several
        /// namespaces, one in this namespace answers a client from a third, unless another is marked
        /// canonical. The client's own namespace still comes first. Names only; VIPs are unaffected.
        public var preferredServiceNamespace: String? = nil

        public static let defaultPort: UInt16 = 15053

        public init() {}
    }

    /// Whether the DNS proxy runs (see `DNS.enabled`).
    public var dnsEnabled: Bool { dns.enabled ?? (inPod != nil || dns.address != nil) }

    /// Where the DNS proxy answers when it runs: `dns.address`, else 127.0.0.1:15053 (ztunnel's
    /// default; in in-pod mode, inside each pod).
    public var dnsAddress: SocketAddress? {
        guard dnsEnabled else { return nil }
        return dns.address ?? SocketAddress(ip: .v4(0x7f00_0001), port: DNS.defaultPort)
    }

    public struct InPod: Sendable, Equatable {
        /// The CNI agent's socket (`INPOD_UDS`; ztunnel's default `/var/run/ztunnel/ztunnel.sock`).
        public var uds: String
        /// Ports the proxy listens on inside each pod (ztunnel's, which the redirection rules name).
        public var outboundPort: UInt16 = 15001
        public var inboundPlaintextPort: UInt16 = 15006
        public var inboundPort: UInt16 = 15008
        /// A workload's PROXY-protocol application tunnel is delivered to the pod's loopback
        /// (ztunnel's `LOCALHOST_APP_TUNNEL`, on by default), so the port it listens on need not be
        /// reachable from outside the pod; the header carries the real addresses.
        public var localhostAppTunnel = true

        public init(uds: String) { self.uds = uds }
    }

    /// The mark on sockets the proxy makes (so capture skips them): `outboundMark`, else 1337 in
    /// in-pod mode (ztunnel's PACKET_MARK, which istio-cni's rules exempt).
    public var packetMark: Int32? { outboundMark ?? (inPod == nil ? nil : 1337) }

    public enum CertificateSource: Sendable, Equatable {
        /// `<dir>/<namespace>/<serviceAccount>/{cert-chain.pem,key.pem}`, watched for changes.
        case directory(String)
        /// A mounted `cacerts` directory: the proxy issues its local workloads' SVIDs itself.
        case ca(CAIssuance)
        /// The Istio CA (`hbone.ca` / `CA_ADDRESS`) signs each local workload's SVID for this node.
        case istioCA
    }

    public struct CAIssuance: Sendable, Equatable {
        /// Holds ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem.
        public var directory: String
        /// SVID lifetime (Istio's default: 24 h).
        public var ttl: Duration = .seconds(86_400)
        /// Renew when this fraction of the lifetime is left; nil: at half-life (Istio's default).
        public var rotationGracePeriodRatio: Double? = nil

        public init(directory: String) { self.directory = directory }

        /// The fraction of the lifetime after which an SVID is renewed.
        public var renewAt: Double { 1 - (rotationGracePeriodRatio ?? 0.5) }

        /// The files of a CA directory: Istio's `cacerts` (ca-cert.pem, ca-key.pem, cert-chain.pem,
        /// root-cert.pem), or, when there is no ca-cert.pem but a tls.crt, the kubernetes.io/tls
        /// layout cert-manager writes (tls.crt, tls.key, ca.crt), as istiod accepts both.
        public static func files(in directory: String) -> (cert: String, key: String, chain: String?, root: String) {
            let fm = FileManager.default
            if !fm.fileExists(atPath: directory + "/ca-cert.pem") && fm.fileExists(atPath: directory + "/tls.crt") {
                return ("tls.crt", "tls.key", nil, "ca.crt")
            }
            return ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem")
        }
    }

    public struct Listen: Sendable, Equatable {
        /// HBONE port on each local workload IP (reference: 15008).
        public var inboundPort: UInt16 = 15008
        /// One fixed HBONE address instead of one per workload IP (where capture redirects to it).
        public var inbound: SocketAddress? = nil
        /// Plaintext inbound capture (15006); nil disables.
        public var inboundPlaintext: SocketAddress? = nil
        /// iptables-REDIRECTed outbound (15001); nil disables.
        public var outboundCapture: SocketAddress? = nil
        /// SOCKS5 outbound for local testing, loopback only (15080); nil disables.
        public var socks5: SocketAddress? = nil
        public var admin: SocketAddress? = SocketAddress("127.0.0.1:15000")
        public var metrics: SocketAddress? = SocketAddress("0.0.0.0:15020")
        public var readiness: SocketAddress? = SocketAddress("0.0.0.0:15021")
    }

    public struct Timeouts: Sendable, Equatable {
        /// A client that connects and never finishes TLS is dropped (the reference has no such limit).
        public var handshake: Duration = .seconds(10)
        /// Upstream TCP connect, as the reference (then 503).
        public var connect: Duration = .seconds(10)
        /// A tunnel with no bytes either way for this long is closed; nil: never.
        public var idle: Duration? = .seconds(3600)
        /// HTTP/2 PING after this much silence (reference: 10 s).
        public var keepaliveInterval: Duration = .seconds(10)
        /// Close the connection when a PING is unanswered this long (reference: 20 s).
        public var keepaliveTimeout: Duration = .seconds(20)
        /// Open tunnels may finish for this long on shutdown.
        public var drain: Duration = .seconds(5)
    }

    public struct Pool: Sendable, Equatable {
        /// Streams per pooled connection before another is opened (reference: 100).
        public var maxStreamsPerConnection: Int = 100
        /// Idle pooled connections close after this (reference: 5 minutes).
        public var idleTimeout: Duration = .seconds(300)
    }

    public struct H2Limits: Sendable, Equatable {
        public var streamWindow: Int = 1 << 20
        public var connectionWindow: Int = 4 << 20
        public var maxConcurrentStreams: Int = 200
        /// Streams the peer may reset before we answered them, per second, before the connection is
        /// ended with ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487). Apps that abort tunnels
        /// mid-setup reset a few; an attack resets thousands.
        public var maxPrematureResetsPerSecond: Int = 200
    }

    public var trustedDomains: Set<String> { Set([trustDomain] + trustDomainAliases) }
}
