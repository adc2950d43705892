import Glibc
import Synchronization

/// Descriptors for /proc/self/maps and /proc/self/pagemap, opened once per
/// process.  They describe the mm of the process that opened them, so a
/// forked child opens its own instead of reading its parent's; and a program
/// that closed them behind libphyr's back (a daemon closing every fd) gets
/// them reopened rather than read through whatever took their numbers.
final class ProcFiles: Sendable {
    static let shared = ProcFiles()

    private struct Opened { var fd: Int32 = -1; var dev: UInt = 0; var ino: UInt = 0 }
    private struct Descriptors { var pid: pid_t = 0; var maps = Opened(); var pagemap = Opened() }
    private let fds = Mutex(Descriptors())

    enum File { case maps, pagemap }

    func descriptor(_ file: File) throws(Errno) -> Int32 {
        let pid = getpid()
        let result: Result<Int32, Errno> = fds.withLock { d in
            if d.pid != pid {
                // Inherited across fork: they point at the parent's mm.
                for o in [d.maps, d.pagemap] where Self.stillOurs(o) { close(o.fd) }
                d = Descriptors(pid: pid)
            }
            let cached = file == .maps ? d.maps : d.pagemap
            if Self.stillOurs(cached) { return .success(cached.fd) }
            let path = file == .maps ? "/proc/self/maps" : "/proc/self/pagemap"
            do throws(Errno) {
                let fd = try syscallRetrying { open(path, O_RDONLY | O_CLOEXEC) }
                var st = stat()
                fstat(fd, &st)
                let opened = Opened(fd: fd, dev: UInt(st.st_dev), ino: UInt(st.st_ino))
                if file == .maps { d.maps = opened } else { d.pagemap = opened }
                return .success(fd)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private static func stillOurs(_ o: Opened) -> Bool {
        guard o.fd >= 0 else { return false }
        var st = stat()
        return fstat(o.fd, &st) == 0 && UInt(st.st_dev) == o.dev && UInt(st.st_ino) == o.ino
    }
}
