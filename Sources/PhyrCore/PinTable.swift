// SPDX-License-Identifier: MIT
/// The library's registry of live ranges and the lock counts behind them.
///
/// Pure bookkeeping: it says which memory to lock or unlock and the caller
/// makes the syscalls, so every counting rule is testable without a kernel.
/// Handles are never reused: a released or foreign handle is always caught.
///
/// Ranges live in an array of slots, not a hash table: an id names its slot
/// and the slot's generation, so finding a range is one index, and 100,000
/// live ranges cost an operation little more than 1,000 do.
package struct PinTable {
    /// Handles are ids tagged into non-canonical x86-64/arm64 addresses, so no
    /// real pointer a caller might pass by mistake can ever match one.
    package static let handleTag: UInt64 = 0x8000_0000_0000_0000
    /// An id: the slot's generation above `slotBits` bits of slot number,
    /// 56 bits in all.
    static let slotBits: UInt64 = 24
    package static let maxLive = 1 << Int(slotBits)
    static let generationLimit: UInt64 = 1 << (56 - slotBits)

    private struct Slot {
        /// Of the range put here last (0: never used).
        var generation: UInt64 = 0
        /// Generations up to this were handed out by the parent process.
        var inherited: UInt64 = 0
        var range: PinnedRange?
        /// Inserted but not yet published (see `publish`).
        var pending = false
    }
    private var slots: [Slot] = []
    private var freeSlots: [Int] = []
    private var liveCount = 0
    private var coverage = CountedIntervalMap()
    /// How many live ranges share each held buffer, by serial.
    private var heldRefs: [UInt64: Int] = [:]
    /// How many live PHYR_PIN_DONTFORK ranges cover each folio extent.
    private var dontforkCoverage = CountedIntervalMap()
    /// What an ancestor had MADV_DONTFORK (PHYR_PIN_DONTFORK) when it forked
    /// this process: fork() left it out, so it is not mapped here, unless
    /// this process mapped something there since.  Sorted, disjoint.
    package private(set) var inheritedDontfork: [Range<UInt64>] = []

    package init() {}

    /// The table a forked child starts with: no ranges (mlock is not
    /// inherited), and generations that go on from the parent's, so the
    /// child tells the parent's handles from its own.
    package func forChild() -> PinTable {
        var child = PinTable()
        child.slots = slots.map { Slot(generation: $0.generation, inherited: $0.generation) }
        child.freeSlots = slots.indices.reversed().filter { slots[$0].generation + 1 < Self.generationLimit }
        child.inheritedDontfork = Self.union(inheritedDontfork, dontforkCoverage.coveredRuns.map { $0.range })
        return child
    }

    private static func split(_ id: UInt64) -> (slot: Int, generation: UInt64) {
        (Int(id & (1 << slotBits - 1)), id >> slotBits)
    }

    /// Why `id` is not live; nil when it is.
    package func absence(of id: UInt64) -> Absence? {
        let (i, generation) = Self.split(id)
        guard generation > 0, i < slots.count else { return .foreign }
        let slot = slots[i]
        if generation <= slot.inherited { return .parents }
        if generation == slot.generation, slot.range != nil { return slot.pending ? .foreign : nil }
        return generation <= slot.generation ? .released : .foreign
    }

    /// The live (or pending) range `id` names, in place.
    private func index(of id: UInt64) -> Int? {
        let (i, generation) = Self.split(id)
        guard i < slots.count, slots[i].generation == generation, slots[i].range != nil else { return nil }
        return i
    }

    /// Puts `pin` in a free slot; nil when `maxLive` ranges are live.
    private mutating func store(_ pin: PinnedRange, pending: Bool) -> UInt64? {
        let i: Int
        if let free = freeSlots.popLast() {
            i = free
        } else {
            guard slots.count < Self.maxLive else { return nil }
            slots.append(Slot())
            i = slots.count - 1
        }
        let generation = slots[i].generation + 1
        slots[i].generation = generation
        slots[i].range = pin
        slots[i].pending = pending
        liveCount += 1
        return generation << Self.slotBits | UInt64(i)
    }

    /// How many live ranges hold `address` locked.
    package func coverage(at address: UInt64) -> Int64 { coverage.coverage(at: address) }

    package var count: Int { liveCount }
    package var lockBoundaries: Int { coverage.boundaryCount }
    package var coveredRuns: [(range: Range<UInt64>, count: Int64)] { coverage.coveredRuns }

    package static func handle(for id: UInt64) -> UInt { UInt(handleTag | id) }

    /// The refusal when `maxLive` ranges are live.
    package static let tooMany = PhyrError(.EMFILE, "\(maxLive) ranges are live already (references held by "
                                           + "registrations count), the most a process may hold")

    package static func id(forHandle handle: UInt) -> UInt64? {
        let raw = UInt64(handle)
        guard raw & handleTag != 0, raw & 0x7F00_0000_0000_0000 == 0 else { return nil }
        return raw & ~handleTag
    }

    package func range(_ id: UInt64) -> PinnedRange? {
        guard let i = index(of: id), !slots[i].pending else { return nil }
        return slots[i].range
    }

    /// A range inserted `pending` is counted but not yet anyone's: no call
    /// reads, splits or retains it until its pin has done its kernel work and
    /// publishes it.
    package mutating func publish(_ id: UInt64) {
        if let i = index(of: id) { slots[i].pending = false }
    }

    /// Adds a range; returns its id, the memory that must now be locked, and
    /// the extents that must now be MADV_DONTFORK.  A long-term range locks
    /// nothing: its held buffers pin it.  Nil, with nothing changed, when
    /// `maxLive` ranges are live.
    package mutating func insert(_ pin: PinnedRange,
                                 pending isPending: Bool = false) -> (id: UInt64, lock: [Range<UInt64>],
                                                                      dontfork: [Range<UInt64>])? {
        guard let id = store(pin, pending: isPending) else { return nil }
        let fresh = pin.isLongterm ? [] : coverage.add(pin.lockInterval)
        for h in pin.held { heldRefs[h.serial, default: 0] += 1 }
        var dontfork: [Range<UInt64>] = []
        for e in pin.dontfork { dontfork += dontforkCoverage.add(e) }
        return (id, Self.intersect(fresh, pin.lockable), dontfork)
    }

    /// How many live ranges share held buffer `serial`.
    package func references(toHeld serial: UInt64) -> Int { heldRefs[serial] ?? 0 }

    /// Replaces the description of live range `id` (with physical addresses).
    package mutating func describe(_ id: UInt64, segments: ContiguousArray<Segment>) {
        if let i = index(of: id) { slots[i].range?.segments = segments }
    }

    /// Another reference to live range `id`: a new id over the same memory
    /// that keeps it locked on its own.  Nil when `id` is not live, or when
    /// `maxLive` ranges are live.
    package mutating func retain(_ id: UInt64) -> UInt64? {
        guard let pin = range(id), let (copy, lock, dontfork) = insert(pin) else { return nil }
        assert(lock.isEmpty && dontfork.isEmpty, "a live range's memory is already locked and marked")
        return copy
    }

    /// What removing a range leaves to undo in the kernel.
    package struct Removal {
        package var range: PinnedRange
        /// Memory no live range locks any more.
        package var freed: [Range<UInt64>]
        /// Extents no live PHYR_PIN_DONTFORK range covers any more.
        package var doFork: [Range<UInt64>]
        /// Held buffers no live range shares any more: empty their slots.
        package var unheld: [HeldBuffer]
    }

    /// Removes a range; nil when `id` is not live.
    package mutating func removeRange(_ id: UInt64) -> Removal? {
        guard let i = index(of: id), let pin = slots[i].range else { return nil }
        slots[i].range = nil
        slots[i].pending = false
        // A slot whose generations are used up is never used again: a handle
        // must not come back.
        if slots[i].generation + 1 < Self.generationLimit { freeSlots.append(i) }
        liveCount -= 1
        // The pin's own intervals are covered while it is live, so these cannot fail.
        let freed = pin.isLongterm ? [] : coverage.remove(pin.lockInterval) ?? []
        var doFork: [Range<UInt64>] = []
        for e in pin.dontfork { doFork += dontforkCoverage.remove(e) ?? [] }
        return Removal(range: pin, freed: Self.intersect(freed, pin.lockable), doFork: doFork,
                       unheld: dropReferences(pin.held))
    }

    /// One reference less to each of `held`; returns those left with none.
    private mutating func dropReferences(_ held: [HeldBuffer]) -> [HeldBuffer] {
        var gone: [HeldBuffer] = []
        for h in held {
            let n = (heldRefs[h.serial] ?? 1) - 1
            if n <= 0 { heldRefs[h.serial] = nil; gone.append(h) } else { heldRefs[h.serial] = n }
        }
        return gone
    }

    /// What a split did: cut the range, or nothing, because the buffers
    /// given are not the ones the range needs now (another thread split it
    /// meanwhile: ask `heldCut` again).
    package enum SplitOutcome: Equatable {
        case split(tail: UInt64, unheld: [HeldBuffer])
        case heldChanged
    }

    /// Where a cut lands in a long-term range's held buffers: the buffer it
    /// lies strictly inside, and the buffers each half then needs so that
    /// both hold the folio at the cut -- nil where a half can share the
    /// buffer itself (the folio runs to the buffer's end, or from its start).
    /// Nil when the cut falls between buffers (on a folio boundary).
    package static func heldCut(_ pin: PinnedRange, at cut: UInt64) -> (index: Int, head: BufferUnit?, tail: BufferUnit?)? {
        guard let i = pin.held.firstIndex(where: { $0.unit.addr < cut && cut < $0.unit.end }) else { return nil }
        let u = pin.held[i].unit
        let folio = Backing.folio(at: cut, in: pin.segmentsAround)
        let straddles = folio.lowerBound < cut
        let head = BufferUnit(addr: u.addr, len: (straddles ? min(u.end, folio.upperBound) : cut) - u.addr,
                              pageShift: u.pageShift)
        let tailStart = straddles ? max(u.addr, folio.lowerBound) : cut
        let tail = BufferUnit(addr: tailStart, len: u.end - tailStart, pageShift: u.pageShift)
        return (i, head == u ? nil : head, tail == u ? nil : tail)
    }

    /// Cuts range `id` at `offset`: it keeps the head, the returned id is the
    /// tail.  The folio holding the cut is counted once more, so it stays
    /// locked (and MADV_DONTFORK) until both halves are gone; nothing else
    /// changes.  A long-term range's halves share its held buffers but the
    /// one the cut lies inside: `heldHead` and `heldTail` replace it there,
    /// as `heldCut` asked for them (both nil when it asked for none).
    /// Returns the tail's id and the held buffers no range shares any more.
    package mutating func split(_ id: UInt64, at offset: UInt64, heldHead: HeldBuffer? = nil,
                        heldTail: HeldBuffer? = nil) throws(PhyrError) -> SplitOutcome {
        guard let pin = range(id) else {
            throw (absence(of: id) ?? .foreign).error("range", handle: UInt64(Self.handle(for: id)))
        }
        let length = UInt64(pin.range.count)
        guard offset > 0, offset < length else {
            throw PhyrError(.EINVAL, "offset \(offset) is not inside the range (0 < offset < \(length))")
        }
        guard !freeSlots.isEmpty || slots.count < Self.maxLive else { throw Self.tooMany }
        let cut = pin.range.lowerBound + offset
        var folio = Backing.folio(at: cut, in: pin.segmentsAround)
        folio = max(folio.lowerBound, pin.lockInterval.lowerBound)..<min(folio.upperBound, pin.lockInterval.upperBound)
        let straddles = folio.lowerBound < cut

        // The halves share the pin's description: nothing is copied.
        var head = pin, tail = pin
        head.range = pin.range.lowerBound..<cut
        tail.range = cut..<pin.range.upperBound
        head.lockInterval = pin.lockInterval.lowerBound..<(straddles ? folio.upperBound : cut)
        tail.lockInterval = (straddles ? folio.lowerBound : cut)..<pin.lockInterval.upperBound
        head.growableEnd = nil

        var unheld: [HeldBuffer] = []
        if let c = Self.heldCut(pin, at: cut) {
            guard heldHead?.unit == c.head, heldTail?.unit == c.tail else { return .heldChanged }
            let shared = pin.held[c.index]
            head.held = Array(pin.held[..<c.index]) + [heldHead ?? shared]
            tail.held = [heldTail ?? shared] + Array(pin.held[(c.index + 1)...])
            for h in [heldHead, heldTail].compactMap({ $0 }) { heldRefs[h.serial] = 1 }
            // The range's reference to the straddling buffer passes to the
            // halves that keep it: none, one or both.
            let keepers = (heldHead == nil ? 1 : 0) + (heldTail == nil ? 1 : 0)
            if keepers == 0 { unheld = dropReferences([shared]) } else if keepers == 2 { heldRefs[shared.serial, default: 0] += 1 }
        } else {
            guard heldHead == nil, heldTail == nil else { return .heldChanged }
            let k = pin.held.firstIndex { $0.unit.addr >= cut } ?? pin.held.count
            head.held = Array(pin.held[..<k])
            tail.held = Array(pin.held[k...])
        }

        if straddles {
            // Already covered: nothing to lock or mark.
            if !pin.isLongterm { _ = coverage.add(folio) }
            let marked = pin.dontfork
            if !marked.isEmpty { for e in Self.intersect(marked, [folio]) { _ = dontforkCoverage.add(e) } }
        }
        if let i = index(of: id) { slots[i].range = head }
        // Room was made sure of above.
        let tailID = store(tail, pending: false) ?? 0
        return .split(tail: tailID, unheld: unheld)
    }

    /// The parts of `spans` (sorted, disjoint) that no live range covers.
    package func uncovered(_ spans: [Range<UInt64>]) -> [Range<UInt64>] {
        Self.subtract(spans, coverage.coveredRuns.map { $0.range })
    }

    /// The parts of `span` an ancestor's PHYR_PIN_DONTFORK left out of this
    /// process (see `inheritedDontfork`).
    package func leftOutByFork(_ span: Range<UInt64>) -> [Range<UInt64>] {
        Self.intersect(inheritedDontfork, [span])
    }

}
