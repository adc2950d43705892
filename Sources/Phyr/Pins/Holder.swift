// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import Synchronization
import PhyrCore

/// One of libphyr's holder rings: an io_uring of its own whose buffer table
/// is nothing but long-term pins.
struct HolderRing: Sendable {
    /// Never reused in the process, unlike descriptor numbers.
    var number: UInt64
    var fd: Int32
    /// Checked before each use: a program that closes every descriptor (a
    /// daemon) closes this one too, and its number may name anything next.
    var identity: RingFiles.Identity
    var slots: SlotTable
    /// Huge folios its table is charged for (see `LockCharge`).
    var charged = CountedIntervalMap()
}

struct HolderState: Sendable {
    var rings: [HolderRing] = []
    var nextSerial: UInt64 = 1
    var nextRing: UInt64 = 1

    /// A forked child holds nothing: the holder rings are the parent's (their
    /// pins stay the parent's), and the fork closed the child's copies of
    /// them (they are kept descriptors, see `RingFiles.keep`).
    func forChild() -> HolderState {
        HolderState()
    }
}

/// The kernel's long-term pin, taken the one way an unprivileged process
/// can: by registering the memory as fixed buffers in io_urings of
/// libphyr's own (`pin_user_pages(FOLL_WRITE | FOLL_LONGTERM)`, one
/// reference per folio where a buffer coalesces).
///
/// Holder rings are made on demand with tables of 64, 128, ... slots, up to
/// the kernel's 16384, so their number stays logarithmic in the pins held:
/// every new huge page a buffer brings makes the kernel walk every slot of
/// its ring (the "already charged?" check), so a small table is fast, and
/// a table is never grown (growing it by re-registering would drop the pins
/// for a moment).  A pin's buffers go into the first ring with room.
///
/// The table's lock covers only slot bookkeeping; the registering itself
/// runs outside it (the kernel serialises a ring's table on its own).
enum Holder {
    private static let state = ProcessLocal(HolderState()) { $0.forChild() }

    static let firstTableSize = 64
    static let maxSlots = Int(PHYR_IORING_MAX_REG_BUFFERS)

    static func warm() { state.withLock { _ in } }

    /// Registers `units` in holder rings, all or nothing.  `what` names the
    /// memory for messages.
    static func hold(_ units: [BufferUnit], what: String) throws(PhyrError) -> [HeldBuffer] {
        guard !units.isEmpty else { return [] }
        forgetClosedRings()
        let planned = try reserve(units, what: what)
        var done: [HeldBuffer] = []
        for group in groupsByRing(planned) {
            let iovecs = group.map { phyr_iovec(base: $0.unit.addr, len: $0.unit.len) }
            var failure: (Errno, HeldBuffer)?
            let fd = descriptor(ofRing: group[0].ring)
            if fd == nil { failure = (Errno(code: EBADF), group[0]) }
            var at = failure == nil ? 0 : group.count
            for run in SlotTable.runs(group.map(\.slot)) where at < group.count {
                let (n, error) = BufferTable.update(fd ?? -1, offset: run.lowerBound,
                                                    Array(iovecs[at..<(at + run.count)]))
                done += group[at..<(at + n)]
                if let error { failure = (error, group[at + n]); break }
                at += run.count
            }
            if let (error, buffer) = failure {
                let kept = empty(done)
                give(planned.filter { p in !kept.contains { $0.serial == p.serial } })
                throw refusal(error, buffer, what: what)
            }
        }
        return planned
    }

    /// Empties the slots of buffers no range holds any more: the kernel drops
    /// its pins (after any I/O in flight on them, and not before a clone of
    /// them in a caller's ring is gone too).
    static func release(_ buffers: [HeldBuffer]) {
        guard !buffers.isEmpty else { return }
        let kept = empty(buffers)
        give(buffers.filter { b in !kept.contains { $0.serial == b.serial } })
    }

    // MARK: steps

    /// Slots and charge for `units`, under the lock; the kernel not yet asked.
    private static func reserve(_ units: [BufferUnit], what: String) throws(PhyrError) -> [HeldBuffer] {
        try state.withLock { s throws(PhyrError) -> [HeldBuffer] in
            var out: [HeldBuffer] = []
            var taken: [(ring: Int, slots: [Int], charged: CountedIntervalMap)] = []
            var charge: UInt64 = 0
            var rest = units[...]
            while !rest.isEmpty {
                let r: Int
                do throws(PhyrError) { r = try ringWithRoom(&s, for: min(rest.count, maxSlots), what: what) } catch {
                    for t in taken { s.rings[t.ring].slots.release(t.slots) }
                    throw error
                }
                let n = min(rest.count, s.rings[r].slots.free)
                let chunk = Array(rest.prefix(n))
                rest = rest.dropFirst(n)
                guard let slots = s.rings[r].slots.lowestFree(n) else { break }
                var charged = s.rings[r].charged
                for (u, slot) in zip(chunk, slots) {
                    let c = LockCharge.charge([u], ring: &charged)
                    out.append(HeldBuffer(serial: s.nextSerial, ring: s.rings[r].number, slot: slot, unit: u,
                                          charge: c.bytes, hugeSpans: c.hugeSpans))
                    s.nextSerial += 1
                    charge += c.bytes
                }
                s.rings[r].slots.take(slots, for: 1)
                taken.append((r, slots, charged))
            }
            if let refusal = IoUringCharge.reserve(charge, for: "the kernel's long-term pin of \(what)") {
                for t in taken { s.rings[t.ring].slots.release(t.slots) }
                throw refusal
            }
            for t in taken { s.rings[t.ring].charged = t.charged }
            return out
        }
    }

    /// Gives back slots and charges of buffers whose slots are empty (or were
    /// never filled).
    private static func give(_ buffers: [HeldBuffer]) {
        state.withLock { s in
            for b in buffers {
                guard let r = s.rings.firstIndex(where: { $0.number == b.ring }) else { continue }
                s.rings[r].slots.release([b.slot])
                LockCharge.release(b.hugeSpans, ring: &s.rings[r].charged)
            }
        }
        IoUringCharge.give(buffers.reduce(0) { $0 + $1.charge })
    }

    /// Empties the buffers' slots; returns those the kernel would not empty
    /// (their slots stay taken: never reused under a pin the kernel keeps).
    @discardableResult
    private static func empty(_ buffers: [HeldBuffer]) -> [HeldBuffer] {
        var kept: [HeldBuffer] = []
        for group in groupsByRing(buffers) {
            // A ring closed behind libphyr's back took its pins with it.
            guard let fd = descriptor(ofRing: group[0].ring) else { continue }
            var at = 0
            for run in SlotTable.runs(group.map(\.slot)) {
                let (n, error) = BufferTable.update(fd, offset: run.lowerBound,
                                                    Array(repeating: phyr_iovec(base: 0, len: 0), count: run.count))
                if error != nil { kept += group[(at + n)..<(at + run.count)] }
                at += run.count
            }
        }
        return kept
    }

    /// The descriptor of holder ring `number`, checked to be still the ring
    /// libphyr made; nil when it is not.  A ring closed behind libphyr's back
    /// is forgotten (its descriptor number is no longer libphyr's), and its
    /// slots are never used again.
    static func descriptor(ofRing number: UInt64) -> Int32? {
        guard let ring = state.withLock({ s in s.rings.first { $0.number == number } }) else { return nil }
        if RingFiles.still(ring.fd, names: ring.identity) { return ring.fd }
        state.withLock { s in s.rings.removeAll { $0.number == number } }
        RingFiles.forgetKept(ring.fd, naming: ring.identity)
        return nil
    }

    /// Forgets the holder rings a program closed behind libphyr's back (a
    /// daemon closing every descriptor): new pins go to rings that work.
    private static func forgetClosedRings() {
        for ring in state.withLock({ $0.rings }) where !RingFiles.still(ring.fd, names: ring.identity) {
            _ = descriptor(ofRing: ring.number)
        }
    }

    /// Buffers grouped by ring, each group sorted by slot (as `SlotTable.runs`
    /// returns runs).
    private static func groupsByRing(_ buffers: [HeldBuffer]) -> [[HeldBuffer]] {
        var byRing: [UInt64: [HeldBuffer]] = [:]
        for b in buffers { byRing[b.ring, default: []].append(b) }
        return byRing.values.map { $0.sorted { $0.slot < $1.slot } }
    }

    /// The first ring with a free slot, or a new one sized for `count` more.
    private static func ringWithRoom(_ s: inout HolderState, for count: Int, what: String) throws(PhyrError) -> Int {
        if let r = s.rings.firstIndex(where: { $0.slots.free >= count }) { return r }
        let doubling = firstTableSize << min(s.rings.count, 8)
        let size = min(maxSlots, max(doubling, count))
        let fd: Int32
        do { fd = RingFiles.movedHigh(try BufferTable.makeRing()) } catch {
            throw IoUringCharge.unavailable(error, doing: "PHYR_PIN_LONGTERM of \(what): making an io_uring to hold the pin")
        }
        do {
            try BufferTable.create(fd, [], size: size)
        } catch {
            RingFiles.close(fd)
            throw IoUringCharge.unavailable(error, doing: "PHYR_PIN_LONGTERM of \(what): making a buffer table of "
                                            + "\(size) slots to hold the pin")
        }
        let identity: RingFiles.Identity
        do {
            identity = try RingFiles.identity(fd)
            try RingFiles.keep(fd, as: .holder)
        } catch {
            RingFiles.close(fd)
            throw PhyrError(error.code, "PHYR_PIN_LONGTERM of \(what): recording libphyr's holder io_uring "
                            + "failed: \(error)")
        }
        s.rings.append(HolderRing(number: s.nextRing, fd: fd, identity: identity, slots: SlotTable(size: size)))
        s.nextRing += 1
        return s.rings.count - 1
    }

    private static func refusal(_ e: Errno, _ b: HeldBuffer, what: String) -> PhyrError {
        let piece = spanText(b.unit.addr..<b.unit.end)
        switch e.code {
        case ENOMEM:
            var msg = "PHYR_PIN_LONGTERM of \(what): the kernel refused to pin \(piece): out of locked memory"
            if let limit = Locker.lockLimit() {
                msg += " (the kernel's charge for it is \(byteCount(b.charge)), RLIMIT_MEMLOCK is \(byteCount(limit)), "
                    + "and io_uring counts every buffer of this user's processes against it)"
            }
            return PhyrError(ENOMEM, msg)
        case EOPNOTSUPP:
            return PhyrError(EOPNOTSUPP, "PHYR_PIN_LONGTERM of \(what): this kernel cannot long-term pin \(piece) "
                             + "(its io_uring pins only anonymous, shmem and hugetlb memory, no other file-backed memory)")
        case EPERM, ENOSYS, EACCES:
            return IoUringCharge.unavailable(e, doing: "PHYR_PIN_LONGTERM of \(what)")
        case EBADF:
            return PhyrError(EBADF, "PHYR_PIN_LONGTERM of \(what): one of libphyr's holder io_urings was "
                             + "closed behind its back; the pins it held are gone (try again: a new one is made)")
        default:
            return PhyrError(e.code, "PHYR_PIN_LONGTERM of \(what): the kernel refused to pin \(piece): \(e)")
        }
    }
}

/// The bytes of RLIMIT_MEMLOCK io_uring charges for libphyr's buffers, held
/// and registered alike: the kernel counts them per user, apart from mlock's
/// count, and refuses only once its own count is past the limit.  libphyr
/// checks first, to say how much and why.
enum IoUringCharge {
    /// A forked child's buffers are none of its parent's: it starts at 0.
    private static let charged = ProcessLocal(UInt64(0)) { _ in 0 }

    static func warm() { charged.withLock { _ in } }

    /// Counts `bytes` more; nil, or the refusal when the limit cannot take them.
    static func reserve(_ bytes: UInt64, for what: String) -> PhyrError? {
        guard bytes > 0 else { return nil }
        let limit = Locker.mayLockPastLimit ? nil : Locker.lockLimit()
        return charged.withLock { total -> PhyrError? in
            let (new, overflow) = total.addingReportingOverflow(bytes)
            if let limit, overflow || new > limit {
                return PhyrError(ENOMEM, "io_uring would charge \(byteCount(bytes)) of locked memory for \(what), and "
                                 + "libphyr's buffers hold \(byteCount(total)) already; RLIMIT_MEMLOCK is "
                                 + "\(byteCount(limit)) (CAP_IPC_LOCK lifts it)")
            }
            total = overflow ? .max : new
            return nil
        }
    }

    static func give(_ bytes: UInt64) {
        guard bytes > 0 else { return }
        charged.withLock { $0 -= min($0, bytes) }
    }

    /// io_uring refused outright: say whether the sysctl or a filter did.
    static func unavailable(_ e: Errno, doing what: String) -> PhyrError {
        switch e.code {
        case EPERM, ENOSYS, EACCES:
            let disabled = readNumber("/proc/sys/kernel/io_uring_disabled") ?? 0
            let why = disabled == 2 ? "kernel.io_uring_disabled is 2: io_uring is off for every process"
                : disabled == 1 ? "kernel.io_uring_disabled is 1: only root and kernel.io_uring_group may use io_uring"
                : e.code == ENOSYS ? "io_uring is not in this kernel, or a seccomp filter hides it"
                : "a seccomp filter (or an LSM) denies io_uring"
            return PhyrError(EOPNOTSUPP, "\(what) needs io_uring, which is unavailable (\(e)): \(why)")
        case EMFILE, ENFILE:
            return PhyrError(e.code, "\(what): no file descriptor left for libphyr's holder io_uring (\(e))")
        default:
            return PhyrError(e.code, "\(what) failed: \(e)")
        }
    }
}
