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
final class ProcessLocal<State>: @unchecked Sendable {
    private let lock = Lock()
    // Read and written only under `lock`.
    private var epoch: UInt
    private var state: State
    private let forChild: (State) -> State

    init(_ state: State, forChild: @escaping (State) -> State) {
        epoch = phyr_shim_fork_epoch()
        self.state = state
        self.forChild = forChild
    }

    func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
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
@inline(__always) var forkEpoch: UInt { phyr_shim_fork_epoch() }
