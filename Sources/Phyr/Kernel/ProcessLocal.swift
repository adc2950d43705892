// SPDX-License-Identifier: MIT
import CPhyr
import Synchronization
import PhyrCore

/// State that every thread of this process shares and that a forked child
/// must not inherit: the pin table, the registrations, the descriptors.
///
/// Each critical section runs inside the fork guard (Sources/CPhyr/fork.c),
/// so fork() copies the state between critical sections, never in the middle
/// of one, and no lock is held in the child.  The first critical section in
/// the child sees a new fork epoch and hands the parent's state to
/// `forChild`, which keeps only what the child needs to explain itself
/// (which handles were the parent's) and closes the parent's descriptors.
final class ProcessLocal<State: Sendable>: Sendable {
    private struct Slot: Sendable {
        var epoch: UInt
        var state: State
    }

    private let slot: Mutex<Slot>
    private let forChild: @Sendable (State) -> State

    init(_ state: State, forChild: @escaping @Sendable (State) -> State) {
        slot = Mutex(Slot(epoch: phyr_shim_fork_epoch(), state: state))
        self.forChild = forChild
    }

    func withLock<R: Sendable, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        phyr_shim_fork_guard_enter()
        defer { phyr_shim_fork_guard_leave() }
        return try slot.withLock { (s: inout Slot) throws(E) -> R in
            let epoch = phyr_shim_fork_epoch()
            if s.epoch != epoch {
                s.state = forChild(s.state)
                s.epoch = epoch
            }
            return try body(&s.state)
        }
    }
}

/// How many forks this process is a child of: 0 in the process that loaded
/// libphyr.  Cheap enough for the lookup path (one load).
@inline(__always) var forkEpoch: UInt { phyr_shim_fork_epoch() }
