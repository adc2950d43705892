// SPDX-License-Identifier: MIT
import CPhyr
import Glibc

/// The VMAs under a span of addresses: PROCMAP_QUERY, one ioctl per VMA and
/// independent of how many mappings the process has; or, on kernels before
/// 6.11, a parse of /proc/self/smaps (slow, but the only other source of the
/// page size and VM_PFNMAP/VM_IO).
enum Mappings {
    enum Failure: Error {
        case unmapped(Range<UInt64>)
        case system(Errno)
    }

    /// PROCMAP_QUERY does not tell VM_PFNMAP/VM_IO mappings apart; PAGEMAP_SCAN
    /// does (it skips them), so only the two together can replace smaps.
    private static var useProcmapQuery: Bool {
        let f = KernelFeatures.shared
        return f.procmapQuery.load(ordering: .relaxed) && f.pagemapScan.load(ordering: .relaxed)
    }

    /// The mappings tiling `span`, in order; `.unmapped` names the first hole.
    static func covering(_ span: Range<UInt64>) throws(Failure) -> [Mapping] {
        if useProcmapQuery {
            do {
                return try procmapQuery(span)
            } catch .system(let e) where e.code == ENOTTY {
                KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
            }
        }
        return try fromSmaps(span)
    }

    /// The parts of `span` that are mapped, holes allowed: for unlocking
    /// mapping by mapping, since munlock(2) stops at the first hole.  With
    /// `merged`, touching mappings come out as one part; without, one part
    /// per VMA (a VMA is locked or not as a whole).
    static func mappedParts(_ span: Range<UInt64>, merged: Bool = true) throws(Errno) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        func add(_ lo: UInt64, _ hi: UInt64) {
            let a = max(lo, span.lowerBound), b = min(hi, span.upperBound)
            guard a < b else { return }
            if merged, let last = out.last, last.upperBound == a {
                out[out.count - 1] = last.lowerBound..<b
            } else {
                out.append(a..<b)
            }
        }
        if KernelFeatures.shared.procmapQuery.load(ordering: .relaxed) {
            let fd = try ProcFiles.shared.descriptor(.maps)
            var addr = span.lowerBound
            while addr < span.upperBound {
                var q = phyr_procmap_query()
                let rc = query(fd, addr, &q, name: nil)
                if rc == ENOENT { return out }
                if rc == ENOTTY {
                    KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
                    return try mappedParts(span, merged: merged)
                }
                if rc != 0 { throw Errno(code: rc) }
                add(q.vma_start, q.vma_end)
                addr = q.vma_end
            }
            return out
        }
        try forEachMapsLine { start, end in
            if end > span.lowerBound && start < span.upperBound { add(start, end) }
            return end < span.upperBound
        }
        return out
    }

    /// Every mapping that holds a lock with libphyr's mark (VM_LOCKED with the
    /// VM_LOCKONFAULT `Locker.lock` adds), wherever it is now, and its file:
    /// memory the caller moved with mremap(2) carries the mark along.  Reads
    /// all of /proc/self/smaps: only for repairs, never on a common path.
    static func markedLocks() throws(Errno) -> [(span: Range<UInt64>, file: FileKey?)] {
        var out: [(span: Range<UInt64>, file: FileKey?)] = []
        var current: (span: Range<UInt64>, file: FileKey?)?
        let vmFlags = Array("VmFlags:".utf8)
        try forEachLine("/proc/self/smaps") { line in
            if let vma = vmaHeader(line) {
                current = (vma.start..<vma.end, fileKey(device: vma.fields[3], inode: vma.fields[4]))
            } else if line.starts(with: vmFlags), let vma = current {
                let flags = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true).dropFirst()
                    .map { String(decoding: $0, as: UTF8.self) }
                if LockMarks.isLibphyrLock(vmFlags: flags) { out.append(vma) }
            }
            return true
        }
        return out
    }

    /// The bounds of the VMA holding `address`, or of the first one after it;
    /// nil when there is none.  One PROCMAP_QUERY, or /proc/self/maps read
    /// only as far as `address`.
    static func vma(atOrAfter address: UInt64) throws(Errno) -> Range<UInt64>? {
        if KernelFeatures.shared.procmapQuery.load(ordering: .relaxed) {
            let fd = try ProcFiles.shared.descriptor(.maps)
            var q = phyr_procmap_query()
            let rc = query(fd, address, &q, name: nil)
            if rc == 0 { return q.vma_start..<q.vma_end }
            if rc == ENOENT { return nil }
            if rc != ENOTTY { throw Errno(code: rc) }
            KernelFeatures.shared.procmapQuery.store(false, ordering: .relaxed)
        }
        var found: Range<UInt64>?
        try forEachMapsLine { start, end in
            guard end > address else { return true }
            found = start..<end
            return false
        }
        return found
    }

    /// Calls `body` with each VMA of /proc/self/maps in address order until it
    /// returns false, reading the file only as far as that.
    private static func forEachMapsLine(_ body: (UInt64, UInt64) -> Bool) throws(Errno) {
        try forEachLine("/proc/self/maps") { line in
            guard let vma = vmaHeader(line) else { return true }
            return body(vma.start, vma.end)
        }
    }

    /// "start-end perms offset dev inode [name]": the first line of a VMA in
    /// maps and smaps.
    private static func vmaHeader(_ line: ArraySlice<UInt8>) -> (start: UInt64, end: UInt64, fields: [ArraySlice<UInt8>])? {
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
        guard fields.count >= 5, let first = fields.first, first.last != UInt8(ascii: ":"),
              let dash = first.firstIndex(of: UInt8(ascii: "-")),
              let lo = UInt64(String(decoding: first[first.startIndex..<dash], as: UTF8.self), radix: 16),
              let hi = UInt64(String(decoding: first[(dash + 1)...], as: UTF8.self), radix: 16) else { return nil }
        return (lo, hi, Array(fields))
    }

    /// "08:01" and "1234" of a maps line; nil for anonymous memory (inode 0).
    static func fileKey(device: ArraySlice<UInt8>, inode: ArraySlice<UInt8>) -> FileKey? {
        guard let ino = UInt64(String(decoding: inode, as: UTF8.self)), ino != 0 else { return nil }
        let parts = device.split(separator: UInt8(ascii: ":"))
        guard parts.count == 2, let major = UInt32(String(decoding: parts[0], as: UTF8.self), radix: 16),
              let minor = UInt32(String(decoding: parts[1], as: UTF8.self), radix: 16) else { return nil }
        return FileKey(major: major, minor: minor, inode: ino)
    }


    /// One PROCMAP_QUERY per VMA.  Names are not asked for: the kernel builds
    /// them with d_path, and only error messages need them (`describe`).
    static func procmapQuery(_ span: Range<UInt64>) throws(Failure) -> [Mapping] {
        let fd: Int32
        do { fd = try ProcFiles.shared.descriptor(.maps) } catch { throw .system(error) }
        var out: [Mapping] = []
        var addr = span.lowerBound
        while addr < span.upperBound {
            var q = phyr_procmap_query()
            let rc = query(fd, addr, &q, name: nil)
            if rc == ENOENT { throw .unmapped(addr..<span.upperBound) }
            if rc != 0 { throw .system(Errno(code: rc)) }
            if q.vma_start > addr { throw .unmapped(addr..<min(q.vma_start, span.upperBound)) }
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
        return out
    }

    /// PROCMAP_QUERY for the VMA covering or following `addr`; 0 or an errno
    /// (EINTR retried).
    private static func query(_ fd: Int32, _ addr: UInt64, _ q: inout phyr_procmap_query,
                              name: UnsafeMutableBufferPointer<CChar>?) -> Int32 {
        q.size = UInt64(MemoryLayout<phyr_procmap_query>.size)
        q.query_flags = UInt64(PHYR_PROCMAP_QUERY_COVERING_OR_NEXT_VMA)
        q.query_addr = addr
        if let name {
            q.vma_name_addr = UInt64(UInt(bitPattern: name.baseAddress))
            q.vma_name_size = UInt32(name.count)
        }
        while true {
            let rc = phyr_shim_ioctl(fd, UInt(PHYR_PROCMAP_QUERY), &q)
            if rc >= 0 { return 0 }
            if rc != -EINTR { return -rc }
        }
    }

    /// "mapping [start, end) name", for error messages.
    static func describe(_ m: Mapping) -> String {
        var name = m.name
        if name.isEmpty, let fd = try? ProcFiles.shared.descriptor(.maps) {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            var q = phyr_procmap_query()
            let rc = buf.withUnsafeMutableBufferPointer { query(fd, m.start, &q, name: $0) }
            if rc == 0 && q.vma_start == m.start && q.vma_name_size > 0 {
                name = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return "mapping \(spanText(m.start..<m.end))" + (name.isEmpty ? "" : " " + name)
    }

    /// Reads /proc/self/smaps as far as `span` reaches and keeps the VMAs
    /// that meet it.
    static func fromSmaps(_ span: Range<UInt64>) throws(Failure) -> [Mapping] {
        var all: [Mapping] = []
        var current: Mapping?
        var pmd: UInt64 = 0
        func finish() {
            if var m = current { m.pmdMappedBytes = pmd; all.append(m) }
            current = nil; pmd = 0
        }
        do {
            try forEachLine("/proc/self/smaps") { line in
                if let vma = vmaHeader(line) {
                    finish()
                    // Past the span: the VMAs that meet it are all read.
                    guard vma.start < span.upperBound else { return false }
                    guard vma.end > span.lowerBound else { return true }
                    let fields = vma.fields
                    let perms = Array(fields[1])
                    guard perms.count >= 4 else { return true }
                    current = Mapping(start: vma.start, end: vma.end,
                                      readable: perms[0] == UInt8(ascii: "r"),
                                      writable: perms[1] == UInt8(ascii: "w"),
                                      shared: perms[3] == UInt8(ascii: "s"),
                                      file: Self.fileKey(device: fields[3], inode: fields[4]),
                                      pageSize: basePageSize, noFolio: false, pmdMappedBytes: 0,
                                      name: fields.count > 5 ? fields[5...].map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ") : "")
                    return true
                }
                let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
                guard current != nil, fields.count >= 2, let first = fields.first else { return true }
                switch String(decoding: first, as: UTF8.self) {
                case "KernelPageSize:":
                    if let kb = UInt64(String(decoding: fields[1], as: UTF8.self)) { current?.pageSize = kb &* 1024 }
                case "AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:":
                    if let kb = UInt64(String(decoding: fields[1], as: UTF8.self)) { pmd &+= kb &* 1024 }
                case "VmFlags:":
                    let flags = fields.dropFirst().map { String(decoding: $0, as: UTF8.self) }
                    if flags.contains("pf") || flags.contains("io") { current?.noFolio = true }
                default:
                    break
                }
                return true
            }
        } catch {
            throw .system(error)
        }
        finish()

        var out: [Mapping] = []
        var addr = span.lowerBound
        for m in all where m.end > addr && addr < span.upperBound {
            if m.start > addr { throw .unmapped(addr..<min(m.start, span.upperBound)) }
            out.append(m)
            addr = m.end
        }
        if addr < span.upperBound { throw .unmapped(addr..<span.upperBound) }
        return out
    }
}
