// SPDX-License-Identifier: MIT
import Testing
@testable import Phyr

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
}
