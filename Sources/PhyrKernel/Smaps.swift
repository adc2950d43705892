// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// /proc/PID/smaps, read line by line through the core's `SmapsReader`, in
/// fixed memory whatever the file's size.
package enum Smaps {
    /// Calls `body` with each VMA of the process's smaps that meets
    /// [low, high), in address order, until it returns false; reads no
    /// further than `high` and returns the start of the first VMA at or
    /// after it (nil: none, or stopped before).
    package static func read(in files: ProcFiles = .shared, from low: UInt64 = 0, to high: UInt64 = .max,
                             _ body: (VMAStats) -> Bool) throws(Errno) -> UInt64? {
        var reader = SmapsReader(from: low, to: high)
        try forEachLine(files.path("smaps")) { reader.take($0, body) }
        return reader.end(body)
    }
}
