// SPDX-License-Identifier: MIT
/// Why a handle a caller passed is not live.
package enum Absence: Equatable, Sendable {
    /// Made by this process and released since.
    case released
    /// Made before this process was forked, by its parent: handles do not
    /// survive fork().
    case parents
    /// Never handed out by libphyr.
    case foreign

    /// The end of a sentence "X is not a live range: ...".
    package var reason: String {
        switch self {
        case .released: "it was released already"
        case .parents: "it belongs to the parent process (a child of fork() starts with none of its "
            + "parent's ranges or registrations)"
        case .foreign: "it is not a handle libphyr returned"
        }
    }
}

extension Absence {
    /// The refusal of `handle`, a `kind` ("range", "registration") that is
    /// not live.
    package func error(_ kind: String, handle: UInt64) -> PhyrError {
        PhyrError(.EINVAL, "\(hex(handle)) is not a live \(kind): \(reason)")
    }
}
