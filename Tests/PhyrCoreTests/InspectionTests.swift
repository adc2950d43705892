// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore

/// phyr-inspect's conclusions (`Inspection`) on synthetic kernel answers.
@Suite struct InspectionTests {
    static let M: UInt64 = 1 << 20
    static let H: UInt64 = 2 << 20
    static let madvise = THPSettings(mode: .madvise, processDisabled: false, shmem: "never")

    static func vma(_ lo: UInt64, _ hi: UInt64, rss: UInt64? = nil, pmd: UInt64 = 0, flags: [String] = [],
                    file: FileKey? = nil, name: String = "", shared: Bool = false, page: UInt64 = 4096,
                    eligible: Bool? = nil) -> VMAStats {
        var v = VMAStats(mapping: Mapping(start: lo, end: hi, readable: true, writable: true, shared: shared, file: file,
                                          pageSize: page, noFolio: false, pmdMappedBytes: pmd, name: name))
        v.rss = rss ?? hi - lo
        v.pmdMapped = pmd
        v.vmFlags = flags
        v.thpEligible = eligible
        if page > 4096 { v.hugetlb = v.rss }
        return v
    }

    @Test func reasonsInTheirOrder() {
        let file = FileKey(major: 8, minor: 1, inode: 42)
        let cases: [(VMAStats, THPSettings, String?)] = [
            (Self.vma(0, 8 * Self.M, flags: ["rd", "wr", "hg"]), THPSettings(mode: .madvise, processDisabled: true, shmem: "never"),
             "PR_SET_THP_DISABLE"),
            (Self.vma(0, 8 * Self.M, flags: ["nh", "hg"]), Self.madvise, "MADV_NOHUGEPAGE"),
            (Self.vma(0, 8 * Self.M, file: file, name: "/usr/lib/libc.so.6"), Self.madvise, "regular file"),
            (Self.vma(Self.M, 3 * Self.M + 4096, flags: ["hg"]), Self.madvise, "too small"),
            (Self.vma(0, Self.M, flags: ["hg"]), Self.madvise, "too small"),
            (Self.vma(0, 8 * Self.M, file: file, name: "/memfd:x (deleted)", shared: true), Self.madvise, "shmem THP is off"),
            (Self.vma(0, 8 * Self.M, file: file, name: "/dev/shm/x", shared: true),
             THPSettings(mode: .madvise, processDisabled: false, shmem: "advise"), "advise"),
            (Self.vma(0, 8 * Self.M), THPSettings(mode: .never, processDisabled: false, shmem: "never"), "off system-wide"),
            (Self.vma(0, 8 * Self.M), Self.madvise, "without MADV_HUGEPAGE (MADV_COLLAPSE or PHYR_PIN_HUGE collapses it regardless)"),
            (Self.vma(0, 8 * Self.M, file: file, name: "/dev/zero", shared: false), Self.madvise, "without MADV_HUGEPAGE"),
            (Self.vma(0, 8 * Self.M, flags: ["hg"]), Self.madvise, "MADV_COLLAPSE"),
            (Self.vma(0, 8 * Self.M), THPSettings(mode: .always, processDisabled: false, shmem: "never"), "MADV_COLLAPSE"),
            (Self.vma(0, 8 * Self.M, pmd: 8 * Self.M, flags: ["hg"]), Self.madvise, nil),
            (Self.vma(0, 8 * Self.M, rss: 0, flags: ["hg"]), Self.madvise, nil),
        ]
        for (i, (v, s, want)) in cases.enumerated() {
            let why = Inspection.report(v, settings: s).whyNotHuge
            if let want {
                #expect((why ?? "").contains(want), "case \(i): \(why ?? "nil") lacks \(want)")
            } else {
                #expect(isNil(why), "case \(i): \(why ?? "")")
            }
        }
    }

    @Test func bytesByBacking() {
        let thp = Inspection.report(Self.vma(0, 8 * Self.M, rss: 6 * Self.M, pmd: 4 * Self.M, flags: ["hg", "lo"]),
                                    settings: Self.madvise)
        #expect(thp.hugeBytes == 4 * Self.M && thp.baseBytes == 2 * Self.M && thp.locked && thp.thpEligible)
        let tlb = Inspection.report(Self.vma(0, 4 * Self.M, flags: ["ht"], page: Self.H), settings: Self.madvise)
        #expect(tlb.hugetlbBytes == 4 * Self.M && tlb.baseBytes == 0 && isNil(tlb.whyNotHuge) && !tlb.thpEligible)
        var pfn = Self.vma(0, 16 * 4096, rss: 0, flags: ["pf", "io"])
        pfn.mapping.noFolio = true
        let io = Inspection.report(pfn, settings: Self.madvise)
        #expect(io.noFolioBytes == 16 * 4096 && (io.whyNotHuge ?? "").contains("PFN"))
        // The kernel's own THPeligible wins where it says.
        #expect(!Inspection.report(Self.vma(0, 8 * Self.M, flags: ["hg"], eligible: false), settings: Self.madvise).thpEligible)
        // 4 KiB pages only in a misaligned mapping's ends, as a scan found.
        let ends = Inspection.report(Self.vma(Self.M, 7 * Self.M, rss: 6 * Self.M, pmd: 4 * Self.M, flags: ["hg"]),
                                     settings: Self.madvise) { 0 }
        #expect((ends.whyNotHuge ?? "").contains("outside its aligned"))
    }

    /// Buffers and runs lie from B up: user memory is never at address 0
    /// (a buffer there is the kernel's own).
    static let B: UInt64 = 1 << 30
    static func run(_ lo: UInt64, _ hi: UInt64, huge: Bool = false, hugetlb: Bool = false, noFolio: Bool = false) -> BackingRun {
        var flags: SegmentFlags = noFolio ? .noFolio : huge ? .huge : []
        if hugetlb { flags.insert(.hugetlb) }
        return BackingRun(start: B + lo, end: B + hi, pageShift: huge ? 21 : 12, flags: flags)
    }

    @Test func buffersByKernel() {
        var charged = CountedIntervalMap()
        let whole = [Self.run(0, 4 * Self.M, huge: true)]
        for (kernel, coalesced, entries) in [(Coalescing.multiFolio, true, UInt64(2)), (.singleFolio, false, 1024),
                                             (.perPage, false, 1024)] {
            var c = CountedIntervalMap()
            let b = Inspection.buffer(index: 0, addr: Self.B, len: 4 * Self.M, runs: whole, kernel: kernel, charged: &c)
            #expect(b.coalesced == coalesced && b.kernelEntries == entries && b.backing == "THP 2 MiB")
            #expect(isNil(b.advice) == coalesced)
        }
        // Within one huge page, 6.3 to 6.10 coalesce too.
        let one = Inspection.buffer(index: 0, addr: Self.B + 4096, len: 8192, runs: [Self.run(0, Self.H, huge: true)],
                                    kernel: .singleFolio, charged: &charged)
        #expect(one.coalesced && one.kernelEntries == 1 && one.lockCharge == Self.H)
        // A second buffer in the same huge page is charged nothing more.
        let again = Inspection.buffer(index: 1, addr: Self.B + Self.M, len: 4096, runs: [Self.run(0, Self.H, huge: true)],
                                      kernel: .singleFolio, charged: &charged)
        #expect(again.lockCharge == 0)
    }

    @Test func mixedBuffersNameTheirSmallPages() {
        var charged = CountedIntervalMap()
        let runs = [Self.run(0, Self.H, huge: true), Self.run(Self.H, Self.H + 8192),
                    Self.run(Self.H + 8192, 3 * Self.H, huge: true)]
        // A 4 KiB run inside what looks like the second extent: it is not
        // huge, so the rest of it is not either.
        let b = Inspection.buffer(index: 3, addr: Self.B, len: 3 * Self.H, runs: runs, kernel: .multiFolio, charged: &charged)
        #expect(!b.coalesced && b.kernelEntries == 3 * Self.H / 4096 && b.backing == "mixed: THP 2 MiB and 4 KiB")
        #expect((b.advice ?? "").contains("+0x200000 (8 KiB)"))
        #expect(b.lockCharge == 2 * Self.H + 8192 + Self.H)
        let small = Inspection.buffer(index: 0, addr: Self.B, len: 4 * Self.M, runs: [Self.run(0, 4 * Self.M)],
                                      kernel: .multiFolio, charged: &charged)
        #expect(small.backing == "4 KiB" && small.kernelEntries == 1024 && (small.advice ?? "").contains("2 as huge pages"))
        var c = CountedIntervalMap()
        let nh = Inspection.buffer(index: 0, addr: Self.B, len: 4 * Self.M, runs: [Self.run(0, 4 * Self.M)],
                                   kernel: .multiFolio, charged: &c, notHuge: ("MADV_NOHUGEPAGE", false))
        #expect((nh.advice ?? "").contains("its mapping cannot hold THP (MADV_NOHUGEPAGE)"))
        // madvise mode stops faults, not MADV_COLLAPSE: the buffer must go first.
        let mode = Inspection.buffer(index: 0, addr: Self.B, len: 4 * Self.M, runs: [Self.run(0, 4 * Self.M)],
                                     kernel: .multiFolio, charged: &c, notHuge: ("madvise mode", true))
        #expect((mode.advice ?? "").contains("unregister it, collapse them"))
        let unknown = Inspection.buffer(index: 0, addr: Self.B + 4096, len: 4096, runs: nil, kernel: .multiFolio, charged: &c)
        #expect(unknown.backing.hasPrefix("unknown") && !unknown.coalesced)
        let kernelOwned = Inspection.buffer(index: 0, addr: 0, len: 1 << 20, runs: [], kernel: .multiFolio, charged: &c)
        #expect(kernelOwned.lockCharge == 0 && kernelOwned.kernelEntries == 0)
        let wraps = Inspection.buffer(index: 0, addr: UInt64.max - 4095, len: 8192, runs: [], kernel: .multiFolio,
                                      charged: &c)
        #expect(wraps.backing == "not mapped")
        let gone = Inspection.buffer(index: 0, addr: Self.B, len: 8192, runs: [Self.run(0, 8192, noFolio: true)],
                                     kernel: .multiFolio, charged: &charged)
        #expect(gone.backing == "not mapped" && !gone.coalesced)
        let tlb = Inspection.buffer(index: 0, addr: Self.B, len: Self.H, runs: [Self.run(0, Self.H, huge: true, hugetlb: true)],
                                    kernel: .multiFolio, charged: &charged)
        #expect(tlb.backing == "hugetlb 2 MiB" && tlb.coalesced)
    }

    @Test func byteTexts() {
        #expect(Inspection.byteText(0) == "0 B")
        #expect(Inspection.byteText(4096) == "4 KiB")
        #expect(Inspection.byteText(3 << 29) == "1.5 GiB")
        #expect(Inspection.byteText(100) == "100 B")
        #expect(Inspection.hexText(0x200000) == "0x200000")
    }
}
