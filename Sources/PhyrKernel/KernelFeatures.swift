// SPDX-License-Identifier: MIT
import CPhyr
import Synchronization
import PhyrCore

/// Which kernel interfaces to use, one switch per interface, each probed
/// once: the ioctls start on and are turned off for good by the kernel's own
/// answer that it lacks them (ENOTTY), never by an error that could also mean
/// something else; cloning and coalescing are tried on memory and rings of
/// libphyr's own at the first registration that needs them.
///
/// `PHYR_FORCE_FALLBACK` (comma-separated) forces fallbacks, for tests:
/// `procmap` (/proc/self/maps instead of PROCMAP_QUERY), `pagemap`
/// (/proc/self/pagemap entries and smaps instead of PAGEMAP_SCAN), `scan`
/// (both), `populate` (faulting pages by hand instead of MADV_POPULATE_*),
/// `clone` (re-registering to grow a buffer table, registering long-term
/// ranges directly instead of cloning them), `coalescing` (the
/// kernel's release instead of the coalescing probe), `ring-inode` (the
/// answer of a kernel before 5.16: every io_uring on one shared inode),
/// `node-query` (asking the kernel each folio's node on a one-node machine).
package final class KernelFeatures: Sendable {
    package static let shared = KernelFeatures()

    /// PROCMAP_QUERY on /proc/self/maps (6.11).
    package let procmapQuery: Atomic<Bool>
    /// PAGEMAP_SCAN on /proc/self/pagemap (6.7).
    package let pagemapScan: Atomic<Bool>
    /// MADV_POPULATE_READ/WRITE (5.14).  Decided by a probe on memory of our
    /// own: on the caller's memory EINVAL also means "wrong permissions", and
    /// must not be read as "old kernel".
    package let populateAdvice: Bool
    /// What IORING_REGISTER_CLONE_BUFFERS can do: 0 not probed yet, else an
    /// `IoUringProbes.CloneSupport`.
    private let cloneState: Atomic<UInt8>
    /// What io_uring coalesces: 0 not probed yet, else a `Coalescing`.
    private let coalescingState = Atomic<UInt8>(0)
    /// `PHYR_FORCE_FALLBACK=coalescing`: the release decides, unprobed.
    private let coalescingByReleaseOnly: Bool
    /// The kernel's base page size (libphyr supports 4 KiB only).
    package let basePage: Int
    /// Whether each io_uring has an inode of its own (5.16 and later), which
    /// is how libphyr tells rings apart: 0 not probed yet, 1 yes, 2 no.
    private let ownInodeState: Atomic<UInt8>

    /// `PHYR_DEBUG=probes`: say on stderr what each probe decided.
    private let reportProbes: Bool
    /// `PHYR_FORCE_FALLBACK=node-query`: ask each folio's node on one node.
    package let nodeQueryForced: Bool

    private init() {
        var forced: [Substring] = []
        if let raw = getenv("PHYR_FORCE_FALLBACK") {
            forced = String(cString: raw).split(separator: ",")
        }
        reportProbes = getenv("PHYR_DEBUG").map { String(cString: $0).split(separator: ",").contains("probes") } ?? false
        let procmap = !forced.contains("procmap") && !forced.contains("scan") && Self.kernelKnowsIoctl(
            "/proc/self/maps", UInt(PHYR_PROCMAP_QUERY), size: MemoryLayout<phyr_procmap_query>.size)
        let pagemap = !forced.contains("pagemap") && !forced.contains("scan") && Self.kernelKnowsIoctl(
            "/proc/self/pagemap", UInt(PHYR_PAGEMAP_SCAN), size: MemoryLayout<phyr_pm_scan_arg>.size)
        procmapQuery = Atomic(procmap)
        pagemapScan = Atomic(pagemap)
        cloneState = Atomic(forced.contains("clone") ? IoUringProbes.CloneSupport.unsupported.rawValue : 0)
        nodeQueryForced = forced.contains("node-query")
        coalescingByReleaseOnly = forced.contains("coalescing")
        ownInodeState = Atomic(forced.contains("ring-inode") ? 2 : 0)
        basePage = sysconf(Int32(_SC_PAGESIZE))
        populateAdvice = basePage == Int(basePageSize) && !forced.contains("populate") && Self.kernelHasPopulateAdvice()
        report("PROCMAP_QUERY \(procmap ? "yes" : "no"), PAGEMAP_SCAN \(pagemap ? "yes" : "no"), "
               + "MADV_POPULATE \(populateAdvice ? "yes" : "no"), base page \(basePage)")
    }

    /// Whether the kernel gives each io_uring an inode of its own, asked
    /// with the caller's ring `ringFd` the first time: before 5.16 every ring
    /// is a file on the one anonymous inode an eventfd also gets.  Without
    /// an answer (no descriptor to spare) it is asked again next time.
    package func ringsHaveOwnInodes(_ ringFd: Int32) -> Bool {
        let known = ownInodeState.load(ordering: .relaxed)
        if known != 0 { return known == 1 }
        guard let ring = try? RingIdentity.of(ringFd), let anon = try? shimRetrying({ phyr_shim_anonymous_file() })
        else { return true }
        defer { close(anon) }
        guard let shared = try? RingIdentity.of(anon) else { return true }
        let own = ring != shared
        ownInodeState.store(own ? 1 : 2, ordering: .relaxed)
        report("each io_uring has an inode of its own: \(own ? "yes" : "no (before 5.16): ring_register_ranges refused")")
        return own
    }

    package func report(_ what: String) {
        guard reportProbes else { return }
        let line = Array("libphyr: probe: \(what)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// Whether an ioctl exists: the kernel answers ENOTTY for one it does not
    /// know, whatever the argument; an argument of zeros with its size set
    /// gets some other answer from one it knows.
    private static func kernelKnowsIoctl(_ path: String, _ request: UInt, size: Int) -> Bool {
        // A file that cannot be opened now (no descriptors, /proc not yet
        // mounted) says nothing about the kernel: assume the ioctl, whose
        // first use turns it off if the kernel answers ENOTTY.
        let fd = phyr_shim_open_read(path)
        guard fd >= 0 else { return true }
        defer { close(fd) }
        var arg = [UInt64](repeating: 0, count: (size + 7) / 8)
        arg[0] = UInt64(size)
        return arg.withUnsafeMutableBytes { phyr_shim_ioctl(fd, request, $0.baseAddress) } != -ENOTTY
    }

    /// What IORING_REGISTER_CLONE_BUFFERS can do (probed at first need).
    private var cloneSupport: IoUringProbes.CloneSupport {
        if let known = IoUringProbes.CloneSupport(rawValue: cloneState.load(ordering: .relaxed)) { return known }
        guard let found = IoUringProbes.cloneWithOffsets() else { return .unsupported }  // asked again next time
        cloneState.store(found.rawValue, ordering: .relaxed)
        switch found {
        case .unsupported: report("IORING_REGISTER_CLONE_BUFFERS with offsets no: tables grow by re-registering, "
                           + "long-term ranges are registered directly")
        case .losesFollowing: report("IORING_REGISTER_CLONE_BUFFERS with offsets yes, but it drops the slots after "
                                     + "a clone: tables grow by cloning, long-term ranges are registered directly")
        case .offsets: report("IORING_REGISTER_CLONE_BUFFERS with offsets yes: tables grow by cloning, "
                              + "long-term ranges are cloned into rings")
        }
        return found
    }

    /// Whether tables grow by cloning.
    package var cloneBuffers: Bool { cloneSupport != .unsupported }

    /// Whether a held buffer can be cloned into any slot of a ring's table.
    package var cloneIntoSlots: Bool { cloneSupport == .offsets }

    /// Cloning failed where the probe said it works (a seccomp filter now
    /// denying the scratch ring, say): re-register from now on.
    package func stopCloningIntoSlots() {
        if cloneSupport == .offsets { cloneState.store(IoUringProbes.CloneSupport.losesFollowing.rawValue, ordering: .relaxed) }
    }

    package func stopCloning() { cloneState.store(IoUringProbes.CloneSupport.unsupported.rawValue, ordering: .relaxed) }

    /// What the running kernel coalesces (probed at the first registration;
    /// by its release when the probe cannot run).  `PHYR_FORCE_FALLBACK=
    /// coalescing` takes the release's word, for testing that path.
    package var coalescing: Coalescing {
        if let known = Coalescing(rawValue: coalescingState.load(ordering: .relaxed)) { return known }
        // Never more than the release can do: the probe times registrations,
        // and a noisy machine must not make libphyr claim coalescing.
        let release = IoUringProbes.coalescingByRelease()
        let probed = coalescingByReleaseOnly ? nil : IoUringProbes.coalescing().map { Coalescing(rawValue: min($0.rawValue, release.rawValue)) ?? release }
        let found = probed ?? release
        coalescingState.store(found.rawValue, ordering: .relaxed)
        report("io_uring coalesces \(found.text) (\(probed == nil ? "by the kernel's release: the probe could not run or tell" : "measured"))")
        return found
    }

    private static func kernelHasPopulateAdvice() -> Bool {
        let page = Int(basePageSize)
        guard let probe = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              probe != mapFailed else { return false }
        defer { munmap(probe, page) }
        return madvise(probe, page, PHYR_MADV_POPULATE_READ) == 0
    }
}
