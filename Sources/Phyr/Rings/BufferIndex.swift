import Synchronization

/// The buffers of one registration, laid out for `ring_reg_lookup`: sorted
/// starts, ends, slot numbers, page shifts and flags in one raw block, so a
/// lookup is a binary search with no lock, no allocation and no reference
/// counting.  Immutable once published.
struct BufferIndex {
    let base: UnsafeMutableRawPointer

    private static let header = 16  // generation, count

    static func make(generation: UInt64, units: [BufferUnit], slots: [Int]) -> BufferIndex {
        let n = units.count
        let bytes = header + n * (8 + 8 + 4 + 4 + 4)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 8)
        raw.storeBytes(of: generation, as: UInt64.self)
        raw.storeBytes(of: UInt64(n), toByteOffset: 8, as: UInt64.self)
        let index = BufferIndex(base: raw)
        for (i, u) in units.enumerated() {
            index.starts[i] = u.addr
            index.ends[i] = u.end
            index.slots[i] = UInt32(slots[i])
            index.shifts[i] = u.pageShift
            index.flags[i] = u.coalesces ? 1 : 0  // RING_BUF_COALESCED
        }
        return index
    }

    func free() { base.deallocate() }

    var generation: UInt64 { base.load(as: UInt64.self) }
    var count: Int { Int(base.load(fromByteOffset: 8, as: UInt64.self)) }

    var starts: UnsafeMutablePointer<UInt64> { (base + Self.header).assumingMemoryBound(to: UInt64.self) }
    var ends: UnsafeMutablePointer<UInt64> { (base + Self.header + 8 * count).assumingMemoryBound(to: UInt64.self) }
    var slots: UnsafeMutablePointer<UInt32> { (base + Self.header + 16 * count).assumingMemoryBound(to: UInt32.self) }
    var shifts: UnsafeMutablePointer<UInt32> { (base + Self.header + 20 * count).assumingMemoryBound(to: UInt32.self) }
    var flags: UnsafeMutablePointer<UInt32> { (base + Self.header + 24 * count).assumingMemoryBound(to: UInt32.self) }

    /// The buffer holding `address`: its position in the index, or nil.
    @inline(__always)
    func find(_ address: UInt64) -> Int? {
        let n = count
        let s = starts
        // The last start <= address.
        var lo = 0, hi = n
        while lo < hi {
            let mid = (lo &+ hi) >> 1
            if s[mid] <= address { lo = mid &+ 1 } else { hi = mid }
        }
        guard lo > 0, address < ends[lo - 1] else { return nil }
        return lo - 1
    }
}

/// Registration handles, resolvable without a lock: a handle names a slot and
/// the generation it was issued in; the slot holds the published index.  A
/// released or foreign handle finds an empty slot or another generation.
///
/// A lookup racing with `ring_unregister_ranges` of the same handle is the
/// caller's use-after-free, as with any C library; everything else is safe.
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

    static func handle(slot: Int, generation: UInt64) -> UInt {
        UInt(tag | (generation & 0xFFFF_FFFF) << 16 | UInt64(slot))
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

    @inline(__always)
    func resolve(_ handle: UnsafeRawPointer?) -> BufferIndex? {
        guard let handle, let (slot, generation) = Self.decode(UInt(bitPattern: handle)) else { return nil }
        let p = published[slot].load(ordering: .acquiring)
        guard let base = UnsafeMutableRawPointer(bitPattern: p) else { return nil }
        let index = BufferIndex(base: base)
        return index.generation & 0xFFFF_FFFF == generation ? index : nil
    }
}
