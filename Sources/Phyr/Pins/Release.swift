// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel
import Synchronization

/// Releasing ranges: the lock calls a removal leaves to make, made under
/// `Pinner.lockCalls`, and the repairs that find a lock that is no longer
/// where it was left (unmapped, replaced, moved or grown by mremap(2)).
enum Release {
    /// Releases range `id`; its held buffers' slots are emptied outside every
    /// lock (emptying a slot waits for the kernel).
    static func unpin(_ id: UInt64) throws(PhyrError) {
        let unheld = try Pinner.lockCalls.withLock { _ throws(PhyrError) -> [HeldBuffer] in
            let removal = try Pinner.table.withLock { t throws(PhyrError) -> PinTable.Removal in
                guard let removal = t.removeRange(id) else {
                    throw (t.absence(of: id) ?? .foreign).error("range", handle: UInt64(PinTable.handle(for: id)))
                }
                return removal
            }
            return undo(removal)
        }
        Holder.release(unheld)
    }

    /// The lock calls a removal leaves to make: unlock what no other live
    /// range covers and let fork copy what no PHYR_PIN_DONTFORK range covers,
    /// under `lockCalls`; returns the held buffers no range shares any more
    /// (for `Holder.release`, outside the locks).
    static func undo(_ removal: PinTable.Removal) -> [HeldBuffer] {
        var missing = false
        for piece in removal.freed {
            if !unlockChecked(piece) { missing = true }
            if piece.upperBound == removal.range.growableEnd { unlockGrowth(after: piece.upperBound) }
        }
        if missing { unlockMoved(removal.range) }
        doFork(removal.doFork)
        return removal.unheld
    }

    /// MADV_DOFORK over what is still mapped of `extents`.
    private static func doFork(_ extents: [Range<UInt64>]) {
        for e in extents {
            do throws(Errno) { try Locker.dontFork(e, false) } catch {
                for part in (try? Mappings.mappedParts(e)) ?? [] { try? Locker.dontFork(part, false) }
            }
        }
    }

    /// Undoes a pin that failed part way, under `lockCalls`: what it newly
    /// locked is unlocked, with none of a release's checks (it may never have
    /// been locked).  Its held buffers are the caller's to release.
    static func rollBack(_ id: UInt64) {
        guard let removal = Pinner.table.withLock({ $0.removeRange(id) }) else { return }
        for piece in removal.freed {
            do throws(Errno) { try Locker.unlock(piece) } catch {
                for part in (try? Mappings.mappedParts(piece)) ?? [] { try? Locker.unlock(part) }
            }
        }
        doFork(removal.doFork)
    }

    /// Unlocks `piece`, all of it that is still mapped; false when part of the
    /// lock left there is gone: that memory was unmapped, replaced or moved.
    /// Each VMA is probed where PROCMAP_QUERY finds them cheaply; before 6.11
    /// the piece is probed whole, which misses a part replaced alone (a
    /// piece of one page is one VMA's either way).
    static func unlockChecked(_ piece: Range<UInt64>) -> Bool {
        var intact = true
        if UInt64(piece.count) == basePageSize {
            // One page lies in one VMA: its probe needs no list of them.
            intact = Locker.probe(piece) == .someLocked
        } else if KernelFeatures.shared.procmapQuery.load(ordering: .relaxed),
           let vmas = try? Mappings.mappedParts(piece, merged: false) {
            let mapped = vmas.reduce(UInt64(0)) { $0 + UInt64($1.count) }
            intact = mapped == UInt64(piece.count) && vmas.allSatisfy { Locker.probe($0) == .someLocked }
        } else {
            intact = Locker.probe(piece) == .someLocked
        }
        do throws(Errno) {
            try Locker.unlock(piece)
        } catch {
            // munlock stops at the first hole: go mapping by mapping.
            intact = false
            for part in (try? Mappings.mappedParts(piece)) ?? [] { try? Locker.unlock(part) }
        }
        return intact
    }

    /// The lock ended where its mapping did, with room after it: mremap(2)
    /// may have grown the mapping in place, and the kernel locked the growth.
    /// A locked VMA starting right there that no live range holds is it.
    private static func unlockGrowth(after end: UInt64) {
        guard end < Pinner.userSpaceEnd, Pinner.table.withLock({ $0.coverage(at: end) }) == 0,
              Locker.probe(end..<(end + basePageSize)) == .someLocked,
              let vma = try? Mappings.vma(atOrAfter: end), vma.lowerBound == end else { return }
        for part in Pinner.table.withLock({ $0.uncovered([vma]) }) { try? Locker.unlock(part) }
    }

    /// Part of `range`'s lock was gone from its addresses.  If mremap(2) moved
    /// the memory, the lock went with it, and so did libphyr's mark on it: the
    /// marked locks no live range holds, of the same kind of memory (anonymous,
    /// or the same file), are unlocked.  Reads all of smaps: rare by design.
    /// Under mlockall(MCL_FUTURE) the caller locks all new memory anyway, and
    /// moved memory is left as the caller's policy has it.
    private static func unlockMoved(_ range: PinnedRange) {
        guard !Locker.everyNewMappingLocked(), let marked = try? Mappings.markedLocks() else { return }
        let same = marked.filter { m in m.file.map { range.files.contains($0) } ?? range.anonymous }
        for orphan in Pinner.table.withLock({ $0.uncovered(same.map { $0.span }) }) { try? Locker.unlock(orphan) }
    }

    /// See `PinnedRange.growableEnd`.
    static func growableEnd(of lockable: [Range<UInt64>], in layout: Pinner.Described) -> UInt64? {
        guard let end = lockable.last?.upperBound, let last = layout.mappings.last(where: { $0.start < end }),
              last.end == end else { return nil }
        let next: UInt64?
        if last.start == layout.mappings.last?.start, let known = layout.following {
            next = known
        } else {
            next = (try? Mappings.vma(atOrAfter: end))??.lowerBound
        }
        return next == end ? nil : end
    }
}
