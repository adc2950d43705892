// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

/// A ring's fixed-buffer table, one io_uring_register(2) call per operation.
/// Every call goes through libphyr's own duplicate of the ring's fd, so the
/// ring outlives the caller's io_uring_queue_exit() until libphyr lets go.
enum BufferTable {
    /// io_uring_register(2), the one way libphyr calls it: the shim answers
    /// -errno, `shimRetrying` retries EINTR.
    @discardableResult
    static func register(_ fd: Int32, _ opcode: UInt32, _ arg: UnsafeMutableRawPointer?,
                         _ nrArgs: UInt32) throws(Errno) -> Int32 {
        try shimRetrying { phyr_shim_io_uring_register(fd, opcode, arg, nrArgs) }
    }

    /// Creates the table: `iovecs` in slots 0..., empty slots up to `size`.
    /// On failure the kernel has already dropped the whole table.
    static func create(_ fd: Int32, _ iovecs: [phyr_iovec], size: Int) throws(Errno) {
        var all = iovecs
        all.append(contentsOf: repeatElement(phyr_iovec(base: 0, len: 0), count: max(0, size - iovecs.count)))
        _ = try typed {
            try all.withUnsafeMutableBufferPointer { b throws(Errno) in
                try register(fd, PHYR_IORING_REGISTER_BUFFERS, b.baseAddress, UInt32(b.count))
            }
        }
    }

    /// Replaces slots `offset..<offset+iovecs.count`; `{0, 0}` empties a slot.
    /// Returns how many slots were done before a failure, and the failure.
    static func update(_ fd: Int32, offset: Int, _ iovecs: [phyr_iovec]) -> (done: Int, error: Errno?) {
        var done = 0
        while done < iovecs.count {
            let rc: Int32
            do throws(Errno) {
                rc = try typed {
                    try iovecs.withUnsafeBufferPointer { buf throws(Errno) -> Int32 in
                        guard let base = buf.baseAddress else { throw Errno(code: EINVAL) }
                        var up = phyr_rsrc_update2()
                        up.offset = UInt32(offset + done)
                        up.data = UInt64(UInt(bitPattern: base + done))
                        up.nr = UInt32(iovecs.count - done)
                        return try register(fd, PHYR_IORING_REGISTER_BUFFERS_UPDATE, &up,
                                            UInt32(MemoryLayout<phyr_rsrc_update2>.size))
                    }
                }
            } catch {
                return (done, error)
            }
            if rc == 0 { return (done, Errno(code: EIO)) }
            done += Int(rc)
        }
        return (done, nil)
    }

    /// A minimal io_uring of libphyr's own, with no queues mapped: a scratch
    /// ring, or a holder of long-term pins.  Close-on-exec, as every ring.
    static func makeRing() throws(Errno) -> Int32 {
        try shimRetrying { phyr_shim_io_uring_setup(1) }
    }

    /// Clones `count` buffers of `src`, from slot `srcSlot` on, into `dst`'s
    /// slots from `dstSlot` on (Linux 6.13+), replacing what is there.  The
    /// clones share the source's kernel buffers: nothing is pinned or charged
    /// again, and they outlive the source's slots.  The kernel rebuilds the
    /// destination's table for it (`IoUringProbes.cloneWithOffsets` says
    /// whether this kernel keeps the slots after the clones while doing so).
    static func clone(into dst: Int32, at dstSlot: Int, from src: Int32, at srcSlot: Int,
                      count: Int) throws(Errno) {
        var arg = phyr_clone_buffers()
        arg.src_fd = UInt32(bitPattern: src)
        arg.flags = PHYR_IORING_REGISTER_DST_REPLACE
        arg.src_off = UInt32(clamping: srcSlot)
        arg.dst_off = UInt32(clamping: dstSlot)
        arg.nr = UInt32(clamping: count)
        try register(dst, PHYR_IORING_REGISTER_CLONE_BUFFERS, &arg, 1)
    }

    static func destroy(_ fd: Int32) throws(Errno) {
        try register(fd, PHYR_IORING_UNREGISTER_BUFFERS, nil, 0)
    }

    /// Grows the table from `size` to `newSize` slots without re-pinning
    /// anything (Linux 6.13+): a scratch ring gets an empty table of the new
    /// size, the ring's buffers are cloned into its front, and the result is
    /// cloned back over the ring's table.  Registered buffers stay usable.
    static func growByCloning(_ fd: Int32, from size: Int, to newSize: Int) throws(Errno) {
        let scratch = try makeRing()
        defer { close(scratch) }
        var sparse = phyr_rsrc_register()
        sparse.nr = UInt32(newSize)
        sparse.flags = PHYR_IORING_RSRC_REGISTER_SPARSE
        try register(scratch, PHYR_IORING_REGISTER_BUFFERS2, &sparse, UInt32(MemoryLayout<phyr_rsrc_register>.size))
        var into = phyr_clone_buffers()
        into.src_fd = UInt32(bitPattern: fd)
        into.flags = PHYR_IORING_REGISTER_DST_REPLACE
        into.nr = UInt32(size)
        try register(scratch, PHYR_IORING_REGISTER_CLONE_BUFFERS, &into, 1)
        var back = phyr_clone_buffers()
        back.src_fd = UInt32(bitPattern: scratch)
        back.flags = PHYR_IORING_REGISTER_DST_REPLACE
        try register(fd, PHYR_IORING_REGISTER_CLONE_BUFFERS, &back, 1)
    }
}

/// What the running kernel's io_uring does, found by trying it on memory and
/// rings of libphyr's own, once per process.
package enum IoUringProbes {
    /// What IORING_REGISTER_CLONE_BUFFERS can do here.
    enum CloneSupport: UInt8, Sendable {
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
    static func cloneWithOffsets() -> CloneSupport? {
        guard let src = try? BufferTable.makeRing() else { return nil }
        defer { close(src) }
        guard let dst = try? BufferTable.makeRing() else { return nil }
        defer { close(dst) }
        let page = Int(basePageSize)
        guard let mem = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              mem != MAP_FAILED else { return nil }
        defer { munmap(mem, page) }
        let buffer = phyr_iovec(base: UInt64(UInt(bitPattern: mem)), len: UInt64(page))
        let empty = phyr_iovec(base: 0, len: 0)
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
        let kept = real ? RingFiles.bufferSlots(dst).map { $0.contains(1) } : nil
        // Unpinned now: a closed ring drops its buffers later, in a worker,
        // and VmPin would show the probe's pages for a while.
        _ = try? BufferTable.destroy(dst)
        _ = try? BufferTable.destroy(src)
        return (kept ?? keepsFollowingByRelease()) ? .offsets : .losesFollowing
    }

    /// 6.13 to 6.18.2 drop a clone's following slots (io_uring/rsrc.c, fixed
    /// by "io_uring/rsrc: fix lost entries after cloned range").
    static func keepsFollowingByRelease() -> Bool {
        guard let v = kernelRelease() else { return false }
        return v.major * 1000 + v.minor >= 6019 || (v.major == 6 && v.minor == 18 && v.patch >= 3)
    }

    /// The running kernel's version, from uname(2).
    static func kernelRelease() -> (major: Int, minor: Int, patch: Int)? {
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
    static let coalescedAbove = 1.75, separateBelow = 1.25

    static func coalescing() -> Coalescing? {
        let huge = UInt64(1) << UInt64(pmdPageShift)
        let reserve = Int(4 * huge)
        guard let raw = mmap(nil, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != MAP_FAILED else { return nil }
        defer { munmap(raw, reserve) }
        let p = alignUp(UInt64(UInt(bitPattern: raw)), huge)
        guard let mem = UnsafeMutableRawPointer(bitPattern: UInt(p)) else { return nil }
        madvise(mem, Int(2 * huge), MADV_HUGEPAGE)
        madvise(mem + Int(2 * huge), Int(huge), MADV_NOHUGEPAGE)
        memset(mem, 0x5a, Int(2 * huge + basePageSize))
        // Both folios must be THP, or there is nothing to coalesce.
        let span = p..<(p + 2 * huge)
        guard let maps = try? Mappings.covering(span),
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
