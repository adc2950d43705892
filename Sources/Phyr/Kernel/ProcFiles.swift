import Glibc
import Synchronization

/// Which kernel interfaces to use: the modern ioctls, or the fallbacks that
/// read /proc text and touch pages.  A kernel that answers ENOTTY/EINVAL to an
/// ioctl switches that interface to its fallback for the life of the process.
/// `PHYR_FORCE_FALLBACK=scan,populate,clone` forces the fallbacks (for tests).
final class KernelFeatures: Sendable {
    static let shared = KernelFeatures()

    /// PROCMAP_QUERY (6.11) and PAGEMAP_SCAN (6.7), else smaps + pagemap.
    let modernScan: Atomic<Bool>
    /// MADV_POPULATE_READ/WRITE (5.14), else touching each page.
    let populateAdvice: Atomic<Bool>
    /// IORING_REGISTER_CLONE_BUFFERS with offsets (6.13), else re-registering
    /// a buffer table to grow it.
    let cloneBuffers: Atomic<Bool>

    private init() {
        var forced: [Substring] = []
        if let raw = getenv("PHYR_FORCE_FALLBACK") {
            forced = String(cString: raw).split(separator: ",")
        }
        modernScan = Atomic(!forced.contains("scan"))
        populateAdvice = Atomic(!forced.contains("populate"))
        cloneBuffers = Atomic(!forced.contains("clone"))
    }
}

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
