// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// Faulting a pin's memory in and making it huge, and what the kernel's
/// refusals mean: populate with its retries, PHYR_PIN_HUGE's collapse, the
/// sentences for mlock's and madvise's errors.
enum Faulting {
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
    static func collapse(_ runs: [BackingRun], _ mappings: [Mapping], range: Range<UInt64>) -> Bool {
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
    static func populate(_ runs: [BackingRun], _ mappings: [Mapping], write: Bool) throws(PhyrError) -> Bool {
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
                if !mapped && (error == .ENOMEM || error == .EFAULT) {
                    throw PhyrError(.EFAULT, "\(spanText(piece)) was unmapped while it was being pinned")
                }
                // Anonymous memory has no file to run past and no pool to run
                // dry: EFAULT there, too, means it changed under the pin.
                let anonymous = !m.fileBacked && !m.isHugetlb
                tries += 1
                guard error == .ENOMEM || (error == .EFAULT && anonymous), !m.isHugetlb else {
                    throw populateFailure(error, piece: piece, mapping: m)
                }
                guard tries < 4 else {
                    // Memory that is mapped whenever it is looked at, yet never
                    // faults in, with memory to spare: something keeps unmapping
                    // and mapping it again.
                    if error == .EFAULT || !Locker.memoryShort(for: UInt64(piece.count)) {
                        throw PhyrError(.EFAULT, "\(spanText(piece)) was unmapped or made inaccessible while it was "
                                        + "being pinned")
                    }
                    throw populateFailure(error, piece: piece, mapping: m)
                }
            }
        }
    }

    private static func populateFailure(_ e: Errno, piece: Range<UInt64>, mapping m: Mapping) -> PhyrError {
        let what = "\(spanText(piece)) of \(Mappings.describe(m))"
        if e == .EMFILE || e == .ENFILE {
            return PhyrError(e, "faulting in \(what) without MADV_POPULATE (Linux 5.14) takes a pipe, and "
                             + "opening one failed: \(e)")
        }
        // A hugetlb fault with no page left in the pool is a SIGBUS, which
        // MADV_POPULATE (and libphyr's own faulting) report as EFAULT -- as
        // they do a hugetlbfs file mapped past its end, while the pool has
        // pages to spare.
        let free = m.isHugetlb ? Locker.freeHugetlbPages(m.pageSize) : nil
        if m.isHugetlb && e == .EFAULT, let free, free > 0 {
            return PhyrError(.EFAULT, "cannot fault in \(what) (\(e)) though the hugetlb pool has \(free) pages free: "
                             + "does the mapping run past the end of its file?")
        }
        if m.isHugetlb && (e == .EFAULT || e == .ENOMEM) {
            let pool = "/sys/kernel/mm/hugepages/hugepages-\(m.pageSize / 1024)kB"
            let count = free.map { "\($0) free" } ?? "an unknown number free"
            return PhyrError(.ENOMEM, "no hugetlb page left to fault in \(what): the pool of \(byteCount(m.pageSize)) "
                             + "pages has \(count) (\(pool); MAP_NORESERVE mappings reserve none)")
        }
        if e == .ENOMEM { return PhyrError(.ENOMEM, "out of memory faulting in \(what)") }
        if e == .EFAULT && m.fileBacked {
            return PhyrError(.EFAULT, "cannot fault in \(what) (\(e)): does the mapping run past the end of its file?")
        }
        return PhyrError(.EFAULT, "cannot fault in \(what): \(e)")
    }

    /// mlock(2) answers ENOMEM for three different things; say which.
    static func lockFailure(_ e: Errno, piece: Range<UInt64>, newlyLocked: [Range<UInt64>],
                                    range: Range<UInt64>) -> PhyrError {
        let doing = "mlock of \(spanText(piece)) pinning \(spanText(range))"
        switch e {
        case .EAGAIN:
            return PhyrError(.EAGAIN, "\(doing) could not lock every page (EAGAIN: the kernel ran short of memory "
                             + "faulting them in); nothing is pinned, try again")
        case .EPERM:
            return PhyrError(.EPERM, "\(doing) was refused (EPERM): RLIMIT_MEMLOCK is 0 and this process "
                             + "lacks CAP_IPC_LOCK")
        case .ENOMEM:
            if let parts = try? Mappings.mappedParts(piece), parts != [piece] {
                return PhyrError(.EFAULT, "\(doing) failed: part of it was unmapped while it was being pinned")
            }
            let need = newlyLocked.reduce(UInt64(0)) { $0 + UInt64($1.count) }
            if !Locker.mayLockPastLimit, let limit = Locker.lockLimit() {
                let locked = Locker.lockedBytes() ?? 0
                if locked &+ need > limit {
                    return PhyrError(.ENOMEM, "mlock of \(spanText(piece)) failed (\(e)) pinning \(spanText(range)), "
                                     + "which needs \(byteCount(need)) newly locked; RLIMIT_MEMLOCK is "
                                     + "\(byteCount(limit)) and \(byteCount(locked)) is locked already")
                }
            }
            if let budget = Locker.mappingBudget(), budget.count + 8 >= budget.limit {
                return PhyrError(.ENOMEM, "\(doing) failed: the process has \(budget.count) mappings and "
                                 + "vm.max_map_count is \(budget.limit) (locking part of a mapping splits it)")
            }
            // mlock's ENOMEM is also POSIX's word for "not mapped", and the
            // kernel's for pages it could not fault in.
            return PhyrError(.EFAULT, "\(doing) failed: part of it was not mapped when the kernel locked it "
                             + "(unmapped while it was being pinned?) or could not be faulted in")
        default:
            return PhyrError(e, "\(doing) failed: \(e)")
        }
    }

    /// madvise(MADV_DONTFORK) refused an extent of a pin.
    static func dontForkFailure(_ e: Errno, extent: Range<UInt64>, range: Range<UInt64>) -> PhyrError {
        let doing = "PHYR_PIN_DONTFORK: madvise(MADV_DONTFORK) of \(spanText(extent)) pinning \(spanText(range))"
        if e == .ENOMEM, let budget = Locker.mappingBudget(), budget.count + 8 >= budget.limit {
            return PhyrError(.ENOMEM, "\(doing) failed: the process has \(budget.count) mappings and "
                             + "vm.max_map_count is \(budget.limit) (marking part of a mapping splits it)")
        }
        if e == .ENOMEM {
            return PhyrError(.EFAULT, "\(doing) failed: part of it was unmapped while it was being pinned")
        }
        return PhyrError(e, "\(doing) failed: \(e)")
    }
}
