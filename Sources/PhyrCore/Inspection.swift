// SPDX-License-Identifier: MIT
/// What phyr-inspect concludes from what the kernel says about a process:
/// per mapping, how it is backed and why memory is not huge; per registered
/// io_uring buffer, whether the kernel could coalesce it, the entries and
/// lock charge it costs, and what would fix it.  Pure: the kernel edges read
/// smaps, status, PAGEMAP_SCAN and fdinfo; this decides.

/// One VMA as /proc/PID/smaps describes it.
package struct VMAStats: Equatable, Sendable {
    package var mapping: Mapping
    package var rss: UInt64 = 0
    /// AnonHugePages + ShmemPmdMapped + FilePmdMapped.
    package var pmdMapped: UInt64 = 0
    /// Private_Hugetlb + Shared_Hugetlb.
    package var hugetlb: UInt64 = 0
    package var locked: UInt64 = 0
    /// THPeligible (5.x+), nil where the kernel does not say.
    package var thpEligible: Bool? = nil
    /// VmFlags' two-letter names.
    package var vmFlags: [String] = []

    package init(mapping: Mapping) { self.mapping = mapping }

    package var isLocked: Bool { vmFlags.contains("lo") || locked > 0 }
}

/// The THP settings that decide a process's eligibility.
package struct THPSettings: Equatable, Sendable {
    /// /sys/kernel/mm/transparent_hugepage/enabled.
    package var mode: THPMode
    /// prctl(PR_SET_THP_DISABLE) (status' "THP_enabled: 0").
    package var processDisabled: Bool
    /// /sys/kernel/mm/transparent_hugepage/shmem_enabled's choice
    /// ("always", "within_size", "advise", "never", "deny", "force").
    package var shmem: String

    package init(mode: THPMode, processDisabled: Bool, shmem: String) {
        self.mode = mode
        self.processDisabled = processDisabled
        self.shmem = shmem
    }
}

package struct MappingReport: Equatable, Sendable {
    package var start: UInt64
    package var end: UInt64
    package var name: String
    package var hugeBytes: UInt64
    package var hugetlbBytes: UInt64
    package var baseBytes: UInt64
    package var noFolioBytes: UInt64
    package var locked: Bool
    package var thpEligible: Bool
    /// Why the mapping's memory that is not huge is not; nil when all of
    /// it is huge (or there is none).
    package var whyNotHuge: String?
    /// Its resident bytes on each node, by node.
    package var nodes: [NodeBytes] = []
}

package struct BufferReport: Equatable, Sendable {
    package var index: Int
    package var addr: UInt64
    package var len: UInt64
    /// "THP 2 MiB", "hugetlb 1 GiB", "4 KiB", "mixed: THP 2 MiB and 4 KiB",
    /// "not mapped" (the kernel may still hold the pages).
    package var backing: String
    package var coalesced: Bool
    package var kernelEntries: UInt64
    package var lockCharge: UInt64
    /// One line, where the buffer does not coalesce and something would fix it.
    package var advice: String?
    /// The nodes its memory is on, ascending (empty: unknown).
    package var nodes: [Int32] = []
}

package enum Inspection {
    static let huge: UInt64 = 1 << UInt64(pmdPageShift)

    /// The aligned 2 MiB extents a mapping holds whole.
    package static func alignedExtentBytes(_ m: Mapping) -> UInt64 {
        let lo = alignUp(m.start, huge), hi = alignDown(m.end, huge)
        return hi > lo ? hi - lo : 0
    }

    /// `interiorBase`: bytes of 4 KiB pages inside the mapping's aligned
    /// extents, by a scan the caller makes only when asked (nil: it cannot);
    /// asked only for an eligible mapping that has 4 KiB pages.
    package static func report(_ v: VMAStats, settings: THPSettings,
                               interiorBase: () -> UInt64? = { nil }) -> MappingReport {
        let m = v.mapping
        let size = m.end - m.start
        var r = MappingReport(start: m.start, end: m.end, name: m.name, hugeBytes: 0, hugetlbBytes: 0, baseBytes: 0,
                              noFolioBytes: 0, locked: v.isLocked, thpEligible: false, whyNotHuge: nil)
        if m.noFolio || v.vmFlags.contains("pf") || v.vmFlags.contains("io") {
            r.noFolioBytes = size
            r.whyNotHuge = "PFN-mapped or IO memory (VM_PFNMAP/VM_IO): no folio behind it, never huge"
            return r
        }
        if m.isHugetlb || v.vmFlags.contains("ht") {
            r.hugetlbBytes = v.hugetlb
            r.thpEligible = false
            return r
        }
        r.hugeBytes = min(v.pmdMapped, v.rss)
        r.baseBytes = v.rss - r.hugeBytes
        let reason = notHuge(v, settings: settings)?.text
        r.thpEligible = v.thpEligible ?? (reason == nil)
        guard r.baseBytes > 0 else { return r }
        if let reason {
            r.whyNotHuge = reason
        } else if interiorBase() == 0 {
            r.whyNotHuge = "its 4 KiB pages lie outside its aligned 2 MiB extents (the mapping is misaligned "
                + "or its size not a multiple of 2 MiB): no huge page can hold them"
        } else {
            r.whyNotHuge = "eligible but not huge: populated before it became eligible, split since, or no huge page "
                + "was free at fault time; MADV_COLLAPSE (or pinning with PHYR_PIN_HUGE) would collapse it"
        }
        return r
    }

    /// Why a mapping cannot hold transparent huge pages at all (nil when it
    /// can), and whether MADV_COLLAPSE still would make it huge: the THP
    /// modes (enabled, shmem_enabled) keep faults from making huge pages but
    /// not MADV_COLLAPSE, which ignores them, and their reasons say so.
    package static func notHuge(_ v: VMAStats, settings: THPSettings) -> (text: String, collapsible: Bool)? {
        func regardless(_ text: String) -> (String, Bool) {
            (text + " (MADV_COLLAPSE or PHYR_PIN_HUGE collapses it regardless)", true)
        }
        let m = v.mapping
        if settings.processDisabled {
            return ("THP disabled for this process (prctl PR_SET_THP_DISABLE, inherited across fork)", false)
        }
        if v.vmFlags.contains("nh") || m.hugepageAdvice == .noHugepage { return ("MADV_NOHUGEPAGE", false) }
        let advised = v.vmFlags.contains("hg") || m.hugepageAdvice == .hugepage
        // A private mapping of /dev/zero is anonymous memory.
        let anonymous = !m.fileBacked || !m.shared && m.name.hasPrefix("/dev/zero")
        if m.name.hasPrefix("anon_inode:") {
            return ("kernel memory mapped into the process (\(m.name)): never THP", false)
        }
        if !anonymous && !m.isShmem {
            if v.thpEligible == true { return nil }
            return ("page cache of a regular file: huge only where its filesystem makes large folios", false)
        }
        if alignedExtentBytes(m) == 0 {
            return ("too small or misaligned to hold an aligned 2 MiB extent", false)
        }
        if !anonymous {
            switch settings.shmem {
            case "deny": return ("shmem THP is denied (transparent_hugepage/shmem_enabled: deny)", false)
            case "never": return regardless("shmem THP is off (transparent_hugepage/shmem_enabled: never)")
            case "advise" where !advised: return regardless("shmem_enabled is advise and the mapping has no MADV_HUGEPAGE")
            default: break
            }
        } else {
            switch settings.mode {
            case .never: return regardless("THP is off system-wide (transparent_hugepage/enabled: never)")
            case .madvise where !advised: return regardless("madvise mode without MADV_HUGEPAGE")
            default: break
            }
        }
        if v.thpEligible == false { return ("the kernel says it is not eligible (THPeligible: 0)", false) }
        return nil
    }

    /// A registered buffer: `runs` cover [addr, addr+len) page-aligned, as
    /// the backing scanner classified them (nil: the scan failed); `charged` is the ring's huge
    /// pages already charged by buffers of lower index (the kernel registers
    /// in index order and charges a huge page once per ring); `notHuge`
    /// why its memory's mappings cannot hold THP now, if they cannot, and
    /// whether MADV_COLLAPSE still would make it huge (`notHuge(_:settings:)`).
    package static func buffer(index: Int, addr: UInt64, len: UInt64, runs: [BackingRun]?, kernel: Coalescing,
                               charged: inout CountedIntervalMap,
                               notHuge: (text: String, collapsible: Bool)? = nil) -> BufferReport {
        let (end, wraps) = addr.addingReportingOverflow(len)
        let lo = alignDown(addr, basePageSize)
        let hi = wraps ? lo : alignUp(end, basePageSize)
        let pages = (hi - lo) / basePageSize
        var r = BufferReport(index: index, addr: addr, len: len, backing: "4 KiB", coalesced: false,
                             kernelEntries: pages, lockCharge: hi - lo, advice: nil)
        guard !wraps, len > 0 else {
            r.backing = "not mapped"
            return r
        }
        if addr == 0 {
            // Buffers the kernel registers itself (ublk, 6.15+) have no user
            // address and charge nothing.
            r.backing = "kernel memory (no user address)"
            r.kernelEntries = 0
            r.lockCharge = 0
            return r
        }
        guard let runs else {
            r.backing = "unknown (its pagemap could not be read)"
            return r
        }
        let segments = Backing.segments(runs, range: addr..<end)
        let units: [BufferUnit]
        do throws(PhyrError) {
            units = try RegistrationPlan(segments: Array(segments), maxUnit: UInt64.max).units
        } catch {
            r.backing = "not mapped"
            r.advice = "its memory is no longer mapped (the kernel still holds the pages it pinned)"
            return r
        }
        let sizes = Set(units.map { $0.pageShift }).sorted(by: >)
        func kind(_ shift: UInt32) -> String {
            if shift <= basePageShift { return "4 KiB" }
            let hugetlb = segments.contains { $0.pageShift == shift && $0.flags.contains(.hugetlb) }
            return (hugetlb ? "hugetlb " : "THP ") + byteText(1 << UInt64(shift))
        }
        r.backing = sizes.count == 1 ? kind(sizes[0]) : "mixed: " + sizes.map(kind).joined(separator: " and ")
        r.lockCharge = LockCharge.charge(units, ring: &charged).bytes
        if units.count == 1, let u = units.first, u.isHuge {
            r.coalesced = u.coalesces(on: kernel)
            r.kernelEntries = u.kernelEntries(on: kernel)
            if !r.coalesced {
                r.advice = kernel == .perPage
                    ? "this kernel (before 6.3) coalesces no buffer: one entry per 4 KiB page"
                    : "this kernel (6.3 to 6.10) coalesces only a buffer within one huge page: register one buffer "
                        + "per huge page to make each one entry"
            }
            return r
        }
        // What would make the 4 KiB pages huge.  Registered pages are pinned,
        // and MADV_COLLAPSE leaves pinned pages alone: the buffer must go
        // first.  Where the mapping itself refuses THP, that comes first.
        let fix: String
        if let notHuge, !notHuge.collapsible {
            fix = "its mapping cannot hold THP (\(notHuge.text)): that first"
        } else {
            fix = "unregister it, collapse them (MADV_COLLAPSE, or pin with PHYR_PIN_HUGE), register again "
                + "(pinned pages are never collapsed)"
        }
        let asHuge = (alignUp(hi, huge) - alignDown(lo, huge)) / huge
        guard units.contains(where: { $0.isHuge }) else {
            if hi - lo >= huge { r.advice = "all 4 KiB pages (\(pages) entries, \(asHuge) as huge pages): \(fix)" }
            return r
        }
        // Mixed page sizes never coalesce: every 4 KiB page of it is an entry.
        let small = units.filter { !$0.isHuge }
        let shown = small.prefix(3).map { "+\(hexText($0.addr - addr)) (\(byteText($0.len)))" }
        let more = small.count > 3 ? " and \(small.count - 3) more" : ""
        let bytes = small.reduce(0) { $0 + $1.len }
        r.advice = "does not coalesce: \(byteText(bytes)) of 4 KiB pages at \(shown.joined(separator: ", "))\(more); "
            + "\(fix) (then \(asHuge) entries), or ring_register_ranges would register around them"
        return r
    }

    /// "2 MiB", "1.5 GiB", "12 KiB", "100 B".
    package static func byteText(_ n: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where n >= size {
            if n % size == 0 { return "\(n / size) \(name)" }
            let tenths = (n % size) * 10 / size
            return "\(n / size).\(tenths) \(name)"
        }
        return "\(n) B"
    }

    package static func hexText(_ n: UInt64) -> String { "0x" + String(n, radix: 16) }
}
