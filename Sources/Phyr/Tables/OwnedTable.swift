// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// A buffer table libphyr owns in one io_uring: in a ring of its own (long-
/// term pins, `Holder`) or in a caller's ring (registrations, `Registrar`).
/// One type for both: the ring's descriptor, which slots hold what, what the
/// kernel charged for huge pages in this ring, filling and emptying with
/// rollback, growth, cloning another table's buffers in.
///
/// Two locks.  `bookkeeping` covers the fields and is never held across a
/// system call.  `gate` serialises the kernel work that needs the table to
/// stay as it was seen -- a registration choosing slots and growing the
/// table, the last unregistration destroying it -- and is held across those
/// calls; filling slots already taken needs no gate (the kernel serialises
/// a ring's table on its own).  Lock order: gate, then bookkeeping.  A forked
/// child drops its parent's tables with the state that holds them.
final class OwnedTable: @unchecked Sendable {
    private let bookkeeping = Lock()
    private let gateLock = Lock()

    // Read and written only under `bookkeeping`.
    private var ringFile: RingFile?
    private var slotTable: SlotTable
    /// The kernel table's contents, slot by slot, for growing by re-registering.
    private var contents: [BufferSpan]
    private var chargedSpans = CountedIntervalMap()
    /// Slots holding clones of another table's buffers: re-registering the
    /// table to grow it would pin and charge them anew.
    private var clonedSlots = 0
    private var isGone = false

    init(file: RingFile, size: Int = 0) {
        ringFile = file
        slotTable = SlotTable(size: size)
        contents = Array(repeating: .empty, count: size)
    }

    /// Runs `body` holding the table's gate (see the type's comment).
    func gate<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R { try gateLock.withLock(body) }

    private func locked<R>(_ body: () -> R) -> R { bookkeeping.withLock(body) }

    var file: RingFile? { locked { ringFile } }
    /// The descriptor, if it still names the ring (one fstat): every kernel
    /// call goes through it, so a number the program closed and that now
    /// names another file -- another ring, even -- is never written to.
    private var intactFile: RingFile? { file.flatMap { $0.isIntact ? $0 : nil } }
    var size: Int { locked { slotTable.size } }
    var used: Int { locked { slotTable.used } }
    var free: Int { locked { slotTable.free } }
    /// The kernel answered that the table is gone: the program unregistered
    /// it behind libphyr's back.  What was in it can only be released.
    var gone: Bool { locked { isGone } }

    // MARK: the descriptor

    /// Whether libphyr's descriptor still names the ring.  One that does not
    /// (the program closed it behind libphyr's back, and the number may name
    /// anything now) is let go of, and `reopen` may give the ring a new one
    /// (a duplicate of a descriptor of the same ring); false when it cannot.
    func reachable(reopen: (RingIdentity) -> RingFile? = { _ in nil }) -> Bool {
        guard let seen = file else { return false }
        if seen.isIntact { return true }
        let fresh = reopen(seen.identity)
        let replaced = locked { () -> Bool in
            guard ringFile == seen else { return false }
            ringFile = fresh
            return true
        }
        if replaced {
            seen.forget()
        } else {
            fresh?.close()  // another thread got there first
        }
        return file?.isIntact ?? false
    }

    /// Closes libphyr's descriptor (the table with no registration left).
    func close() {
        let f = locked { () -> RingFile? in
            defer { ringFile = nil }
            return ringFile
        }
        f?.close()
    }

    // MARK: slots

    /// Takes the `count` lowest free slots; nil when there are not that many.
    func takeSlots(_ count: Int, for owner: UInt64) -> [Int]? {
        locked { () -> [Int]? in
            guard let slots = slotTable.lowestFree(count) else { return nil }
            slotTable.take(slots, for: owner)
            return slots
        }
    }

    /// Gives back slots whose buffers are gone (emptied, or never put in).
    func releaseSlots(_ slots: [Int], cloned: Int = 0) {
        locked {
            slotTable.release(slots)
            for s in slots where s < contents.count { contents[s] = .empty }
            clonedSlots -= min(clonedSlots, cloned)
        }
    }

    /// Notes what `slots` now hold (`cloned` of them clones).
    func record(_ spans: [BufferSpan], in slots: [Int], cloned: Int = 0) {
        locked {
            for (span, s) in zip(spans, slots) where s < contents.count { contents[s] = span }
            clonedSlots += cloned
        }
    }

    // MARK: charges

    /// What putting `units` into this ring charges (`cloned(i)`: unit i is a
    /// clone, charged nothing), worked out on a copy of the ring's charged
    /// huge pages; `commitCharge` keeps it once the kernel agreed.  For a
    /// caller holding the gate, so that no other charge comes in between.
    func charge(_ units: [BufferUnit], cloned: (Int) -> Bool = { _ in false })
        -> (bytes: UInt64, hugeSpans: [Range<UInt64>], charged: CountedIntervalMap) {
        var charged = locked { chargedSpans }
        let (bytes, spans) = LockCharge.charge(units, cloned: cloned, ring: &charged)
        return (bytes, spans, charged)
    }

    func commitCharge(_ charged: CountedIntervalMap) { locked { chargedSpans = charged } }

    /// What holding `unit` charges, counted at once: the holder fills slots
    /// without the gate, and two pins at once must not lose each other's
    /// huge pages.  `releaseCharge` gives it back if the kernel refuses.
    func takeCharge(_ unit: BufferUnit) -> (bytes: UInt64, hugeSpans: [Range<UInt64>]) {
        locked { LockCharge.charge([unit], cloned: { _ in false }, ring: &chargedSpans) }
    }

    func releaseCharge(_ hugeSpans: [Range<UInt64>]) { locked { LockCharge.release(hugeSpans, ring: &chargedSpans) } }

    // MARK: kernel work

    /// Registers the table, `initial` in its first slots (empty spans for
    /// slots that get clones next), `size` slots in all.
    func create(size: Int, initial: [BufferSpan]) throws(Errno) {
        guard let f = intactFile else { throw Errno.EBADF }
        try f.registerTable(initial, size: size)
        locked {
            slotTable = SlotTable(size: size)
            contents = initial + Array(repeating: .empty, count: max(0, size - initial.count))
            isGone = false
        }
    }

    /// Puts `spans` into `slots`, one kernel update per run of consecutive
    /// slots; if the kernel refuses part way, empties what was filled and
    /// throws which span failed and why.
    func fill(_ spans: [BufferSpan], into slots: [Int]) throws(FillFailure) {
        guard let f = intactFile else { throw FillFailure(index: 0, errno: Errno.EBADF) }
        var filled: [Int] = []
        var at = 0
        for run in SlotTable.runs(slots) {
            var done = 0
            do throws(Errno) { try f.update(at: run.lowerBound, Array(spans[at..<(at + run.count)]), done: &done) } catch {
                filled += Array(run.lowerBound..<(run.lowerBound + done))
                emptyUndoing(filled)
                if error == .ENXIO { locked { isGone = true } }
                throw FillFailure(index: at + done, errno: error)
            }
            filled += Array(run)
            at += run.count
        }
        record(spans, in: slots)
    }

    struct FillFailure: Error {
        var index: Int
        var errno: Errno
    }

    /// Empties `slots`; `kept` gets those the kernel would not empty, and
    /// the last refusal is thrown once every run was tried.  A table that is
    /// gone (ENXIO), that is the program's own now (EINVAL: too small for
    /// these slots), or whose descriptor the program closed (for a ring of
    /// libphyr's own: the ring went with its pins) holds nothing of
    /// libphyr's: nothing is kept, nothing thrown.
    func empty(_ slots: [Int], kept: inout [Int]) throws(Errno) {
        guard let f = intactFile, !gone else { return }
        var failure: Errno?
        for run in SlotTable.runs(slots) {
            var done = 0
            do throws(Errno) {
                try f.update(at: run.lowerBound, Array(repeating: .empty, count: run.count), done: &done)
            } catch {
                if error == .ENXIO || error == .EINVAL {
                    locked { isGone = true }
                    kept = []
                    return
                }
                kept += Array((run.lowerBound + done)..<run.upperBound)
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Empties `slots` where no one needs to know what the kernel refused:
    /// undoing a fill that failed.
    func emptyUndoing(_ slots: [Int]) {
        var kept: [Int] = []
        try? empty(slots, kept: &kept)
    }

    /// Clones `count` buffers from `source` on into this table's slots
    /// from `slot` on: nothing pinned or charged again.
    func clone(from source: CloneSource, into slot: Int, count: Int) throws(Errno) {
        guard let f = intactFile, let s = source.table.intactFile else { throw Errno.EBADF }
        try f.clone(into: slot, from: s, at: source.slot, count: count)
        locked { clonedSlots += count }
    }

    /// Grows the table to `newSize` slots: by cloning through a scratch ring
    /// where the kernel can (nothing re-pinned; `cloning` false once a
    /// filter refused it), else by re-registering every buffer -- refused
    /// for a table holding clones, which that would pin and charge anew.
    func grow(to newSize: Int, cloning: Bool) throws(GrowthFailure) {
        guard let f = intactFile else { throw .kernel(Errno.EBADF, restored: false) }
        let (size, now, cloned) = locked { (slotTable.size, contents, clonedSlots) }
        guard newSize > size else { return }
        if cloning {
            do throws(Errno) {
                try f.growTableByCloning(from: size, to: newSize)
                extend(to: newSize)
                return
            } catch {
                throw .cloningRefused(error)
            }
        }
        guard cloned == 0 else { throw .holdsClones(cloned) }
        let grown = now + Array(repeating: .empty, count: newSize - size)
        do throws(Errno) {
            try ForkGuard.outside { () throws(Errno) in try f.unregisterTable() }
            try f.registerTable(grown, size: newSize)
        } catch {
            let restored = (try? f.registerTable(now, size: size)) != nil
            throw .kernel(error, restored: restored)
        }
        extend(to: newSize)
    }

    enum GrowthFailure: Error {
        case cloningRefused(Errno)
        case holdsClones(Int)
        case kernel(Errno, restored: Bool)
    }

    private func extend(to newSize: Int) {
        locked {
            slotTable.grow(to: newSize)
            contents.append(contentsOf: repeatElement(.empty, count: max(0, newSize - contents.count)))
        }
    }

    /// Destroys the table, giving the ring back as found.  The kernel may
    /// wait for the ring's requests in flight first: a fork() does not wait
    /// with it (only this table's gate is held, and a forked child never
    /// touches its parent's tables).
    func destroy() {
        guard let f = intactFile, !gone else { return }
        _ = try? ForkGuard.outside { () throws(Errno) in try f.unregisterTable() }
        locked {
            slotTable = SlotTable(size: 0)
            contents = []
            chargedSpans = CountedIntervalMap()
            clonedSlots = 0
        }
    }
}

/// A buffer another table holds, to clone from: what `Holder` hands the
/// registrar for a long-term range, so the registrar never sees the holder's
/// rings.
struct CloneSource {
    fileprivate let table: OwnedTable
    let slot: Int

    init(table: OwnedTable, slot: Int) {
        self.table = table
        self.slot = slot
    }

    /// Whether `next` is the buffer right after this one in the same table.
    func isFollowed(by next: CloneSource, at distance: Int) -> Bool {
        next.table === table && next.slot == slot + distance
    }
}
