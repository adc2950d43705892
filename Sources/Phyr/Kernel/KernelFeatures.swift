// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import Synchronization

/// Which kernel interfaces to use, one switch per interface.  Each starts on
/// and is turned off for good by the kernel's own answer that it lacks the
/// interface (ENOTTY for an ioctl it does not know), never by an error that
/// could also mean something else.
///
/// `PHYR_FORCE_FALLBACK` (comma-separated) forces fallbacks, for tests:
/// `procmap` (/proc/self/smaps instead of PROCMAP_QUERY), `pagemap`
/// (/proc/self/pagemap entries instead of PAGEMAP_SCAN), `scan` (both),
/// `populate` (faulting pages by hand instead of MADV_POPULATE_*), `clone`
/// (re-registering to grow a buffer table).
final class KernelFeatures: Sendable {
    static let shared = KernelFeatures()

    /// PROCMAP_QUERY on /proc/self/maps (6.11).
    let procmapQuery: Atomic<Bool>
    /// PAGEMAP_SCAN on /proc/self/pagemap (6.7).
    let pagemapScan: Atomic<Bool>
    /// MADV_POPULATE_READ/WRITE (5.14).  Decided by a probe on memory of our
    /// own: on the caller's memory EINVAL also means "wrong permissions", and
    /// must not be read as "old kernel".
    let populateAdvice: Bool
    /// IORING_REGISTER_CLONE_BUFFERS with offsets (6.13), else re-registering
    /// a buffer table to grow it.
    let cloneBuffers: Atomic<Bool>
    /// Whether each io_uring has an inode of its own (fstat tells rings
    /// apart): 0 not known yet, 1 yes, 2 no (one inode for every anonymous
    /// file, so only kcmp can tell).
    let ringInodes = Atomic<UInt8>(0)
    /// The kernel's base page size (libphyr supports 4 KiB only).
    let basePage: Int

    private init() {
        var forced: [Substring] = []
        if let raw = getenv("PHYR_FORCE_FALLBACK") {
            forced = String(cString: raw).split(separator: ",")
        }
        procmapQuery = Atomic(!forced.contains("procmap") && !forced.contains("scan"))
        pagemapScan = Atomic(!forced.contains("pagemap") && !forced.contains("scan"))
        cloneBuffers = Atomic(!forced.contains("clone"))
        basePage = sysconf(Int32(_SC_PAGESIZE))
        populateAdvice = basePage == Int(basePageSize) && !forced.contains("populate") && Self.kernelHasPopulateAdvice()
    }

    private static func kernelHasPopulateAdvice() -> Bool {
        let page = Int(basePageSize)
        guard let probe = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              probe != MAP_FAILED else { return false }
        defer { munmap(probe, page) }
        return madvise(probe, page, PHYR_MADV_POPULATE_READ) == 0
    }
}
