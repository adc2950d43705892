// SPDX-License-Identifier: MIT
/// One live pinned range.
struct PinnedRange: Sendable {
    var range: Range<UInt64>
    /// Whole folios covering `range`: what this pin holds locked.
    var lockInterval: Range<UInt64>
    /// The parts of `lockInterval` mlock applies to (see `Backing.lockablePieces`).
    var lockable: [Range<UInt64>]
    var segments: ContiguousArray<Segment>
    var pinFlags: UInt32
    /// Where the lock ends when that is also where its mapping ended, with
    /// nothing mapped after it, at pin time: the one place mremap(2) can grow
    /// the locked mapping in place (and the kernel locks the growth).
    var growableEnd: UInt64? = nil
    /// What the memory was at pin time: anonymous, and which files.  A
    /// release that finds its lock gone looks for it only among these.
    var anonymous: Bool = true
    var files: Set<FileKey> = []
}

/// The library's registry of live ranges and the lock counts behind them.
///
/// Pure bookkeeping: it says which memory to lock or unlock and the caller
/// makes the syscalls, so every counting rule is testable without a kernel.
/// Handles are never reused: a released or foreign handle is always caught.
struct PinTable {
    /// Handles are ids tagged into non-canonical x86-64/arm64 addresses, so no
    /// real pointer a caller might pass by mistake can ever match one.
    static let handleTag: UInt64 = 0x8000_0000_0000_0000

    private var live: [UInt64: PinnedRange] = [:]
    private var coverage = CountedIntervalMap()
    private var nextID: UInt64 = 1
    /// Ids below this were handed out before this process was forked: they
    /// are its parent's, never live here.
    private var inheritedBelow: UInt64 = 0

    init() {}

    /// The table a forked child starts with: no ranges (mlock is not
    /// inherited), and ids that go on from the parent's, so the child tells
    /// the parent's handles from its own.
    func forChild() -> PinTable {
        var child = PinTable()
        child.nextID = nextID
        child.inheritedBelow = nextID
        return child
    }

    /// Why `id` is not live; nil when it is.
    func absence(of id: UInt64) -> Absence? {
        if live[id] != nil { return nil }
        if id >= nextID || id == 0 { return .foreign }
        return id < inheritedBelow ? .parents : .released
    }

    /// How many live ranges hold `address` locked.
    func coverage(at address: UInt64) -> Int64 { coverage.coverage(at: address) }

    var count: Int { live.count }
    var lockBoundaries: Int { coverage.boundaryCount }
    var coveredRuns: [(range: Range<UInt64>, count: Int64)] { coverage.coveredRuns }

    static func handle(for id: UInt64) -> UInt { UInt(handleTag | id) }

    static func id(forHandle handle: UInt) -> UInt64? {
        let raw = UInt64(handle)
        guard raw & handleTag != 0, raw & 0x7FFF_0000_0000_0000 == 0 else { return nil }
        return raw & ~handleTag
    }

    func range(_ id: UInt64) -> PinnedRange? { live[id] }

    /// Adds a range; returns its id and the memory that must now be locked.
    mutating func insert(_ pin: PinnedRange) -> (id: UInt64, lock: [Range<UInt64>]) {
        let id = nextID
        nextID += 1
        live[id] = pin
        let fresh = coverage.add(pin.lockInterval)
        return (id, Self.intersect(fresh, pin.lockable))
    }

    /// Replaces the description of live range `id` (with physical addresses).
    mutating func describe(_ id: UInt64, segments: ContiguousArray<Segment>) {
        live[id]?.segments = segments
    }

    /// Another reference to live range `id`: a new id over the same memory
    /// that keeps it locked on its own.  Nil when `id` is not live.
    mutating func retain(_ id: UInt64) -> UInt64? {
        guard let pin = live[id] else { return nil }
        let (copy, lock) = insert(pin)
        assert(lock.isEmpty, "a live range's memory is already locked")
        return copy
    }

    /// Removes a range; returns the memory that must now be unlocked, or nil
    /// when `id` is not live.
    mutating func remove(_ id: UInt64) -> [Range<UInt64>]? {
        removeRange(id)?.freed
    }

    /// Removes a range; returns it and the memory that must now be unlocked,
    /// or nil when `id` is not live.
    mutating func removeRange(_ id: UInt64) -> (range: PinnedRange, freed: [Range<UInt64>])? {
        guard let pin = live.removeValue(forKey: id) else { return nil }
        // The pin's own interval is covered while it is live, so this cannot fail.
        let freed = coverage.remove(pin.lockInterval) ?? []
        return (pin, Self.intersect(freed, pin.lockable))
    }

    enum SplitError: Error, Equatable { case notLive(Absence), offsetOutside(length: UInt64) }

    /// Cuts range `id` at `offset`: it keeps the head, the returned id is the
    /// tail.  The folio holding the cut is counted once more, so it stays
    /// locked until both halves are gone; nothing else changes.
    mutating func split(_ id: UInt64, at offset: UInt64) throws(SplitError) -> UInt64 {
        guard let pin = live[id] else { throw .notLive(absence(of: id) ?? .foreign) }
        let length = UInt64(pin.range.count)
        guard offset > 0, offset < length else { throw .offsetOutside(length: length) }
        let cut = pin.range.lowerBound + offset
        var folio = Backing.folio(at: cut, in: pin.segments)
        folio = max(folio.lowerBound, pin.lockInterval.lowerBound)..<min(folio.upperBound, pin.lockInterval.upperBound)
        let straddles = folio.lowerBound < cut

        var head = pin, tail = pin
        head.range = pin.range.lowerBound..<cut
        tail.range = cut..<pin.range.upperBound
        head.lockInterval = pin.lockInterval.lowerBound..<(straddles ? folio.upperBound : cut)
        tail.lockInterval = (straddles ? folio.lowerBound : cut)..<pin.lockInterval.upperBound
        head.growableEnd = nil
        head.lockable = Self.intersect([head.lockInterval], pin.lockable)
        tail.lockable = Self.intersect([tail.lockInterval], pin.lockable)
        head.segments = Self.clip(pin.segments, to: head.range)
        tail.segments = Self.clip(pin.segments, to: tail.range)

        if straddles { _ = coverage.add(folio) }  // already covered: nothing to lock
        let tailID = nextID
        nextID += 1
        live[id] = head
        live[tailID] = tail
        return tailID
    }

    static func clip(_ segs: ContiguousArray<Segment>, to r: Range<UInt64>) -> ContiguousArray<Segment> {
        var out = ContiguousArray<Segment>()
        for s in segs {
            let lo = max(s.addr, r.lowerBound), hi = min(s.end, r.upperBound)
            guard lo < hi else { continue }
            let phys = s.phys == physUnknown ? physUnknown : s.phys + (lo - s.addr)
            out.append(Segment(addr: lo, len: hi - lo, phys: phys, pageShift: s.pageShift, flags: s.flags))
        }
        return out
    }

    /// The parts of `spans` (sorted, disjoint) that no live range covers.
    func uncovered(_ spans: [Range<UInt64>]) -> [Range<UInt64>] {
        Self.subtract(spans, coverage.coveredRuns.map(\.range))
    }

    /// `a` minus `b`, both sorted lists of disjoint intervals.
    static func subtract(_ a: [Range<UInt64>], _ b: [Range<UInt64>]) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var j = 0
        for r in a {
            var lo = r.lowerBound
            while j < b.count && b[j].upperBound <= lo { j += 1 }
            var k = j
            while lo < r.upperBound {
                guard k < b.count, b[k].lowerBound < r.upperBound else {
                    out.append(lo..<r.upperBound)
                    break
                }
                if b[k].lowerBound > lo { out.append(lo..<b[k].lowerBound) }
                lo = max(lo, b[k].upperBound)
                k += 1
            }
        }
        return out
    }

    /// The intersection of two sorted lists of disjoint intervals.
    static func intersect(_ a: [Range<UInt64>], _ b: [Range<UInt64>]) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var i = 0, j = 0
        while i < a.count && j < b.count {
            let lo = max(a[i].lowerBound, b[j].lowerBound), hi = min(a[i].upperBound, b[j].upperBound)
            if lo < hi { out.append(lo..<hi) }
            if a[i].upperBound < b[j].upperBound { i += 1 } else { j += 1 }
        }
        return out
    }
}
