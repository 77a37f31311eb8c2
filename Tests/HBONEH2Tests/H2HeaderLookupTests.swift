import Testing
import HBONEH2

/// Header look-up compares lengths before names: names of one length must still be told apart,
/// the first of a repeated name wins, and `values` keeps every one in order.
@Suite struct H2HeaderLookupTests {
    let headers = [
        H2Header(":method", "CONNECT"), H2Header(":scheme", "https"), H2Header("baggage", "k=1"),
        H2Header(":authority", "10.1.0.20:8080"), H2Header("baggage", "k=2"),
        H2Header("x-istio-origin-network", "net-a"), H2Header("forwarded", "for=10.0.0.10"),
    ]

    @Test func namesOfOneLengthAreToldApart() {
        // ":method", ":scheme" and "baggage" all have seven bytes.
        #expect(headers[header: ":method"] == "CONNECT")
        #expect(headers[header: ":scheme"] == "https")
        #expect(headers[header: "baggage"] == "k=1")
        #expect(headers[header: ":path"] == nil)
        #expect(headers[header: ":metho"] == nil && headers[header: ":methodx"] == nil)
        #expect(headers[header: ":METHOD"] == nil)   // names are lowercase on the wire; no folding here
        #expect(headers[header: "forwarded"] == "for=10.0.0.10")
        #expect(headers[header: "x-istio-origin-network"] == "net-a")
    }

    @Test func everyValueOfARepeatedName() {
        #expect(headers.values("baggage") == ["k=1", "k=2"])
        #expect(headers.values(":scheme") == ["https"])
        #expect(headers.values("traceparent") == [])
    }
}
