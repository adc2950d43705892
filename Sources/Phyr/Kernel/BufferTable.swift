// SPDX-License-Identifier: MIT
import CPhyr
import Glibc

/// A ring's fixed-buffer table, one io_uring_register(2) call per operation.
/// Every call goes through libphyr's own duplicate of the ring's fd, so the
/// ring outlives the caller's io_uring_queue_exit() until libphyr lets go.
enum BufferTable {
    /// Creates the table: `iovecs` in slots 0..., empty slots up to `size`.
    /// On failure the kernel has already dropped the whole table.
    static func create(_ fd: Int32, _ iovecs: [phyr_iovec], size: Int) throws(Errno) {
        var all = iovecs
        all.append(contentsOf: repeatElement(phyr_iovec(base: 0, len: 0), count: max(0, size - iovecs.count)))
        let rc = all.withUnsafeMutableBufferPointer {
            phyr_shim_io_uring_register(fd, PHYR_IORING_REGISTER_BUFFERS, $0.baseAddress, UInt32($0.count))
        }
        if rc < 0 { throw Errno(code: -rc) }
    }

    /// Replaces slots `offset..<offset+iovecs.count`; `{0, 0}` empties a slot.
    /// Returns how many slots were done before a failure, and the failure.
    static func update(_ fd: Int32, offset: Int, _ iovecs: [phyr_iovec]) -> (done: Int, error: Errno?) {
        var done = 0
        while done < iovecs.count {
            let rc = iovecs.withUnsafeBufferPointer { buf -> Int32 in
                guard let base = buf.baseAddress else { return -EINVAL }
                var up = phyr_rsrc_update2()
                up.offset = UInt32(offset + done)
                up.data = UInt64(UInt(bitPattern: base + done))
                up.nr = UInt32(iovecs.count - done)
                return phyr_shim_io_uring_register(fd, PHYR_IORING_REGISTER_BUFFERS_UPDATE, &up,
                                                   UInt32(MemoryLayout<phyr_rsrc_update2>.size))
            }
            if rc < 0 { return (done, Errno(code: -rc)) }
            if rc == 0 { return (done, Errno(code: EIO)) }
            done += Int(rc)
        }
        return (done, nil)
    }

    static func destroy(_ fd: Int32) throws(Errno) {
        let rc = phyr_shim_io_uring_register(fd, PHYR_IORING_UNREGISTER_BUFFERS, nil, 0)
        if rc < 0 { throw Errno(code: -rc) }
    }

    /// Grows the table from `size` to `newSize` slots without re-pinning
    /// anything (Linux 6.13+): a scratch ring gets an empty table of the new
    /// size, the ring's buffers are cloned into its front, and the result is
    /// cloned back over the ring's table.  Registered buffers stay usable.
    static func growByCloning(_ fd: Int32, from size: Int, to newSize: Int) throws(Errno) {
        let scratch = phyr_shim_io_uring_setup(1)
        if scratch < 0 { throw Errno(code: -scratch) }
        defer { close(scratch) }
        var sparse = phyr_rsrc_register()
        sparse.nr = UInt32(newSize)
        sparse.flags = PHYR_IORING_RSRC_REGISTER_SPARSE
        var rc = phyr_shim_io_uring_register(scratch, PHYR_IORING_REGISTER_BUFFERS2, &sparse,
                                             UInt32(MemoryLayout<phyr_rsrc_register>.size))
        if rc < 0 { throw Errno(code: -rc) }
        var into = phyr_clone_buffers()
        into.src_fd = UInt32(bitPattern: fd)
        into.flags = PHYR_IORING_REGISTER_DST_REPLACE
        into.nr = UInt32(size)
        rc = phyr_shim_io_uring_register(scratch, PHYR_IORING_REGISTER_CLONE_BUFFERS, &into, 1)
        if rc < 0 { throw Errno(code: -rc) }
        var back = phyr_clone_buffers()
        back.src_fd = UInt32(bitPattern: scratch)
        back.flags = PHYR_IORING_REGISTER_DST_REPLACE
        rc = phyr_shim_io_uring_register(fd, PHYR_IORING_REGISTER_CLONE_BUFFERS, &back, 1)
        if rc < 0 { throw Errno(code: -rc) }
    }
}
