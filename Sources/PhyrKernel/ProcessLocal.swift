// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// State that every thread of this process shares and that a forked child
/// must not inherit: the pin table, the registrations, the descriptors.
///
/// Each critical section runs inside the fork guard (Sources/CPhyr/fork.c),
/// so fork() copies the state between critical sections, never in the middle
/// of one, and no lock is held in the child.  The first critical section in
/// the child sees a new fork epoch and hands the parent's state to
/// `forChild`, which keeps only what the child needs to explain itself
/// (which handles were the parent's).
package final class ProcessLocal<State>: @unchecked Sendable {
    @usableFromInline let lock = Lock()
    // Read and written only under `lock`.
    @usableFromInline var epoch: UInt
    @usableFromInline var state: State
    @usableFromInline let forChild: (State) -> State

    package init(_ state: State, forChild: @escaping (State) -> State) {
        epoch = phyr_shim_fork_epoch()
        self.state = state
        self.forChild = forChild
    }

    /// Inlinable, as `Lock.withLock`: its callers are in other modules.
    @inlinable
    package func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        phyr_shim_fork_guard_enter()
        defer { phyr_shim_fork_guard_leave() }
        return try lock.withLock { () throws(E) -> R in
            let now = phyr_shim_fork_epoch()
            if epoch != now {
                state = forChild(state)
                epoch = now
            }
            return try body(&state)
        }
    }
}

/// How many forks this process is a child of: 0 in the process that loaded
/// libphyr.  Cheap enough for the lookup path (one load).
@inlinable @inline(__always) package var forkEpoch: UInt { phyr_shim_fork_epoch() }

/// The fork guard (Sources/CPhyr/fork.c), for the policy's one use of it
/// beyond `ProcessLocal`.
package enum ForkGuard {
    /// Runs `body` -- a kernel call that may block as long as a ring's
    /// requests take -- outside the guard: a fork() meanwhile does not wait
    /// for it.  Only for a caller that holds no lock a forked child could
    /// need (a ring table's own lock at most: a child never touches its
    /// parent's tables).
    package static func outside<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        phyr_shim_fork_guard_step_out()
        defer { phyr_shim_fork_guard_step_in() }
        return try body()
    }
}

/// The lookup index published for each registration handle slot: chunks of
/// plain C storage (Sources/CPhyr/handles.c) that a lookup reads with no
/// lock and no lazily made global.
package enum PublishedIndex {
    /// The most slots, so the most registrations live at once.
    package static let capacity = Int(PHYR_REGISTRATIONS_MAX)

    /// Makes sure slot `slot` can be published; false without memory for it.
    package static func reserve(slot: Int) -> Bool {
        phyr_shim_handle_slot_reserve(UInt32(slot)) == 0
    }

    package static func publish(_ block: UnsafeMutableRawPointer, slot: Int) {
        phyr_shim_publish(UInt32(slot), UInt(bitPattern: block))
    }

    package static func withdraw(slot: Int) {
        phyr_shim_publish(UInt32(slot), 0)
    }

    @inlinable @inline(__always)
    package static func block(slot: Int) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: phyr_shim_published(UInt32(truncatingIfNeeded: slot)))
    }
}
