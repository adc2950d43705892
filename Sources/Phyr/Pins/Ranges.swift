// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// Live ranges read, split and retained: what changes counts only inside
/// memory already locked, under the pin table's lock alone.
enum Ranges {
    /// Runs `body` on live range `id` under the table's lock, so a concurrent
    /// split is never seen half done.
    static func with<T>(_ id: UInt64, _ body: (PinnedRange) -> T) throws(PhyrError) -> T {
        try Pinner.table.withLock { t throws(PhyrError) -> T in
            guard let r = t.range(id) else {
                throw (t.absence(of: id) ?? .foreign).error("range", handle: UInt64(PinTable.handle(for: id)))
            }
            return body(r)
        }
    }

    /// A new reference to each of live ranges `ids`, all or none: new ids
    /// over the same memory that keep it locked on their own (a registration
    /// holds them, so its caller may unpin its own handles at once).
    static func retain(_ ids: [UInt64]) throws(PhyrError) -> [(id: UInt64, range: PinnedRange)] {
        try Pinner.table.withLock { t throws(PhyrError) -> [(id: UInt64, range: PinnedRange)] in
            var out: [(id: UInt64, range: PinnedRange)] = []
            for (i, id) in ids.enumerated() {
                guard let copy = t.retain(id), let pin = t.range(copy) else {
                    // Dropping references just taken frees nothing: the
                    // ranges retained still hold every lock, mark and buffer.
                    for c in out { _ = t.removeRange(c.id) }
                    guard let why = t.absence(of: id) else { throw PinTable.tooMany }
                    throw why.error("range", handle: UInt64(PinTable.handle(for: id))).prefixed("ranges[\(i)]")
                }
                out.append((copy, pin))
            }
            return out
        }
    }

    /// Splits range `id`.  A long-term range whose cut lies inside one of its
    /// buffers gets that buffer's two halves pinned first, outside the table's
    /// lock, each holding the folio at the cut; the old buffer goes once no
    /// range shares it.  Tries again if another thread split it meanwhile.
    static func split(_ id: UInt64, at offset: UInt64) throws(PhyrError) -> UInt64 {
        while true {
            // A cut that needs no new kernel pin (a lock-only range, or one
            // on a held buffer's edge) is made at once, under one lock.
            enum Step { case done(PinTable.SplitOutcome), pinHalves(BufferUnit?, BufferUnit?, PinnedRange) }
            let step = try Pinner.table.withLock { t throws(PhyrError) -> Step in
                if let pin = t.range(id), offset > 0, offset < UInt64(pin.range.count),
                   let cut = PinTable.heldCut(pin, at: pin.range.lowerBound + offset) {
                    return .pinHalves(cut.head, cut.tail, pin)
                }
                return .done(try t.split(id, at: offset))
            }
            var fresh: [HeldBuffer] = []
            var halves: (head: BufferUnit?, tail: BufferUnit?) = (nil, nil)
            switch step {
            case .done(.split(let tail, let unheld)):
                Holder.release(unheld)
                return tail
            case .done(.heldChanged):
                continue
            case .pinHalves(let head, let tail, let pin):
                halves = (head, tail)
                let units = [head, tail].compactMap { $0 }
                fresh = try Holder.hold(units, what: "a half of a split range")
                // The halves pin what is mapped now.  Where the caller was given
                // physical addresses, they must be the pages held all along:
                // memory replaced under the pin (MADV_DONTNEED, a new mapping)
                // must not lose the kernel's pin on the pages a device may
                // still be writing to.
                if pin.pinFlags & PinFlag.phys != 0, let moved = replacedPage(pin, within: units) {
                    Holder.release(fresh)
                    throw PhyrError(.EFAULT, "the memory at \(hex(moved)) is no longer the page pinned there "
                                    + "(unmapped or replaced under the pin): the range is left whole, and its "
                                    + "pages stay held")
                }
            }
            let heldHead = halves.head == nil ? nil : fresh.first
            let heldTail = halves.tail == nil ? nil : fresh.last
            let outcome: PinTable.SplitOutcome
            do throws(PhyrError) {
                outcome = try Pinner.table.withLock { t throws(PhyrError) in
                    try t.split(id, at: offset, heldHead: heldHead, heldTail: heldTail)
                }
            } catch {
                Holder.release(fresh)
                throw error
            }
            switch outcome {
            case .split(let tail, let unheld):
                Holder.release(unheld)
                return tail
            case .heldChanged:
                Holder.release(fresh)
            }
        }
    }

    /// The first address in `units` where pagemap no longer shows the physical
    /// address `pin` recorded; nil when every page is still the one pinned.
    private static func replacedPage(_ pin: PinnedRange, within units: [BufferUnit]) -> UInt64? {
        for s in pin.segments where !s.flags.contains(.noFolio) && s.phys != physUnknown {
            for u in units {
                let lo = max(s.addr, u.addr), hi = min(s.end, u.end)
                guard lo < hi else { continue }
                let run = BackingRun(start: lo, end: hi, pageShift: s.pageShift, flags: s.flags)
                guard let now = try? PhysicalAddresses.attach([run]) else { return lo }
                for piece in now where piece.phys != s.phys + (piece.start - s.addr) { return piece.start }
            }
        }
        return nil
    }
}
