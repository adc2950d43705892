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
    enterLibrary()
    defer { leaveLibrary() }
    return UnsafePointer(versionString)
}

@c @implementation
public func phyr_last_error() -> UnsafePointer<CChar>? {
    UnsafePointer(phyr_shim_error_buffer())
}
