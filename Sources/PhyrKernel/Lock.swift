// SPDX-License-Identifier: MIT
import CPhyr

/// A lock over a futex word of the C shim's (`phyr_shim_lock`).  Not the
/// standard library's Mutex: that one records its owner's thread id, cached
/// per thread, and a forked child's thread would lock with its parent's id
/// and fail the process on a contended unlock.
package final class Lock: @unchecked Sendable {
    @usableFromInline let word: UnsafeMutablePointer<Int32>

    package init() {
        word = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        word.initialize(to: 0)
    }

    deinit { word.deallocate() }

    // Inlinable: every lock of the library's is taken from another module,
    // where an unspecialised generic call would cost more than the lock.
    @inlinable
    package func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        phyr_shim_lock(word)
        defer { phyr_shim_unlock(word) }
        return try body()
    }
}
