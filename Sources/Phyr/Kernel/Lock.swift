// SPDX-License-Identifier: MIT
import CPhyr

/// A lock over a futex word of the C shim's (`phyr_shim_lock`).  Not the
/// standard library's Mutex: that one records its owner's thread id, cached
/// per thread, and a forked child's thread would lock with its parent's id
/// and fail the process on a contended unlock.
final class Lock: @unchecked Sendable {
    private let word: UnsafeMutablePointer<Int32>

    init() {
        word = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        word.initialize(to: 0)
    }

    deinit { word.deallocate() }

    @inline(__always)
    func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        phyr_shim_lock(word)
        defer { phyr_shim_unlock(word) }
        return try body()
    }
}
