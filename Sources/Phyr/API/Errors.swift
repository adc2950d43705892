// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

/// Records `error` as this thread's last error and returns its -errno.
func fail(_ error: PhyrError) -> Int32 {
    guard let buf = phyr_shim_error_buffer() else { return -error.code }
    var n = 0
    for byte in error.message.utf8 where n < Int(PHYR_ERR_MAX) - 1 {
        buf[n] = CChar(bitPattern: byte)
        n += 1
    }
    buf[n] = 0
    return -error.code
}

/// The id a range handle encodes, or why it cannot be one.  Whether it is
/// live is asked once, under the table's lock, by the operation itself.
func pinID(_ handle: OpaquePointer?, _ function: String) throws(PhyrError) -> UInt64 {
    guard let handle, let id = PinTable.id(forHandle: UInt(bitPattern: handle)) else {
        throw notLive(function, handle, "range", .foreign)
    }
    return id
}

/// The error for a NULL, released, foreign or inherited handle.
func notLive(_ function: String, _ handle: OpaquePointer?, _ kind: String, _ why: Absence) -> PhyrError {
    guard let handle else { return PhyrError(EINVAL, "\(function): the \(kind) handle is NULL") }
    return PhyrError(EINVAL, "\(function): \(hex(UInt64(UInt(bitPattern: handle)))) is not a live \(kind): \(why.reason)")
}
