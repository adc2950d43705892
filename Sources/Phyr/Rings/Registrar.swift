// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// ring_register_ranges: the ranges' buffers planned, put in the caller's
/// ring's table (cloned from their long-term holders where the kernel can),
/// and published for lookups.  The registrar's state has one lock, held only
/// for bookkeeping; each ring's kernel work runs under its table's gate, so
/// registrations on different rings run at once.  The lookup path takes
/// neither (Unregistration.swift has it, and ring_unregister_ranges).
enum Registrar {
    static let state = ProcessLocal(RegistrarState()) { $0.forChild() }

    /// Makes the state and its lock's machinery (see `enterLibrary`).
    static func warm() { state.withLock { _ in } }

    /// Spare empty slots a new or grown table gets: a little room, because
    /// the kernel's charge check walks every slot per new huge page.
    static func spare(_ n: Int) -> Int { max(16, n / 4) }

    /// Registers ranges `ids` in the ring behind `ringFd`; returns the
    /// registration's handle.
    static func register(ringFd: Int32, ranges ids: [UInt64]) throws(PhyrError) -> UInt {
        try Pinner.requireSupportedKernel()
        guard ringFd >= 0 else {
            throw PhyrError(.EINVAL, "the ring has no file descriptor (ring_fd is \(ringFd))")
        }
        // Our own references first: the caller may unpin its handles at once.
        let retained = try Ranges.retain(ids)
        var committed = false
        defer { if !committed { for r in retained { try? Release.unpin(r.id) } } }

        let plan = try RegistrationPlan(segments: retained.flatMap { Array($0.range.segments) })
        // Probed (once) before any lock a registration takes: it registers
        // memory of its own in a scratch ring, nine times over.
        _ = KernelFeatures.shared.coalescing
        let handleSlot = try state.withLock { s throws(PhyrError) -> Int in try s.takeHandleSlot() }
        var job = Job(units: plan.units, sources: cloneSources(plan.units, retained),
                      retained: retained.map { $0.id }, handleSlot: handleSlot, ringFd: ringFd)
        do throws(PhyrError) {
            while true {
                let (ringID, table) = try ring(for: ringFd)
                switch try table.gate({ () throws(PhyrError) in try registerOnRing(table, ringID: ringID, job) }) {
                case .registered(let handle):
                    committed = true
                    return handle
                case .ringForgotten:
                    continue  // its last registration went while this call waited
                case .cloneRefused:
                    // The probe said cloning works, a filter refuses it now:
                    // registered directly, charged as the kernel will.
                    KernelFeatures.shared.stopCloningIntoSlots()
                    job.sources = Array(repeating: nil, count: job.units.count)
                }
            }
        } catch {
            state.withLock { $0.freeHandleSlots.append(handleSlot) }
            if error.errno == .EFAULT { try explainFault(retained.map { $0.range.range }) }
            throw error
        }
    }

    /// What one registration puts in a ring.
    struct Job {
        var units: [BufferUnit]
        /// Per unit: the held buffer to clone it from, or nil.
        var sources: [CloneSource?]
        var retained: [UInt64]
        var handleSlot: Int
        var ringFd: Int32
        var cloned: Int { sources.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
    }

    enum Outcome { case registered(UInt), ringForgotten, cloneRefused }

    /// A unit that is exactly a held buffer of a long-term range is cloned
    /// from it: nothing pinned or charged again.
    private static func cloneSources(_ units: [BufferUnit], _ retained: [(id: UInt64, range: PinnedRange)])
        -> [CloneSource?] {
        guard retained.contains(where: { $0.range.isLongterm }), KernelFeatures.shared.cloneIntoSlots else {
            return [CloneSource?](repeating: nil, count: units.count)
        }
        var byUnit: [UInt64: HeldBuffer] = [:]
        for r in retained { for h in r.range.held { byUnit[h.unit.addr] = h } }
        return Holder.sources(of: units.map { u in byUnit[u.addr].flatMap { $0.unit == u ? $0 : nil } })
    }

    /// The ring behind the caller's `ringFd`, made known on first use; a new
    /// ring behind a reused descriptor number is a new ring (its inode).
    /// Only a ring an ancestor registered in when it forked this process is
    /// refused.  The duplicate is made outside the state's lock.
    private static func ring(for ringFd: Int32) throws(PhyrError) -> (UInt64, OwnedTable) {
        let identity: RingIdentity
        do { identity = try RingIdentity.of(ringFd) } catch {
            throw PhyrError(.EINVAL, "the ring's fd \(ringFd) is not open")
        }
        guard KernelFeatures.shared.ringsHaveOwnInodes(ringFd) else {
            throw PhyrError(.EOPNOTSUPP, "this kernel gives every io_uring the same inode (Linux before 5.16), and "
                            + "libphyr tells the rings it has buffer tables in apart by their inodes: "
                            + "ring_register_ranges needs Linux 5.16 or later (PHYR_PIN_LONGTERM works)")
        }
        if identity.inheritedAcrossFork {
            throw PhyrError(.EBUSY, "this ring was inherited across fork() from a process that had buffers "
                            + "registered in it through libphyr: its buffer table is that process's, and libphyr "
                            + "leaves it alone (make a ring of your own)")
        }
        if let known = state.withLock({ s in s.ringByIdentity[identity].flatMap { id in s.rings[id].map { (id, $0.table) } } }) {
            return known
        }
        let dup = try duplicate(ringFd)
        let (id, table, extra) = state.withLock { s -> (UInt64, OwnedTable, RingFile?) in
            if let id = s.ringByIdentity[identity], let r = s.rings[id] { return (id, r.table, dup) }
            let id = s.nextRing
            s.nextRing += 1
            let table = OwnedTable(file: dup)
            s.rings[id] = CallerRing(table: table, identity: identity)
            s.ringByIdentity[identity] = id
            return (id, table, nil)
        }
        extra?.close()  // another registration made it known meanwhile
        return (id, table)
    }

    /// libphyr's own descriptor of the caller's ring.
    private static func duplicate(_ ringFd: Int32) throws(PhyrError) -> RingFile {
        do { return try RingFile.duplicate(ringFd) } catch {
            switch error {
            case .EMFILE, .ENFILE:
                throw PhyrError(error, "libphyr keeps a descriptor of its own for each ring it has buffers in, and "
                                + "duplicating fd \(ringFd) failed: \(error)")
            case .ENOMEM:
                throw PhyrError(.ENOMEM, "out of memory recording libphyr's descriptor of the ring")
            default:
                throw PhyrError(.EINVAL, "the ring's fd \(ringFd) is not open")
            }
        }
    }

    /// The kernel work of one registration, holding the ring table's gate.
    private static func registerOnRing(_ table: OwnedTable, ringID: UInt64, _ job: Job) throws(PhyrError) -> Outcome {
        guard state.withLock({ $0.rings[ringID] != nil }) else { return .ringForgotten }
        // A ring that gets no table from this call is forgotten, whatever
        // refused it (the limit, the kernel, a closed descriptor): libphyr
        // keeps no duplicate of a ring it has nothing in.
        let isNew = table.size == 0
        var ok = false
        defer {
            if !ok && isNew && table.size == 0, let gone = state.withLock({ $0.forget(ring: ringID) }) { gone.close() }
        }
        // libphyr's duplicate closed behind its back: the caller's descriptor
        // names the same ring (its inode), so duplicate it again.
        var reopenFailure: PhyrError?
        let reachable = table.reachable { _ in
            do throws(PhyrError) { return try duplicate(job.ringFd) } catch {
                reopenFailure = error
                return nil
            }
        }
        guard reachable else {
            throw reopenFailure ?? PhyrError(.EINVAL, "the ring's fd \(job.ringFd) is not open")
        }
        if table.gone {
            throw PhyrError(.ENXIO, "the ring's buffer table is gone: it was unregistered behind libphyr's back "
                            + "(io_uring_unregister_buffers?); ring_unregister_ranges the registrations that were "
                            + "in it, and the next one makes a new table")
        }
        let units = job.units, k = units.count
        guard table.used + k <= maxBuffersPerTable else {
            throw PhyrError(.ENOSPC, "\(k) buffers do not fit: the ring's table holds \(table.used) of at most "
                            + "\(maxBuffersPerTable)")
        }
        // The lock charge, as the kernel will count it, kept only if the kernel agrees.
        let charge = table.charge(units) { job.sources[$0] != nil }
        try IoUringCharge.reserve(charge.bytes, for: "\(k) buffers")
        defer { if !ok { IoUringCharge.give(charge.bytes) } }
        let spans = units.map { BufferSpan(addr: $0.addr, len: $0.len) }
        let direct = units.indices.filter { job.sources[$0] == nil }
        let slots: [Int]
        if isNew {
            // Cloned slots start empty and get their buffers next.
            let initial = units.indices.map { job.sources[$0] == nil ? spans[$0] : .empty }
            do { try table.create(size: min(maxBuffersPerTable, k + spare(k)), initial: initial) } catch {
                throw kernelRefusal(error, "registering \(k) buffers", ringFd: job.ringFd, charge: charge.bytes,
                                    creating: true)
            }
            slots = table.takeSlots(k, for: UInt64(job.handleSlot)) ?? []
            if case .refused(let cloned) = cloneIn(table, slots: slots, sources: job.sources) {
                table.destroy()
                table.releaseSlots(slots, cloned: cloned)
                return .cloneRefused
            }
        } else {
            try grow(table, toFit: k)  // the kernel's table has its new size whatever happens next
            guard let free = table.takeSlots(k, for: UInt64(job.handleSlot)) else {
                throw PhyrError(.ENOSPC, "no room for \(k) buffers in the ring's table")
            }
            do throws(OwnedTable.FillFailure) {
                try table.fill(direct.map { spans[$0] }, into: direct.map { free[$0] })
            } catch {
                table.releaseSlots(free)
                let failed = spans[direct[min(error.index, direct.count - 1)]]
                throw kernelRefusal(error.errno, "registering \(spanText(failed.addr..<(failed.addr + failed.len)))",
                                    ringFd: job.ringFd, charge: charge.bytes, creating: false)
            }
            if case .refused(let cloned) = cloneIn(table, slots: free, sources: job.sources) {
                table.emptyUndoing(free)
                table.releaseSlots(free, cloned: cloned)
                return .cloneRefused
            }
            slots = free
        }
        table.record(spans, in: slots)
        table.commitCharge(charge.charged)
        ok = true
        return .registered(publish(job, ringID: ringID, slots: slots, hugeSpans: charge.hugeSpans, charge: charge.bytes))
    }

    /// Records and publishes a registration that is in the kernel's table.
    private static func publish(_ job: Job, ringID: UInt64, slots: [Int], hugeSpans: [Range<UInt64>],
                                charge: UInt64) -> UInt {
        let coalescing = KernelFeatures.shared.coalescing
        return state.withLock { s -> UInt in
            let serial = s.nextSerial
            s.nextSerial += 1
            let handle = RegistrationHandles.handle(slot: job.handleSlot, serial: serial)
            let index = s.indexPool.take(for: job.units.count)
            index.fill(handle: handle, units: job.units, slots: slots, coalescing: coalescing)
            s.registrations[job.handleSlot] = Registration(ring: ringID, slots: slots, retained: job.retained,
                                                           index: index, serial: serial, hugeSpans: hugeSpans,
                                                           charge: charge, cloned: job.cloned)
            s.rings[ringID]?.registrations.insert(job.handleSlot)
            PublishedIndex.publish(index.base, slot: job.handleSlot)
            return UInt(handle)
        }
    }

    private enum CloneResult {
        case done
        /// The kernel refused a clone after `cloned` slots were filled by clones.
        case refused(cloned: Int)
    }

    /// Clones the held buffers `sources` names into their `slots`, one call
    /// per run of consecutive slots of one holder table.  A refused clone
    /// empties what this call put in: the registration is made again,
    /// directly and charged.
    private static func cloneIn(_ table: OwnedTable, slots: [Int], sources: [CloneSource?]) -> CloneResult {
        var i = 0, cloned = 0
        while i < slots.count {
            guard let first = sources[i] else { i += 1; continue }
            var n = 1
            while i + n < slots.count, let next = sources[i + n], first.isFollowed(by: next, at: n),
                  slots[i + n] == slots[i] + n { n += 1 }
            do throws(Errno) { try table.clone(from: first, into: slots[i], count: n) } catch {
                return .refused(cloned: cloned)
            }
            cloned += n
            i += n
        }
        return .done
    }

    private static func grow(_ table: OwnedTable, toFit k: Int) throws(PhyrError) {
        guard table.free < k else { return }
        let size = table.size
        let newSize = min(maxBuffersPerTable, max(size * 2, table.used + k + spare(k)))
        do throws(OwnedTable.GrowthFailure) {
            try table.grow(to: newSize, cloning: KernelFeatures.shared.cloneBuffers)
        } catch {
            switch error {
            case .cloningRefused(let e) where [.EINVAL, .EOPNOTSUPP, .EPERM, .EACCES, .ENOSYS, .EBUSY].contains(e):
                // The probe said cloning works, but a seccomp filter may deny
                // the scratch ring since: re-register.
                KernelFeatures.shared.stopCloning()
                try grow(table, toFit: k)
            case .cloningRefused(let e):
                throw PhyrError(e, "growing the ring's table from \(size) to \(newSize) slots failed: \(e)")
            case .holdsClones(let n):
                throw PhyrError(.ENOSPC, "the ring's table of \(size) slots is full, and it holds \(n) buffers cloned "
                                + "from long-term ranges, which re-registering the table to grow it would pin and "
                                + "charge anew (growing by cloning was refused here)")
            case .kernel(let e, let restored):
                throw PhyrError(e, "re-registering the ring's table at \(newSize) slots failed (\(e))"
                                + (restored ? "; the old table is back" : "; the old table could not be restored"))
            }
        }
    }

    /// Why the kernel answered EFAULT, where the mappings say: io_uring pins
    /// with FOLL_WRITE, so a range made read-only (or unmapped) since it was
    /// pinned, PHYR_PIN_WRITE or not, is refused.  Returns when they do not
    /// tell.
    private static func explainFault(_ ranges: [Range<UInt64>]) throws(PhyrError) {
        let spans = ranges.map { alignDown($0.lowerBound, basePageSize)..<alignUp($0.upperBound, basePageSize) }
        guard let tilings = try? Mappings.covering(each: spans) else { return }
        for (i, tiling) in tilings.enumerated() {
            guard case .mapped(let under) = tiling else {
                throw PhyrError(.EFAULT, "ranges[\(i)] \(spanText(ranges[i])) is no longer mapped")
            }
            if let m = under.first(where: { !$0.readable && !$0.writable }) {
                throw PhyrError(.EFAULT, "ranges[\(i)] lies in \(Mappings.describe(m)), made PROT_NONE since it "
                                + "was pinned")
            }
            if let m = under.first(where: { !$0.writable }) {
                throw PhyrError(.EACCES, "ranges[\(i)] lies in read-only \(Mappings.describe(m)); io_uring pins "
                                + "buffers for writing")
            }
        }
    }

    private static func kernelRefusal(_ e: Errno, _ what: String, ringFd: Int32, charge: UInt64,
                                      creating: Bool) -> PhyrError {
        switch e {
        case .EBUSY where creating:
            return PhyrError(.EBUSY, "the ring already has a buffer table that libphyr did not create")
        case .ENOMEM:
            var msg = "the kernel refused \(what): out of locked memory (this registration charges about "
                + "\(byteCount(charge)))"
            if let limit = Locker.lockLimit() { msg += "; RLIMIT_MEMLOCK is \(byteCount(limit))" }
            return PhyrError(.ENOMEM, msg)
        case .EOPNOTSUPP where RingFile.isIoUring(ringFd):
            // Older kernels (Debian 12's 6.1) pin only anonymous, shmem and hugetlb memory.
            return PhyrError(.EOPNOTSUPP, "the kernel refused \(what): this kernel's io_uring does not register "
                             + "file-backed memory (other than shmem and hugetlbfs); pin anonymous memory instead")
        case .EOPNOTSUPP, .EBADF:
            return PhyrError(.EINVAL, "the ring's fd is not an io_uring")
        case .EPERM, .ENOSYS:
            return PhyrError(.EOPNOTSUPP, "io_uring_register(2) is not allowed here (\(e)): a seccomp filter denies "
                             + "it, or kernel.io_uring_disabled is set")
        case .ENXIO where !creating:
            return PhyrError(.ENXIO, "the ring's buffer table is gone: it was unregistered behind libphyr's back "
                             + "(io_uring_unregister_buffers?)")
        case .EEXIST:
            return PhyrError(.EEXIST, "the ring is IORING_SETUP_SINGLE_ISSUER and this is not its submitter thread")
        case .EFAULT:
            return PhyrError(.EFAULT, "the kernel refused \(what): \(e) (memory unmapped, or made read-only, since "
                             + "it was checked?)")
        default:
            return PhyrError(e, "the kernel refused \(what): \(e)")
        }
    }
}
