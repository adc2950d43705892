// SPDX-License-Identifier: MIT
/// What io_uring charges against RLIMIT_MEMLOCK for buffers put in a ring's
/// table (io_uring/rsrc.c, io_buffer_account_pin): every base page of every
/// buffer, and a huge page once per ring -- the kernel looks through the
/// ring's table for a buffer that already holds its head.  Buffers cloned
/// from another ring are charged nothing, but they are in the table, so a
/// huge page they hold counts as charged for the ring's later buffers.
package enum LockCharge {
    /// The charge for putting `units` into a ring whose charged huge pages are
    /// `charged`; `cloned(i)` says whether unit `i` is cloned.  Returns the
    /// bytes and the huge spans added to `charged`, which releasing the
    /// buffers removes again.
    package static func charge(_ units: [BufferUnit], cloned: (Int) -> Bool = { _ in false },
                       ring charged: inout CountedIntervalMap) -> (bytes: UInt64, hugeSpans: [Range<UInt64>]) {
        var bytes: UInt64 = 0
        var spans: [Range<UInt64>] = []
        for (i, u) in units.enumerated() {
            let clone = cloned(i)
            if u.isHuge {
                spans.append(u.chargeSpan)
                let fresh = charged.add(u.chargeSpan)
                if !clone { bytes += fresh.reduce(0) { $0 + UInt64($1.count) } }
            } else if !clone {
                bytes += u.lockCharge
            }
        }
        return (bytes, spans)
    }

    /// Gives back the huge spans `charge` added.
    package static func release(_ spans: [Range<UInt64>], ring charged: inout CountedIntervalMap) {
        for s in spans { _ = charged.remove(s) }
    }
}
