import Synchronization

/// The buffers of one registration, laid out for `ring_reg_lookup`: sorted
/// starts, ends, slot numbers, page shifts and flags in one raw block, so a
/// lookup is a binary search with no lock, no allocation and no reference
/// counting.
///
/// Blocks are never returned to the system, only reused, and every block
/// carries a sequence count (odd while it is being written, as in a seqlock).
/// A reader checks the count and the owning handle before and after reading,
/// so a lookup racing with `ring_unregister_ranges` of its own handle gets
/// either a consistent answer or "not live", never a crash.  Arrays are laid
/// out by the block's capacity, so a torn read stays inside the block.
struct BufferIndex {
    let base: UnsafeMutableRawPointer

    private static let header = 32  // sequence, handle, count, capacity
    private static let perEntry = 8 + 8 + 4 + 4 + 4

    static func bytes(capacity: Int) -> Int { header + capacity * perEntry }

    static func allocate(capacity: Int) -> BufferIndex {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes(capacity: capacity), alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes(capacity: capacity))
        raw.bindMemory(to: Atomic<UInt64>.self, capacity: 1).initialize(to: Atomic(0))
        (raw + 24).storeBytes(of: UInt64(capacity), as: UInt64.self)
        return BufferIndex(base: raw)
    }

    private var sequenceCell: UnsafeMutablePointer<Atomic<UInt64>> { base.assumingMemoryBound(to: Atomic<UInt64>.self) }
    var sequence: UInt64 { sequenceCell.pointee.load(ordering: .acquiring) }
    var handle: UInt64 { (base + 8).load(as: UInt64.self) }
    var capacity: Int { Int((base + 24).load(as: UInt64.self)) }
    /// Never past capacity, even when read torn.
    var count: Int { min(Int(truncatingIfNeeded: (base + 16).load(as: UInt64.self)), capacity) }

    var starts: UnsafeMutablePointer<UInt64> { (base + Self.header).assumingMemoryBound(to: UInt64.self) }
    var ends: UnsafeMutablePointer<UInt64> { (base + Self.header + 8 * capacity).assumingMemoryBound(to: UInt64.self) }
    var slots: UnsafeMutablePointer<UInt32> { (base + Self.header + 16 * capacity).assumingMemoryBound(to: UInt32.self) }
    var shifts: UnsafeMutablePointer<UInt32> { (base + Self.header + 20 * capacity).assumingMemoryBound(to: UInt32.self) }
    var flags: UnsafeMutablePointer<UInt32> { (base + Self.header + 24 * capacity).assumingMemoryBound(to: UInt32.self) }

    /// Writes the block for `handle` (registrar's lock held).
    func fill(handle: UInt64, units: [BufferUnit], slots assigned: [Int]) {
        sequenceCell.pointee.add(1, ordering: .acquiringAndReleasing)  // odd: being written
        (base + 8).storeBytes(of: handle, as: UInt64.self)
        (base + 16).storeBytes(of: UInt64(units.count), as: UInt64.self)
        for (i, u) in units.enumerated() {
            starts[i] = u.addr
            ends[i] = u.end
            slots[i] = UInt32(assigned[i])
            shifts[i] = u.pageShift
            flags[i] = u.coalesces ? 1 : 0  // RING_BUF_COALESCED
        }
        sequenceCell.pointee.add(1, ordering: .releasing)
    }

    /// Marks the block as no one's (registrar's lock held).
    func retire() {
        sequenceCell.pointee.add(1, ordering: .acquiringAndReleasing)
        (base + 8).storeBytes(of: 0, as: UInt64.self)
        sequenceCell.pointee.add(1, ordering: .releasing)
    }

    /// Runs `body` on the block if it belongs to `handle` and was not
    /// rewritten meanwhile; nil otherwise.  `body` must only read.
    @inline(__always)
    func read<T>(as handle: UInt64, _ body: (BufferIndex) -> T) -> T? {
        let before = sequence
        guard before & 1 == 0, self.handle == handle else { return nil }
        let result = body(self)
        atomicMemoryFence(ordering: .acquiring)
        return sequence == before ? result : nil
    }

    /// The buffer holding `address`: its position in the index, or nil.
    @inline(__always)
    func find(_ address: UInt64) -> Int? {
        let s = starts
        // The last start <= address.
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo &+ hi) >> 1
            if s[mid] <= address { lo = mid &+ 1 } else { hi = mid }
        }
        guard lo > 0, address < ends[lo - 1] else { return nil }
        return lo - 1
    }
}

/// Blocks of BufferIndex by capacity, reused and never freed (registrar's
/// lock held for every call).
struct BufferIndexPool {
    private var spare: [Int: [BufferIndex]] = [:]

    static func capacity(for n: Int) -> Int {
        var c = 16
        while c < n { c <<= 1 }
        return c
    }

    mutating func take(for n: Int) -> BufferIndex {
        let c = Self.capacity(for: n)
        if let block = spare[c]?.popLast() { return block }
        return BufferIndex.allocate(capacity: c)
    }

    mutating func give(_ block: BufferIndex) {
        spare[block.capacity, default: []].append(block)
    }
}

/// Registration handles, resolvable without a lock: a handle names a slot and
/// the generation it was issued in; the slot holds the published block.
final class RegistrationHandles: @unchecked Sendable {
    static let shared = RegistrationHandles()
    static let capacity = 1 << 16
    /// Non-canonical on x86-64 and arm64 (bits 63 and 61), unlike any pointer
    /// and unlike a range handle.
    static let tag: UInt64 = 0xA000_0000_0000_0000

    // Atomics only, allocated once and never freed: safe to share.
    private let published: UnsafeMutablePointer<Atomic<UInt>>

    private init() {
        published = .allocate(capacity: Self.capacity)
        for i in 0..<Self.capacity { (published + i).initialize(to: Atomic(0)) }
    }

    static func handle(slot: Int, generation: UInt64) -> UInt64 {
        tag | (generation & 0xFFFF_FFFF) << 16 | UInt64(slot)
    }

    static func decode(_ handle: UInt) -> (slot: Int, generation: UInt64)? {
        let raw = UInt64(handle)
        guard raw & 0xFFFF_0000_0000_0000 == tag else { return nil }
        return (Int(raw & 0xFFFF), (raw >> 16) & 0xFFFF_FFFF)
    }

    func publish(_ index: BufferIndex, slot: Int) {
        published[slot].store(UInt(bitPattern: index.base), ordering: .releasing)
    }

    func withdraw(slot: Int) {
        published[slot].store(0, ordering: .releasing)
    }

    /// Runs `body` on the live index behind `handle`; nil when there is none.
    @inline(__always)
    func read<T>(_ handle: UnsafeRawPointer?, _ body: (BufferIndex) -> T) -> T? {
        guard let handle, let (slot, _) = Self.decode(UInt(bitPattern: handle)) else { return nil }
        let p = published[slot].load(ordering: .acquiring)
        guard let base = UnsafeMutableRawPointer(bitPattern: p) else { return nil }
        return BufferIndex(base: base).read(as: UInt64(UInt(bitPattern: handle)), body)
    }
}
