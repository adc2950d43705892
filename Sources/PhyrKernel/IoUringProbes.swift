// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// What the running kernel's io_uring does, found by trying it on memory and
/// rings of libphyr's own, once per process.
package enum IoUringProbes {
    /// What IORING_REGISTER_CLONE_BUFFERS can do here.
    package enum CloneSupport: UInt8, Sendable {
        /// Whole tables at most (6.12), or nothing (before 6.12).
        case unsupported = 1
        /// Offsets and IORING_REGISTER_DST_REPLACE (6.13), but the kernel
        /// drops the destination's buffers after the cloned slots (fixed in
        /// 6.19 and 6.18.3): good for growing a table, not for cloning into
        /// the middle of one.
        case losesFollowing = 2
        /// Offsets, and every other slot of the destination kept.
        case offsets = 3
    }

    /// A clone of one buffer into slot 0 of a scratch ring whose slot 1 holds
    /// a buffer: 6.12 clones whole tables only (EINVAL for the flag, or
    /// EBUSY for a destination that has a table), before 6.12 EINVAL; and
    /// whether slot 1 survives, as the ring's fdinfo lists it.  Nil when the
    /// scratch rings cannot be made (no descriptors or memory, a seccomp
    /// filter): that says nothing about the kernel.
    package static func cloneWithOffsets() -> CloneSupport? {
        guard let src = try? BufferTable.makeRing() else { return nil }
        defer { close(src) }
        guard let dst = try? BufferTable.makeRing() else { return nil }
        defer { close(dst) }
        let page = Int(basePageSize)
        guard let mem = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              mem != mapFailed else { return nil }
        defer { munmap(mem, page) }
        let buffer = BufferSpan(addr: UInt64(UInt(bitPattern: mem)), len: UInt64(page))
        let empty = BufferSpan.empty
        // A page of buffer costs 4 KiB of RLIMIT_MEMLOCK; where even that is
        // refused, only empty tables can be probed, and the release decides
        // whether the slots after a clone survive.
        let real = (try? BufferTable.create(src, [buffer], size: 2)) != nil && (try? BufferTable.create(dst, [empty, buffer], size: 2)) != nil
        if !real {
            _ = try? BufferTable.destroy(src); _ = try? BufferTable.destroy(dst)
            guard (try? BufferTable.create(src, [], size: 2)) != nil,
                  (try? BufferTable.create(dst, [], size: 2)) != nil else { return nil }
        }
        do throws(Errno) {
            try BufferTable.clone(into: dst, at: 0, from: src, at: 0, count: 1)
        } catch {
            return .unsupported
        }
        let kept = real ? RingFiles.buffers(dst).map { $0.contains { $0.index == 1 } } : nil
        // Unpinned now: a closed ring drops its buffers later, in a worker,
        // and VmPin would show the probe's pages for a while.
        _ = try? BufferTable.destroy(dst)
        _ = try? BufferTable.destroy(src)
        return (kept ?? keepsFollowingByRelease()) ? .offsets : .losesFollowing
    }

    /// 6.13 to 6.18.2 drop a clone's following slots (io_uring/rsrc.c, fixed
    /// by "io_uring/rsrc: fix lost entries after cloned range").
    package static func keepsFollowingByRelease() -> Bool {
        guard let v = kernelRelease() else { return false }
        return v.major * 1000 + v.minor >= 6019 || (v.major == 6 && v.minor == 18 && v.patch >= 3)
    }

    /// The running kernel's version, from uname(2).
    package static func kernelRelease() -> (major: Int, minor: Int, patch: Int)? {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(3).compactMap { Int($0) }
        guard parts.count >= 2 else { return nil }
        return (parts[0], parts[1], parts.count > 2 ? parts[2] : 0)
    }

    /// What the kernel coalesces, seen in what registration costs.  Nothing
    /// else shows it: fdinfo lists buffers, not their entries.  Two huge
    /// pages, and the same plus one 4 KiB page, take the same path through
    /// pin_user_pages; where the kernel coalesces buffers of several folios
    /// the first is two entries and the second 1025, and where it does not
    /// both are 1024 and 1025.
    /// One huge page against one huge page and a 4 KiB page tells whether a
    /// buffer within one folio coalesces.  Each is the fastest of nine tries;
    /// nil when the probe cannot run here (no THP, io_uring or lock limit) or
    /// the times do not tell.
    /// Ratios that are answers: pinning costs per page either way, so the
    /// contrast is about 2 (fastest of nine tries: 2.3 and 1.9 on 6.18, 1.0 to
    /// 1.3 on 6.1 under qemu's noise).  Between them the probe has no answer,
    /// and the kernel's release decides.
    package static let coalescedAbove = 1.75, separateBelow = 1.25

    package static func coalescing() -> Coalescing? {
        let huge = UInt64(1) << UInt64(pmdPageShift)
        let reserve = Int(4 * huge)
        guard let raw = mmap(nil, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != mapFailed else { return nil }
        defer { munmap(raw, reserve) }
        let p = alignUp(UInt64(UInt(bitPattern: raw)), huge)
        guard let mem = UnsafeMutableRawPointer(bitPattern: UInt(p)) else { return nil }
        madvise(mem, Int(2 * huge), MADV_HUGEPAGE)
        madvise(mem + Int(2 * huge), Int(huge), MADV_NOHUGEPAGE)
        memset(mem, 0x5a, Int(2 * huge + basePageSize))
        // Both folios must be THP, or there is nothing to coalesce.
        let span = p..<(p + 2 * huge)
        guard case .mapped(let maps)? = try? Mappings.covering(span),
              let regions = try? PageScanner.scan(span, mappings: maps),
              Backing.classify(regions, span: span, mappings: maps).allSatisfy({ $0.flags.contains(.huge) }) else {
            return nil
        }
        guard let ring = try? BufferTable.makeRing() else { return nil }
        defer { close(ring) }

        func cost(_ base: UInt64, _ len: UInt64) -> Double? {
            var iov = phyr_iovec(base: base, len: len)
            var t0 = timespec(), t1 = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t0)
            let ok = (try? BufferTable.register(ring, PHYR_IORING_REGISTER_BUFFERS, &iov, 1)) != nil
            clock_gettime(CLOCK_MONOTONIC, &t1)
            guard ok else { return nil }
            _ = try? BufferTable.destroy(ring)
            return Double(t1.tv_sec - t0.tv_sec) * 1e9 + Double(t1.tv_nsec - t0.tv_nsec)
        }
        var best = [Double](repeating: .infinity, count: 4)
        let tries: [(UInt64, UInt64)] = [(p, 2 * huge), (p, 2 * huge + basePageSize),
                                         (p + huge, huge), (p + huge, huge + basePageSize)]
        for _ in 0..<9 {
            for (i, t) in tries.enumerated() {
                guard let c = cost(t.0, t.1) else { return nil }
                best[i] = min(best[i], c)
            }
        }
        let several = best[1] / best[0], one = best[3] / best[2]
        KernelFeatures.shared.report("coalescing probe: 2 huge pages +1 page / 2 huge pages \(several), "
                                     + "1 huge page +1 page / 1 huge page \(one)")
        func answer(_ r: Double) -> Bool? { r >= coalescedAbove ? true : r <= separateBelow ? false : nil }
        switch (answer(several), answer(one)) {
        case (true?, _): return .multiFolio
        case (false?, true?): return .singleFolio
        case (false?, false?): return .perPage
        default: return nil
        }
    }

    /// What the kernel's release says it coalesces, when the probe could not
    /// run: 6.11 merged buffers of several folios, 6.3 those within one.
    package static func coalescingByRelease() -> Coalescing {
        guard let v = kernelRelease() else { return .perPage }
        let version = v.major * 1000 + v.minor
        return version >= 6011 ? .multiFolio : version >= 6003 ? .singleFolio : .perPage
    }
}
