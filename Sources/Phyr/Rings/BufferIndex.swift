// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel
import Synchronization

/// The buffers of one registration, laid out for `ring_reg_lookup`: sorted
/// starts, ends, slot numbers, page shifts and flags in one raw block, so a
/// lookup is a binary search with no lock, no allocation and no reference
/// counting.
///
/// Blocks are never returned to the system, only reused, and every block
/// carries a sequence count, odd while it is being written: a seqlock.  Every
/// word of a block is an atomic, stored and loaded relaxed, so a reader racing
/// a writer reads torn data but never undefined behaviour; the fences make
/// that a reader who saw any new word also sees the count moved on
/// (the writer's release fence after making it odd, as the kernel's
/// write_seqcount_begin has smp_wmb(); the reader's acquire fence before
/// reading it again), so a torn read is always thrown away.  The block also
/// names its handle and the fork epoch it was written in, so a lookup racing
/// `ring_unregister_ranges` of its own handle gets a consistent answer or
/// "not live", and one in a forked child never answers for the parent.
/// Arrays are laid out by the block's capacity, so a torn read stays inside
/// the block.
package struct BufferIndex: @unchecked Sendable {
    let base: UnsafeMutableRawPointer

    init(base: UnsafeMutableRawPointer) { self.base = base }

    static let header = 64  // sequence, handle, count, epoch, capacity
    private static let perEntry = 8 + 8 + 4 + 4 + 4

    static func bytes(capacity: Int) -> Int { header + capacity * perEntry }

    static func allocate(capacity: Int) -> BufferIndex {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes(capacity: capacity), alignment: 64)
        let words = raw.bindMemory(to: Atomic<UInt64>.self, capacity: 5)
        for i in 0..<5 { (words + i).initialize(to: Atomic(0)) }
        words[4].store(UInt64(capacity), ordering: .relaxed)
        let index = BufferIndex(base: raw)
        for i in 0..<capacity {
            (index.starts + i).initialize(to: Atomic(0))
            (index.ends + i).initialize(to: Atomic(0))
        }
        for i in 0..<(3 * capacity) { (index.slots + i).initialize(to: Atomic(0)) }
        return index
    }

    var words: UnsafeMutablePointer<Atomic<UInt64>> { base.assumingMemoryBound(to: Atomic<UInt64>.self) }
    var sequence: UnsafeMutablePointer<Atomic<UInt64>> { words }
    @inline(__always) package var capacity: Int { Int(truncatingIfNeeded: words[4].load(ordering: .relaxed)) }

    var starts: UnsafeMutablePointer<Atomic<UInt64>> {
        (base + Self.header).assumingMemoryBound(to: Atomic<UInt64>.self)
    }
    var ends: UnsafeMutablePointer<Atomic<UInt64>> {
        (base + Self.header + 8 * capacity).assumingMemoryBound(to: Atomic<UInt64>.self)
    }
    /// Slots, then page shifts, then flags: three arrays of `capacity`.
    var slots: UnsafeMutablePointer<Atomic<UInt32>> {
        (base + Self.header + 16 * capacity).assumingMemoryBound(to: Atomic<UInt32>.self)
    }

    // Readers' view: inside `read`, possibly torn, thrown away if so.
    @inline(__always) package var handle: UInt64 { words[1].load(ordering: .relaxed) }
    /// Never past capacity, even when read torn.
    @inline(__always) package var count: Int { min(Int(truncatingIfNeeded: words[2].load(ordering: .relaxed)), capacity) }
    var epoch: UInt64 { words[3].load(ordering: .relaxed) }
    @inline(__always) package func start(_ i: Int) -> UInt64 { starts[i].load(ordering: .relaxed) }
    @inline(__always) package func end(_ i: Int) -> UInt64 { ends[i].load(ordering: .relaxed) }
    @inline(__always) package func slot(_ i: Int) -> UInt32 { slots[i].load(ordering: .relaxed) }
    @inline(__always) package func pageShift(_ i: Int) -> UInt32 { slots[capacity + i].load(ordering: .relaxed) }
    @inline(__always) package func flags(_ i: Int) -> UInt32 { slots[2 * capacity + i].load(ordering: .relaxed) }

    /// Opens a write: the count goes odd before any word changes.
    private func beginWrite() {
        sequence[0].store(sequence[0].load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
    }

    /// Closes a write: the count goes even after every word changed.
    private func endWrite() {
        sequence[0].store(sequence[0].load(ordering: .relaxed) &+ 1, ordering: .releasing)
    }

    /// Writes the block for `handle` (the registrar's lock held: one writer).
    func fill(handle: UInt64, units: [BufferUnit], slots assigned: [Int], coalescing: Coalescing) {
        beginWrite()
        words[1].store(handle, ordering: .relaxed)
        words[2].store(UInt64(units.count), ordering: .relaxed)
        words[3].store(UInt64(forkEpoch), ordering: .relaxed)
        let c = capacity
        for (i, u) in units.enumerated() {
            starts[i].store(u.addr, ordering: .relaxed)
            ends[i].store(u.end, ordering: .relaxed)
            slots[i].store(UInt32(truncatingIfNeeded: assigned[i]), ordering: .relaxed)
            slots[c + i].store(u.pageShift, ordering: .relaxed)
            slots[2 * c + i].store(u.coalesces(on: coalescing) ? 1 : 0, ordering: .relaxed)  // RING_BUF_COALESCED
        }
        endWrite()
    }

    /// Marks the block as no one's (the registrar's lock held).
    func retire() {
        beginWrite()
        words[1].store(0, ordering: .relaxed)
        endWrite()
    }

    /// Runs `body` on the block if it belongs to `handle` in this process and
    /// was not rewritten meanwhile; nil otherwise.  `body` must only read.
    @inline(__always)
    package func read<T>(as handle: UInt64, _ body: (BufferIndex) -> T) -> T? {
        let before = sequence[0].load(ordering: .acquiring)
        guard before & 1 == 0, self.handle == handle, epoch == UInt64(forkEpoch) else { return nil }
        let result = body(self)
        atomicMemoryFence(ordering: .acquiring)
        return sequence[0].load(ordering: .relaxed) == before ? result : nil
    }

    /// The buffer holding `address`: its position in the index, or nil.
    @inline(__always)
    package func find(_ address: UInt64) -> Int? {
        // The last start <= address, by halving with a conditional move, not
        // a branch: random addresses would mispredict every other step.
        // LLVM's passes that turn such selects back into branches are off
        // for this module and for PhyrAPI, where Embedded Swift compiles the
        // search again (Package.swift).  bench_ring's lookup row shows when
        // they are not.
        var n = count
        guard n > 0 else { return nil }
        var base = 0
        while n > 1 {
            let half = n >> 1
            base = start(base &+ half) <= address ? base &+ half : base
            n &-= half
        }
        guard start(base) <= address, address < end(base) else { return nil }
        return base
    }
}

/// Blocks of BufferIndex by capacity, reused and never freed (the registrar's
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
/// the serial number of the registration, unique in this process and its
/// forked children; the slot holds the published block (`PublishedIndex`).
package enum RegistrationHandles {
    /// The limit on live registrations in a process, in the header.
    static let capacity = PublishedIndex.capacity
    /// Bits 63 and 61 set: non-canonical on x86-64 and arm64, unlike any
    /// pointer, and unlike a range handle (bit 63 alone).
    static let tag: UInt64 = 0xA
    static let slotBits: UInt64 = 22
    static let serialBits: UInt64 = 60 - slotBits

    static func handle(slot: Int, serial: UInt64) -> UInt64 {
        tag << 60 | (serial & (1 << serialBits - 1)) << slotBits | UInt64(slot) & (1 << slotBits - 1)
    }

    @inline(__always)
    static func decode(_ handle: UInt) -> (slot: Int, serial: UInt64)? {
        let raw = UInt64(handle)
        guard raw >> 60 == tag else { return nil }
        return (Int(raw & (1 << slotBits - 1)), (raw >> slotBits) & (1 << serialBits - 1))
    }

    /// Runs `body` on the live index behind `handle`; nil when there is none.
    @inline(__always)
    package static func read<T>(_ handle: UInt, _ body: (BufferIndex) -> T) -> T? {
        guard let (slot, _) = decode(handle), let base = PublishedIndex.block(slot: slot) else { return nil }
        return BufferIndex(base: base).read(as: UInt64(handle), body)
    }
}
