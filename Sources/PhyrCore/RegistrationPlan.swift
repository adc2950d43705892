// SPDX-License-Identifier: MIT
/// What the running kernel's io_uring coalesces (io_uring/rsrc.c), as libphyr
/// found by trying (`IoUringProbes.coalescing`).
package enum Coalescing: UInt8, Sendable {
    /// Every 4 KiB page of a buffer is an entry of its own (Linux 6.2 and
    /// before; Debian 12's 6.1).
    case perPage = 1
    /// A buffer that lies in one folio is one entry (6.3 to 6.10).
    case singleFolio = 2
    /// A buffer of same-size folios is one entry per folio, when the first
    /// runs to its own end and the middle ones are whole (6.11 and later).
    case multiFolio = 3

    /// What the probe report says (Embedded Swift cannot print a case).
    package var text: String {
        switch self {
        case .perPage: "per 4 KiB page"
        case .singleFolio: "within one folio"
        case .multiFolio: "across folios of one size"
        }
    }
}

/// One fixed buffer the planner asks the kernel for.
package struct BufferUnit: Equatable, Sendable {
    package var addr: UInt64
    package var len: UInt64
    package var pageShift: UInt32

    package var end: UInt64 { addr + len }
    package var pageSize: UInt64 { 1 << UInt64(pageShift) }
    package var isHuge: Bool { pageShift > basePageShift }

    /// The kernel holds the buffer as one entry per huge page.  Every huge
    /// unit the planner emits meets 6.11's rules (unless a folio is larger
    /// than a buffer may be); before, only a unit within one folio coalesces,
    /// and before 6.3 none does.
    package func coalesces(on kernel: Coalescing) -> Bool {
        guard isHuge, len > 0 else { return false }
        switch kernel {
        case .perPage: return false
        case .singleFolio: return alignDown(addr, pageSize) == alignDown(end - 1, pageSize)
        case .multiFolio: return pageSize <= RegistrationPlan.maxBufferLength || len <= pageSize
        }
    }

    /// What the kernel keeps for it: one bio_vec and one pin per folio when it
    /// coalesces, per 4 KiB page when it does not.
    package func kernelEntries(on kernel: Coalescing) -> UInt64 {
        let size = coalesces(on: kernel) ? pageSize : basePageSize
        return (alignUp(end, size) - alignDown(addr, size)) / size
    }

    /// The memory RLIMIT_MEMLOCK is charged for: whole huge pages (charged
    /// once per ring, whether the buffer coalesces or not: io_uring accounts
    /// compound pages by their head), base pages one by one.
    package var chargeSpan: Range<UInt64> {
        let size = isHuge ? pageSize : basePageSize
        return alignDown(addr, size)..<alignUp(end, size)
    }

    /// Bytes the kernel charges for it, before it notices huge pages it
    /// already charged in this ring.
    package var lockCharge: UInt64 { UInt64(chargeSpan.count) }

    package init(addr: UInt64, len: UInt64, pageShift: UInt32) {
        self.addr = addr
        self.len = len
        self.pageShift = pageShift
    }
}

/// Segments in, buffer units out: the layout that lets the kernel hold every
/// huge-page buffer as one entry per huge page.
///
/// The kernel coalesces a buffer only when all of it is one folio size
/// (io_uring/rsrc.c, io_check_coalesce_buffer), and takes at most 1 GiB per
/// buffer.  So: cut where the page size changes, where memory is not
/// contiguous, and at 1 GiB — on a folio boundary, so both pieces still
/// coalesce.  Overlapping and adjacent ranges of one page size merge, so no
/// slot is spent twice.  Units come out in address order, which keeps the
/// kernel's per-huge-page "already charged?" scan short.
package struct RegistrationPlan: Sendable {
    /// The kernel's limit on one fixed buffer (io_validate_user_buf_range).
    package static let maxBufferLength: UInt64 = 1 << 30

    package private(set) var units: [BufferUnit] = []

    /// Memory with no folio (VM_PFNMAP / VM_IO) cannot be a fixed buffer:
    /// EOPNOTSUPP, naming it.
    package init(segments: [Segment], maxUnit: UInt64 = RegistrationPlan.maxBufferLength) throws(PhyrError) {
        if let bad = segments.first(where: { $0.flags.contains(.noFolio) }) {
            throw PhyrError(.EOPNOTSUPP, "\(spanText(bad.addr..<bad.end)) has no folio behind it (PFN-mapped or IO "
                            + "memory): the kernel cannot pin it for io_uring")
        }
        for run in Self.uniformRuns(segments) {
            cut(run, maxUnit: maxUnit)
        }
    }

    /// Total of `kernelEntries` over all units.
    package func kernelEntries(on kernel: Coalescing) -> UInt64 { units.reduce(0) { $0 + $1.kernelEntries(on: kernel) } }

    private mutating func cut(_ run: (lo: UInt64, hi: UInt64, shift: UInt32), maxUnit: UInt64) {
        let folio: UInt64 = 1 << UInt64(run.shift)
        var lo = run.lo
        while lo < run.hi {
            var hi = run.hi - lo > maxUnit ? lo + maxUnit : run.hi
            if hi < run.hi && run.shift > basePageShift {
                // End on a folio boundary; a folio bigger than a buffer may be
                // cannot coalesce anyway, so it is cut where the limit falls.
                let boundary = alignDown(hi, folio)
                if boundary > lo { hi = boundary }
            }
            units.append(BufferUnit(addr: lo, len: hi - lo, pageShift: run.shift))
            lo = hi
        }
    }

    /// Maximal runs of one page size covering the union of `segments`.  Where
    /// two descriptions of the same memory disagree, the smaller page size
    /// wins: a buffer planned as huge over base pages would not coalesce.
    package static func uniformRuns(_ segments: [Segment]) -> [(lo: UInt64, hi: UInt64, shift: UInt32)] {
        var events: [(at: UInt64, delta: Int, shift: UInt32)] = []
        events.reserveCapacity(segments.count * 2)
        for s in segments where s.len > 0 {
            events.append((s.addr, 1, s.pageShift))
            events.append((s.end, -1, s.pageShift))
        }
        events.sort { $0.at < $1.at }
        var active: [UInt32: Int] = [:]
        var runs: [(lo: UInt64, hi: UInt64, shift: UInt32)] = []
        var i = 0
        while i < events.count {
            let at = events[i].at
            while i < events.count && events[i].at == at {
                active[events[i].shift, default: 0] += events[i].delta
                if active[events[i].shift] == 0 { active[events[i].shift] = nil }
                i += 1
            }
            guard i < events.count, let shift = active.keys.min() else { continue }
            let next = events[i].at
            if var last = runs.last, last.hi == at, last.shift == shift {
                last.hi = next
                runs[runs.count - 1] = last
            } else {
                runs.append((at, next, shift))
            }
        }
        return runs
    }
}
