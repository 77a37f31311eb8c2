import Testing
import HBONEGRPC
@testable import HBONEControlPlane

/// How an xDS stream's end is counted in ztunnel's `istio_xds_connection_terminations_total`.
@Suite struct XDSTerminationTests {
    @Test(arguments: [
        (GRPCCall.Outcome.connectionFailed("refused"), "ConnectionError"),
        (.status(GRPCStatus(.ok)), "Complete"),
        (.status(GRPCStatus(.cancelled)), "Reconnect"),
        (.status(GRPCStatus(.unknown, "stream reset")), "Reconnect"),
        (.status(GRPCStatus(.deadlineExceeded)), "Reconnect"),
        (.status(GRPCStatus(.unavailable, "transport is closing")), "Reconnect"),
        (.status(GRPCStatus(.unavailable, "received prior goaway: code: NO_ERROR")), "Reconnect"),
        (.status(GRPCStatus(.unavailable, "no healthy upstream")), "Error"),
        (.status(GRPCStatus(.resourceExhausted)), "Error"),
        (.status(GRPCStatus(.permissionDenied)), "Error"),
    ])
    func reasons(_ outcome: GRPCCall.Outcome, _ want: String) {
        #expect(XDSClient.terminationReason(outcome) == want)
    }
}
