// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

// Every entry point runs inside the fork guard (Sources/CPhyr/fork.c), whole:
// a fork() waits for calls in flight and lets none start, so a child never
// inherits a lock, a half-made global of libphyr's or a half-made piece of
// the Swift runtime's (type metadata, hash seeds are made lazily, on first
// use, and a child would wait for them forever).  fork() itself already waits
// on the kernel's mmap lock for a populate or an mlock in flight.  Thread
// cancellation is deferred to the end of the call.  ring_reg_lookup is the
// exception: lock-free, it only warms the globals once (`warmLibrary`).

/// Enters a call; returns the caller's errno for `leaveLibrary`.
@inline(__always)
func enterLibrary() -> Int32 {
    let saved = phyr_shim_call_enter()
    if phyr_shim_globals_warm() == 0 { makeGlobals() }
    return saved
}

@inline(__always)
func leaveLibrary(_ savedErrno: Int32) {
    phyr_shim_call_leave(savedErrno)
}

@inline(__always)
func warmLibrary() {
    if phyr_shim_globals_warm() == 0 {
        leaveLibrary(enterLibrary())
    }
}

@inline(never)
private func makeGlobals() {
    _ = KernelFeatures.shared
    ProcFiles.shared.warm()
    Pinner.warm()
    Holder.warm()
    IoUringCharge.warm()
    Registrar.warm()
    _ = versionString
    phyr_shim_set_globals_warm()
}
