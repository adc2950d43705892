// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// A caller's ring libphyr has a buffer table in.
struct CallerRing {
    var table: OwnedTable
    var identity: RingIdentity
    /// Registrations with buffers in it, by handle slot.  Read and changed
    /// holding the table's gate (and the state's lock).
    var registrations: Set<Int> = []
}

/// One ring_register_ranges: its buffers' slots and what it holds.
struct Registration {
    var ring: UInt64
    var slots: [Int]
    /// The registration's own references to the ranges (pin table ids).
    var retained: [UInt64]
    var index: BufferIndex
    var serial: UInt64
    var hugeSpans: [Range<UInt64>]
    var charge: UInt64
    var cloned: Int
}

/// The registrar's bookkeeping: rings, registrations, handle slots.  Held
/// under the registrar's lock, never across a system call.
struct RegistrarState {
    var rings: [UInt64: CallerRing] = [:]
    var ringByIdentity: [RingIdentity: UInt64] = [:]
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
            throw PhyrError(.EMFILE, "\(RegistrationHandles.capacity) registrations are live already, the most a "
                            + "process may hold (ring_unregister_ranges some first)")
        }
        guard PublishedIndex.reserve(slot: freshHandleSlot) else {
            throw PhyrError(.ENOMEM, "out of memory for the lookup table of registrations")
        }
        freshHandleSlot += 1
        return freshHandleSlot - 1
    }

    /// The registration `handle` names, with its slot, if it is live here.
    func live(_ handle: UInt) -> (slot: Int, registration: Registration)? {
        guard let (slot, serial) = RegistrationHandles.decode(handle), let reg = registrations[slot],
              reg.serial == serial else { return nil }
        return (slot, reg)
    }

    /// Why `handle` is not a live registration here.
    func absence(of handle: UInt) -> Absence {
        guard let (_, serial) = RegistrationHandles.decode(handle), serial > 0, serial < nextSerial else { return .foreign }
        return serial < inheritedBelow ? .parents : .released
    }

    /// Drops ring `id`: its last registration went.  Returns its table, for
    /// the caller to close outside the lock.
    mutating func forget(ring id: UInt64) -> OwnedTable? {
        guard let ring = rings.removeValue(forKey: id) else { return nil }
        if ringByIdentity[ring.identity] == id { ringByIdentity[ring.identity] = nil }
        return ring.table
    }
}
