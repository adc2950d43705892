// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// io_uring_register(2) on a ring's buffer table, by descriptor: what
/// `RingFile` and the probes call.  One call per operation.
enum BufferTable {
    /// io_uring_register(2), the one way libphyr calls it: the shim answers
    /// -errno, `shimRetrying` retries EINTR.
    @discardableResult
    static func register(_ fd: Int32, _ opcode: UInt32, _ arg: UnsafeMutableRawPointer?,
                         _ nrArgs: UInt32) throws(Errno) -> Int32 {
        try shimRetrying { phyr_shim_io_uring_register(fd, opcode, arg, nrArgs) }
    }

    static func iovecs(_ spans: [BufferSpan]) -> [phyr_iovec] {
        spans.map { phyr_iovec(base: $0.addr, len: $0.len) }
    }

    /// Creates the table: `spans` in slots 0..., empty slots up to `size`.
    /// On failure the kernel has already dropped the whole table.
    static func create(_ fd: Int32, _ spans: [BufferSpan], size: Int) throws(Errno) {
        var all = iovecs(spans)
        all.append(contentsOf: repeatElement(phyr_iovec(base: 0, len: 0), count: max(0, size - spans.count)))
        _ = try all.withUnsafeMutableBufferPointer { b throws(Errno) in
            try register(fd, PHYR_IORING_REGISTER_BUFFERS, b.baseAddress, UInt32(b.count))
        }
    }

    /// Replaces slots `offset..<offset+spans.count`; an empty span empties a
    /// slot.  `done` counts the slots replaced, also when a later one fails.
    static func update(_ fd: Int32, offset: Int, _ spans: [BufferSpan], done: inout Int) throws(Errno) {
        let vecs = iovecs(spans)
        done = 0
        while done < vecs.count {
            let rc = try vecs.withUnsafeBufferPointer { buf throws(Errno) -> Int32 in
                guard let base = buf.baseAddress else { throw Errno.EINVAL }
                var up = phyr_rsrc_update2()
                up.offset = UInt32(offset + done)
                up.data = UInt64(UInt(bitPattern: base + done))
                up.nr = UInt32(vecs.count - done)
                return try register(fd, PHYR_IORING_REGISTER_BUFFERS_UPDATE, &up,
                                    UInt32(MemoryLayout<phyr_rsrc_update2>.size))
            }
            if rc == 0 { throw Errno.EIO }
            done += Int(rc)
        }
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
