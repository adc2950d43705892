// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

/// What libphyr knows about one ring whose buffer table it owns.
struct RingState {
    /// libphyr's own duplicate of the ring's fd.  It keeps every registration
    /// unregisterable after the caller's io_uring_queue_exit(), and is closed,
    /// with the table destroyed, when the ring's last registration goes; -1
    /// once the program closed it behind libphyr's back (a new registration
    /// in the ring duplicates the caller's fd again).
    var fd: Int32
    /// What `fd` names, checked before each use of it: its number may have
    /// gone to another file.
    var file: RingFiles.Identity
    /// The ring's inode, which tells it from a new ring behind a reused fd
    /// number; nil on kernels that give every ring one inode (kcmp then).
    var identity: RingFiles.Identity?
    let table = RingTable()
}

/// A ring's buffer table as libphyr keeps it, with its own lock, which
/// serialises the kernel work on the table: two rings register at once.
/// Its fields are read and written only inside `run`; lock order: the
/// table, then the registrar's state.  A class, so that a registration
/// changes one slot of the table in place rather than copying all of it.
final class RingTable: @unchecked Sendable {
    private let lock = Lock()
    var slots = SlotTable(size: 0)
    /// The kernel table's contents, slot by slot, for re-registration.
    var iovecs: [phyr_iovec] = []
    var registrations: Set<Int> = []
    /// The kernel answered that the table is gone: the program unregistered
    /// it behind libphyr's back.  Registrations in it can only be released.
    var tableGone = false
    /// Huge folios this ring's table has been charged for (the kernel charges
    /// each once per ring).
    var hugeCharged = CountedIntervalMap()
    /// Slots holding buffers cloned from holder rings: re-registering the
    /// table would pin and charge them anew, so such a table only grows by
    /// cloning.
    var clonedSlots = 0

    func run<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        try lock.withLock(body)
    }
}

struct Registration {
    var ring: UInt64
    var units: [BufferUnit]
    var slots: [Int]
    var retained: [UInt64]
    var index: BufferIndex
    var serial: UInt64
    var hugeSpans: [Range<UInt64>]
    var charge: UInt64
    var cloned: Int
}

struct RegistrarState {
    var rings: [UInt64: RingState] = [:]
    var ringByIdentity: [RingFiles.Identity: UInt64] = [:]
    /// Only on kernels whose rings share an inode: by the caller's fd number.
    var ringByFd: [Int32: UInt64] = [:]
    var nextRing: UInt64 = 1
    /// By handle slot.
    var registrations: [Int: Registration] = [:]
    var freeHandleSlots: [Int] = []
    /// Slots at and past this were never used.
    var freshHandleSlot = 0
    var nextSerial: UInt64 = 1
    /// Serials below this were handed out before this process was forked.
    var inheritedBelow: UInt64 = 0
    var indexPool = BufferIndexPool()

    /// What a forked child starts with: no registrations.  The buffer tables
    /// are the parent's (a ring is shared across fork), so nothing is
    /// unregistered; the fork closed the child's copies of libphyr's ring
    /// duplicates (kept descriptors) and noted their rings as the parent's.
    func forChild() -> RegistrarState {
        var child = RegistrarState()
        child.nextSerial = nextSerial
        child.inheritedBelow = nextSerial
        return child
    }

    /// A handle slot for a new registration.
    mutating func takeHandleSlot() throws(PhyrError) -> Int {
        if let slot = freeHandleSlots.popLast() { return slot }
        guard freshHandleSlot < RegistrationHandles.capacity else {
            throw PhyrError(EMFILE, "ring_register_ranges: \(RegistrationHandles.capacity) registrations are live "
                            + "already, the most a process may hold (ring_unregister_ranges some first)")
        }
        guard RegistrationHandles.reserve(slot: freshHandleSlot) else {
            throw PhyrError(ENOMEM, "ring_register_ranges: out of memory for the lookup table of registrations")
        }
        freshHandleSlot += 1
        return freshHandleSlot - 1
    }

    /// Why `handle` is not a live registration here.
    func absence(of handle: UnsafeRawPointer?) -> Absence {
        guard let handle, let (_, serial) = RegistrationHandles.decode(UInt(bitPattern: handle)),
              serial > 0, serial < nextSerial else { return .foreign }
        return serial < inheritedBelow ? .parents : .released
    }
}

/// ring_register_ranges and ring_unregister_ranges.  The registrar's state
/// has one lock, held only for bookkeeping; each ring's kernel work runs
/// under that ring's table lock, so registrations on different rings run at once.
/// The lookup path takes neither.
enum Registrar {
    private static let state = ProcessLocal(RegistrarState()) { $0.forChild() }

    /// Makes the state and its lock's machinery (see `enterLibrary`).
    static func warm() { state.withLock { _ in } }

    static let maxSlots = Int(PHYR_IORING_MAX_REG_BUFFERS)

    /// Spare empty slots a new or grown table gets: a little room, because
    /// the kernel's charge check walks every slot per new huge page.
    static func spare(_ n: Int) -> Int { max(16, n / 4) }

    // MARK: register

    static func register(ring: OpaquePointer, ranges ids: [UInt64]) throws(PhyrError) -> UInt {
        try Pinner.requireSupportedKernel()
        let ringFd = phyr_shim_ring_fd(ring)
        guard ringFd >= 0 else {
            throw PhyrError(EINVAL, "ring_register_ranges: the ring has no file descriptor (ring_fd is \(ringFd))")
        }
        // Our own references first: the caller may unpin its handles at once.
        let retained: [(id: UInt64, range: PinnedRange)]
        do throws(Pinner.RetainFailure) {
            retained = try Pinner.retain(ids)
        } catch {
            guard let absence = error.absence else { throw Pinner.tooMany().prefixed("ring_register_ranges") }
            throw PhyrError(EINVAL, "ring_register_ranges: ranges[\(error.index)] is not a live range: \(absence.reason)")
        }
        var committed = false
        defer { if !committed { for r in retained { try? Pinner.unpin(r.id) } } }

        let plan: RegistrationPlan
        do {
            plan = try RegistrationPlan(segments: retained.flatMap { Array($0.range.segments) })
        } catch {
            guard case .noFolio(let seg) = error else { throw PhyrError(EINVAL, "\(error)") }
            throw PhyrError(EOPNOTSUPP, "ring_register_ranges: \(spanText(seg.addr..<seg.end)) has no folio behind it "
                            + "(PFN-mapped or IO memory); io_uring cannot pin it")
        }
        // Probed (once) before the lock every registration takes: it
        // registers memory of its own in a scratch ring, nine times over.
        _ = KernelFeatures.shared.coalescing
        // A unit that is exactly a held buffer of a long-term range is cloned
        // from it: nothing pinned or charged again.
        var sources: [HeldBuffer?] = Array(repeating: nil, count: plan.units.count)
        if retained.contains(where: { $0.range.isLongterm }), KernelFeatures.shared.cloneIntoSlots {
            var byUnit: [UInt64: HeldBuffer] = [:]
            for r in retained { for h in r.range.held { byUnit[h.unit.addr] = h } }
            for (i, u) in plan.units.enumerated() {
                if let h = byUnit[u.addr], h.unit == u { sources[i] = h }
            }
        }
        let handle: UInt
        do throws(PhyrError) {
            handle = try registerUnits(plan.units, sources: sources, ringFd: ringFd, retained: retained.map(\.id))
        } catch where error.code == EFAULT {
            // Said only once the kernel refuses: reading the mappings for
            // every range would cost more than the registration itself.
            try explainFault(retained.map(\.range.range))
            throw error
        }
        committed = true
        return handle
    }

    private static func registerUnits(_ units: [BufferUnit], sources: [HeldBuffer?], ringFd: Int32,
                                      retained: [UInt64]) throws(PhyrError) -> UInt {
        let handleSlot = try state.withLock { s throws(PhyrError) -> Int in try s.takeHandleSlot() }
        var cloning = sources.contains { $0 != nil }
        let none = [HeldBuffer?](repeating: nil, count: sources.count)
        while true {
            do throws(PhyrError) {
                let (ringID, table) = try state.withLock { s throws(PhyrError) -> (UInt64, RingTable) in
                    let id = try ringState(&s, ringFd: ringFd)
                    guard let table = s.rings[id]?.table else { throw PhyrError(EINVAL, "ring_register_ranges: lost ring state") }
                    return (id, table)
                }
                let handle = try table.run { () throws(PhyrError) -> UInt? in
                    // Forgotten while this call waited (its last registration
                    // went): look it up again.
                    guard let ring = state.withLock({ $0.rings[ringID] }) else { return nil }
                    return try registerOnRing(ring, ringID: ringID, units: units, sources: cloning ? sources : none,
                                              retained: retained, handleSlot: handleSlot)
                }
                if let handle { return handle }
            } catch where error.code == cloneRefused {
                // Registered directly instead, charged as the kernel will.
                KernelFeatures.shared.stopCloningIntoSlots()
                cloning = false
            } catch {
                state.withLock { $0.freeHandleSlots.append(handleSlot) }
                throw error
            }
        }
    }

    /// Internal: the kernel refused a clone the probe said it does (a filter
    /// since?); the registration is undone and made again directly.
    private static let cloneRefused: Int32 = -1

    /// Why the kernel answered EFAULT, where the mappings say: io_uring pins
    /// with FOLL_WRITE, so a range made read-only (or unmapped) since it was
    /// pinned, PHYR_PIN_WRITE or not, is refused.  Returns when they do not tell.
    private static func explainFault(_ ranges: [Range<UInt64>]) throws(PhyrError) {
        let spans = ranges.map { alignDown($0.lowerBound, basePageSize)..<alignUp($0.upperBound, basePageSize) }
        let maps: [[Mapping]]
        do throws(Mappings.SpanFailure) { maps = try Mappings.covering(each: spans) } catch {
            switch error.failure {
            case .unmapped:
                throw PhyrError(EFAULT, "ring_register_ranges: ranges[\(error.index)] \(spanText(ranges[error.index])) "
                                + "is no longer mapped")
            case .system:
                return
            }
        }
        for (i, under) in maps.enumerated() {
            if let m = under.first(where: { !$0.readable && !$0.writable }) {
                throw PhyrError(EFAULT, "ring_register_ranges: ranges[\(i)] lies in \(Mappings.describe(m)), "
                                + "made PROT_NONE since it was pinned")
            }
            if let m = under.first(where: { !$0.writable }) {
                throw PhyrError(EACCES, "ring_register_ranges: ranges[\(i)] lies in read-only "
                                + "\(Mappings.describe(m)); io_uring pins buffers for writing")
            }
        }
    }

    /// The kernel work of one registration, inside the ring's table lock
    /// (`RingTable.run`), which changes the table in place (a grown table
    /// stays grown whatever happens next); a ring left with no table and no
    /// registration is forgotten.
    private static func registerOnRing(_ ring: RingState, ringID: UInt64, units: [BufferUnit], sources: [HeldBuffer?],
                                       retained: [UInt64], handleSlot: Int) throws(PhyrError) -> UInt {
        let table = ring.table
        let isNew = table.slots.size == 0
        var ok = false
        defer {
            if !ok && isNew && table.slots.size == 0 && table.registrations.isEmpty {
                let forgotten = state.withLock { s -> Int32? in forget(&s, ringID) }
                if let fd = forgotten, fd >= 0 { RingFiles.closeKept(fd) }
            }
        }

        if table.tableGone {
            throw PhyrError(ENXIO, "ring_register_ranges: the ring's buffer table is gone: it was unregistered behind "
                            + "libphyr's back (io_uring_unregister_buffers?); ring_unregister_ranges the "
                            + "registrations that were in it, and the next one makes a new table")
        }
        let k = units.count
        guard table.slots.used + k <= maxSlots else {
            throw PhyrError(ENOSPC, "ring_register_ranges: \(k) buffers do not fit: the ring's table holds "
                            + "\(table.slots.used) of at most \(maxSlots)")
        }

        // The lock charge, as the kernel will count it.  Worked out on a copy,
        // kept only if the kernel agrees.
        var hugeCharged = table.hugeCharged
        let (charge, hugeSpans) = LockCharge.charge(units, cloned: { sources[$0] != nil }, ring: &hugeCharged)
        if let refusal = IoUringCharge.reserve(charge, for: "\(k) buffers") {
            throw PhyrError(ENOMEM, "ring_register_ranges: " + refusal.message)
        }
        var charged = false
        defer { if !charged { IoUringCharge.give(charge) } }

        let iovecs = units.map { phyr_iovec(base: $0.addr, len: $0.len) }
        let direct = units.indices.filter { sources[$0] == nil }
        let slots: [Int]
        if isNew {
            let size = min(maxSlots, k + spare(k))
            // Cloned slots start empty and get their buffers next.
            var initial = iovecs
            for i in units.indices where sources[i] != nil { initial[i] = phyr_iovec(base: 0, len: 0) }
            do {
                try BufferTable.create(ring.fd, initial, size: size)
            } catch {
                throw kernelRefusal(error, "registering \(k) buffers", fd: ring.fd, charge: charge, creating: true)
            }
            slots = Array(0..<k)
            do throws(PhyrError) {
                try cloneHeld(ring, slots: slots, sources: sources)
            } catch {
                try? BufferTable.destroy(ring.fd)
                throw error
            }
            table.slots = SlotTable(size: size)
            table.iovecs = Array(repeating: phyr_iovec(base: 0, len: 0), count: size)
        } else {
            try ensureCapacity(ring, for: k)  // the kernel's table has its new size whatever happens next
            guard let free = table.slots.lowestFree(k) else {
                throw PhyrError(ENOSPC, "ring_register_ranges: no room for \(k) buffers in the ring's table")
            }
            try fill(ring, slots: direct.map { free[$0] }, iovecs: direct.map { iovecs[$0] }, charge: charge)
            do throws(PhyrError) {
                try cloneHeld(ring, slots: free, sources: sources)
            } catch {
                for r in SlotTable.runs(free) {
                    _ = BufferTable.update(ring.fd, offset: r.lowerBound,
                                           Array(repeating: phyr_iovec(base: 0, len: 0), count: r.count))
                }
                throw error
            }
            slots = free
        }

        table.slots.take(slots, for: UInt64(handleSlot))
        for (u, slot) in zip(iovecs, slots) { table.iovecs[slot] = u }
        table.registrations.insert(handleSlot)
        table.hugeCharged = hugeCharged
        let cloned = sources.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        table.clonedSlots += cloned
        charged = true
        ok = true
        let coalescing = KernelFeatures.shared.coalescing
        return state.withLock { s -> UInt in
            let serial = s.nextSerial
            s.nextSerial += 1
            let handle = RegistrationHandles.handle(slot: handleSlot, serial: serial)
            let index = s.indexPool.take(for: units.count)
            index.fill(handle: handle, units: units, slots: slots, coalescing: coalescing)
            s.registrations[handleSlot] = Registration(ring: ringID, units: units, slots: slots, retained: retained,
                                                       index: index, serial: serial,
                                                       hugeSpans: hugeSpans, charge: charge, cloned: cloned)
            RegistrationHandles.publish(index, slot: handleSlot)
            return UInt(handle)
        }
    }

    /// Clones the held buffers `sources` names into their `slots` of the
    /// ring, one call per run of consecutive slots of one holder ring.  A
    /// refused clone empties what this call put in and throws `cloneRefused`:
    /// the registration is made again, directly and charged.
    private static func cloneHeld(_ ring: RingState, slots: [Int], sources: [HeldBuffer?]) throws(PhyrError) {
        var i = 0
        while i < slots.count {
            guard let first = sources[i] else { i += 1; continue }
            var n = 1
            while i + n < slots.count, let next = sources[i + n], next.ring == first.ring,
                  next.slot == first.slot + n, slots[i + n] == slots[i] + n { n += 1 }
            do throws(Errno) {
                guard let source = Holder.descriptor(ofRing: first.ring) else { throw Errno(code: EBADF) }
                try BufferTable.clone(into: ring.fd, at: slots[i], from: source, at: first.slot, count: n)
            } catch {
                throw PhyrError(cloneRefused, "ring_register_ranges: cloning a held buffer was refused: \(error)")
            }
            i += n
        }
    }

    /// The state of the ring behind `ringFd`, made on first use.  A state
    /// whose ring the caller has exited stays for its own registrations, and
    /// a new ring behind the reused fd number gets a state of its own.
    private static func ringState(_ s: inout RegistrarState, ringFd: Int32) throws(PhyrError) -> UInt64 {
        var identity: RingFiles.Identity?
        if RingFiles.inodesTellRingsApart(ringFd) {
            let me: RingFiles.Identity
            do { me = try RingFiles.identity(ringFd) } catch {
                throw PhyrError(EINVAL, "ring_register_ranges: the ring's fd \(ringFd) is not open")
            }
            identity = me
            if RingFiles.inheritedAcrossFork(me) {
                throw PhyrError(EBUSY, "ring_register_ranges: this ring was inherited across fork() from a process "
                                + "that had buffers registered in it through libphyr: its buffer table is that "
                                + "process's, and libphyr leaves it alone (make a ring of your own)")
            }
            // Inode numbers come back after 2^32 of them; where kcmp is
            // allowed it confirms the match.
            if let id = s.ringByIdentity[me], let ring = s.rings[id] {
                if !RingFiles.still(ring.fd, names: ring.file) {
                    // libphyr's duplicate was closed behind its back: the
                    // caller's fd names the same ring, duplicate it again.
                    if ring.fd >= 0 { RingFiles.forgetKept(ring.fd, naming: ring.file) }
                    let (dup, file) = try duplicateRing(ringFd)
                    s.rings[id]?.fd = dup
                    s.rings[id]?.file = file
                    return id
                }
                if RingFiles.sameFile(ring.fd, ringFd) != false { return id }
            }
        } else if let id = s.ringByFd[ringFd], let ring = s.rings[id] {
            switch RingFiles.sameFile(ring.fd, ringFd) {
            case true?:
                return id
            case false?:
                s.ringByFd[ringFd] = nil
            case nil:
                throw PhyrError(EOPNOTSUPP, "ring_register_ranges: cannot tell whether fd \(ringFd) is still the ring "
                                + "libphyr registered buffers in: this kernel gives every io_uring the same inode and "
                                + "denies kcmp(2) (a seccomp filter?)")
            }
        }
        let (dup, file) = try duplicateRing(ringFd)
        let id = s.nextRing
        s.nextRing += 1
        s.rings[id] = RingState(fd: dup, file: file, identity: identity)
        if let identity { s.ringByIdentity[identity] = id } else { s.ringByFd[ringFd] = id }
        return id
    }

    /// Destroys a ring's table.  The kernel may wait for the ring's requests
    /// in flight (a recv pending for minutes, say) before it returns: fork()
    /// does not wait with it -- only the ring's own lock is held here, and a
    /// forked child never touches its parent's tables.
    private static func destroyTable(_ fd: Int32) throws(Errno) {
        phyr_shim_fork_guard_step_out()
        defer { phyr_shim_fork_guard_step_in() }
        try BufferTable.destroy(fd)
    }

    /// libphyr's own duplicate of the caller's ring fd, kept (a forked child
    /// closes its copy at once), and what it names.
    private static func duplicateRing(_ ringFd: Int32) throws(PhyrError) -> (Int32, RingFiles.Identity) {
        let dup: Int32
        do { dup = try RingFiles.duplicate(ringFd) } catch {
            if error.code == EMFILE || error.code == ENFILE {
                throw PhyrError(error.code, "ring_register_ranges: libphyr keeps a descriptor of its own for each ring "
                                + "it has buffers in, and duplicating fd \(ringFd) failed: \(error)")
            }
            throw PhyrError(EINVAL, "ring_register_ranges: the ring's fd \(ringFd) is not open")
        }
        do {
            let file = try RingFiles.identity(dup)
            try RingFiles.keep(dup, as: .ring)
            return (dup, file)
        } catch {
            RingFiles.close(dup)
            throw PhyrError(error.code, "ring_register_ranges: recording libphyr's duplicate of fd \(ringFd) failed: \(error)")
        }
    }

    /// Drops ring `id`'s state; returns libphyr's duplicate of its fd (-1 for
    /// none), for the caller to close outside the state's lock.
    private static func forget(_ s: inout RegistrarState, _ id: UInt64) -> Int32? {
        guard let ring = s.rings.removeValue(forKey: id) else { return nil }
        if let identity = ring.identity, s.ringByIdentity[identity] == id { s.ringByIdentity[identity] = nil }
        for (fd, r) in s.ringByFd where r == id { s.ringByFd[fd] = nil }
        return ring.fd
    }

    private static func ensureCapacity(_ ring: RingState, for k: Int) throws(PhyrError) {
        let table = ring.table
        guard table.slots.free < k else { return }
        let size = table.slots.size
        let newSize = min(maxSlots, max(size * 2, table.slots.used + k + spare(k)))
        let features = KernelFeatures.shared
        if features.cloneBuffers {
            do {
                try BufferTable.growByCloning(ring.fd, from: size, to: newSize)
                table.slots.grow(to: newSize)
                table.iovecs.append(contentsOf: repeatElement(phyr_iovec(base: 0, len: 0), count: newSize - size))
                return
            } catch where [EINVAL, EOPNOTSUPP, EPERM, EACCES, ENOSYS, EBUSY].contains(error.code) {
                // The probe said cloning works, but a seccomp filter may deny
                // the scratch ring since: re-register.
                features.stopCloning()
            } catch {
                throw PhyrError(error.code, "ring_register_ranges: growing the ring's table from \(size) to \(newSize) slots "
                                + "failed: \(error)")
            }
        }
        guard table.clonedSlots == 0 else {
            throw PhyrError(ENOSPC, "ring_register_ranges: the ring's table of \(size) slots is full, and it holds "
                            + "\(table.clonedSlots) buffers cloned from long-term ranges, which re-registering the table "
                            + "to grow it would pin and charge anew (growing by cloning was refused here)")
        }
        // Re-registration pins every buffer again; the old table's buffers stay
        // pinned by the kernel until in-flight I/O on them completes.
        var grown = table.iovecs
        grown.append(contentsOf: repeatElement(phyr_iovec(base: 0, len: 0), count: newSize - size))
        do {
            try destroyTable(ring.fd)
            try BufferTable.create(ring.fd, grown, size: newSize)
        } catch {
            let restored = (try? BufferTable.create(ring.fd, table.iovecs, size: size)) != nil
            throw PhyrError(error.code, "ring_register_ranges: re-registering the ring's table at \(newSize) slots failed "
                            + "(\(error))"
                            + (restored ? "; the old table is back" : "; the old table could not be restored"))
        }
        table.slots.grow(to: newSize)
        table.iovecs = grown
    }

    /// Puts `iovecs` into `slots`, one update per run of consecutive slots;
    /// if the kernel refuses part way, empties what was filled.
    private static func fill(_ ring: RingState, slots: [Int], iovecs: [phyr_iovec], charge: UInt64) throws(PhyrError) {
        var filled: [Range<Int>] = []
        var consumed = 0
        for run in SlotTable.runs(slots) {
            let batch = Array(iovecs[consumed..<(consumed + run.count)])
            let (done, error) = BufferTable.update(ring.fd, offset: run.lowerBound, batch)
            filled.append(run.lowerBound..<(run.lowerBound + done))
            if let error {
                if error.code == ENXIO { ring.table.tableGone = true }
                for r in filled where !r.isEmpty {
                    _ = BufferTable.update(ring.fd, offset: r.lowerBound,
                                           Array(repeating: phyr_iovec(base: 0, len: 0), count: r.count))
                }
                let failed = iovecs[consumed + done]
                throw kernelRefusal(error, "registering \(spanText(failed.base..<(failed.base + failed.len)))",
                                    fd: ring.fd, charge: charge, creating: false)
            }
            consumed += run.count
        }
    }

    private static func kernelRefusal(_ e: Errno, _ what: String, fd: Int32, charge: UInt64,
                                      creating: Bool) -> PhyrError {
        switch e.code {
        case EBUSY where creating:
            return PhyrError(EBUSY, "ring_register_ranges: the ring already has a buffer table that libphyr did not create")
        case ENOMEM:
            var msg = "ring_register_ranges: the kernel refused \(what): out of locked memory "
                + "(this registration charges about \(byteCount(charge)))"
            if let limit = Locker.lockLimit() { msg += "; RLIMIT_MEMLOCK is \(byteCount(limit))" }
            return PhyrError(ENOMEM, msg)
        case EOPNOTSUPP where RingFiles.isIoUring(fd):
            // Older kernels (Debian 12's 6.1) pin only anonymous, shmem and hugetlb memory.
            return PhyrError(EOPNOTSUPP, "ring_register_ranges: the kernel refused \(what): this kernel's io_uring "
                             + "does not register file-backed memory (other than shmem and hugetlbfs); "
                             + "pin anonymous memory instead")
        case EOPNOTSUPP, EBADF:
            return PhyrError(EINVAL, "ring_register_ranges: the ring's fd is not an io_uring")
        case EPERM, ENOSYS:
            return PhyrError(EOPNOTSUPP, "ring_register_ranges: io_uring_register(2) is not allowed here (\(e)): "
                             + "a seccomp filter denies it, or kernel.io_uring_disabled is set")
        case ENXIO where !creating:
            return PhyrError(ENXIO, "ring_register_ranges: the ring's buffer table is gone: it was unregistered "
                             + "behind libphyr's back (io_uring_unregister_buffers?)")
        case EEXIST:
            return PhyrError(EEXIST, "ring_register_ranges: the ring is IORING_SETUP_SINGLE_ISSUER and this is not its submitter thread")
        case EFAULT:
            return PhyrError(EFAULT, "ring_register_ranges: the kernel refused \(what): \(e) (memory unmapped, or "
                             + "made read-only, since it was checked?)")
        default:
            return PhyrError(e.code, "ring_register_ranges: the kernel refused \(what): \(e)")
        }
    }

    // MARK: unregister

    static func unregister(_ handle: UnsafeRawPointer?) throws(PhyrError) {
        func live(_ s: RegistrarState) throws(PhyrError) -> (slot: Int, reg: Registration, ring: RingState) {
            guard let handle, let (slot, serial) = RegistrationHandles.decode(UInt(bitPattern: handle)),
                  let reg = s.registrations[slot], reg.serial == serial, let ring = s.rings[reg.ring] else {
                throw PhyrError(EINVAL, "ring_unregister_ranges: \(describe(handle)) is not a live registration: "
                                + s.absence(of: handle).reason)
            }
            return (slot, reg, ring)
        }
        let table = try state.withLock { s throws(PhyrError) -> RingTable in try live(s).ring.table }
        let freed = try table.run { () throws(PhyrError) -> [UInt64] in
            // Asked again under the table's lock: another thread may have taken it.
            var (slot, reg, ring) = try state.withLock { s throws(PhyrError) in try live(s) }
            // What the kernel cannot be asked any more is released all the
            // same: a table the program unregistered behind libphyr's back
            // took its buffers with it, and a ring that is gone took its
            // pins.  A program that closed libphyr's duplicate of its ring
            // still has its own descriptor of it, as a rule: through that.
            var tableGone = table.tableGone
            var reachable = RingFiles.still(ring.fd, names: ring.file)
            if !reachable {
                let (old, oldFile) = (ring.fd, ring.file)
                var fresh: (Int32, RingFiles.Identity)?
                if let identity = ring.identity, let theirs = RingFiles.descriptor(naming: identity) {
                    fresh = try? duplicateRing(theirs)
                }
                // A registration may have duplicated the ring again meanwhile
                // (under the state's lock only): one duplicate is kept.
                let (current, replaced) = state.withLock { s -> ((Int32, RingFiles.Identity), Bool) in
                    guard let now = s.rings[reg.ring], now.fd == old else {
                        return (s.rings[reg.ring].map { ($0.fd, $0.file) } ?? (-1, oldFile), false)
                    }
                    s.rings[reg.ring]?.fd = fresh?.0 ?? -1
                    s.rings[reg.ring]?.file = fresh?.1 ?? oldFile
                    return ((fresh?.0 ?? -1, fresh?.1 ?? oldFile), true)
                }
                if replaced {
                    if old >= 0 { RingFiles.forgetKept(old, naming: oldFile) }
                } else if let (dup, _) = fresh {
                    RingFiles.closeKept(dup)
                }
                (ring.fd, ring.file) = current
                reachable = RingFiles.still(ring.fd, names: ring.file)
            }
            if reachable && !tableGone {
                for run in SlotTable.runs(reg.slots) {
                    let (_, error) = BufferTable.update(ring.fd, offset: run.lowerBound,
                                                        Array(repeating: phyr_iovec(base: 0, len: 0), count: run.count))
                    if let error {
                        // ENXIO: no table; EINVAL: a table too small to hold
                        // these slots, the program's own since.
                        if error.code == ENXIO || error.code == EINVAL {
                            tableGone = true
                            break
                        }
                        throw PhyrError(error.code, "ring_unregister_ranges: emptying slots \(run.lowerBound)..<\(run.upperBound) "
                                        + "failed: \(error)")
                    }
                }
            }
            let last = table.registrations == [slot]
            if last && reachable && !tableGone {
                // The table was ours and is empty: give the ring back as
                // found, before any other call can see the ring again.
                _ = try? destroyTable(ring.fd)
            }
            let closing = state.withLock { s -> Int32? in
                RegistrationHandles.withdraw(slot: slot)
                reg.index.retire()
                s.indexPool.give(reg.index)
                s.registrations[slot] = nil
                s.freeHandleSlots.append(slot)
                return last ? forget(&s, reg.ring) : nil
            }
            if !last {
                table.slots.release(reg.slots)
                for i in reg.slots { table.iovecs[i] = phyr_iovec(base: 0, len: 0) }
                LockCharge.release(reg.hugeSpans, ring: &table.hugeCharged)
                table.clonedSlots -= min(table.clonedSlots, reg.cloned)
                table.registrations.remove(slot)
                table.tableGone = table.tableGone || tableGone
            }
            IoUringCharge.give(reg.charge)
            if let fd = closing, fd >= 0 { RingFiles.closeKept(fd) }
            return reg.retained
        }
        for id in freed { try? Pinner.unpin(id) }
    }

    // MARK: lookups (no lock)

    /// Runs `body` on the registration behind `handle`, validated after the
    /// fact; nil when the handle is not live (or stopped being so meanwhile).
    @inline(__always)
    static func read<T>(_ handle: UnsafeRawPointer?, _ body: (BufferIndex) -> T) -> T? {
        RegistrationHandles.read(handle, body)
    }

    /// Why `handle` is not live (after a failed `read`; takes the lock).
    static func absence(of handle: UnsafeRawPointer?) -> Absence {
        state.withLock { $0.absence(of: handle) }
    }

    static func describe(_ handle: UnsafeRawPointer?) -> String {
        handle.map { hex(UInt64(UInt(bitPattern: $0))) } ?? "NULL"
    }
}
