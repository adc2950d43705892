import Glibc
import Synchronization

/// Pin flags, as `phyr.h` defines them (checked by the tests).
enum PinFlag {
    static let write: UInt32 = 0x1
    static let phys: UInt32 = 0x2
    static let all: UInt32 = write | phys
}

/// The pinning operations: ask the kernel edges what backs the memory, let
/// the pin table decide what to lock, make the lock calls.  The table's lock
/// is held across mlock/munlock so lock counts and kernel lock state never
/// disagree, and only there: describing memory happens outside it.
enum Pinner {
    static let table = Mutex(PinTable())

    /// Addresses past this cannot be user memory on any 64-bit Linux (x86-64
    /// 5-level paging stops at 2^56); bounding here keeps the page rounding
    /// below from overflowing.
    static let userSpaceEnd: UInt64 = 1 << 57

    static func pin(_ range: Range<UInt64>, flags: UInt32) throws(PhyrError) -> UInt64 {
        guard range.upperBound <= userSpaceEnd else {
            throw PhyrError(EFAULT, "\(spanText(range)) lies beyond the user address space")
        }
        let span = alignDown(range.lowerBound, basePageSize)..<alignUp(range.upperBound, basePageSize)
        let wantWrite = flags & PinFlag.write != 0

        var mappings = try mappingsChecked(span, range: range, write: wantWrite)
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

        var runs = try scanBacking(span, mappings)
        if try populate(runs, mappings, write: wantWrite) {
            // Faulting in may have made huge pages, which smaps (the fallback's
            // source) counts per VMA: ask again.
            mappings = try mappingsChecked(span, range: range, write: wantWrite)
            runs = try scanBacking(span, mappings)
        }
        let interval = Backing.lockInterval(runs, range: range)
        let lockable = Backing.lockablePieces(runs, interval: interval)
        let pinned = PinnedRange(range: range, lockInterval: interval, lockable: lockable,
                                 segments: Backing.segments(runs, range: range), pinFlags: flags)

        return try table.withLock { table throws(PhyrError) -> UInt64 in
            let (id, toLock) = table.insert(pinned)
            for piece in toLock {
                do throws(Errno) {
                    try Locker.lock(piece)
                } catch {
                    _ = release(id, in: &table)
                    throw lockFailure(error, piece: piece, all: toLock, range: range)
                }
            }
            // Physical addresses after locking: mlock's own write faults may
            // have replaced copy-on-write pages.  Read under the table's lock
            // so no split sees the range half described.
            if flags & PinFlag.phys != 0 {
                do throws(Errno) {
                    let physRuns = try PhysicalAddresses.attach(runs)
                    table.describe(id, segments: Backing.segments(physRuns, range: range))
                } catch {
                    _ = release(id, in: &table)
                    throw PhyrError(error.code, "reading physical addresses of \(spanText(range)) failed: \(error)")
                }
            }
            return id
        }
    }

    static func unpin(_ id: UInt64) -> Bool {
        table.withLock { release(id, in: &$0) }
    }

    /// Removes range `id` and unlocks what no other live range covers, with
    /// the table's lock held; false when `id` is not live.
    static func release(_ id: UInt64, in table: inout PinTable) -> Bool {
        guard let freed = table.remove(id) else { return false }
        for piece in freed { Locker.unlock(piece) }
        return true
    }

    // MARK: steps of pin

    private static func mappingsChecked(_ span: Range<UInt64>, range: Range<UInt64>,
                                        write: Bool) throws(PhyrError) -> [Mapping] {
        let mappings: [Mapping]
        do throws(Mappings.Failure) {
            mappings = try Mappings.covering(span)
        } catch {
            switch error {
            case .unmapped(let hole):
                throw PhyrError(EFAULT, "\(spanText(hole)) is not mapped (pinning \(spanText(range)))")
            case .system(let e):
                throw PhyrError(e.code, "cannot read this process's mappings (/proc/self/maps): \(e)")
            }
        }
        for m in mappings {
            if !m.readable && !m.writable {
                let what = Mappings.describe(m)
                throw PhyrError(EFAULT, "\(what) is PROT_NONE (pinning \(spanText(range)))")
            }
            if write && !m.writable {
                let what = Mappings.describe(m)
                throw PhyrError(EACCES, "PHYR_PIN_WRITE: \(what) is read-only (pinning \(spanText(range)))")
            }
        }
        return mappings
    }

    private static func scanBacking(_ span: Range<UInt64>, _ mappings: [Mapping]) throws(PhyrError) -> [BackingRun] {
        do {
            let regions = try PageScanner.scan(span, mappings: mappings)
            return Backing.classify(regions, span: span, mappings: mappings)
        } catch {
            throw PhyrError(error.code, "cannot read /proc/self/pagemap for \(spanText(span)): \(error)")
        }
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
                do {
                    try Locker.populate(piece, write: byWrite)
                } catch {
                    let what = "\(spanText(piece)) of \(Mappings.describe(m))"
                    if error.code == ENOMEM {
                        throw PhyrError(ENOMEM, "out of memory faulting in \(what)"
                                        + (m.isHugetlb ? " (hugetlb pool exhausted?)" : ""))
                    }
                    throw PhyrError(EFAULT, "cannot fault in \(what): \(error)")
                }
                did = true
            }
        }
        return did
    }

    private static func lockFailure(_ e: Errno, piece: Range<UInt64>, all: [Range<UInt64>],
                                    range: Range<UInt64>) -> PhyrError {
        let charge = all.reduce(UInt64(0)) { $0 + UInt64($1.count) }
        var msg = "mlock of \(spanText(piece)) failed (\(e)) pinning \(spanText(range)), "
            + "which needs \(byteCount(charge)) newly locked"
        if let limit = Locker.lockLimit() {
            msg += "; RLIMIT_MEMLOCK is \(byteCount(limit))"
            if let locked = Locker.lockedBytes() { msg += " and \(byteCount(locked)) is locked already" }
        }
        return PhyrError(ENOMEM, msg)
    }
}
