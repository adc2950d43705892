import CPhyr
import Glibc
import Synchronization

/// Which kernel interfaces to use: the modern ones, or the fallbacks that
/// read /proc text, touch pages and re-register tables.
/// `PHYR_FORCE_FALLBACK=scan,populate,clone` forces the fallbacks (for tests).
final class KernelFeatures: Sendable {
    static let shared = KernelFeatures()

    /// PROCMAP_QUERY (6.11) and PAGEMAP_SCAN (6.7), else smaps + pagemap.  An
    /// ioctl answered with ENOTTY switches to the fallback for good.
    let modernScan: Atomic<Bool>
    /// MADV_POPULATE_READ/WRITE (5.14), else touching each page.  Decided by
    /// a probe on memory of our own: on the caller's memory EINVAL also means
    /// "wrong permissions", and must not be read as "old kernel".
    let populateAdvice: Bool
    /// IORING_REGISTER_CLONE_BUFFERS with offsets (6.13), else re-registering
    /// a buffer table to grow it.
    let cloneBuffers: Atomic<Bool>

    private init() {
        var forced: [Substring] = []
        if let raw = getenv("PHYR_FORCE_FALLBACK") {
            forced = String(cString: raw).split(separator: ",")
        }
        modernScan = Atomic(!forced.contains("scan"))
        populateAdvice = !forced.contains("populate") && Self.kernelHasPopulateAdvice()
        cloneBuffers = Atomic(!forced.contains("clone"))
    }

    private static func kernelHasPopulateAdvice() -> Bool {
        let page = Int(basePageSize)
        guard let probe = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              probe != MAP_FAILED else { return false }
        defer { munmap(probe, page) }
        return madvise(probe, page, PHYR_MADV_POPULATE_READ) == 0
    }
}
