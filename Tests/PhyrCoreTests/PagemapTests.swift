// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore

/// The reading of pagemap entries, on synthetic entries.
@Suite struct PagemapTests {
    static let page: UInt64 = 4096
    static let huge: UInt64 = 1 << 21
    static let perBlock = 512

    static func entry(pfn: UInt64, present: Bool = true, file: Bool = false) -> UInt64 {
        (present ? Pagemap.present : 0) | (file ? Pagemap.file : 0) | (pfn & Pagemap.pfnMask)
    }

    static func mapping(_ start: UInt64, _ end: UInt64, hugetlb: Bool = false) -> Mapping {
        Mapping(start: start, end: end, readable: true, writable: true, shared: false,
                pageSize: hugetlb ? huge : page, noFolio: false, pmdMappedBytes: hugetlb ? 0 : huge, name: "")
    }

    @Test func hugePagesAreWholeAlignedContiguousPresentBlocks() {
        let good = (0..<Self.perBlock).map { Self.entry(pfn: 0x40000 + UInt64($0)) }
        #expect(Pagemap.looksLikeHugePage(good[...]))
        let misaligned = (0..<Self.perBlock).map { Self.entry(pfn: 0x40001 + UInt64($0)) }
        #expect(!Pagemap.looksLikeHugePage(misaligned[...]))
        var gap = good
        gap[300] = Self.entry(pfn: 0x99999)
        #expect(!Pagemap.looksLikeHugePage(gap[...]))
        var hole = good
        hole[7] = Self.entry(pfn: 0, present: false)
        #expect(!Pagemap.looksLikeHugePage(hole[...]))
        let hidden = (0..<Self.perBlock).map { _ in Self.entry(pfn: 0) }
        #expect(Pagemap.looksLikeHugePage(hidden[...]), "PFNs hidden: smaps' count is trusted")
    }

    /// Random entries over four blocks: the regions tile the span in order,
    /// are maximal, say each page's presence and file bit as its entry does,
    /// and are huge exactly on whole blocks of the mapping that look huge.
    @Test(arguments: 0..<50)
    func regionsTileAndFollowTheEntries(seed: Int) {
        var rng = SplitMix(seed: UInt64(seed) &* 31_337)
        let base: UInt64 = 64 * Self.huge
        let m = Self.mapping(base + Self.page * UInt64.random(in: 0..<3, using: &rng), base + 4 * Self.huge)
        var entries: [UInt64] = []
        for b in 0..<4 {
            let kind = Int.random(in: 0..<4, using: &rng)
            for i in 0..<Self.perBlock {
                let pfn = UInt64(0x80000 + b * Self.perBlock + i)
                switch kind {
                case 0: entries.append(Self.entry(pfn: pfn))                       // a huge page
                case 1: entries.append(Self.entry(pfn: pfn ^ UInt64(i % 3)))        // scattered base pages
                case 2: entries.append(Self.entry(pfn: pfn, present: Bool.random(using: &rng)))
                default: entries.append(Self.entry(pfn: pfn, present: true, file: i % 2 == 0))
                }
            }
        }
        let lo = m.start + Self.page * UInt64.random(in: 0..<700, using: &rng)
        let hi = m.end - Self.page * UInt64.random(in: 0..<700, using: &rng)
        var out: [ScanRegion] = []
        Pagemap.regions(entries, from: base, lo, hi, in: m, thp: true, into: &out)
        #expect(!out.isEmpty && out[0].start == lo && out[out.count - 1].end == hi)
        for (r, next) in zip(out, out.dropFirst()) {
            #expect(r.end == next.start)
            #expect(r.present != next.present || r.huge != next.huge || r.file != next.file, "not maximal")
        }
        for r in out {
            var a = r.start
            while a < r.end {
                let e = entries[Int((a - base) / Self.page)]
                #expect((e & Pagemap.present != 0) == r.present || r.huge)
                let block = alignDown(a, Self.huge), first = Int((block - base) / Self.page)
                let wholeBlock = block >= m.start && block + Self.huge <= m.end
                let looksHuge = wholeBlock && Pagemap.looksLikeHugePage(entries[first..<(first + Self.perBlock)])
                #expect(r.huge == looksHuge, "page \(hex(a)): huge \(r.huge), block looks huge \(looksHuge)")
                if !r.huge { #expect((e & Pagemap.file != 0) == r.file) }
                a += Self.page
            }
        }
    }

    @Test func hugetlbPagesArePresentHugePages() {
        let m = Self.mapping(0, Self.huge, hugetlb: true)
        let entries = (0..<Self.perBlock).map { Self.entry(pfn: 0x1000 + UInt64($0)) }
        var out: [ScanRegion] = []
        Pagemap.regions(entries, from: 0, 0, Self.huge, in: m, thp: false, into: &out)
        #expect(out == [ScanRegion(start: 0, end: Self.huge, present: true, huge: true, file: false, zeroPage: false)])
    }

    @Test func physicalAddressesMergeOnlyWhereContiguous() {
        let run = BackingRun(start: 0x10000, end: 0x14000, pageShift: 12, flags: [])
        var out: [BackingRun] = []
        for (i, pfn) in [UInt64(0x500), 0x501, 0x700, 0].enumerated() {
            Pagemap.appendPhysical(run, page: 0x10000 + UInt64(i) * Self.page, size: Self.page,
                                   entry: Self.entry(pfn: pfn), into: &out)
        }
        #expect(out.map(\.phys) == [0x500000, 0x700000, physUnknown])
        #expect(out.map(\.start) == [0x10000, 0x12000, 0x13000] && out.map(\.end) == [0x12000, 0x13000, 0x14000])
        // A huge page's address, for a run that starts inside it.
        var hugeOut: [BackingRun] = []
        let hugeRun = BackingRun(start: 0x200100, end: 0x400000, pageShift: 21, flags: .huge)
        Pagemap.appendPhysical(hugeRun, page: 0x200000, size: Self.huge, entry: Self.entry(pfn: 0x40000), into: &hugeOut)
        let expected: UInt64 = 0x4000_0000 + 0x100
        #expect(hugeOut.count == 1 && hugeOut.map(\.phys) == [expected])
    }
}
