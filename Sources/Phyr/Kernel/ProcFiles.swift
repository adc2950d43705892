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
/// forked child opens its own instead of reading its parent's.
final class ProcFiles: Sendable {
    static let shared = ProcFiles()

    private struct Descriptors { var pid: pid_t = 0; var maps: Int32 = -1; var pagemap: Int32 = -1 }
    private let fds = Mutex(Descriptors())

    enum File { case maps, pagemap }

    func descriptor(_ file: File) throws(Errno) -> Int32 {
        let pid = getpid()
        let result: Result<Int32, Errno> = fds.withLock { d in
            if d.pid != pid {
                // Inherited across fork: they point at the parent's mm.
                if d.maps >= 0 { close(d.maps) }
                if d.pagemap >= 0 { close(d.pagemap) }
                d = Descriptors(pid: pid)
            }
            let path = file == .maps ? "/proc/self/maps" : "/proc/self/pagemap"
            let cached = file == .maps ? d.maps : d.pagemap
            if cached >= 0 { return .success(cached) }
            do throws(Errno) {
                let fd = try syscallRetrying { open(path, O_RDONLY | O_CLOEXEC) }
                if file == .maps { d.maps = fd } else { d.pagemap = fd }
                return .success(fd)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
