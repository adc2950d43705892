// SPDX-License-Identifier: MIT
import Glibc
import PhyrCore

/// Descriptors for /proc/self/maps and /proc/self/pagemap, opened once.
/// They describe the mm of the process that opened them, so a forked child
/// closes its inherited copies and opens its own instead of reading its
/// parent's; and a program that closed them behind libphyr's back (a daemon
/// closing every fd) gets them reopened rather than read through whatever
/// took their numbers.
final class ProcFiles: Sendable {
    static let shared = ProcFiles()

    private struct Opened: Sendable { var fd: Int32 = -1; var dev: UInt = 0; var ino: UInt = 0 }
    private struct Descriptors: Sendable { var maps = Opened(); var pagemap = Opened() }
    private let fds = ProcessLocal(Descriptors()) { inherited in
        for o in [inherited.maps, inherited.pagemap] where ProcFiles.stillOurs(o) { close(o.fd) }
        return Descriptors()
    }

    enum File { case maps, pagemap }

    /// Makes the descriptor table and its lock's machinery (see `enterLibrary`).
    func warm() { fds.withLock { _ in } }

    func descriptor(_ file: File) throws(Errno) -> Int32 {
        try fds.withLock { d throws(Errno) -> Int32 in
            let cached = file == .maps ? d.maps : d.pagemap
            if Self.stillOurs(cached) { return cached.fd }
            let path = file == .maps ? "/proc/self/maps" : "/proc/self/pagemap"
            let fd = try syscallRetrying { open(path, O_RDONLY | O_CLOEXEC) }
            var st = stat()
            fstat(fd, &st)
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
