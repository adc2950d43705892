// SPDX-License-Identifier: MIT
import Glibc
import PhyrCore

/// Pin flags, as `phyr.h` defines them (checked by the tests).
enum PinFlag {
    static let write: UInt32 = 0x1
    static let phys: UInt32 = 0x2
    static let longterm: UInt32 = 0x4
    static let dontfork: UInt32 = 0x8
    static let huge: UInt32 = 0x10
    static let all: UInt32 = write | phys | longterm | dontfork | huge
}

/// The pinning operations: ask the kernel edges what backs the memory, let
/// the pin table decide what to lock, make the lock calls.  Every change of
/// kernel lock state (mlock, munlock, MADV_DONTFORK / DOFORK) runs under
/// `lockCalls` together with the count change it follows, so counts and the
/// kernel never disagree once it is free; the table's own lock is held only
/// to read or change counts, and without `lockCalls` only to add counts
/// inside ranges already covered (a split, a registration's retain).
/// Describing and faulting in memory, and long-term pins' io_uring calls,
/// happen outside both.
///
/// Lock counts are keyed by address, but the memory at an address can change
/// under a live range (munmap, a new mapping, mremap, a forked child): so a
/// pin re-asserts every lock it needs, not only the ones the count says are
/// new, and a release checks that what it unlocks is still the memory that
/// was locked there, and goes looking for it when it is not.
enum Pinner {
    private static let table = ProcessLocal(PinTable()) { $0.forChild() }
    /// Held across every change of kernel lock state together with the count
    /// it follows (pins, releases): counts and the kernel's locks and
    /// MADV_DONTFORK marks agree whenever it is free.  Reading, splitting and
    /// retaining ranges take only the table's lock.
    private static let lockCalls = ProcessLocal(()) { _ in () }

    /// Makes the table and its lock's machinery (see `enterLibrary`).
    static func warm() {
        table.withLock { _ in }
        lockCalls.withLock { _ in }
    }

    /// Addresses past this cannot be user memory on any 64-bit Linux (x86-64
    /// 5-level paging stops at 2^56); bounding here keeps the page rounding
    /// below from overflowing.
    static let userSpaceEnd: UInt64 = 1 << 57

    static func pin(_ range: Range<UInt64>, flags: UInt32) throws(PhyrError) -> UInt64 {
        try requireSupportedKernel()
        guard range.upperBound <= userSpaceEnd else {
            throw PhyrError(EFAULT, "\(spanText(range)) lies beyond the user address space")
        }
        let span = alignDown(range.lowerBound, basePageSize)..<alignUp(range.upperBound, basePageSize)
        let longterm = flags & PinFlag.longterm != 0
        // The kernel long-term pins for writing, PHYR_PIN_WRITE or not.
        let wantWrite = flags & PinFlag.write != 0 || longterm
        let flagName = longterm && flags & PinFlag.write == 0 ? "PHYR_PIN_LONGTERM" : "PHYR_PIN_WRITE"

        // Long-term: memory with no folio is refused before its permissions
        // are looked at (the kernel could not pin it either way).
        var layout = try mappingsChecked(span, range: range, write: wantWrite && !longterm, flagName: flagName)
        if flags & PinFlag.phys != 0 {
            let visible: Bool
            do { visible = try PhysicalAddresses.visible() } catch {
                throw PhyrError(error.code, "cannot read /proc/self/pagemap for physical addresses")
            }
            guard visible else {
                throw PhyrError(EPERM, "PHYR_PIN_PHYS: this process cannot see physical addresses "
                                + "(the kernel shows PFNs in /proc/self/pagemap only to CAP_SYS_ADMIN)")
            }
        }

        var runs = try scanBacking(span, layout.mappings)
        if longterm, let nofolio = runs.first(where: { $0.flags.contains(.noFolio) }) {
            let m = layout.mappings.first { $0.start <= nofolio.start && nofolio.start < $0.end }
            throw PhyrError(EOPNOTSUPP, "PHYR_PIN_LONGTERM: \(spanText(nofolio.start..<nofolio.end)) "
                            + "\(m.map { "of " + Mappings.describe($0) + " " } ?? "")has no folio behind it "
                            + "(PFN-mapped or IO memory): the kernel cannot long-term pin it")
        }
        if longterm {
            layout = try mappingsChecked(span, range: range, write: true, flagName: flagName, layout: layout)
        }
        if try populate(runs, layout.mappings, write: wantWrite) {
            // Faulting in may have made huge pages: scan again, and read the
            // mappings again where they count them (smaps, unless no mapping
            // here can hold one) or cost nothing to check (PROCMAP_QUERY);
            // maps text, read as far as the span, is not worth a second read
            // for bounds that faulting cannot change.
            let reread: Bool
            switch layout.source {
            case .procmapQuery: reread = true
            case .maps: reread = false
            case .smaps:
                let mode = Mappings.thpMode()
                reread = layout.mappings.contains { $0.faultingMayMapHugePages(span, mode: mode) }
            }
            if reread {
                layout = try mappingsChecked(span, range: range, write: wantWrite, flagName: flagName)
            }
            runs = try scanBacking(span, layout.mappings)
        }
        if flags & PinFlag.huge != 0, collapse(runs, layout.mappings, range: range) {
            if layout.source == .smaps {
                layout = try mappingsChecked(span, range: range, write: wantWrite, flagName: flagName)
            }
            runs = try scanBacking(span, layout.mappings)
        }
        let mappings = layout.mappings
        let interval = Backing.lockInterval(runs, range: range)
        let lockable = Backing.lockablePieces(runs, interval: interval)
        var pinned = PinnedRange(
            range: range, lockInterval: interval, lockable: longterm ? [] : lockable,
            segments: Backing.segments(runs, range: range), pinFlags: flags,
            growableEnd: longterm ? nil : growableEnd(of: lockable, in: layout),
            anonymous: mappings.contains { !$0.fileBacked && !$0.noFolio },
            files: Set(mappings.compactMap(\.file)),
            dontfork: flags & PinFlag.dontfork != 0 ? Backing.lockablePieces(runs, interval: interval, hugetlb: true) : [],
            isLongterm: longterm)
        if longterm {
            pinned.held = try holdLongterm(pinned, mappings: mappings)
        }
        var committed = false
        defer { if !committed { Holder.release(pinned.held) } }
        if longterm && flags & PinFlag.phys != 0 {
            // Held by the kernel now, and read again: the pin may have
            // migrated pages (out of CMA or ZONE_MOVABLE), and these addresses
            // stay true from here on.
            pinned.segments = try physicalSegments(try scanBacking(span, layout.mappings), range: range)
        }

        // The lock calls run under `lockCalls`, not the table's lock: reading,
        // splitting or registering ranges never waits for an mlock.  The range
        // is counted from here but nobody's until it is published.
        let id = try lockCalls.withLock { _ throws(PhyrError) -> UInt64 in
            guard let (id, fresh, _) = table.withLock({ $0.insert(pinned, pending: true) }) else {
                throw Pinner.tooMany()
            }
            // Pieces the count says are locked already are asserted again: the
            // kernel's lock may be gone with the memory it was on.
            let counted = PinTable.subtract(pinned.lockable, fresh)
            var piece: Range<UInt64> = 0..<0
            do throws(Errno) {
                for p in fresh { piece = p; try Locker.lock(p) }
                for p in counted {
                    piece = p
                    do throws(Errno) {
                        // Faulting in by hand makes only one fault per 2 MiB
                        // and leaves the rest to mlock: memory new under a
                        // count needs the whole mlock then.
                        if KernelFeatures.shared.populateAdvice { try Locker.mark(p) } else { try Locker.lock(p) }
                    } catch where error.code == ENOMEM && Locker.whollyLocked(p) {
                        // A process over a lowered RLIMIT_MEMLOCK may not even
                        // re-assert a lock; the kernel still holds this one.
                    }
                }
            } catch {
                rollBack(id)
                let also = fresh.contains(piece) ? [] : [piece]
                throw lockFailure(error, piece: piece, newlyLocked: fresh + also, range: range)
            }
            // Memory with no folio is never locked, so no mlock would notice
            // it unmapped meanwhile; and a scan of memory unmapped under it
            // looks just like one: ask whether it is still mapped.
            if runs.contains(where: { $0.flags.contains(.noFolio) }),
               (try? Mappings.mappedParts(span)) != [span] {
                rollBack(id)
                throw PhyrError(EFAULT, "\(spanText(span)) was unmapped while it was being pinned")
            }
            // MADV_DONTFORK where no other range has it yet, also over memory
            // counted as marked (it may be new memory at the same address).
            for e in pinned.dontfork {
                do throws(Errno) { try Locker.dontFork(e, true) } catch {
                    rollBack(id)
                    let doing = "PHYR_PIN_DONTFORK: madvise(MADV_DONTFORK) of \(spanText(e)) pinning \(spanText(range))"
                    if error.code == ENOMEM, let budget = Locker.mappingBudget(), budget.count + 8 >= budget.limit {
                        throw PhyrError(ENOMEM, "\(doing) failed: the process has \(budget.count) mappings and "
                                        + "vm.max_map_count is \(budget.limit) (marking part of a mapping splits it)")
                    }
                    if error.code == ENOMEM {
                        throw PhyrError(EFAULT, "\(doing) failed: part of it was unmapped while it was being pinned")
                    }
                    throw PhyrError(error.code, "\(doing) failed: \(error)")
                }
            }
            // Physical addresses after locking: mlock's own write faults may
            // have replaced copy-on-write pages.
            if !longterm && flags & PinFlag.phys != 0 {
                do throws(PhyrError) {
                    let segments = try physicalSegments(runs, range: range)
                    table.withLock { $0.describe(id, segments: segments) }
                } catch {
                    rollBack(id)
                    throw error
                }
            }
            table.withLock { $0.publish(id) }
            return id
        }
        committed = true
        return id
    }

    private static func physicalSegments(_ runs: [BackingRun], range: Range<UInt64>) throws(PhyrError) -> ContiguousArray<Segment> {
        do throws(Errno) {
            return Backing.segments(try PhysicalAddresses.attach(runs), range: range)
        } catch {
            throw PhyrError(error.code, "reading physical addresses of \(spanText(range)) failed: \(error)")
        }
    }

    /// The kernel's long-term pin of the range: its memory registered in
    /// holder rings, planned as a registration would plan it, so that a
    /// later `ring_register_ranges` of the range can clone the buffers.
    private static func holdLongterm(_ pinned: PinnedRange, mappings: [Mapping]) throws(PhyrError) -> [HeldBuffer] {
        let units: [BufferUnit]
        do { units = try RegistrationPlan(segments: Array(pinned.segments)).units } catch {
            throw PhyrError(EOPNOTSUPP, "PHYR_PIN_LONGTERM: \(spanText(pinned.range)) has memory with no folio behind it")
        }
        do {
            return try Holder.hold(units, what: spanText(pinned.range))
        } catch where error.code == EFAULT {
            // FOLL_LONGTERM refuses file mappings whose pages the kernel must
            // track for writeback.
            if let m = mappings.first(where: { $0.shared && $0.fileBacked && !$0.isHugetlb && !$0.isShmem }) {
                throw PhyrError(EOPNOTSUPP, "PHYR_PIN_LONGTERM: the kernel cannot long-term pin \(Mappings.describe(m)): "
                                + "a shared file mapping whose writeback needs dirty tracking (shmem, memfd and "
                                + "hugetlbfs can be pinned)")
            }
            let span = alignDown(pinned.range.lowerBound, basePageSize)..<alignUp(pinned.range.upperBound, basePageSize)
            if (try? Mappings.mappedParts(span)) != [span] {
                throw PhyrError(EFAULT, "\(spanText(pinned.range)) was unmapped while it was being pinned")
            }
            throw error
        }
    }

    static func unpin(_ id: UInt64) throws(Absence) {
        let unheld = try lockCalls.withLock { _ throws(Absence) -> [HeldBuffer] in
            let removal = try table.withLock { t throws(Absence) -> PinTable.Removal in
                if let why = t.absence(of: id) { throw why }
                guard let removal = t.removeRange(id) else { throw .foreign }
                return removal
            }
            return undo(removal)
        }
        // Outside every lock: emptying a slot waits for the kernel.
        Holder.release(unheld)
    }

    enum SplitFailure: Error {
        case table(PinTable.SplitError)
        case kernel(PhyrError)
    }

    /// Splits range `id`.  A long-term range whose cut lies inside one of its
    /// buffers gets that buffer's two halves pinned first, outside the table's
    /// lock, each holding the folio at the cut; the old buffer goes once no
    /// range shares it.  Tries again if another thread split it meanwhile.
    static func split(_ id: UInt64, at offset: UInt64) throws(SplitFailure) -> UInt64 {
        while true {
            // A cut that needs no new kernel pin (a lock-only range, or one
            // on a held buffer's edge) is made at once, under one lock.
            enum Step { case done(UInt64, [HeldBuffer]), pinHalves(BufferUnit?, BufferUnit?, PinnedRange) }
            let step = try wrap { () throws(PinTable.SplitError) in
                try table.withLock { t throws(PinTable.SplitError) -> Step in
                    guard let pin = t.range(id) else { throw .notLive(t.absence(of: id) ?? .foreign) }
                    let length = UInt64(pin.range.count)
                    guard offset > 0, offset < length else { throw .offsetOutside(length: length) }
                    if let cut = PinTable.heldCut(pin, at: pin.range.lowerBound + offset) {
                        return .pinHalves(cut.head, cut.tail, pin)
                    }
                    let (tail, unheld) = try t.split(id, at: offset)
                    return .done(tail, unheld)
                }
            }
            let need: (BufferUnit?, BufferUnit?)?
            let pin: PinnedRange
            switch step {
            case .done(let tail, let unheld):
                Holder.release(unheld)
                return tail
            case .pinHalves(let head, let tail, let range):
                need = (head, tail)
                pin = range
            }
            var fresh: [HeldBuffer] = []
            if let (head, tail) = need {
                let units = [head, tail].compactMap { $0 }
                do { fresh = try Holder.hold(units, what: "a half of a split range") } catch { throw .kernel(error) }
                // The halves pin what is mapped now.  Where the caller was given
                // physical addresses, they must be the pages held all along:
                // memory replaced under the pin (MADV_DONTNEED, a new mapping)
                // must not lose the kernel's pin on the pages a device may
                // still be writing to.
                if pin.pinFlags & PinFlag.phys != 0, let moved = replacedPage(pin, within: units) {
                    Holder.release(fresh)
                    throw .kernel(PhyrError(EFAULT, "the memory at \(hex(moved)) is no longer the page pinned "
                                            + "there (unmapped or replaced under the pin): the range is left whole, "
                                            + "and its pages stay held"))
                }
            }
            let heldHead = need?.0 == nil ? nil : fresh.first
            let heldTail = need?.1 == nil ? nil : fresh.last
            do {
                let (tail, unheld) = try table.withLock { t throws(PinTable.SplitError) in
                    try t.split(id, at: offset, heldHead: heldHead, heldTail: heldTail)
                }
                Holder.release(unheld)
                return tail
            } catch {
                Holder.release(fresh)
                if error == .heldChanged { continue }
                throw .table(error)
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

    private static func wrap<T>(_ body: () throws(PinTable.SplitError) -> T) throws(SplitFailure) -> T {
        do { return try body() } catch { throw .table(error) }
    }

    /// Runs `body` on live range `id` under the table's lock, so a concurrent
    /// split is never seen half done.
    static func withRange<T: Sendable>(_ id: UInt64, _ body: (PinnedRange) -> T) throws(Absence) -> T {
        try table.withLock { t throws(Absence) -> T in
            guard let r = t.range(id) else { throw t.absence(of: id) ?? .foreign }
            return body(r)
        }
    }

    /// `ranges[index]` could not be retained, and why.
    struct RetainFailure: Error {
        var index: Int
        /// Nil: the range is live, but `PinTable.maxLive` ranges are.
        var absence: Absence?
    }

    /// The refusal when `PinTable.maxLive` ranges are live.
    static func tooMany() -> PhyrError {
        PhyrError(EMFILE, "\(PinTable.maxLive) ranges are live already (references held by registrations "
                  + "count), the most a process may hold")
    }

    /// A new reference to each of live ranges `ids`, all or none: new ids
    /// over the same memory that keep it locked on their own (a registration
    /// holds them, so its caller may unpin its own handles at once).
    static func retain(_ ids: [UInt64]) throws(RetainFailure) -> [(id: UInt64, range: PinnedRange)] {
        try table.withLock { t throws(RetainFailure) -> [(id: UInt64, range: PinnedRange)] in
            var out: [(id: UInt64, range: PinnedRange)] = []
            for (i, id) in ids.enumerated() {
                guard let copy = t.retain(id), let pin = t.range(copy) else {
                    let why = t.absence(of: id)
                    // Dropping references just taken frees nothing: the
                    // ranges retained still hold every lock, mark and buffer.
                    for c in out { _ = t.removeRange(c.id) }
                    throw RetainFailure(index: i, absence: why)
                }
                out.append((copy, pin))
            }
            return out
        }
    }

    // MARK: releasing

    /// The lock calls a removal leaves to make: unlock what no other live
    /// range covers and let fork copy what no PHYR_PIN_DONTFORK range covers,
    /// under `lockCalls`; returns the held buffers no range shares any more
    /// (for `Holder.release`, outside the locks).
    private static func undo(_ removal: PinTable.Removal) -> [HeldBuffer] {
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
    private static func rollBack(_ id: UInt64) {
        guard let removal = table.withLock({ $0.removeRange(id) }) else { return }
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
    private static func unlockChecked(_ piece: Range<UInt64>) -> Bool {
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
        guard end < userSpaceEnd, table.withLock({ $0.coverage(at: end) }) == 0,
              Locker.probe(end..<(end + basePageSize)) == .someLocked,
              let vma = try? Mappings.vma(atOrAfter: end), vma.lowerBound == end else { return }
        for part in table.withLock({ $0.uncovered([vma]) }) { try? Locker.unlock(part) }
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
        for orphan in table.withLock({ $0.uncovered(same.map(\.span)) }) { try? Locker.unlock(orphan) }
    }

    /// See `PinnedRange.growableEnd`.
    private static func growableEnd(of lockable: [Range<UInt64>], in layout: Mappings.Layout) -> UInt64? {
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

    // MARK: steps of pin

    /// libphyr's layouts assume 4 KiB base pages (x86-64, arm64 built for
    /// 4 KiB): on any other size every plan would be wrong, so it refuses.
    static func requireSupportedKernel() throws(PhyrError) {
        if let refusal = refusal(forBasePage: KernelFeatures.shared.basePage) { throw refusal }
    }

    static func refusal(forBasePage size: Int) -> PhyrError? {
        guard UInt64(clamping: size) != basePageSize else { return nil }
        return PhyrError(EOPNOTSUPP, "this kernel's base page is \(byteCount(UInt64(clamping: size))), and libphyr "
                         + "supports 4 KiB base pages only (an arm64 kernel with 16 or 64 KiB pages?)")
    }

    private static func mappingsChecked(_ span: Range<UInt64>, range: Range<UInt64>, write: Bool, flagName: String,
                                        layout known: Mappings.Layout? = nil) throws(PhyrError) -> Mappings.Layout {
        let layout: Mappings.Layout
        do throws(Mappings.Failure) {
            if let known { layout = known } else { layout = try Mappings.layout(span) }
        } catch {
            switch error {
            case .unmapped(let hole):
                if let gone = table.withLock({ $0.leftOutByFork(hole) }).first {
                    throw PhyrError(EFAULT, "\(spanText(gone)) is not mapped in this process: a process it was "
                                    + "forked from pinned it with PHYR_PIN_DONTFORK, so fork() left it out "
                                    + "(pinning \(spanText(range)))")
                }
                throw PhyrError(EFAULT, "\(spanText(hole)) is not mapped (pinning \(spanText(range)))")
            case .system(let e):
                throw PhyrError(e.code, "cannot read this process's mappings (/proc/self/maps): \(e)")
            }
        }
        for m in layout.mappings {
            if !m.readable && !m.writable {
                let what = Mappings.describe(m)
                throw PhyrError(EFAULT, "\(what) is PROT_NONE (pinning \(spanText(range)))")
            }
            if write && !m.writable {
                let what = Mappings.describe(m)
                let why = flagName == "PHYR_PIN_WRITE" ? "" : "; the kernel long-term pins memory for writing"
                throw PhyrError(EACCES, "\(flagName): \(what) is read-only (pinning \(spanText(range)))\(why)")
            }
        }
        return layout
    }

    private static func scanBacking(_ span: Range<UInt64>, _ mappings: [Mapping]) throws(PhyrError) -> [BackingRun] {
        do {
            let regions = try PageScanner.scan(span, mappings: mappings)
            return Backing.classify(regions, span: span, mappings: mappings)
        } catch {
            throw PhyrError(error.code, "cannot read /proc/self/pagemap for \(spanText(span)): \(error)")
        }
    }

    /// PHYR_PIN_HUGE: collapses the extents that could be huge and are not,
    /// after faulting in (MADV_COLLAPSE copies present pages; it makes
    /// nothing of an empty extent) and before anything is locked or held
    /// (the pin then takes the huge pages).  Returns whether any extent was
    /// collapsed.  What the kernel will not collapse -- MADV_NOHUGEPAGE, a
    /// prctl-disabled process, a file it keeps small, a kernel before 6.1
    /// (EINVAL), memory or the cgroup's charge short (ENOMEM, EBUSY), pages
    /// pinned or locked elsewhere (EAGAIN) -- is pinned as it is: not an
    /// error, and phyr_last_error() untouched.  Memory unmapped meanwhile is
    /// the pin's own checks' to see.  A failure with ENOMEM or EBUSY stops
    /// the kernel's walk of a merged call: the extents after it stay small.
    private static func collapse(_ runs: [BackingRun], _ mappings: [Mapping], range: Range<UInt64>) -> Bool {
        var changed = false
        let known = PageScanner.tellsHugePagesApart
        for extent in Backing.collapsible(runs, mappings: mappings, range: range, hugeKnown: known) {
            do throws(Errno) {
                try Locker.collapse(extent)
                changed = true
            } catch {
                // A call over several extents fails for one and may have
                // collapsed the others.
                changed = changed || extent.count > 1 << pmdPageShift
            }
        }
        return changed
    }

    /// Faults in what is missing; returns whether anything was.  Private
    /// writable memory is populated by write faults, as mlock itself would, so
    /// a zero page is never what gets locked.  Runs may span mappings with
    /// different permissions: each mapping's part is faulted as it allows.
    private static func populate(_ runs: [BackingRun], _ mappings: [Mapping], write: Bool) throws(PhyrError) -> Bool {
        var did = false
        for run in runs where !run.flags.contains(.noFolio) {
            for m in mappings where m.start < run.end && run.start < m.end {
                let byWrite = write || (m.writable && !m.shared)
                let needed = !run.present || (byWrite && run.zeroPage) || (write && m.shared)
                guard needed else { continue }
                let piece = max(run.start, m.start)..<min(run.end, m.end)
                try populate(piece, in: m, write: byWrite)
                did = true
            }
        }
        return did
    }

    /// MADV_POPULATE answers ENOMEM both for memory running out and for
    /// memory not mapped (a munmap racing the pin): a hole seen afterwards is
    /// the second, and a race that ended leaves memory a new try can fault in,
    /// where a shortage fails again.
    private static func populate(_ piece: Range<UInt64>, in m: Mapping, write: Bool) throws(PhyrError) {
        var tries = 0
        while true {
            do throws(Errno) {
                try Locker.populate(piece, in: m, write: write)
                return
            } catch {
                let mapped = (try? Mappings.mappedParts(piece)) == [piece]
                if !mapped && (error.code == ENOMEM || error.code == EFAULT) {
                    throw PhyrError(EFAULT, "\(spanText(piece)) was unmapped while it was being pinned")
                }
                // Anonymous memory has no file to run past and no pool to run
                // dry: EFAULT there, too, means it changed under the pin.
                let anonymous = !m.fileBacked && !m.isHugetlb
                tries += 1
                guard error.code == ENOMEM || (error.code == EFAULT && anonymous), !m.isHugetlb else {
                    throw populateFailure(error, piece: piece, mapping: m)
                }
                guard tries < 4 else {
                    // Memory that is mapped whenever it is looked at, yet never
                    // faults in, with memory to spare: something keeps unmapping
                    // and mapping it again.
                    if error.code == EFAULT || !Locker.memoryShort(for: UInt64(piece.count)) {
                        throw PhyrError(EFAULT, "\(spanText(piece)) was unmapped or made inaccessible while it was "
                                        + "being pinned")
                    }
                    throw populateFailure(error, piece: piece, mapping: m)
                }
            }
        }
    }

    private static func populateFailure(_ e: Errno, piece: Range<UInt64>, mapping m: Mapping) -> PhyrError {
        let what = "\(spanText(piece)) of \(Mappings.describe(m))"
        if e.code == EMFILE || e.code == ENFILE {
            return PhyrError(e.code, "faulting in \(what) without MADV_POPULATE (Linux 5.14) takes a pipe, and "
                             + "opening one failed: \(e)")
        }
        // A hugetlb fault with no page left in the pool is a SIGBUS, which
        // MADV_POPULATE (and libphyr's own faulting) report as EFAULT -- as
        // they do a hugetlbfs file mapped past its end, while the pool has
        // pages to spare.
        let free = m.isHugetlb ? Locker.freeHugetlbPages(m.pageSize) : nil
        if m.isHugetlb && e.code == EFAULT, let free, free > 0 {
            return PhyrError(EFAULT, "cannot fault in \(what) (\(e)) though the hugetlb pool has \(free) pages free: "
                             + "does the mapping run past the end of its file?")
        }
        if m.isHugetlb && (e.code == EFAULT || e.code == ENOMEM) {
            let pool = "/sys/kernel/mm/hugepages/hugepages-\(m.pageSize / 1024)kB"
            let count = free.map { "\($0) free" } ?? "an unknown number free"
            return PhyrError(ENOMEM, "no hugetlb page left to fault in \(what): the pool of \(byteCount(m.pageSize)) "
                             + "pages has \(count) (\(pool); MAP_NORESERVE mappings reserve none)")
        }
        if e.code == ENOMEM { return PhyrError(ENOMEM, "out of memory faulting in \(what)") }
        if e.code == EFAULT && m.fileBacked {
            return PhyrError(EFAULT, "cannot fault in \(what) (\(e)): does the mapping run past the end of its file?")
        }
        return PhyrError(EFAULT, "cannot fault in \(what): \(e)")
    }

    /// mlock(2) answers ENOMEM for three different things; say which.
    private static func lockFailure(_ e: Errno, piece: Range<UInt64>, newlyLocked: [Range<UInt64>],
                                    range: Range<UInt64>) -> PhyrError {
        let doing = "mlock of \(spanText(piece)) pinning \(spanText(range))"
        switch e.code {
        case EAGAIN:
            return PhyrError(EAGAIN, "\(doing) could not lock every page (EAGAIN: the kernel ran short of memory "
                             + "faulting them in); nothing is pinned, try again")
        case EPERM:
            return PhyrError(EPERM, "\(doing) was refused (EPERM): RLIMIT_MEMLOCK is 0 and this process "
                             + "lacks CAP_IPC_LOCK")
        case ENOMEM:
            if let parts = try? Mappings.mappedParts(piece), parts != [piece] {
                return PhyrError(EFAULT, "\(doing) failed: part of it was unmapped while it was being pinned")
            }
            let need = newlyLocked.reduce(UInt64(0)) { $0 + UInt64($1.count) }
            if !Locker.mayLockPastLimit, let limit = Locker.lockLimit() {
                let locked = Locker.lockedBytes() ?? 0
                if locked &+ need > limit {
                    return PhyrError(ENOMEM, "mlock of \(spanText(piece)) failed (\(e)) pinning \(spanText(range)), "
                                     + "which needs \(byteCount(need)) newly locked; RLIMIT_MEMLOCK is "
                                     + "\(byteCount(limit)) and \(byteCount(locked)) is locked already")
                }
            }
            if let budget = Locker.mappingBudget(), budget.count + 8 >= budget.limit {
                return PhyrError(ENOMEM, "\(doing) failed: the process has \(budget.count) mappings and "
                                 + "vm.max_map_count is \(budget.limit) (locking part of a mapping splits it)")
            }
            // mlock's ENOMEM is also POSIX's word for "not mapped", and the
            // kernel's for pages it could not fault in.
            return PhyrError(EFAULT, "\(doing) failed: part of it was not mapped when the kernel locked it "
                             + "(unmapped while it was being pinned?) or could not be faulted in")
        default:
            return PhyrError(e.code, "\(doing) failed: \(e)")
        }
    }
}
