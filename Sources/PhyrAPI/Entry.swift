// SPDX-License-Identifier: MIT
import CPhyr
import Phyr
import PhyrCore

// Every entry point runs inside the fork guard (Sources/CPhyr/fork.c),
// whole, and gives the caller back the errno it found: a fork() waits for
// calls in flight and lets none start, so a child never inherits a lock, a
// half-made global of libphyr's or a half-made piece of the Swift runtime's
// (type metadata, hash seeds are made lazily, on first use, and a child
// would wait for them forever).  Thread cancellation is deferred to the end
// of the call.  ring_reg_lookup is the exception: lock-free, it only warms
// the globals once (`warmLibrary`).

/// Runs entry point `function`: inside the library, its one error turned
/// into -errno and this thread's last-error sentence, the function's name in
/// front -- the only place a message gets it.
@inline(__always)
func call(_ function: String, _ body: () throws(PhyrError) -> Int32) -> Int32 {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    do { return try body() } catch { return fail(error.prefixed(function)) }
}

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
    Library.warm()
    _ = versionString
    phyr_shim_set_globals_warm()
}

/// Records `error` as this thread's last error and returns its -errno.
func fail(_ error: PhyrError) -> Int32 {
    guard let buf = phyr_shim_error_buffer() else { return -error.errno.code }
    var n = 0
    for byte in error.message.utf8 where n < Int(PHYR_ERR_MAX) - 1 {
        buf[n] = CChar(bitPattern: byte)
        n += 1
    }
    buf[n] = 0
    return -error.errno.code
}

/// The id a range handle encodes; a NULL or foreign handle is refused.
/// Whether it is live is asked once, under the table's lock, by the
/// operation itself.
func rangeID(_ handle: OpaquePointer?, _ what: String = "the range") throws(PhyrError) -> UInt64 {
    guard let handle else { throw PhyrError(.EINVAL, "\(what) handle is NULL") }
    let raw = UInt(bitPattern: handle)
    guard let id = PinTable.id(forHandle: raw) else {
        throw Absence.foreign.error("range", handle: UInt64(raw))
    }
    return id
}

/// A registration handle's bits; a NULL one is refused.
func registrationHandle(_ reg: OpaquePointer?) throws(PhyrError) -> UInt {
    guard let reg else { throw PhyrError(.EINVAL, "the registration handle is NULL") }
    return UInt(bitPattern: reg)
}
