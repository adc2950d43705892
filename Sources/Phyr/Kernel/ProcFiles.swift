// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

/// The /proc files of one process: this one (`shared`, "/proc/self": the
/// library's) or another by pid (phyr-inspect's).  The readers phyr-inspect
/// uses -- smaps, status, PAGEMAP_SCAN and pagemap entries, fd and fdinfo --
/// take one, so the library and the tool read processes through the same
/// code; the library's other readers (PROCMAP_QUERY, maps, PFNs) read only
/// this process.
///
/// The maps and pagemap descriptors are opened once.  They describe the mm
/// of the process that opened them, so a forked child closes its inherited
/// copies and opens its own instead of reading its parent's; and a program
/// that closed them behind libphyr's back (a daemon closing every fd) gets
/// them reopened rather than read through whatever took their numbers.
package final class ProcFiles: Sendable {
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

    private struct Opened: Sendable { var fd: Int32 = -1; var dev: UInt = 0; var ino: UInt = 0 }
    private struct Descriptors: Sendable { var maps = Opened(); var pagemap = Opened() }
    /// A forked child's copies were closed by the fork (they are kept
    /// descriptors, see `RingFiles.keep`).
    private let fds = ProcessLocal(Descriptors()) { _ in Descriptors() }

    package enum File { case maps, pagemap }

    /// Makes the descriptor table and its lock's machinery (see `enterLibrary`).
    func warm() { fds.withLock { _ in } }

    package func descriptor(_ file: File) throws(Errno) -> Int32 {
        // This process's own files: kept in the C shim, checked without a lock.
        if pid == nil && directory == "/proc/self" {
            return try shimRetrying { phyr_shim_self_file(file == .maps ? 0 : 1) }
        }
        return try fds.withLock { d throws(Errno) -> Int32 in
            let cached = file == .maps ? d.maps : d.pagemap
            if Self.stillOurs(cached) { return cached.fd }
            // Closed behind libphyr's back: the number is not ours to close.
            if cached.fd >= 0 {
                RingFiles.forgetKept(cached.fd, naming: RingFiles.Identity(device: UInt64(cached.dev), inode: UInt64(cached.ino)))
            }
            let fd = try syscallRetrying { open(path(file == .maps ? "maps" : "pagemap"), O_RDONLY | O_CLOEXEC) }
            var st = stat()
            fstat(fd, &st)
            do throws(Errno) { try RingFiles.keep(fd, as: .proc) } catch {
                close(fd)
                throw error
            }
            let opened = Opened(fd: fd, dev: UInt(st.st_dev), ino: UInt(st.st_ino))
            if file == .maps { d.maps = opened } else { d.pagemap = opened }
            return fd
        }
    }

    private static func stillOurs(_ o: Opened) -> Bool {
        guard o.fd >= 0 else { return false }
        var st = stat()
        return fstat(o.fd, &st) == 0 && UInt(st.st_dev) == o.dev && UInt(st.st_ino) == o.ino
    }
}
