// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore

/// PHYR_PIN_HUGE's choice of extents (`Backing.collapsible`), on fixed
/// layouts and against a brute-force reading of its rule on random ones.
@Suite struct CollapseTests {
    static let M: UInt64 = 1 << 20
    static let H: UInt64 = 2 << 20
    static func mapping(_ lo: UInt64, _ hi: UInt64, page: UInt64 = 4096, noFolio: Bool = false,
                        advice: HugepageAdvice? = nil) -> Mapping {
        var m = Mapping(start: lo, end: hi, readable: true, writable: true, shared: false, pageSize: page,
                        noFolio: noFolio, pmdMappedBytes: 0, name: "")
        m.hugepageAdvice = advice
        return m
    }
    static func run(_ lo: UInt64, _ hi: UInt64, huge: Bool = false, noFolio: Bool = false) -> BackingRun {
        BackingRun(start: lo, end: hi, pageShift: huge ? 21 : 12, flags: noFolio ? .noFolio : huge ? .huge : [])
    }

    @Test func strayExtentsAmongHugeOnesAndPartlyCoveredEnds() {
        let maps = [Self.mapping(0, 16 * Self.M)]
        let runs = [Self.run(Self.M, 2 * Self.H), Self.run(2 * Self.H, 5 * Self.H, huge: true),
                    Self.run(5 * Self.H, 6 * Self.H), Self.run(6 * Self.H, 7 * Self.H + Self.M)]
        // The range starts inside extent 0 and ends inside extent 7: both whole.
        let got = Backing.collapsible(runs, mappings: maps, range: (Self.M + 100)..<(7 * Self.H + Self.M))
        #expect(got == [0..<(2 * Self.H), (5 * Self.H)..<(8 * Self.H)])
    }

    @Test func guessedHugePagesAreCollapsedToo() {
        // Without PAGEMAP_SCAN or PFNs a fully present block may be taken for
        // a huge page: then it is asked for too (a no-op where it is huge).
        let runs = [Self.run(0, 2 * Self.H, huge: true), Self.run(2 * Self.H, 3 * Self.H)]
        let maps = [Self.mapping(0, 3 * Self.H)]
        #expect(Backing.collapsible(runs, mappings: maps, range: 0..<(3 * Self.H)) == [(2 * Self.H)..<(3 * Self.H)])
        #expect(Backing.collapsible(runs, mappings: maps, range: 0..<(3 * Self.H), hugeKnown: false) == [0..<(3 * Self.H)])
    }

    @Test func mappingsThatCannotHoldAnAlignedExtent() {
        // [1, 5) MiB holds only [2, 4); a 1 MiB mapping holds none.
        let maps = [Self.mapping(Self.M, 5 * Self.M), Self.mapping(5 * Self.M, 6 * Self.M)]
        let runs = [Self.run(Self.M, 6 * Self.M)]
        #expect(Backing.collapsible(runs, mappings: maps, range: Self.M..<(6 * Self.M)) == [Self.H..<(2 * Self.H)])
        // Two mappings meeting inside an extent: neither holds it.
        let split = [Self.mapping(0, 3 * Self.M), Self.mapping(3 * Self.M, 8 * Self.M)]
        #expect(Backing.collapsible([Self.run(0, 8 * Self.M)], mappings: split, range: 0..<(8 * Self.M))
                == [0..<Self.H, (2 * Self.H)..<(4 * Self.H)])
    }

    @Test func neverHugetlbNoFolioOrNoHugepage() {
        let runs = [Self.run(0, 4 * Self.H)]
        for m in [Self.mapping(0, 4 * Self.H, page: Self.H), Self.mapping(0, 4 * Self.H, noFolio: true),
                  Self.mapping(0, 4 * Self.H, advice: .noHugepage)] {
            #expect(Backing.collapsible(runs, mappings: [m], range: 0..<(4 * Self.H)).isEmpty)
        }
        // A hole of no folio in an extent (a PFN map the scan skipped) keeps it out.
        let holed = [Self.run(0, Self.M), Self.run(Self.M, Self.M + 4096, noFolio: true), Self.run(Self.M + 4096, Self.H)]
        #expect(Backing.collapsible(holed, mappings: [Self.mapping(0, Self.H)], range: 0..<Self.H).isEmpty)
        // MADV_HUGEPAGE and unknown advice are both tried.
        for advice: HugepageAdvice? in [.hugepage, HugepageAdvice.none, nil] {
            #expect(Backing.collapsible(runs, mappings: [Self.mapping(0, 4 * Self.H, advice: advice)],
                                        range: 0..<4096) == [0..<Self.H])
        }
    }

    /// Random layouts of mappings and runs against the rule read literally:
    /// an extent is chosen iff the range meets it, one eligible mapping holds
    /// it whole, and no run in it is huge or without folio; chosen extents
    /// merge only within one mapping.
    @Test(arguments: 0..<30)
    func randomLayoutsMatchTheRule(seed: Int) {
        var rng = SplitMix(seed: UInt64(seed) &* 7919 &+ 1)
        let page: UInt64 = 4096
        let total = 24 * Self.H
        var maps: [Mapping] = []
        var at: UInt64 = 0
        while at < total {
            let len = min(total - at, page * UInt64.random(in: 1...(3 * 512), using: &rng))
            if Bool.random(using: &rng) || maps.isEmpty {
                let kind = Int.random(in: 0..<8, using: &rng)
                maps.append(Self.mapping(at, at + len, page: kind == 0 ? Self.H : page, noFolio: kind == 1,
                                         advice: kind == 2 ? .noHugepage : kind == 3 ? .hugepage : nil))
            }
            at += len
        }
        var runs: [BackingRun] = []
        var e: UInt64 = 0
        while e < total {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: runs.append(Self.run(e, e + Self.H, huge: true))
            case 1:
                let cut = e + page * UInt64.random(in: 1..<512, using: &rng)
                runs.append(Self.run(e, cut))
                runs.append(Self.run(cut, cut + page, noFolio: Bool.random(using: &rng)))
                runs.append(Self.run(cut + page, e + Self.H))
            default: runs.append(Self.run(e, e + Self.H))
            }
            e += Self.H
        }
        let lo = page * UInt64.random(in: 0..<(total / page - 1), using: &rng)
        let hi = lo + page * UInt64.random(in: 1...((total - lo) / page), using: &rng)
        let got = Backing.collapsible(runs, mappings: maps, range: lo..<hi)

        var want: [(Range<UInt64>, Int)] = []
        var x: UInt64 = 0
        while x < total {
            let ext = x..<(x + Self.H)
            x += Self.H
            guard ext.lowerBound < alignUp(hi, page), lo < ext.upperBound else { continue }
            guard let i = maps.firstIndex(where: { $0.start <= ext.lowerBound && ext.upperBound <= $0.end }) else { continue }
            let m = maps[i]
            guard !m.isHugetlb, !m.noFolio, m.hugepageAdvice != .noHugepage else { continue }
            let inside = runs.filter { $0.start < ext.upperBound && ext.lowerBound < $0.end }
            guard !inside.contains(where: { $0.flags.contains(.noFolio) || $0.pageShift >= 21 }) else { continue }
            if let last = want.last, last.1 == i, last.0.upperBound == ext.lowerBound {
                want[want.count - 1].0 = last.0.lowerBound..<ext.upperBound
            } else {
                want.append((ext, i))
            }
        }
        #expect(got == want.map(\.0))
        for r in got { #expect(r.lowerBound % Self.H == 0 && r.upperBound % Self.H == 0) }
    }
}
