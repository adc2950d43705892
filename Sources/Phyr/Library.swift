// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// The library as a whole, for the C entry points.
package enum Library {
    /// Makes every lazy global of the library's (the kernel probes run at
    /// load, the states and their locks), once, inside the fork guard: a
    /// fork never copies one half made.
    package static func warm() {
        _ = KernelFeatures.shared
        _ = ProcFiles.shared
        Pinner.warm()
        Holder.warm()
        IoUringCharge.warm()
        Registrar.warm()
    }
}

/// The operations the C API calls, by handle id: the library's policy.
package enum Pins {
    package static func pin(_ range: Range<UInt64>, flags: UInt32, node: Int32? = nil) throws(PhyrError) -> UInt64 {
        try Pinner.pin(range, flags: flags, node: node)
    }

    package static func split(_ id: UInt64, at offset: UInt64) throws(PhyrError) -> UInt64 {
        try Ranges.split(id, at: offset)
    }

    package static func unpin(_ id: UInt64) throws(PhyrError) {
        try Release.unpin(id)
    }

    package static func with<T>(_ id: UInt64, _ body: (PinnedRange) -> T) throws(PhyrError) -> T {
        try Ranges.with(id, body)
    }
}

package enum Rings {
    package static func register(ringFd: Int32, ranges: [UInt64]) throws(PhyrError) -> UInt {
        try Registrar.register(ringFd: ringFd, ranges: ranges)
    }

    package static func unregister(_ handle: UInt) throws(PhyrError) {
        try Registrar.unregister(handle)
    }

    /// What `ring_reg_lookup` finds for `address` in registration `handle`:
    /// no lock, no allocation.  One concrete call, so the whole search is
    /// compiled in this module with nothing generic left across the layer.
    package static func lookup(_ handle: UInt, _ address: UInt64) -> BufferLookup {
        let hit = RegistrationHandles.read(handle) { index -> (slot: UInt32, room: UInt64)? in
            index.find(address).map { (index.slot($0), index.end($0) &- address) }
        }
        guard let hit else { return .notLive }
        guard let (slot, room) = hit else { return .absent }
        return .found(slot: slot, room: room)
    }

    /// Runs `body` on the lookup index of registration `handle`: nil when it
    /// is not live.  For `ring_reg_bufs`, which copies it out.
    package static func read<T>(_ handle: UInt, _ body: (BufferIndex) -> T) -> T? {
        RegistrationHandles.read(handle, body)
    }

    package static func notLive(_ handle: UInt) -> PhyrError {
        Registrar.notLive(handle)
    }
}

package enum BufferLookup {
    /// The buffer's slot and the bytes from the address to its end.
    case found(slot: UInt32, room: UInt64)
    /// The registration is live; no buffer of it holds the address.
    case absent
    /// No live registration has this handle.
    case notLive
}
