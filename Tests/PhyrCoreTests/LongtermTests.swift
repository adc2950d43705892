// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore

/// Long-term ranges in the pin table: held buffers shared by references and
/// split halves, released exactly when the last range holding one goes; and
/// io_uring's lock charge model.
@Suite struct LongtermTests {
    static let huge: UInt64 = 1 << 21
    static let page: UInt64 = 4096

    /// A long-term pin of `r` over `layout`, its buffers planned as a
    /// registration would plan them, with serials from `serial`.
    static func pin(_ r: Range<UInt64>, _ layout: PinTableTests.Layout, serial: inout UInt64) throws -> PinnedRange {
        var p = layout.pin(r)
        p.isLongterm = true
        p.lockable = []
        p.held = try RegistrationPlan(segments: Array(p.segments)).units.map { u in
            serial += 1
            return HeldBuffer(serial: serial, ring: 3, slot: Int(serial), unit: u, charge: 0, hugeSpans: [])
        }
        return p
    }

    @Test func splitInsideAHugeFolioSharesIt() throws {
        let layout = PinTableTests.Layout(hugeBlock: Array(repeating: true, count: 16))
        var serial: UInt64 = 0
        var t = PinTable()
        let (id, lock, _) = try t.added(try Self.pin(0..<(8 << 20), layout, serial: &serial))
        #expect(lock.isEmpty)
        let old = try #require(t.range(id)?.held.first)
        let whole = try #require(t.range(id))
        let cut = PinTable.heldCut(whole, at: (3 << 20) + 100)
        #expect(cut?.head == BufferUnit(addr: 0, len: 4 << 20, pageShift: 21))
        #expect(cut?.tail == BufferUnit(addr: 2 << 20, len: 6 << 20, pageShift: 21))
        let h = HeldBuffer(serial: 100, ring: 3, slot: 100, unit: try #require(cut?.head), charge: 0, hugeSpans: [])
        let tl = HeldBuffer(serial: 101, ring: 3, slot: 101, unit: try #require(cut?.tail), charge: 0, hugeSpans: [])
        // The wrong buffers are refused, and nothing changes.
        #expect(try t.split(id, at: (3 << 20) + 100, heldHead: tl, heldTail: h) == .heldChanged)
        let (tail, unheld) = try t.splitTail(id, at: (3 << 20) + 100, heldHead: h, heldTail: tl)
        #expect(unheld == [old])
        #expect(t.range(id)?.held == [h] && t.range(tail)?.held == [tl])
        #expect(t.removeRange(tail)?.unheld == [tl])
        #expect(t.removeRange(id)?.unheld == [h])
    }


    @Test func splitInTheFirstFolioKeepsTheBufferForTheTail() throws {
        let layout = PinTableTests.Layout(hugeBlock: Array(repeating: true, count: 16))
        var serial: UInt64 = 0
        var t = PinTable()
        let (id, _, _) = try t.added(try Self.pin(0..<(8 << 20), layout, serial: &serial))
        let old = try #require(t.range(id)?.held.first)
        let whole = try #require(t.range(id))
        let cut = try #require(PinTable.heldCut(whole, at: 100))
        #expect(cut.tail == nil && cut.head == BufferUnit(addr: 0, len: 2 << 20, pageShift: 21))
        let h = HeldBuffer(serial: 100, ring: 3, slot: 100, unit: try #require(cut.head), charge: 0, hugeSpans: [])
        let retained = t.retain(id)  // a registration's reference
        let copy = try #require(retained)
        let (tail, unheld) = try t.splitTail(id, at: 100, heldHead: h)
        #expect(unheld.isEmpty && t.references(toHeld: old.serial) == 2)
        #expect(t.removeRange(copy)?.unheld == [])
        #expect(t.removeRange(tail)?.unheld == [old])
        #expect(t.removeRange(id)?.unheld == [h])
    }

    /// Random long-term pins, retains, splits and releases over random
    /// layouts: at every step each held buffer's count is the number of live
    /// ranges holding it, a buffer comes back for release exactly when the
    /// last goes, and every live range's buffers cover it and stay within
    /// the whole folios it touches.
    @Test(arguments: 0..<40)
    func heldBuffersAreCountedExactly(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed) &* 104_729)
        let layout = PinTableTests.Layout(hugeBlock: (0..<16).map { _ in Bool.random(using: &rng) })
        let total = 16 * Self.huge
        var t = PinTable()
        var serial: UInt64 = 0
        var live: [UInt64] = []
        var released = Set<UInt64>()
        var ever = Set<UInt64>()

        func check() throws {
            var count: [UInt64: Int] = [:]
            for id in live {
                let r = try #require(t.range(id))
                for h in r.held { count[h.serial, default: 0] += 1; #expect(!released.contains(h.serial)) }
                let lo = r.held.map(\.unit.addr).min() ?? 0, hi = r.held.map(\.unit.end).max() ?? 0
                let folios = layout.folioPages(r.range)
                #expect(lo <= r.range.lowerBound && hi >= r.range.upperBound)
                #expect(lo >= UInt64(folios.lowerBound) * Self.page && hi <= UInt64(folios.upperBound) * Self.page)
            }
            for s in ever where !released.contains(s) {
                #expect(t.references(toHeld: s) == count[s, default: 0], "buffer \(s)")
            }
        }
        func release(_ hs: [HeldBuffer]) {
            for h in hs { #expect(!released.contains(h.serial)); released.insert(h.serial) }
        }

        for _ in 0..<200 {
            switch UInt64.random(in: 0..<10, using: &rng) {
            case 0..<3 where live.count < 12:
                let lo = UInt64.random(in: 0..<(total - 1), using: &rng)
                let hi = min(total, lo + UInt64.random(in: 1...(6 << 20), using: &rng))
                let p = try Self.pin(lo..<hi, layout, serial: &serial)
                for h in p.held { ever.insert(h.serial) }
                live.append(try (t.added(p)).id)
            case 3 where !live.isEmpty:
                if let c = t.retain(live.randomElement(using: &rng)!) { live.append(c) }
            case 4..<7 where !live.isEmpty:
                let id = live.randomElement(using: &rng)!
                let r = try #require(t.range(id))
                guard r.range.count > 1 else { continue }
                let off = UInt64.random(in: 1..<UInt64(r.range.count), using: &rng)
                let cut = PinTable.heldCut(r, at: r.range.lowerBound + off)
                func fresh(_ u: BufferUnit?) -> HeldBuffer? {
                    guard let u else { return nil }
                    serial += 1
                    ever.insert(serial)
                    return HeldBuffer(serial: serial, ring: 3, slot: Int(serial), unit: u, charge: 0, hugeSpans: [])
                }
                let (tail, unheld) = try t.splitTail(id, at: off, heldHead: fresh(cut?.head), heldTail: fresh(cut?.tail))
                release(unheld)
                live.append(tail)
            default:
                guard !live.isEmpty else { continue }
                let id = live.remove(at: Int.random(in: 0..<live.count, using: &rng))
                let removal = t.removeRange(id)
                release(try #require(removal).unheld)
            }
            try check()
        }
        for id in live {
            let removal = t.removeRange(id)
            release(try #require(removal).unheld)
        }
        #expect(released == ever, "buffers never released: \(ever.subtracting(released).sorted())")
    }

    @Test func lockChargeCountsHugePagesOncePerRing() {
        var ring = CountedIntervalMap()
        let a = BufferUnit(addr: 0, len: 3 << 20, pageShift: 21)        // two huge pages, the second partly
        let b = BufferUnit(addr: 3 << 20, len: 2 << 20, pageShift: 21)  // shares the second, adds a third
        let c = BufferUnit(addr: 8 << 20, len: 3 * Self.page, pageShift: 12)
        let first = LockCharge.charge([a, c], ring: &ring)
        #expect(first.bytes == (4 << 20) + 3 * Self.page)
        let second = LockCharge.charge([b], ring: &ring)
        #expect(second.bytes == 2 << 20)
        // A clone costs nothing, and its huge pages count as charged.
        var other = CountedIntervalMap()
        #expect(LockCharge.charge([a], cloned: { _ in true }, ring: &other).bytes == 0)
        #expect(LockCharge.charge([b], ring: &other).bytes == 2 << 20)
        // Base pages are charged per buffer, overlap or not.
        #expect(LockCharge.charge([c, c], ring: &ring).bytes == 6 * Self.page)
        LockCharge.release(first.hugeSpans, ring: &ring)
        #expect(LockCharge.charge([a], ring: &ring).bytes == 2 << 20)  // only the first huge page is free again
    }
}
