// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore

/// The pin table's lock instructions, replayed on a model of the kernel's
/// lock state: every lock must land on unlocked memory, every unlock on
/// locked memory, and at each step the locked set must be exactly the whole
/// folios under live ranges.
@Suite struct PinTableTests {
    static let huge: UInt64 = 1 << 21
    static let page: UInt64 = 4096

    /// A synthetic layout: 32 MiB whose 2 MiB blocks are huge or base pages.
    struct Layout {
        var hugeBlock: [Bool]
        func pageSize(at a: UInt64) -> UInt64 { hugeBlock[Int(a / huge)] ? huge : page }

        func runs(_ r: Range<UInt64>) -> [BackingRun] {
            var out: [BackingRun] = []
            var a = alignDown(r.lowerBound, page)
            while a < r.upperBound {
                let size = pageSize(at: a)
                let end = min(alignDown(a, huge) + huge, alignUp(r.upperBound, page))
                out.append(BackingRun(start: a, end: end, pageShift: size == huge ? 21 : 12,
                                      flags: size == huge ? .huge : []))
                a = end
            }
            return out
        }

        func pin(_ r: Range<UInt64>) -> PinnedRange {
            let runs = runs(r)
            let interval = Backing.lockInterval(runs, range: r)
            return PinnedRange(range: r, lockInterval: interval,
                               lockable: Backing.lockablePieces(runs, interval: interval),
                               segments: Backing.segments(runs, range: r), pinFlags: 0)
        }

        /// The whole folios a byte range touches, as a page-index interval.
        func folioPages(_ r: Range<UInt64>) -> Range<Int> {
            let lo = alignDown(r.lowerBound, pageSize(at: r.lowerBound))
            let last = r.upperBound - 1
            let hi = alignDown(last, pageSize(at: last)) + pageSize(at: last)
            return Int(lo / page)..<Int(hi / page)
        }
    }

    @Test(arguments: 0..<30)
    func lockInstructionsAreExact(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed) &* 7919)
        let layout = Layout(hugeBlock: (0..<16).map { _ in Bool.random(using: &rng) })
        let total = 16 * Self.huge
        var table = PinTable()
        let pageCount = Int(total / Self.page)
        var locked = [Bool](repeating: false, count: pageCount)  // as the kernel would hold them
        var live: [UInt64: Range<UInt64>] = [:]

        func apply(lock pieces: [Range<UInt64>]) {
            for piece in pieces {
                #expect(piece.lowerBound % Self.page == 0 && piece.upperBound % Self.page == 0)
                let pages = Int(piece.lowerBound / Self.page)..<Int(piece.upperBound / Self.page)
                #expect(!pages.contains { locked[$0] }, "locked twice")
                for p in pages { locked[p] = true }
            }
        }
        func apply(unlock pieces: [Range<UInt64>]) {
            for piece in pieces {
                let pages = Int(piece.lowerBound / Self.page)..<Int(piece.upperBound / Self.page)
                #expect(pages.allSatisfy { locked[$0] }, "unlocked what was not locked")
                for p in pages { locked[p] = false }
            }
        }

        for _ in 0..<300 {
            let op = Int.random(in: 0..<10, using: &rng)
            if live.isEmpty || (op < 4 && live.count < 24) {
                let lo = UInt64.random(in: 0..<(total - 1), using: &rng)
                let hi = UInt64.random(in: (lo + 1)...min(total, lo + 6 * Self.huge), using: &rng)
                let (id, lock, _) = try table.added(layout.pin(lo..<hi))
                apply(lock: lock)
                live[id] = lo..<hi
            } else if op < 7 {
                let id = live.keys.sorted()[Int.random(in: 0..<live.count, using: &rng)]
                let r = live[id]!
                guard r.count > 1 else { continue }
                let off = UInt64.random(in: 1..<UInt64(r.count), using: &rng)
                let tail = try table.splitTail(id, at: off).tail
                live[id] = r.lowerBound..<(r.lowerBound + off)
                live[tail] = (r.lowerBound + off)..<r.upperBound
                #expect(table.range(id)?.range == live[id] && table.range(tail)?.range == live[tail])
            } else {
                let id = live.keys.sorted()[Int.random(in: 0..<live.count, using: &rng)]
                let freed = table.removed(id)
                #expect(freed != nil)
                apply(unlock: freed ?? [])
                live[id] = nil
            }
            var cover = [Int](repeating: 0, count: pageCount + 1)
            for r in live.values {
                let f = layout.folioPages(r)
                cover[f.lowerBound] += 1
                cover[f.upperBound] -= 1
            }
            var depth = 0
            var expected = [Bool](repeating: false, count: pageCount)
            for p in 0..<pageCount { depth += cover[p]; expected[p] = depth > 0 }
            #expect(locked == expected)
        }
        for id in live.keys { apply(unlock: table.removed(id) ?? []) }
        #expect(!locked.contains(true) && table.lockBoundaries == 0)
    }

    @Test func splitKeepsStraddlingFolioUntilBothGo() throws {
        let layout = Layout(hugeBlock: Array(repeating: true, count: 16))
        var table = PinTable()
        let (id, lock, _) = try table.added(layout.pin((1 << 20)..<(7 << 20)))
        #expect(lock == [0..<(8 << 20)])
        let tail = try table.splitTail(id, at: (2 << 20) + 100).tail
        #expect(table.range(id)?.lockInterval == 0..<(4 << 20))
        #expect(table.range(tail)?.lockInterval == (2 << 20)..<(8 << 20))
        #expect(table.removed(tail) == [(4 << 20)..<(8 << 20)])
        #expect(table.removed(id) == [0..<(4 << 20)])
    }

    @Test func splitRejectsOffsetsOutside() throws {
        let layout = Layout(hugeBlock: Array(repeating: false, count: 16))
        var table = PinTable()
        let (id, _, _) = try table.added(layout.pin(100..<200))
        for offset: UInt64 in [0, 100, .max] {
            let e = refusal { () throws(PhyrError) in try table.splitTail(id, at: offset) }
            #expect(e?.errno == .EINVAL && e?.message.contains("0 < offset < 100") == true, "\(e?.message ?? "")")
        }
        let foreign = refusal { () throws(PhyrError) in try table.splitTail(id + 1, at: 5) }
        #expect(foreign?.message.contains(Absence.foreign.reason) == true)
        #expect(table.count == 1)
    }

    /// A forked child starts empty, tells its parent's ids from released and
    /// foreign ones, and never hands out an id its parent used.
    @Test func childOfForkKnowsItsParentsHandles() throws {
        let layout = Layout(hugeBlock: Array(repeating: false, count: 16))
        var parent = PinTable()
        let (a, _, _) = try parent.added(layout.pin(0..<8192))
        let (b, _, _) = try parent.added(layout.pin(8192..<16384))
        _ = parent.removed(b)
        #expect(parent.absence(of: a) == nil)
        #expect(parent.absence(of: b) == .released)
        #expect(parent.absence(of: b + 1) == .foreign)
        #expect(parent.absence(of: 0) == .foreign)

        var child = parent.forChild()
        #expect(child.count == 0 && child.lockBoundaries == 0)
        #expect(child.absence(of: a) == .parents)
        #expect(child.absence(of: b) == .parents)
        #expect(refusal { () throws(PhyrError) in try child.splitTail(a, at: 1) }?.message.contains(Absence.parents.reason) == true)
        #expect(child.removed(a) == nil)
        let (c, lock, _) = try child.added(layout.pin(0..<8192))
        #expect(c != a && c != b && lock == [0..<8192], "the child locks its own memory afresh")
        _ = child.removed(c)
        #expect(child.absence(of: c) == .released)
    }

    /// Interval arithmetic against a page-by-page model.
    @Test(arguments: 0..<40)
    func subtractAndUncoveredMatchAModel(seed: Int) {
        var rng = SplitMix(seed: UInt64(seed) &+ 99)
        func intervals() -> [Range<UInt64>] {
            var out: [Range<UInt64>] = []
            var at = UInt64.random(in: 0..<4, using: &rng)
            while at < 60 {
                let len = UInt64.random(in: 1...6, using: &rng)
                out.append(at..<min(64, at + len))
                at += len + UInt64.random(in: 0...4, using: &rng)  // touching allowed
            }
            return out
        }
        func pages(_ rs: [Range<UInt64>]) -> Set<UInt64> { Set(rs.flatMap { Array($0) }) }
        let a = intervals(), b = intervals()
        let diff = PinTable.subtract(a, b)
        #expect(pages(diff) == pages(a).subtracting(pages(b)))
        #expect(zip(diff, diff.dropFirst()).allSatisfy { $0.upperBound <= $1.lowerBound })

        var table = PinTable()
        let layout = Layout(hugeBlock: Array(repeating: false, count: 16))
        for r in b { _ = table.insert(layout.pin((r.lowerBound * Self.page)..<(r.upperBound * Self.page))) }
        let scaled = a.map { ($0.lowerBound * Self.page)..<($0.upperBound * Self.page) }
        let open = table.uncovered(scaled).map { ($0.lowerBound / Self.page)..<($0.upperBound / Self.page) }
        #expect(pages(open) == pages(a).subtracting(pages(b)))
        #expect(table.coverage(at: (b.first?.lowerBound ?? 0) * Self.page) >= (b.isEmpty ? 0 : 1))
    }

    @Test func handlesNeverMatchRealPointers() {
        for id: UInt64 in [1, 2, 1 << 40, 1 << 55] {
            #expect(PinTable.id(forHandle: PinTable.handle(for: id)) ?? 0 == id)
        }
        // User-space and kernel-space canonical addresses are never handles.
        for raw: UInt in [0, 1, 0x7fff_ffff_f000, 0xffff_8000_0000_0000, 0xffff_ffff_ffff_ffff, 0x8100_0000_0000_0001] {
            #expect(isNil(PinTable.id(forHandle: raw)))
        }
    }
}
