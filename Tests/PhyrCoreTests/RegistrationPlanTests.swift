// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore

/// The planner on synthetic layouts, against the rules as the design states
/// them and against a brute-force minimum.
@Suite struct RegistrationPlanTests {
    static let K: UInt64 = 1024

    static func seg(_ lo: UInt64, _ hi: UInt64, shift: UInt32, flags: SegmentFlags = []) -> Segment {
        Segment(addr: lo, len: hi - lo, phys: physUnknown, pageShift: shift, flags: shift > 12 ? flags.union(.huge) : flags)
    }

    /// The fewest pieces a run can be cut into: pieces of at most `maxUnit`,
    /// inner cuts on folio boundaries for huge runs (any page for base runs).
    static func minimumPieces(_ lo: UInt64, _ hi: UInt64, shift: UInt32, maxUnit: UInt64) -> Int {
        let step: UInt64 = shift > 12 ? 1 << UInt64(shift) : 4096
        var cuts = [lo]
        var c = alignDown(lo, step) + step
        while c < hi { cuts.append(c); c += step }
        cuts.append(hi)
        // Base runs may also be cut at any byte; with page-aligned inputs and
        // maxUnit a multiple of the page size, page cuts reach the same minimum.
        var best = [Int](repeating: Int.max, count: cuts.count)
        best[0] = 0
        for j in 1..<cuts.count {
            for i in 0..<j where cuts[j] - cuts[i] <= maxUnit && best[i] != Int.max {
                best[j] = min(best[j], best[i] + 1)
            }
        }
        return best[cuts.count - 1]
    }

    @Test(arguments: 0..<60)
    func unitsObeyTheRulesAndAreFewest(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed) &+ 77)
        let maxUnit = 64 * Self.K
        // Blocks of 16 KiB "huge pages" (shift 14) or 4 KiB pages, with gaps.
        var segs: [Segment] = []
        var at: UInt64 = 0
        for _ in 0..<Int.random(in: 1...12, using: &rng) {
            if Bool.random(using: &rng) { at += 16 * Self.K * UInt64.random(in: 1...3, using: &rng) }  // a gap
            let huge = Bool.random(using: &rng)
            let folios = UInt64.random(in: 1...12, using: &rng)
            let len = folios * 16 * Self.K
            // Ranges may start and end inside folios.
            let lo = at + (Bool.random(using: &rng) ? 4 * Self.K * UInt64.random(in: 0...3, using: &rng) : 0)
            segs.append(Self.seg(lo, at + len, shift: huge ? 14 : 12))
            // Sometimes the same memory twice (overlapping ranges).
            let mid = lo + alignDown((at + len - lo) / 2, 4096)
            if mid > lo, Int.random(in: 0..<4, using: &rng) == 0 { segs.append(Self.seg(lo, mid, shift: huge ? 14 : 12)) }
            at += len
        }
        segs.shuffle(using: &rng)
        let plan = try RegistrationPlan(segments: segs, maxUnit: maxUnit)
        let units = plan.units
        let runs = RegistrationPlan.uniformRuns(segs)

        // Tiling: the units cover exactly the union of the input, in order.
        var covered: [Range<UInt64>] = []
        for u in units {
            if let last = covered.last, last.upperBound == u.addr { covered[covered.count - 1] = last.lowerBound..<u.end }
            else { covered.append(u.addr..<u.end) }
        }
        var union: [Range<UInt64>] = []
        for r in runs {
            if let last = union.last, last.upperBound == r.lo { union[union.count - 1] = last.lowerBound..<r.hi }
            else { union.append(r.lo..<r.hi) }
        }
        #expect(covered == union)
        #expect(zip(units, units.dropFirst()).allSatisfy { $0.end <= $1.addr }, "not in address order")

        for u in units {
            #expect(u.len > 0 && u.len <= maxUnit)
            // One page size: the unit lies inside one uniform run.
            let run = runs.first { $0.lo <= u.addr && u.end <= $0.hi }
            #expect(run != nil && run?.shift == u.pageShift, "unit spans a page-size change")
            if u.isHuge, let run {
                let folio: UInt64 = 1 << UInt64(u.pageShift)
                // The first folio runs to its end; middle folios are whole: a
                // unit starts at its run's start or on a folio boundary, and
                // ends at its run's end or on one.
                #expect(u.addr == run.lo || u.addr % folio == 0)
                #expect(u.end == run.hi || u.end % folio == 0)
            }
        }
        let minimum = runs.reduce(0) { $0 + Self.minimumPieces($1.lo, $1.hi, shift: $1.shift, maxUnit: maxUnit) }
        #expect(units.count == minimum)
    }

    @Test func gibibyteLimitCutsOnFolioBoundaries() throws {
        let M: UInt64 = 1 << 20
        // 1.5 GiB of THP starting 100 bytes into a huge page.
        let plan = try RegistrationPlan(segments: [Self.seg(100, 1536 * M, shift: 21)])
        #expect(plan.units.map(\.addr) == [100, 1024 * M])
        #expect(plan.units[0].end == 1024 * M)  // 1 GiB - 100 bytes: within the limit
        #expect(plan.units.allSatisfy { $0.coalesces(on: .multiFolio) && $0.len <= 1 << 30 })
        // 1 GiB hugetlb pages: one per buffer, the first running to its end.
        let G: UInt64 = 1 << 30
        let gig = try RegistrationPlan(segments: [Self.seg(G / 2, 3 * G, shift: 30)])
        #expect(gig.units.map(\.len) == [G / 2, G, G])
        #expect(gig.units.allSatisfy { $0.coalesces(on: .multiFolio) })
        // Base pages: cut at exactly 1 GiB.
        let base = try RegistrationPlan(segments: [Self.seg(0, 3 * G / 2, shift: 12)])
        #expect(base.units.map(\.len) == [G, G / 2])
        #expect(!base.units[0].coalesces(on: .multiFolio) && base.units[0].kernelEntries(on: .multiFolio) == G / 4096)
    }

    @Test func disagreeingDescriptionsTakeTheSmallerPage() throws {
        let M: UInt64 = 1 << 20
        let plan = try RegistrationPlan(segments: [Self.seg(0, 8 * M, shift: 21), Self.seg(2 * M, 4 * M, shift: 12)])
        #expect(plan.units.map(\.pageShift) == [21, 12, 21])
        #expect(plan.units.map(\.addr) == [0, 2 * M, 4 * M])
    }

    @Test func noFolioIsRefused() {
        let e = refusal { () throws(PhyrError) in try RegistrationPlan(segments: [Self.seg(0, 4096, shift: 12, flags: .noFolio)]) }
        #expect(e?.errno == .EOPNOTSUPP && e?.message.contains("no folio") == true)
    }

    @Test func entriesAndChargeCountFolios() throws {
        let M: UInt64 = 1 << 20
        let u = try RegistrationPlan(segments: [Self.seg(M, 7 * M, shift: 21)]).units[0]
        #expect(u.kernelEntries(on: .multiFolio) == 4)       // folios [0,2) [2,4) [4,6) [6,8) MiB
        #expect(u.lockCharge == 8 * M)
        #expect(u.chargeSpan == 0..<(8 * M))
    }

    /// What each kernel generation holds for the same units: 6.1 one entry per
    /// 4 KiB page, 6.3-6.10 one entry only for a unit within one folio, 6.11+
    /// one per folio; the charge is whole huge pages on all of them.
    @Test func entriesFollowWhatTheKernelCoalesces() throws {
        let M: UInt64 = 1 << 20
        let many = BufferUnit(addr: M, len: 7 * M, pageShift: 21)        // 4 folios, first partial
        let one = BufferUnit(addr: 2 * M + 4096, len: M, pageShift: 21)  // inside one folio
        let base = BufferUnit(addr: 0, len: 64 * 1024, pageShift: 12)
        #expect([Coalescing.perPage, .singleFolio, .multiFolio].map { many.kernelEntries(on: $0) } == [1792, 1792, 4])
        #expect([Coalescing.perPage, .singleFolio, .multiFolio].map { many.coalesces(on: $0) } == [false, false, true])
        #expect([Coalescing.perPage, .singleFolio, .multiFolio].map { one.kernelEntries(on: $0) } == [256, 1, 1])
        #expect([Coalescing.perPage, .singleFolio, .multiFolio].map { base.kernelEntries(on: $0) } == [16, 16, 16])
        #expect(!base.coalesces(on: .multiFolio))
        #expect(many.lockCharge == 8 * M && one.lockCharge == 2 * M && base.lockCharge == 64 * 1024)
        let plan = try RegistrationPlan(segments: [Self.seg(0, 8 * M, shift: 21), Self.seg(2 * M, 4 * M, shift: 12)])
        #expect(plan.kernelEntries(on: .multiFolio) == 1 + 512 + 2)  // [0,2M) huge, [2M,4M) base, [4M,8M) huge
        #expect(plan.kernelEntries(on: .perPage) == 2048)
    }

    @Test func slotsAreLowestFirstAndRunsBatch() {
        var t = SlotTable(size: 8)
        t.take([0, 1, 2, 3], for: 1)
        t.release([1, 2])
        #expect(t.lowestFree(3) == [1, 2, 4])
        #expect(t.lowestFree(7) == nil)
        #expect(SlotTable.runs([4, 1, 2, 7]) == [1..<3, 4..<5, 7..<8])
        t.grow(to: 16)
        #expect(t.free == 14 && t.isFree(15))
    }
}
