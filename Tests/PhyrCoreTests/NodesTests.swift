// SPDX-License-Identifier: MIT
import Testing
@testable import PhyrCore

@Suite struct NodesTests {
    static let K: UInt64 = 4096, M: UInt64 = 1 << 20

    @Test func sysfsNodeLists() {
        #expect(Nodes.parseList("0\n") == [0])
        #expect(Nodes.parseList("0-1\n") == [0, 1])
        #expect(Nodes.parseList("0,2-3,7") == [0, 2, 3, 7])
        #expect(Nodes.parseList("\n") == [])
        #expect(Nodes.parseList("1-0") == nil)
        #expect(Nodes.parseList("a") == nil)
        #expect(Nodes.parseList("0,,1") == nil)
        #expect(Nodes.parseList("0-1-2") == nil)
        #expect(Nodes.parseList("-1") == nil)
        #expect(Nodes.parseList("0-99999") == nil)
    }

    /// One address per folio: the head of each huge page (or the range's
    /// start inside one), every 4 KiB page elsewhere; none where there is no
    /// memory.
    @Test func oneQuestionPerFolio() {
        let runs = [
            BackingRun(start: 3 * Self.K, end: 2 * Self.M, pageShift: 12, flags: []),
            BackingRun(start: 2 * Self.M, end: 6 * Self.M + Self.K, pageShift: 21, flags: .huge),
            BackingRun(start: 6 * Self.M + Self.K, end: 7 * Self.M, pageShift: 12, flags: .noFolio),
            BackingRun(start: 7 * Self.M, end: 7 * Self.M + 2 * Self.K, pageShift: 12, flags: [], present: false),
            BackingRun(start: 8 * Self.M + Self.K, end: 9 * Self.M, pageShift: 21, flags: .huge),
        ]
        let a = Nodes.folioAddresses(runs)
        let small = (3..<512).map { UInt64($0) * Self.K }
        // A huge page is asked about at its head, even where the range
        // starts past it.
        #expect(a == small + [2 * Self.M, 4 * Self.M, 6 * Self.M, 8 * Self.M])
        // 1 GiB of THP: 512 questions, not 262,144.
        let gig = [BackingRun(start: 0, end: 1 << 30, pageShift: 21, flags: .huge)]
        #expect(Nodes.folioAddresses(gig).count == 512)
        // Huge pages guessed (no PFNs before PAGEMAP_SCAN): THP page by
        // page, hugetlb still by its pages.
        let guessed = [BackingRun(start: 0, end: 2 * Self.M, pageShift: 21, flags: .huge),
                       BackingRun(start: 2 * Self.M, end: 6 * Self.M, pageShift: 21, flags: [.huge, .hugetlb])]
        #expect(Nodes.folioAddresses(guessed, hugeKnown: false).count == 512 + 2)
        let split = Nodes.placed(guessed, nodes: [Int32](repeating: 0, count: 511) + [1, 1, 0], hugeKnown: false)
        #expect(split.map(\.node) == [0, 1, 1, 0])
        #expect(split.map(\.start) == [0, 2 * Self.M - Self.K, 2 * Self.M, 4 * Self.M])
        #expect(Nodes.misplaced(split, from: 0, hugeKnown: false) == [2 * Self.M - Self.K, 2 * Self.M])
    }

    /// Runs are cut exactly where the node changes and joined where it does
    /// not; memory with no folio, and folios the kernel would not place,
    /// keep nodeUnknown.
    @Test func runsCutWhereTheNodeChanges() {
        let runs = [
            BackingRun(start: 0, end: 4 * Self.K, pageShift: 12, flags: []),
            BackingRun(start: 4 * Self.K, end: 5 * Self.K, pageShift: 12, flags: .noFolio),
            BackingRun(start: 2 * Self.M, end: 8 * Self.M, pageShift: 21, flags: .huge),
        ]
        // Four 4 KiB pages, then three huge pages; -14: the kernel's -EFAULT.
        let placed = Nodes.placed(runs, nodes: [0, 0, 0, 1, 1, -14, 1])
        #expect(placed.map(\.start) == [0, 3 * Self.K, 4 * Self.K, 2 * Self.M, 4 * Self.M, 6 * Self.M])
        #expect(placed.map(\.end) == [3 * Self.K, 4 * Self.K, 5 * Self.K, 4 * Self.M, 6 * Self.M, 8 * Self.M])
        #expect(placed.map(\.node) == [0, 1, nodeUnknown, 1, nodeUnknown, 1])
        #expect(Nodes.misplaced(placed, from: 1) == [0, Self.K, 2 * Self.K, 4 * Self.M])
        // Segments keep the cuts, merge nothing across them.
        let segs = Backing.segments(placed, range: 0..<(8 * Self.M))
        #expect(segs.map(\.node) == [0, 1, nodeUnknown, 1, nodeUnknown, 1])
    }

    @Test func oneNodeNeedsNoQuestion() {
        let runs = [BackingRun(start: 0, end: 2 * Self.M, pageShift: 21, flags: .huge),
                    BackingRun(start: 2 * Self.M, end: 3 * Self.M, pageShift: 12, flags: .noFolio)]
        #expect(Nodes.placed(runs, on: 0).map(\.node) == [0, nodeUnknown])
        #expect(Nodes.misplaced(Nodes.placed(runs, on: 0), from: 0).isEmpty)
    }

    /// Physical addresses survive the cut: each piece starts where its
    /// folio does.
    @Test func physicalAddressesFollowThePieces() {
        let runs = [BackingRun(start: 0, end: 4 * Self.M, pageShift: 21, flags: .huge, phys: 1 << 32)]
        let placed = Nodes.placed(runs, nodes: [0, 1])
        #expect(placed.map(\.phys) == [1 << 32, (1 << 32) + 2 * Self.M])
        #expect(placed.map(\.node) == [0, 1])
    }

    /// numa_maps counts pages of kernelpagesize_kB: 4 KiB units for THP, huge
    /// pages for hugetlb; other fields and the file name are passed over.
    @Test func numaMapsLines() {
        func line(_ s: String) -> (start: UInt64, nodes: [NodeBytes])? { Nodes.numaMapsLine(ArraySlice(s.utf8)) }
        let thp = line("7f2c00000000 default anon=1024 dirty=1024 active=0 N1=512 N0=512 kernelpagesize_kB=4")
        #expect(thp?.start == 0x7f2c_0000_0000)
        #expect(thp?.nodes == [NodeBytes(node: 0, bytes: 2 * Self.M), NodeBytes(node: 1, bytes: 2 * Self.M)])
        let tlb = line("7f2a00000000 bind:1 file=/anon_hugepage\040(deleted) huge dirty=2 N1=2 kernelpagesize_kB=2048")
        #expect(tlb?.nodes == [NodeBytes(node: 1, bytes: 4 * Self.M)])
        #expect(line("55d0c0a00000 default file=/usr/bin/cat mapped=3 N0=3 kernelpagesize_kB=4")?.nodes
                == [NodeBytes(node: 0, bytes: 3 * Self.K)])
        #expect(line("7ffd1a000000 default")?.nodes == [])
        #expect(line("not a line") == nil)
        #expect(line("") == nil)
        // A count no machine has wraps rather than traps.
        #expect(line("1000 default N0=18446744073709551615 kernelpagesize_kB=4") != nil)
    }

    @Test func totalsPerNode() {
        let a = [NodeBytes(node: 0, bytes: 5), NodeBytes(node: 2, bytes: 1)]
        let b = [NodeBytes(node: 2, bytes: 4)]
        #expect(Nodes.total([a, b, []]) == [NodeBytes(node: 0, bytes: 5), NodeBytes(node: 2, bytes: 5)])
        let runs = [BackingRun(start: 0, end: 8192, pageShift: 12, flags: [])]
        #expect(Nodes.of(Nodes.placed(runs, nodes: [1, 0])) == [0, 1])
        #expect(Nodes.of(Nodes.placed(runs, nodes: [-14, -14])) == [])
    }
}
