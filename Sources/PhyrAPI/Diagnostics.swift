// SPDX-License-Identifier: MIT
import CPhyr

/// The version string, made by the C shim from the header's macros, so the
/// two cannot disagree.
nonisolated(unsafe) let versionString = phyr_shim_version()

@c @implementation
public func phyr_version() -> UnsafePointer<CChar>? {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    return versionString
}

@c @implementation
public func phyr_last_error() -> UnsafePointer<CChar>? {
    // The first touch of a thread's buffer may allocate it (dynamic TLS).
    let savedErrno = phyr_shim_errno_save()
    defer { phyr_shim_errno_restore(savedErrno) }
    return UnsafePointer(phyr_shim_error_buffer())
}
