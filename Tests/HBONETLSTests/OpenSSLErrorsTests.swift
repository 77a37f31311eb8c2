import Testing
import COpenSSL
@testable import HBONETLS

/// `OpenSSLErrors.clear()` skips the work when the queue is empty; whatever a call left behind
/// must still be gone before the next call, so a failure reports its own errors only.
@Suite struct OpenSSLErrorsTests {
    /// A call that fails and leaves errors queued: an algorithm no provider has.
    func leaveAnError() {
        if let ctx = EVP_PKEY_CTX_new_from_name(nil, "NO-SUCH-ALGORITHM", nil) { EVP_PKEY_CTX_free(ctx) }
    }

    @Test func clearEmptiesTheQueueAndLeavesOnlyWhatComesAfter() {
        TLSLibrary.prepare()
        OpenSSLErrors.clear()
        #expect(ERR_peek_error() == 0)
        OpenSSLErrors.clear()   // on an empty queue: nothing to do, still empty
        #expect(ERR_peek_error() == 0)

        leaveAnError()
        #expect(ERR_peek_error() != 0)
        let one = OpenSSLErrors.drainEntries().count
        #expect(one > 0)

        leaveAnError()
        leaveAnError()
        #expect(ERR_peek_error() != 0)
        OpenSSLErrors.clear()
        #expect(ERR_peek_error() == 0)
        leaveAnError()
        #expect(OpenSSLErrors.drainEntries().count == one)   // the last failure's, not the two before
        #expect(ERR_peek_error() == 0)
    }
}
