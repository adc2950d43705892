// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

extension Registrar {
    /// ring_unregister_ranges: empties the registration's slots, destroys
    /// the table with the ring's last registration, and drops the references
    /// to the ranges.  What the program did behind libphyr's back keeps
    /// nothing held: a table it unregistered took its buffers with it, and a
    /// ring whose duplicate it closed is reached through its own descriptor
    /// of the ring (or is gone, with its pins).
    static func unregister(_ handle: UInt) throws(PhyrError) {
        func live() throws(PhyrError) -> (slot: Int, reg: Registration, ring: CallerRing) {
            try state.withLock { s throws(PhyrError) in
                guard let (slot, reg) = s.live(handle), let ring = s.rings[reg.ring] else {
                    throw s.absence(of: handle).error("registration", handle: UInt64(handle))
                }
                return (slot, reg, ring)
            }
        }
        let table = try live().ring.table
        let freed = try table.gate { () throws(PhyrError) -> [UInt64] in
            // Asked again holding the gate: another thread may have taken it.
            let (slot, reg, ring) = try live()
            let reachable = table.reachable { identity in
                identity.anyDescriptor().flatMap { try? RingFile.duplicate($0) }
            }
            if reachable {
                var kept: [Int] = []
                do throws(Errno) { try table.empty(reg.slots, kept: &kept) } catch {
                    throw PhyrError(error, "emptying the registration's slots failed: \(error)")
                }
            }
            let last = ring.registrations == [slot]
            if last && reachable { table.destroy() }
            let closing = state.withLock { s -> OwnedTable? in
                PublishedIndex.withdraw(slot: slot)
                reg.index.retire()
                s.indexPool.give(reg.index)
                s.registrations[slot] = nil
                s.freeHandleSlots.append(slot)
                s.rings[reg.ring]?.registrations.remove(slot)
                return last ? s.forget(ring: reg.ring) : nil
            }
            if !last {
                table.releaseSlots(reg.slots, cloned: reg.cloned)
                table.releaseCharge(reg.hugeSpans)
            }
            IoUringCharge.give(reg.charge)
            closing?.close()
            return reg.retained
        }
        for id in freed { try? Release.unpin(id) }
    }

    // MARK: lookups (no lock)

    /// Runs `body` on the registration behind `handle`, validated after the
    /// fact; nil when the handle is not live (or stopped being so meanwhile).
    @inline(__always)
    static func read<T>(_ handle: UInt, _ body: (BufferIndex) -> T) -> T? {
        RegistrationHandles.read(handle, body)
    }

    /// The refusal of a handle that is not live (after a failed `read`;
    /// takes the lock).
    static func notLive(_ handle: UInt) -> PhyrError {
        state.withLock { $0.absence(of: handle) }.error("registration", handle: UInt64(handle))
    }
}
