// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

/// Built once from the header's macros, so the two cannot disagree; never
/// written after, so sharing it between threads is safe.
nonisolated(unsafe) let versionString: UnsafeMutablePointer<CChar>? =
    strdup("\(PHYR_VERSION_MAJOR).\(PHYR_VERSION_MINOR).\(PHYR_VERSION_PATCH)")

@c @implementation
public func phyr_version() -> UnsafePointer<CChar>? {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    return UnsafePointer(versionString)
}

@c @implementation
public func phyr_last_error() -> UnsafePointer<CChar>? {
    // The first touch of a thread's buffer may allocate it (dynamic TLS).
    let savedErrno = phyr_shim_errno_save()
    defer { phyr_shim_errno_restore(savedErrno) }
    return UnsafePointer(phyr_shim_error_buffer())
}
