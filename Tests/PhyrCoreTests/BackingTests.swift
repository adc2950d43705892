// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore

@Suite struct BackingTests {
    static let M: UInt64 = 1 << 20
    static func mapping(_ lo: UInt64, _ hi: UInt64, page: UInt64 = 4096, shared: Bool = false,
                        noFolio: Bool = false) -> Mapping {
        Mapping(start: lo, end: hi, readable: true, writable: true, shared: shared, pageSize: page,
                noFolio: noFolio, pmdMappedBytes: 0, name: "")
    }
    static func region(_ lo: UInt64, _ hi: UInt64, huge: Bool = false, file: Bool = false) -> ScanRegion {
        ScanRegion(start: lo, end: hi, present: true, huge: huge, file: file, zeroPage: false)
    }

    @Test func gapsInTheScanHaveNoFolio() {
        let maps = [Self.mapping(0, 16 * Self.M)]
        let runs = Backing.classify([Self.region(0, 2 * Self.M, huge: true), Self.region(4 * Self.M, 16 * Self.M)],
                                    span: 0..<(16 * Self.M), mappings: maps)
        #expect(runs.map(\.flags) == [.huge, .noFolio, []])
        #expect(runs.map(\.pageShift) == [21, 12, 12])
        #expect(runs[1].start == 2 * Self.M && runs[1].end == 4 * Self.M)
    }

    @Test func hugetlbAndSharedComeFromTheMapping() {
        let maps = [Self.mapping(0, 2 * Self.M, page: 2 * Self.M), Self.mapping(2 * Self.M, 3 * Self.M, shared: true),
                    Self.mapping(3 * Self.M, 1024 * Self.M, page: 1 << 30)]
        // One scan region may span VMAs of different kinds; it is cut at each.
        let runs = Backing.classify([Self.region(0, 1024 * Self.M, huge: true)], span: 0..<(1024 * Self.M), mappings: maps)
        #expect(runs.map(\.flags) == [[.huge, .hugetlb], [.huge, .shared], [.huge, .hugetlb]])
        #expect(runs.map(\.pageShift) == [21, 21, 30])
    }

    @Test func fileCategoryMeansShared() {
        let runs = Backing.classify([Self.region(0, 8192, file: true)], span: 0..<8192,
                                    mappings: [Self.mapping(0, 8192)])
        #expect(runs.map(\.flags) == [.shared])
    }

    @Test func lockIntervalRoundsToWholeFolios() {
        let runs = [BackingRun(start: 3 * Self.M, end: 5 * Self.M, pageShift: 21, flags: .huge),
                    BackingRun(start: 5 * Self.M, end: 9 * Self.M + 4096, pageShift: 12, flags: [])]
        let r = (3 * Self.M + 100)..<(9 * Self.M + 5)
        #expect(Backing.lockInterval(runs, range: r) == (2 * Self.M)..<(9 * Self.M + 4096))
        let noFolioEdge = [BackingRun(start: 0, end: 8192, pageShift: 12, flags: .noFolio)]
        #expect(Backing.lockInterval(noFolioEdge, range: 100..<5000) == 0..<8192)
    }

    @Test func lockablePiecesSkipHugetlbAndNoFolio() {
        let runs = [BackingRun(start: 3 * Self.M, end: 4 * Self.M, pageShift: 21, flags: .huge),
                    BackingRun(start: 4 * Self.M, end: 6 * Self.M, pageShift: 12, flags: .noFolio),
                    BackingRun(start: 6 * Self.M, end: 8 * Self.M, pageShift: 21, flags: [.huge, .hugetlb]),
                    BackingRun(start: 8 * Self.M, end: 9 * Self.M, pageShift: 12, flags: [])]
        let pieces = Backing.lockablePieces(runs, interval: (2 * Self.M)..<(9 * Self.M))
        #expect(pieces == [(2 * Self.M)..<(4 * Self.M), (8 * Self.M)..<(9 * Self.M)])
    }

    @Test func segmentsMergeOnlyWhatIsContiguous() {
        let runs = [BackingRun(start: 0, end: 4096, pageShift: 12, flags: [], phys: 0x10000),
                    BackingRun(start: 4096, end: 8192, pageShift: 12, flags: [], phys: 0x11000),
                    BackingRun(start: 8192, end: 12288, pageShift: 12, flags: [], phys: 0x50000),
                    BackingRun(start: 12288, end: 16384, pageShift: 12, flags: .shared, phys: 0x51000)]
        let segs = Backing.segments(runs, range: 100..<16000)
        #expect(segs.map(\.addr) == [100, 8192, 12288])
        #expect(segs.map(\.len) == [8092, 4096, 16000 - 12288])
        #expect(segs[0].phys == 0x10000 + 100)
        let unknown = runs.map { var r = $0; r.phys = physUnknown; return r }
        #expect(Backing.segments(unknown, range: 0..<16384).count == 2)
    }

    @Test func folioAtAddress() {
        let segs: ContiguousArray<Segment> = [
            Segment(addr: 100, len: 2 * Self.M - 100, phys: physUnknown, pageShift: 21, flags: .huge),
            Segment(addr: 2 * Self.M, len: 8192, phys: physUnknown, pageShift: 12, flags: []),
            Segment(addr: 2 * Self.M + 8192, len: 4096, phys: physUnknown, pageShift: 12, flags: .noFolio)]
        #expect(Backing.folio(at: 5000, in: segs) == 0..<(2 * Self.M))
        #expect(Backing.folio(at: 2 * Self.M + 5000, in: segs) == (2 * Self.M + 4096)..<(2 * Self.M + 8192))
        #expect(Backing.folio(at: 2 * Self.M + 8200, in: segs) == (2 * Self.M + 8192)..<(2 * Self.M + 12288))
    }

    @Test func byteCountsReadWell() {
        #expect(byteCount(100) == "100 bytes")
        #expect(byteCount(8 << 20) == "8 MiB")
        #expect(byteCount(4608) == "4.5 KiB")
        #expect(byteCount(UInt64.max) == "15.9 EiB")
    }

    /// Whether faulting in may map huge pages, against a brute-force model:
    /// some whole aligned 2 MiB extent inside the mapping meets the piece.
    @Test(arguments: 0..<40) func faultingMayMapHugePagesMatchesAModel(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        func below(_ n: UInt64) -> UInt64 { UInt64.random(in: 0..<n, using: &rng) }
        let M = Self.M
        for _ in 0..<200 {
            let start = below(64) * 4096 + below(4) * 2 * M
            let end = start + (1 + below(2048)) * 4096
            let lo = start + below((end - start) / 4096) * 4096
            let hi = lo + (1 + below((end - lo) / 4096)) * 4096
            var m = Self.mapping(start, end)
            let mode = [THPMode.always, .madvise, .never][Int(below(3))]
            let advice = [HugepageAdvice.none, .hugepage, .noHugepage][Int(below(3))]
            m.hugepageAdvice = advice
            var fits = false
            var e = (start + 2 * M - 1) / (2 * M) * (2 * M)
            while e + 2 * M <= end {
                if e < hi && e + 2 * M > lo { fits = true }
                e += 2 * M
            }
            let admitted = mode == .always ? advice != .noHugepage : mode == .madvise && advice == .hugepage
            #expect(m.faultingMayMapHugePages(lo..<hi, mode: mode) == (admitted && fits),
                    "mapping \(start)-\(end) piece \(lo)-\(hi) \(mode) \(advice)")
        }
        // What the source cannot tell, and file memory, answer yes; hugetlb and no-folio memory no.
        var unknown = Self.mapping(0, 64 * M)
        #expect(unknown.faultingMayMapHugePages(0..<4096, mode: .never))
        unknown.hugepageAdvice = HugepageAdvice.none
        unknown.file = FileKey(major: 8, minor: 1, inode: 12)
        #expect(unknown.faultingMayMapHugePages(0..<4096, mode: .never))
        #expect(!Self.mapping(0, 64 * M, page: 2 * M).faultingMayMapHugePages(0..<(2 * M), mode: .always))
        #expect(!Self.mapping(0, 64 * M, noFolio: true).faultingMayMapHugePages(0..<(2 * M), mode: .always))
    }
}
