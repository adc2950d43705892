// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// The /proc files of one process: this one (`shared`, "/proc/self": the
/// library's) or another by pid (phyr-inspect's).  The readers phyr-inspect
/// uses -- smaps, status, PAGEMAP_SCAN and pagemap entries, fd and fdinfo --
/// take one, so the library and the tool read processes through the same
/// code; the library's other readers (PROCMAP_QUERY, maps, PFNs) read only
/// this process.
///
/// This process's maps and pagemap descriptors are opened once.  They
/// describe the mm of the process that opened them, so a forked child drops
/// its inherited copies and opens its own instead of reading its parent's;
/// and a program that closed them behind libphyr's back (a daemon closing
/// every fd) gets them reopened rather than read through whatever took
/// their numbers.
package final class ProcFiles: @unchecked Sendable {
    package static let shared = ProcFiles(pid: nil)

    /// nil: the calling process.
    package let pid: Int32?
    /// "/proc/self" or "/proc/PID".
    package let directory: String

    package init(pid: Int32?) {
        self.pid = pid
        directory = pid.map { "/proc/\($0)" } ?? "/proc/self"
    }

    /// One thread of process `pid`: its memory is the process's, and it is
    /// still there when the main thread has exited (pthread_exit).
    package init(pid: Int32, thread: Int32) {
        self.pid = pid
        directory = "/proc/\(pid)/task/\(thread)"
    }

    package func path(_ name: String) -> String { directory + "/" + name }

    /// Another process's maps and pagemap, each opened once (phyr-inspect
    /// reads pagemap per mapping), under `other`; this process's files are
    /// the C shim's.
    private let other = Lock()
    private var opened: [Int32] = [-1, -1]

    package enum File: Int { case maps = 0, pagemap = 1 }

    deinit { for fd in opened where fd >= 0 { close(fd) } }

    /// The descriptor of the process's maps or pagemap.  This process's are
    /// kept open and checked at each use (Sources/CPhyr/fork.c).
    package func descriptor(_ file: File) throws(Errno) -> Int32 {
        if pid == nil && directory == "/proc/self" {
            return try shimRetrying { phyr_shim_self_file(Int32(file.rawValue)) }
        }
        return try other.withLock { () throws(Errno) -> Int32 in
            if opened[file.rawValue] >= 0 { return opened[file.rawValue] }
            let fd = try shimRetrying { phyr_shim_open_read(path(file == .maps ? "maps" : "pagemap")) }
            opened[file.rawValue] = fd
            return fd
        }
    }
}
