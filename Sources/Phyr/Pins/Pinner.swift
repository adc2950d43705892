// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// The pinning operations: ask the kernel layer what backs the memory, let
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
/// was locked there, and goes looking for it when it is not (Release.swift).
enum Pinner {
    static let table = ProcessLocal(PinTable()) { $0.forChild() }
    /// Held across every change of kernel lock state together with the count
    /// it follows (pins, releases): counts and the kernel's locks and
    /// MADV_DONTFORK marks agree whenever it is free.  Reading, splitting and
    /// retaining ranges take only the table's lock.
    static let lockCalls = ProcessLocal(()) { _ in () }

    /// Makes the table and its lock's machinery (see `enterLibrary`).
    static func warm() {
        table.withLock { _ in }
        lockCalls.withLock { _ in }
    }

    /// Addresses past this cannot be user memory on any 64-bit Linux (x86-64
    /// 5-level paging stops at 2^56); bounding here keeps the page rounding
    /// below from overflowing.
    static let userSpaceEnd: UInt64 = 1 << 57

    /// Pins `range`; with `node`, after moving its pages there (phyr_pin_node).
    static func pin(_ range: Range<UInt64>, flags: UInt32, node: Int32? = nil) throws(PhyrError) -> UInt64 {
        try requireSupportedKernel()
        var target: Int32?
        if let node { target = try Placement.target(node) }
        guard range.upperBound <= userSpaceEnd else {
            throw PhyrError(.EFAULT, "\(spanText(range)) lies beyond the user address space")
        }
        let span = alignDown(range.lowerBound, basePageSize)..<alignUp(range.upperBound, basePageSize)
        let longterm = flags & PinFlag.longterm != 0
        // The kernel long-term pins for writing, PHYR_PIN_WRITE or not.
        let wantWrite = flags & PinFlag.write != 0 || longterm
        let check = Check(span: span, range: range, write: wantWrite,
                          flag: longterm && flags & PinFlag.write == 0 ? "PHYR_PIN_LONGTERM" : "PHYR_PIN_WRITE")

        // Long-term: memory with no folio is refused before its permissions
        // are looked at (the kernel could not pin it either way).
        var layout = try described(check, write: wantWrite && !longterm)
        if flags & PinFlag.phys != 0 { try requirePhysicalAddresses() }
        var runs = try scanBacking(span, layout.mappings)
        if longterm, let nofolio = runs.first(where: { $0.flags.contains(.noFolio) }) {
            let m = layout.mappings.first { $0.start <= nofolio.start && nofolio.start < $0.end }
            throw PhyrError(.EOPNOTSUPP, "PHYR_PIN_LONGTERM: \(spanText(nofolio.start..<nofolio.end)) "
                            + "\(m.map { "of " + Mappings.describe($0) + " " } ?? "")has no folio behind it "
                            + "(PFN-mapped or IO memory): the kernel cannot long-term pin it")
        }
        if longterm { try permitted(layout.mappings, check, write: true) }
        if try Faulting.populate(runs, layout.mappings, write: wantWrite) {
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
                let mode = SystemSettings.thpMode()
                reread = layout.mappings.contains { $0.faultingMayMapHugePages(span, mode: mode) }
            }
            if reread { layout = try described(check, write: wantWrite) }
            runs = try scanBacking(span, layout.mappings)
        }
        // Placed before the collapse: moving a huge page the node has no
        // huge page for splits it, and MADV_COLLAPSE makes its huge page on
        // the node most of the pages are on.
        var located = false
        if let target {
            let mappings = layout.mappings
            runs = try Placement.move(runs, to: target, range: range) { () throws(PhyrError) in
                try scanBacking(span, mappings)
            }
            located = true
        }
        if flags & PinFlag.huge != 0, Faulting.collapse(runs, layout.mappings, range: range) {
            if layout.source == .smaps { layout = try described(check, write: wantWrite) }
            runs = try scanBacking(span, layout.mappings)
            located = false
        }
        // A long-term pin on several nodes learns its nodes after the hold,
        // which may move pages: what it would learn before is not kept.
        // (phyr_pin_node learnt them before too, to know what to move.)
        let nodesAfterHold = longterm && Numa.onlyNode == nil
        if !located && !nodesAfterHold { runs = Placement.withNodes(runs) }
        let mappings = layout.mappings
        let interval = Backing.lockInterval(runs, range: range)
        let lockable = Backing.lockablePieces(runs, interval: interval)
        var pinned = PinnedRange(
            range: range, lockInterval: interval, lockable: longterm ? [] : lockable,
            segments: Backing.segments(runs, range: range), pinFlags: flags,
            growableEnd: longterm ? nil : Release.growableEnd(of: lockable, in: layout),
            anonymous: mappings.contains { !$0.fileBacked && !$0.noFolio },
            files: Set(mappings.compactMap { $0.file }),
            dontfork: flags & PinFlag.dontfork != 0 ? Backing.lockablePieces(runs, interval: interval, hugetlb: true) : [],
            isLongterm: longterm)
        if longterm { pinned.held = try holdLongterm(pinned, mappings: mappings) }
        var committed = false
        defer { if !committed { Holder.release(pinned.held) } }
        if longterm && (flags & PinFlag.phys != 0 || nodesAfterHold) {
            // Held by the kernel now, and read again: the pin may have
            // migrated pages (out of CMA or ZONE_MOVABLE, to any node with
            // room), and these addresses and nodes stay true from here on.
            let held = Placement.withNodes(try scanBacking(span, mappings))
            if let target { try Placement.check(held, on: target, range: range) }
            pinned.segments = flags & PinFlag.phys != 0 ? try physicalSegments(held, range: range)
                : Backing.segments(held, range: range)
        }
        let id = try lock(pinned, runs: runs, span: span)
        committed = true
        return id
    }

    /// The lock calls of a pin, under `lockCalls`, not the table's lock:
    /// reading, splitting or registering ranges never waits for an mlock.
    /// The range is counted from here but nobody's until it is published.
    private static func lock(_ pinned: PinnedRange, runs: [BackingRun], span: Range<UInt64>) throws(PhyrError) -> UInt64 {
        let range = pinned.range
        return try lockCalls.withLock { _ throws(PhyrError) -> UInt64 in
            guard let (id, fresh, _) = table.withLock({ $0.insert(pinned, pending: true) }) else {
                throw PinTable.tooMany
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
                    } catch where error == .ENOMEM && Locker.whollyLocked(p) {
                        // A process over a lowered RLIMIT_MEMLOCK may not even
                        // re-assert a lock; the kernel still holds this one.
                    }
                }
            } catch {
                Release.rollBack(id)
                let also = fresh.contains(piece) ? [] : [piece]
                throw Faulting.lockFailure(error, piece: piece, newlyLocked: fresh + also, range: range)
            }
            // Memory with no folio is never locked, so no mlock would notice
            // it unmapped meanwhile; and a scan of memory unmapped under it
            // looks just like one: ask whether it is still mapped.
            if runs.contains(where: { $0.flags.contains(.noFolio) }), (try? Mappings.mappedParts(span)) != [span] {
                Release.rollBack(id)
                throw PhyrError(.EFAULT, "\(spanText(span)) was unmapped while it was being pinned")
            }
            // MADV_DONTFORK where no other range has it yet, also over memory
            // counted as marked (it may be new memory at the same address).
            for e in pinned.dontfork {
                do throws(Errno) { try Locker.dontFork(e, true) } catch {
                    Release.rollBack(id)
                    throw Faulting.dontForkFailure(error, extent: e, range: range)
                }
            }
            // Physical addresses after locking: mlock's own write faults may
            // have replaced copy-on-write pages.
            if !pinned.isLongterm && pinned.pinFlags & PinFlag.phys != 0 {
                do throws(PhyrError) {
                    let segments = try physicalSegments(runs, range: range)
                    table.withLock { $0.describe(id, segments: segments) }
                } catch {
                    Release.rollBack(id)
                    throw error
                }
            }
            table.withLock { $0.publish(id) }
            return id
        }
    }

    // MARK: describing the memory

    /// What a pin checks of the mappings under its span.
    private struct Check {
        var span: Range<UInt64>
        var range: Range<UInt64>
        var write: Bool
        var flag: String
    }

    /// The mappings under the span, checked; the kernel layer's layout.
    struct Described {
        var mappings: [Mapping]
        var following: UInt64??
        var source: Mappings.Source
    }

    private static func described(_ check: Check, write: Bool) throws(PhyrError) -> Described {
        let layout: Mappings.Layout
        do { layout = try Mappings.layout(check.span) } catch {
            throw PhyrError(error, "cannot read this process's mappings (/proc/self/maps): \(error)")
        }
        switch layout.tiling {
        case .hole(let hole):
            if let gone = table.withLock({ $0.leftOutByFork(hole) }).first {
                throw PhyrError(.EFAULT, "\(spanText(gone)) is not mapped in this process: a process it was "
                                + "forked from pinned it with PHYR_PIN_DONTFORK, so fork() left it out "
                                + "(pinning \(spanText(check.range)))")
            }
            throw PhyrError(.EFAULT, "\(spanText(hole)) is not mapped (pinning \(spanText(check.range)))")
        case .mapped(let mappings):
            try permitted(mappings, check, write: write)
            return Described(mappings: mappings, following: layout.following, source: layout.source)
        }
    }

    private static func permitted(_ mappings: [Mapping], _ check: Check, write: Bool) throws(PhyrError) {
        for m in mappings {
            if !m.readable && !m.writable {
                throw PhyrError(.EFAULT, "\(Mappings.describe(m)) is PROT_NONE (pinning \(spanText(check.range)))")
            }
            if write && !m.writable {
                let why = check.flag == "PHYR_PIN_WRITE" ? "" : "; the kernel long-term pins memory for writing"
                throw PhyrError(.EACCES, "\(check.flag): \(Mappings.describe(m)) is read-only "
                                + "(pinning \(spanText(check.range)))\(why)")
            }
        }
    }

    static func scanBacking(_ span: Range<UInt64>, _ mappings: [Mapping]) throws(PhyrError) -> [BackingRun] {
        do {
            let regions = try PageScanner.scan(span, mappings: mappings)
            return Backing.classify(regions, span: span, mappings: mappings)
        } catch {
            throw PhyrError(error, "cannot read /proc/self/pagemap for \(spanText(span)): \(error)")
        }
    }

    private static func requirePhysicalAddresses() throws(PhyrError) {
        let visible: Bool
        do { visible = try PhysicalAddresses.visible() } catch {
            throw PhyrError(error, "cannot read /proc/self/pagemap for physical addresses: \(error)")
        }
        guard visible else {
            throw PhyrError(.EPERM, "PHYR_PIN_PHYS: this process cannot see physical addresses "
                            + "(the kernel shows PFNs in /proc/self/pagemap only to CAP_SYS_ADMIN)")
        }
    }

    static func physicalSegments(_ runs: [BackingRun], range: Range<UInt64>) throws(PhyrError) -> ContiguousArray<Segment> {
        do throws(Errno) {
            return Backing.segments(try PhysicalAddresses.attach(runs), range: range)
        } catch {
            throw PhyrError(error, "reading physical addresses of \(spanText(range)) failed: \(error)")
        }
    }

    /// The kernel's long-term pin of the range: its memory registered in
    /// holder rings, planned as a registration would plan it, so that a
    /// later `ring_register_ranges` of the range can clone the buffers.
    private static func holdLongterm(_ pinned: PinnedRange, mappings: [Mapping]) throws(PhyrError) -> [HeldBuffer] {
        let units = try RegistrationPlan(segments: Array(pinned.segments)).units
        do {
            return try Holder.hold(units, what: spanText(pinned.range))
        } catch where error.errno == .EFAULT {
            // FOLL_LONGTERM refuses file mappings whose pages the kernel must
            // track for writeback.
            if let m = mappings.first(where: { $0.shared && $0.fileBacked && !$0.isHugetlb && !$0.isShmem }) {
                throw PhyrError(.EOPNOTSUPP, "PHYR_PIN_LONGTERM: the kernel cannot long-term pin "
                                + "\(Mappings.describe(m)): a shared file mapping whose writeback needs dirty "
                                + "tracking (shmem, memfd and hugetlbfs can be pinned)")
            }
            let span = alignDown(pinned.range.lowerBound, basePageSize)..<alignUp(pinned.range.upperBound, basePageSize)
            if (try? Mappings.mappedParts(span)) != [span] {
                throw PhyrError(.EFAULT, "\(spanText(pinned.range)) was unmapped while it was being pinned")
            }
            throw error
        }
    }

    /// libphyr's layouts assume 4 KiB base pages (x86-64, arm64 built for
    /// 4 KiB): on any other size every plan would be wrong, so it refuses.
    static func requireSupportedKernel() throws(PhyrError) {
        if let refusal = refusal(forBasePage: KernelFeatures.shared.basePage) { throw refusal }
    }

    static func refusal(forBasePage size: Int) -> PhyrError? {
        guard UInt64(clamping: size) != basePageSize else { return nil }
        return PhyrError(.EOPNOTSUPP, "this kernel's base page is \(byteCount(UInt64(clamping: size))), and libphyr "
                         + "supports 4 KiB base pages only (an arm64 kernel with 16 or 64 KiB pages?)")
    }
}
