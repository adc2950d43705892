// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// PROCMAP_QUERY on /proc/self/maps (Linux 6.11): one ioctl answers for the
/// VMA covering (or following) an address -- bounds, permissions, page size,
/// file -- in under a microsecond, however many mappings the process has.
/// Every call throws ENOTTY on a kernel without it.
package enum ProcmapQuery {
    /// The mappings tiling `span`, one ioctl per VMA, or its first hole.
    /// Names are not asked for: the kernel builds them with d_path, and only
    /// messages need them (`name(of:)`).
    package static func tiling(_ span: Range<UInt64>) throws(Errno) -> Tiling {
        let fd = try ProcFiles.shared.descriptor(.maps)
        var out: [Mapping] = []
        var addr = span.lowerBound
        while addr < span.upperBound {
            var q = phyr_procmap_query()
            do { try query(fd, addr, &q, name: nil) } catch .ENOENT { return .hole(addr..<span.upperBound) }
            if q.vma_start > addr { return .hole(addr..<min(q.vma_start, span.upperBound)) }
            let f = q.vma_flags
            out.append(Mapping(
                start: q.vma_start, end: q.vma_end,
                readable: f & UInt64(PHYR_PROCMAP_QUERY_VMA_READABLE) != 0,
                writable: f & UInt64(PHYR_PROCMAP_QUERY_VMA_WRITABLE) != 0,
                shared: f & UInt64(PHYR_PROCMAP_QUERY_VMA_SHARED) != 0,
                file: q.inode == 0 ? nil : FileKey(major: q.dev_major, minor: q.dev_minor, inode: q.inode),
                pageSize: max(q.vma_page_size, basePageSize),
                noFolio: false, pmdMappedBytes: 0, name: ""))
            addr = q.vma_end
        }
        return .mapped(out)
    }

    /// The bounds of the VMA holding `address`, or of the first after it;
    /// nil when there is none.
    package static func vma(atOrAfter address: UInt64) throws(Errno) -> Range<UInt64>? {
        let fd = try ProcFiles.shared.descriptor(.maps)
        var q = phyr_procmap_query()
        do { try query(fd, address, &q, name: nil) } catch .ENOENT { return nil }
        return q.vma_start..<q.vma_end
    }

    /// The name of the VMA starting at `start` ("" when it has none).
    package static func name(of start: UInt64) throws(Errno) -> String {
        let fd = try ProcFiles.shared.descriptor(.maps)
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        var q = phyr_procmap_query()
        try buf.withUnsafeMutableBufferPointer { b throws(Errno) in try query(fd, start, &q, name: b) }
        guard q.vma_start == start, q.vma_name_size > 0 else { return "" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func query(_ fd: Int32, _ addr: UInt64, _ q: inout phyr_procmap_query,
                              name: UnsafeMutableBufferPointer<CChar>?) throws(Errno) {
        q.size = UInt64(MemoryLayout<phyr_procmap_query>.size)
        q.query_flags = UInt64(PHYR_PROCMAP_QUERY_COVERING_OR_NEXT_VMA)
        q.query_addr = addr
        if let name {
            q.vma_name_addr = UInt64(UInt(bitPattern: name.baseAddress))
            q.vma_name_size = UInt32(name.count)
        }
        _ = try shimRetrying { phyr_shim_ioctl(fd, UInt(PHYR_PROCMAP_QUERY), &q) }
    }
}
